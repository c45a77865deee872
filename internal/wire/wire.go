// Package wire converts between the protobuf API types and the domain types,
// and between domain error codes and gRPC status codes. It is the only place
// where the two worlds meet: the server uses it on the way in and out, and the
// Go client uses the same functions in reverse, so both ends agree by
// construction.
package wire

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// codeTable maps domain error codes to gRPC codes; grpc-gateway derives the
// HTTP status from the gRPC code (INVALID_ARGUMENT → 400, and so on).
var codeTable = map[string]codes.Code{
	audittrail.EInvalid:          codes.InvalidArgument,
	audittrail.ENotFound:         codes.NotFound,
	audittrail.EConflict:         codes.AlreadyExists,
	audittrail.EUnauthenticated:  codes.Unauthenticated,
	audittrail.EPermissionDenied: codes.PermissionDenied,
	audittrail.ETooLarge:         codes.ResourceExhausted,
	audittrail.EExhausted:        codes.ResourceExhausted,
	audittrail.EUnavailable:      codes.Unavailable,
	audittrail.EUnimplemented:    codes.Unimplemented,
	audittrail.EInternal:         codes.Internal,
}

// GRPCCode returns the gRPC code for a domain error code.
func GRPCCode(code string) codes.Code {
	if c, ok := codeTable[code]; ok {
		return c
	}
	return codes.Internal
}

// DomainCode returns the domain error code for a gRPC code.
func DomainCode(c codes.Code) string {
	switch c {
	case codes.OK:
		return ""
	case codes.ResourceExhausted:
		return audittrail.EExhausted
	case codes.DeadlineExceeded, codes.Canceled:
		return audittrail.EUnavailable
	}
	for k, v := range codeTable {
		if v == c && k != audittrail.ETooLarge && k != audittrail.EExhausted {
			return k
		}
	}
	return audittrail.EInternal
}

// ToStatus converts a domain error to a gRPC status error. Errors that are
// not *audittrail.Error become INTERNAL with a generic message; their detail
// must be logged by the caller, never sent.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(GRPCCode(audittrail.ErrorCode(err)), audittrail.ErrorMessage(err))
}

// FromStatus converts an error returned by a gRPC call to *audittrail.Error.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *audittrail.Error
	if errors.As(err, &e) {
		return e
	}
	s, ok := status.FromError(err)
	if !ok {
		return &audittrail.Error{Code: audittrail.EUnavailable, Message: err.Error()}
	}
	return &audittrail.Error{Code: DomainCode(s.Code()), Message: s.Message()}
}

// EventToProto converts a stored event for output. Every field is set, so the
// JSON carries every key (the generated Python client needs them all).
func EventToProto(e *audittrail.Event) *pb.Event {
	out := &pb.Event{}
	fillEvent(out, new([2]timestamppb.Timestamp), nil, e)
	return out
}

// EventsToProto converts the stored events of an answer, as EventToProto
// does each. The messages of the events, of their timestamps and of their
// statuses are allocated as one array each rather than one by one: a page
// of 1,000 events takes about 1,500 allocations (mostly the names) instead
// of 4,400, and half the time (BenchmarkEventsToProto), which spares the
// server's CPU in malloc and in the garbage collector. The arrays live as
// long as any event of the page, which is as long as the answer.
func EventsToProto(events []*audittrail.Event) []*pb.Event {
	msgs := make([]pb.Event, len(events))
	times := make([][2]timestamppb.Timestamp, len(events))
	statuses := make([]pb.Status, len(events))
	out := make([]*pb.Event, len(events))
	for i, e := range events {
		fillEvent(&msgs[i], &times[i], &statuses[i], e)
		out[i] = &msgs[i]
	}
	return out
}

// fillEvent sets every field of the empty message out from e; ts become its
// timestamps, and st its status when e has one (nil: a new one).
func fillEvent(out *pb.Event, ts *[2]timestamppb.Timestamp, st *pb.Status, e *audittrail.Event) {
	ts[0].Seconds, ts[0].Nanos = e.EventTime.Unix(), int32(e.EventTime.Nanosecond())
	ts[1].Seconds, ts[1].Nanos = e.ReceiveTime.Unix(), int32(e.ReceiveTime.Nanosecond())
	out.Name = e.Name()
	out.EventTime = &ts[0]
	out.ReceiveTime = &ts[1]
	out.EventSource = e.EventSource
	out.Action = e.Action
	out.ReadOnly = e.ReadOnly
	out.Principal = e.Principal
	out.LoginPrincipal = e.LoginPrincipal
	out.SourceIpAddress = e.SourceIP
	out.UserAgent = e.UserAgent
	out.Resource = e.Resource
	out.Workspace = e.Workspace
	out.RequestParameters = nonNilMap(e.RequestParameters)
	out.Metadata = nonNilMap(e.Metadata)
	out.Type = pb.EventType(e.Type)
	if e.Status != nil {
		if st == nil {
			st = &pb.Status{}
		}
		st.Code, st.Message = e.Status.Code, e.Status.Message
		out.Status = st
	}
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// EventFromProto converts a producer's event. Output-only fields of the
// message are ignored: the service sets them.
func EventFromProto(p *pb.Event) (audittrail.NewEvent, error) {
	out, err := eventFromProto(p)
	if err == nil && p.EventTime != nil && out.Event.EventTime.IsZero() {
		// 0001-01-01T00:00:00Z was given: the zero time.Time, which the
		// service's validation would report as missing.
		return out, audittrail.EventTimeOutOfRange(out.Event.EventTime)
	}
	return out, err
}

// eventFromProto is EventFromProto without the producer's check, for the
// events a server wrote (OutputEventInto): what they hold is read as is.
func eventFromProto(p *pb.Event) (audittrail.NewEvent, error) {
	var out audittrail.NewEvent
	if p == nil {
		return out, audittrail.Errorf(audittrail.EInvalid, "event is required")
	}
	e := &out.Event
	if p.EventTime != nil {
		t, err := timeFromProto("event.event_time", p.EventTime)
		if err != nil {
			return out, err
		}
		e.EventTime = t
	}
	e.EventSource = p.EventSource
	e.Action = p.Action
	e.ReadOnly = p.ReadOnly
	if p.Status != nil {
		e.Status = &audittrail.Status{Code: p.Status.Code, Message: p.Status.Message}
	}
	e.Principal = p.Principal
	e.SourceIP = p.SourceIpAddress
	e.UserAgent = p.UserAgent
	e.Resource = p.Resource
	e.RequestParameters = p.RequestParameters
	e.Metadata = p.Metadata
	e.Type = audittrail.EventType(p.Type)
	out.WorkspaceOverride = p.WorkspaceOverride
	return out, nil
}

// EventFromOutputProto converts an event as the server returns it (the Go
// client's direction), keeping the server-set fields.
func EventFromOutputProto(p *pb.Event) (*audittrail.Event, error) {
	e := new(audittrail.Event)
	if err := OutputEventInto(e, p); err != nil {
		return nil, err
	}
	return e, nil
}

// OutputEventInto is EventFromOutputProto into an Event of the caller's, so
// that a page's events can share one allocation (the Go client's searches).
func OutputEventInto(dst *audittrail.Event, p *pb.Event) error {
	ne, err := eventFromProto(p)
	if err != nil {
		return err
	}
	*dst = ne.Event
	if p.ReceiveTime != nil {
		dst.ReceiveTime = p.ReceiveTime.AsTime()
	}
	const prefix = "events/"
	if len(p.Name) > len(prefix) && p.Name[:len(prefix)] == prefix {
		dst.ID = p.Name[len(prefix):]
	}
	dst.Workspace = p.Workspace
	dst.LoginPrincipal = p.LoginPrincipal
	return nil
}

func timeFromProto(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, audittrail.Errorf(audittrail.EInvalid, "%s is not a valid timestamp: %v", field, err)
	}
	return ts.AsTime(), nil
}

// FilterFromProto converts a search filter. A nil filter means no filter.
func FilterFromProto(p *pb.SearchEventsRequest_Filter) (audittrail.Filter, error) {
	var f audittrail.Filter
	if p == nil {
		return f, nil
	}
	for _, t := range []struct {
		name string
		ts   *timestamppb.Timestamp
		dst  **time.Time
	}{{"filter.start_event_time", p.StartEventTime, &f.StartTime}, {"filter.end_event_time", p.EndEventTime, &f.EndTime}} {
		if t.ts == nil {
			continue
		}
		v, err := timeFromProto(t.name, t.ts)
		if err != nil {
			return f, err
		}
		*t.dst = &v
	}
	f.Exact = [audittrail.NumFields]string{
		audittrail.FieldEventSource: p.GetEventSourceExact(),
		audittrail.FieldResource:    p.GetResourceExact(),
		audittrail.FieldPrincipal:   p.GetPrincipalExact(),
		audittrail.FieldSourceIP:    p.GetSourceIpAddressExact(),
		audittrail.FieldWorkspace:   p.GetWorkspaceExact(),
		audittrail.FieldAction:      p.GetActionExact(),
	}
	f.Regex = [audittrail.NumFields]string{
		audittrail.FieldEventSource: p.GetEventSourceRegex(),
		audittrail.FieldResource:    p.GetResourceRegex(),
		audittrail.FieldPrincipal:   p.GetPrincipalRegex(),
		audittrail.FieldSourceIP:    p.GetSourceIpAddressRegex(),
		audittrail.FieldWorkspace:   p.GetWorkspaceRegex(),
		audittrail.FieldAction:      p.GetActionRegex(),
	}
	f.ReadOnly = p.ReadOnly
	f.StatusCodeRegex = p.GetStatusCodeRegex()
	f.MetadataExact = p.MetadataExact
	f.MetadataRegex = p.MetadataRegex
	for _, t := range p.IncludeTypes {
		f.IncludeTypes = append(f.IncludeTypes, audittrail.EventType(t))
	}
	for _, t := range p.ExcludeTypes {
		f.ExcludeTypes = append(f.ExcludeTypes, audittrail.EventType(t))
	}
	return f, nil
}

// FilterToProto converts a filter for sending (the Go client's direction).
func FilterToProto(f *audittrail.Filter) *pb.SearchEventsRequest_Filter {
	p := &pb.SearchEventsRequest_Filter{}
	if f.StartTime != nil {
		p.StartEventTime = timestamppb.New(*f.StartTime)
	}
	if f.EndTime != nil {
		p.EndEventTime = timestamppb.New(*f.EndTime)
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	p.EventSourceExact = opt(f.Exact[audittrail.FieldEventSource])
	p.ResourceExact = opt(f.Exact[audittrail.FieldResource])
	p.PrincipalExact = opt(f.Exact[audittrail.FieldPrincipal])
	p.SourceIpAddressExact = opt(f.Exact[audittrail.FieldSourceIP])
	p.WorkspaceExact = opt(f.Exact[audittrail.FieldWorkspace])
	p.ActionExact = opt(f.Exact[audittrail.FieldAction])
	p.EventSourceRegex = opt(f.Regex[audittrail.FieldEventSource])
	p.ResourceRegex = opt(f.Regex[audittrail.FieldResource])
	p.PrincipalRegex = opt(f.Regex[audittrail.FieldPrincipal])
	p.SourceIpAddressRegex = opt(f.Regex[audittrail.FieldSourceIP])
	p.WorkspaceRegex = opt(f.Regex[audittrail.FieldWorkspace])
	p.ActionRegex = opt(f.Regex[audittrail.FieldAction])
	p.ReadOnly = f.ReadOnly
	p.StatusCodeRegex = opt(f.StatusCodeRegex)
	p.MetadataExact = f.MetadataExact
	p.MetadataRegex = f.MetadataRegex
	for _, t := range f.IncludeTypes {
		p.IncludeTypes = append(p.IncludeTypes, pb.EventType(t))
	}
	for _, t := range f.ExcludeTypes {
		p.ExcludeTypes = append(p.ExcludeTypes, pb.EventType(t))
	}
	return p
}

// NewEventToProto converts a producer's event for sending (the Go client's
// direction).
func NewEventToProto(ne *audittrail.NewEvent) *pb.Event {
	e := ne.Event
	p := EventToProto(&e)
	p.Name, p.ReceiveTime, p.Workspace, p.LoginPrincipal = "", nil, "", ""
	p.WorkspaceOverride = ne.WorkspaceOverride
	return p
}

// BatchFailureToProto converts a per-item failure of a batch.
func BatchFailureToProto(e *audittrail.Error) (code int32, message string) {
	return int32(GRPCCode(e.Code)), e.Message
}
