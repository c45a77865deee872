package server

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// chain composes interceptors into one, the first outermost. The same
// composed interceptor is given to the grpc.Server and to the gateway's
// in-process adapter (intercepted), so both paths run identical code.
func chain(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, h := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, h) }
		}
		return next(ctx, req)
	}
}

// rpcInterceptor records the method and outcome of the call for the
// request's log line and metrics (see requestInfo).
// It is the first interceptor: the request has arrived, and its read
// deadline ends (received).
func rpcInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	received(ctx)
	resp, err := handler(ctx, req)
	noteRPC(ctx, info.FullMethod, err)
	return resp, err
}

// decodeErrors answers INVALID_ARGUMENT for a request whose strings are not
// all UTF-8, which the codec decoded anyway so that the call gets here
// (wire.DecodeError; grpc-go would have answered INTERNAL), and
// RESOURCE_EXHAUSTED for a request other than a create over
// MaxPublicRequestSize, which the codec did not decode. Like REST's 400 and
// 413 for such bodies, without a self-audit event; an authenticated caller
// is named and charged its rate limit (chargeUndecoded). Only an authenticated
// caller's request is decoded (auth_early.go): another's is empty here.
// It comes first in the chain but for the metrics: an interceptor that
// answered before it would leave the codec's entry for the request behind.
func decodeErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := wire.DecodeError(req); err != nil {
		if over := chargeUndecoded(ctx); over != nil {
			return nil, over
		}
		return nil, wire.ToStatus(err)
	}
	return handler(ctx, req)
}

// recoverPanics turns a panic in a call into INTERNAL, with the stack in the
// request's log line, instead of ending the process (grpc.Server runs calls
// in goroutines of its own, where a panic is fatal).
func recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in %s: %v\n%s", info.FullMethod, r, debug.Stack())
			noteInternal(ctx, err)
			err = wire.ToStatus(err)
		}
	}()
	return handler(ctx, req)
}

var errCreateNotServed = audittrail.Errorf(audittrail.EUnimplemented, "event creation is served only on the internal listener")

// publicOnly refuses the create methods on the public listener, before
// authentication, so the answer does not depend on the credentials (as the
// REST create paths answer 405 whatever the token).
func publicOnly(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	switch info.FullMethod {
	case pb.EventService_CreateEvent_FullMethodName, pb.EventService_BatchCreateEvents_FullMethodName:
		return nil, wire.ToStatus(errCreateNotServed)
	}
	return handler(ctx, req)
}

// intercepted is the EventService as the gateway calls it: every method goes
// through the interceptor chain of the listener, exactly as a gRPC call does,
// before reaching the implementation. Calling in process (instead of dialling
// our own gRPC port) keeps one authentication path without a second
// serialization, a loopback connection, or a second message size limit.
type intercepted struct {
	pb.UnimplementedEventServiceServer
	impl      pb.EventServiceServer
	intercept grpc.UnaryServerInterceptor
}

func (s *intercepted) CreateEvent(ctx context.Context, req *pb.CreateEventRequest) (*pb.CreateEventResponse, error) {
	return invoke(ctx, s, pb.EventService_CreateEvent_FullMethodName, req, s.impl.CreateEvent)
}

func (s *intercepted) BatchCreateEvents(ctx context.Context, req *pb.BatchCreateEventsRequest) (*pb.BatchCreateEventsResponse, error) {
	return invoke(ctx, s, pb.EventService_BatchCreateEvents_FullMethodName, req, s.impl.BatchCreateEvents)
}

func (s *intercepted) SearchEvents(ctx context.Context, req *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
	return invoke(ctx, s, pb.EventService_SearchEvents_FullMethodName, req, s.impl.SearchEvents)
}

func invoke[Req, Resp any](ctx context.Context, s *intercepted, method string, req Req, h func(context.Context, Req) (Resp, error)) (Resp, error) {
	info := &grpc.UnaryServerInfo{Server: s.impl, FullMethod: method}
	resp, err := s.intercept(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return h(ctx, req.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return resp.(Resp), nil
}
