package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// eventService implements the EventService over an audittrail.Service. It
// only converts and delegates: authorization is audittrail.CanSearch and
// audittrail.CanCreate, every other rule is the Service's. With a
// verifiable log it also attaches proofs to searches and receipts to creates
// when asked (proofs.go).
type eventService struct {
	pb.UnimplementedEventServiceServer
	svc         *audittrail.Service
	log         VerifiableLog // nil: no proofs, no receipts
	receiptWait time.Duration
}

func (s *eventService) CreateEvent(ctx context.Context, req *pb.CreateEventRequest) (*pb.CreateEventResponse, error) {
	if err := audittrail.CanCreate(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if req.GetIncludeReceipt() && s.log == nil {
		return nil, toStatus(ctx, errNoLog)
	}
	in, err := wire.EventFromProto(req.GetEvent())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	e, err := s.svc.CreateEvent(ctx, req.GetEventId(), in)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.CreateEventResponse{Event: wire.EventToProto(e)}
	if req.GetIncludeReceipt() {
		if out.Receipt, err = receipts(ctx, s.log, s.receiptWait, []*audittrail.Event{e}, []*pb.Event{out.Event}); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	return out, nil
}

func (s *eventService) BatchCreateEvents(ctx context.Context, req *pb.BatchCreateEventsRequest) (*pb.BatchCreateEventsResponse, error) {
	if err := audittrail.CanCreate(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if req.GetIncludeReceipts() && s.log == nil {
		return nil, toStatus(ctx, errNoLog)
	}
	reqs := make([]audittrail.CreateRequest, len(req.GetRequests()))
	failed := map[int32]*status.Status{}
	for i, r := range req.GetRequests() {
		in, err := wire.EventFromProto(r.GetEvent())
		if err != nil {
			// A conversion error fails its item only, like a validation
			// error of the Service. The item stays in reqs with an empty
			// event id so that the Service keeps the indexes; its own
			// failure is replaced below by this one.
			failed[int32(i)] = failureStatus(err)
			continue
		}
		reqs[i] = audittrail.CreateRequest{EventID: r.GetEventId(), Event: in}
	}
	res, err := s.svc.BatchCreateEvents(ctx, reqs)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.BatchCreateEventsResponse{
		Events:         wire.EventsToProto(res.Events),
		FailedRequests: failed,
	}
	for i, e := range res.Failed {
		if _, ok := failed[int32(i)]; ok {
			continue
		}
		failed[int32(i)] = failureStatus(e)
	}
	if req.GetIncludeReceipts() {
		if out.Receipts, err = receipts(ctx, s.log, s.receiptWait, res.Events, out.Events); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	return out, nil
}

// failureStatus is the google.rpc.Status of one failed batch item.
func failureStatus(err error) *status.Status {
	e := &audittrail.Error{Code: audittrail.ErrorCode(err), Message: audittrail.ErrorMessage(err)}
	code, msg := wire.BatchFailureToProto(e)
	return &status.Status{Code: code, Message: msg}
}

func (s *eventService) SearchEvents(ctx context.Context, req *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
	if err := audittrail.CanSearch(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if req.GetIncludeProofs() && s.log == nil {
		return nil, toStatus(ctx, errNoLog)
	}
	f, err := wire.FilterFromProto(req.GetFilter())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	res, err := s.svc.SearchEvents(ctx, audittrail.SearchEventsRequest{
		Filter:    f,
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.SearchEventsResponse{
		Events:            wire.EventsToProto(res.Events),
		NextPageToken:     res.NextPageToken,
		SearchedUntilTime: timestamppb.New(res.SearchedUntil),
	}
	if req.GetIncludeProofs() {
		if out.Proofs, err = logProofs(s.log, res.Events, out.Events); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	return out, nil
}

// toStatus converts an error of the domain to the gRPC status to return. The
// text of an internal error goes to the request's log line, never to the
// caller. A request given up by its caller (or past its deadline) reports that
// rather than an internal error.
func toStatus(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return grpcstatus.FromContextError(ctxErr).Err()
	}
	if audittrail.ErrorCode(err) == audittrail.EInternal {
		noteInternal(ctx, err)
	}
	return wire.ToStatus(err)
}
