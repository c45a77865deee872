package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// These tests run the client against a scripted gRPC server on a real
// socket: they check what goes over the wire, the conversions back, and the
// retry policy, with answers a real server gives only under failure. The
// tests against the real server are in server_test.go.

// fake is an EventService whose methods are set per test.
type fake struct {
	pb.UnimplementedEventServiceServer
	create func(context.Context, *pb.CreateEventRequest) (*pb.CreateEventResponse, error)
	batch  func(context.Context, *pb.BatchCreateEventsRequest) (*pb.BatchCreateEventsResponse, error)
	search func(context.Context, *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error)
}

func (f *fake) CreateEvent(ctx context.Context, r *pb.CreateEventRequest) (*pb.CreateEventResponse, error) {
	return f.create(ctx, r)
}

func (f *fake) BatchCreateEvents(ctx context.Context, r *pb.BatchCreateEventsRequest) (*pb.BatchCreateEventsResponse, error) {
	return f.batch(ctx, r)
}

func (f *fake) SearchEvents(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
	return f.search(ctx, r)
}

// serve starts f on a free port and returns its address.
func serve(t *testing.T, f *fake) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterEventServiceServer(s, f)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testEvent() audittrail.NewEvent {
	ws := "workspaces/override"
	return audittrail.NewEvent{
		Event: audittrail.Event{
			EventTime:         time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
			EventSource:       "h2oai-enginemanager-server",
			Action:            "actions/enginemanager/daiEngines/CREATE",
			Status:            &audittrail.Status{Code: 3, Message: "bad"},
			Principal:         "users/1",
			SourceIP:          "1.2.3.4",
			UserAgent:         "ua",
			Resource:          "//engine-manager/workspaces/w1/daiEngines/e1",
			RequestParameters: map[string]string{"a": "b"},
			Metadata:          map[string]string{"region": "eu"},
			Type:              audittrail.TypeSystem,
		},
		WorkspaceOverride: &ws,
	}
}

func TestCreateEvent(t *testing.T) {
	const id = "b096430b-c7a8-47f2-a129-d9ae58cf454f"
	var gotAuth []string
	var gotReq *pb.CreateEventRequest
	received := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	addr := serve(t, &fake{create: func(ctx context.Context, r *pb.CreateEventRequest) (*pb.CreateEventResponse, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		gotAuth, gotReq = md.Get("authorization"), r
		// Answer as the server would: the event with the fields it sets.
		ne, err := wire.EventFromProto(r.Event)
		if err != nil {
			return nil, wire.ToStatus(err)
		}
		e, err := audittrail.PrepareNewEvent(r.EventId, ne, received, false)
		if err != nil {
			return nil, wire.ToStatus(err)
		}
		e.LoginPrincipal = "jane"
		return &pb.CreateEventResponse{Event: wire.EventToProto(e)}, nil
	}})
	c := dial(t, addr, client.WithToken("s3cret"))

	in := testEvent()
	got, err := c.CreateEvent(context.Background(), id, in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Bearer s3cret"}, gotAuth); diff != "" {
		t.Errorf("authorization metadata (-want +got):\n%s", diff)
	}
	if gotReq.EventId != id || gotReq.Event.GetWorkspaceOverride() != "workspaces/override" || gotReq.Event.Name != "" || gotReq.Event.ReceiveTime != nil {
		t.Errorf("request: %v", gotReq)
	}
	want := in.Event
	want.ID, want.Workspace, want.ReceiveTime, want.LoginPrincipal = id, "workspaces/override", received, "jane"
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestErrorsAreDomainErrors(t *testing.T) {
	tests := []struct {
		code codes.Code
		want string
	}{
		{codes.InvalidArgument, audittrail.EInvalid},
		{codes.AlreadyExists, audittrail.EConflict},
		{codes.Unauthenticated, audittrail.EUnauthenticated},
		{codes.PermissionDenied, audittrail.EPermissionDenied},
		{codes.Unimplemented, audittrail.EUnimplemented},
		{codes.Internal, audittrail.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			var calls atomic.Int32
			addr := serve(t, &fake{search: func(context.Context, *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
				calls.Add(1)
				return nil, status.Error(tt.code, "the message")
			}})
			_, err := dial(t, addr).SearchEvents(context.Background(), audittrail.SearchEventsRequest{})
			var e *audittrail.Error
			if !errors.As(err, &e) || e.Code != tt.want || e.Message != "the message" {
				t.Fatalf("error %#v, want *audittrail.Error{%s, the message}", err, tt.want)
			}
			if calls.Load() != 1 {
				t.Errorf("%d calls; %s must not be retried", calls.Load(), tt.code)
			}
		})
	}
}

func TestBatchCreateEvents(t *testing.T) {
	ids := []string{"b096430b-c7a8-47f2-a129-d9ae58cf454f", "invalid", "5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e"}
	addr := serve(t, &fake{batch: func(_ context.Context, r *pb.BatchCreateEventsRequest) (*pb.BatchCreateEventsResponse, error) {
		resp := &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*rpcstatus.Status{}}
		for i, cr := range r.Requests {
			ne, _ := wire.EventFromProto(cr.Event)
			e, err := audittrail.PrepareNewEvent(cr.EventId, ne, time.Now(), false)
			if err != nil {
				code, msg := wire.BatchFailureToProto(&audittrail.Error{Code: audittrail.ErrorCode(err), Message: audittrail.ErrorMessage(err)})
				resp.FailedRequests[int32(i)] = &rpcstatus.Status{Code: code, Message: msg}
				continue
			}
			resp.Events = append(resp.Events, wire.EventToProto(e))
		}
		return resp, nil
	}})
	var reqs []audittrail.CreateRequest
	for _, id := range ids {
		reqs = append(reqs, audittrail.CreateRequest{EventID: id, Event: testEvent()})
	}
	res, err := dial(t, addr).BatchCreateEvents(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 || res.Events[0].ID != ids[0] || res.Events[1].ID != ids[2] {
		t.Errorf("events: %+v", res.Events)
	}
	want := map[int]*audittrail.Error{1: {Code: audittrail.EInvalid, Message: "event_id must be in UUIDv4 format"}}
	if diff := cmp.Diff(want, res.Failed); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
}

// pager serves the events in pages of the requested size, with the offset
// as page token, and records the requests.
type pager struct {
	mu     sync.Mutex
	events []*pb.Event
	reqs   []*pb.SearchEventsRequest
}

func (p *pager) search(_ context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, r)
	off := 0
	if r.PageToken != "" {
		off = int(r.PageToken[0] - 'a')
	}
	end := min(off+int(r.PageSize), len(p.events))
	resp := &pb.SearchEventsResponse{Events: p.events[off:end], SearchedUntilTime: timestamppb.New(audittrail.DefaultStartTime)}
	if end < len(p.events) {
		resp.NextPageToken = string(rune('a' + end))
	}
	return resp, nil
}

func TestEventsIteratesEveryPage(t *testing.T) {
	p := &pager{}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 23 {
		ne := testEvent()
		e, err := audittrail.PrepareNewEvent(uuidFor(i), ne, base, false)
		if err != nil {
			t.Fatal(err)
		}
		e.EventTime = base.Add(-time.Duration(i) * time.Minute)
		p.events = append(p.events, wire.EventToProto(e))
	}
	c := dial(t, serve(t, &fake{search: p.search}))
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	filter := audittrail.Filter{StartTime: &start, Exact: [audittrail.NumFields]string{audittrail.FieldPrincipal: "users/1"}}

	var got []string
	for e, err := range c.Events(context.Background(), filter, 5) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	if len(got) != 23 {
		t.Fatalf("got %d events, want 23", len(got))
	}
	for i, id := range got {
		if id != uuidFor(i) {
			t.Fatalf("event %d is %s, want %s", i, id, uuidFor(i))
		}
	}
	if len(p.reqs) != 5 {
		t.Errorf("%d requests for 23 events in pages of 5, want 5", len(p.reqs))
	}
	for i, r := range p.reqs {
		if r.PageSize != 5 || r.Filter.GetPrincipalExact() != "users/1" || !r.Filter.StartEventTime.AsTime().Equal(start) {
			t.Errorf("request %d: %v", i, r)
		}
	}

	// Breaking out of the loop stops the fetching: the loop held the
	// second page, so the third had been asked for (and is cancelled; it
	// may not have reached the server).
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
	n := 0
	for range c.Events(context.Background(), filter, 5) {
		if n++; n == 7 {
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) < 2 || len(p.reqs) > 3 {
		t.Errorf("%d requests to read 7 events in pages of 5, want 2 and at most one read ahead", len(p.reqs))
	}
}

// TestPagesReadsOneAhead checks that Pages asks for the next page while the
// loop still holds the current one, and that every page arrives once, in
// order.
func TestPagesReadsOneAhead(t *testing.T) {
	p := &pager{}
	for i := range 12 {
		p.events = append(p.events, &pb.Event{Name: "events/" + uuidFor(i), EventTime: timestamppb.Now(), ReceiveTime: timestamppb.Now()})
	}
	asked := make(chan string, 10)
	c := dial(t, serve(t, &fake{search: func(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		asked <- r.PageToken
		return p.search(ctx, r)
	}}))
	var got []string
	pages := 0
	for page, err := range c.Pages(t.Context(), audittrail.Filter{}, 5) {
		if err != nil {
			t.Fatal(err)
		}
		if want := min(5, 12-len(got)); len(page.Events) != want {
			t.Fatalf("page %d holds %d events, want %d", pages, len(page.Events), want)
		}
		for _, e := range page.Events {
			got = append(got, e.ID)
		}
		pages++
		// The request of this page, then the next one's, made before the
		// loop lets go of this page.
		if tok := <-asked; (pages == 1 && tok != "") || (pages > 1 && tok == "") {
			t.Fatalf("page %d was asked for with token %q", pages, tok)
		}
		if page.NextPageToken != "" {
			select {
			case tok := <-asked:
				if tok != page.NextPageToken {
					t.Fatalf("after page %d the client asked for %q, not the next page %q", pages, tok, page.NextPageToken)
				}
				asked <- tok // the next iteration's request
			case <-time.After(10 * time.Second):
				t.Fatalf("the next page was not asked for while the loop held page %d", pages)
			}
		}
	}
	if pages != 3 || len(got) != 12 {
		t.Fatalf("%d pages, %d events; want 3 and 12", pages, len(got))
	}
	for i, id := range got {
		if id != uuidFor(i) {
			t.Fatalf("event %d is %s, want %s", i, id, uuidFor(i))
		}
	}
}

// TestPagesAnswerTheTokenReadCannotStep checks that an answer whose token
// the client cannot read without decoding (here a group among its unknown
// fields, which no server writes but the decoder skips) is still followed
// to its next page, with the token of the full decoding.
func TestPagesAnswerTheTokenReadCannotStep(t *testing.T) {
	p := &pager{}
	for i := range 8 {
		p.events = append(p.events, &pb.Event{Name: "events/" + uuidFor(i)})
	}
	c := dial(t, serve(t, &fake{search: func(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		resp, err := p.search(ctx, r)
		if err == nil {
			resp.ProtoReflect().SetUnknown([]byte{0x43, 0x24}) // field 8 starts a group, field 4 ends one
		}
		return resp, err
	}}))
	var got []string
	for e, err := range c.Events(t.Context(), audittrail.Filter{}, 5) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	if len(got) != 8 {
		t.Fatalf("got %d events, want 8", len(got))
	}
}

// TestPagesReadAheadError checks that a failure of the page read ahead
// comes after the page before it, and ends the loop.
func TestPagesReadAheadError(t *testing.T) {
	p := &pager{}
	for i := range 8 {
		p.events = append(p.events, &pb.Event{Name: "events/" + uuidFor(i)})
	}
	c := dial(t, serve(t, &fake{search: func(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		if r.PageToken != "" {
			return nil, status.Error(codes.PermissionDenied, "the token expired")
		}
		return p.search(ctx, r)
	}}))
	var got []string
	for page, err := range c.Pages(t.Context(), audittrail.Filter{}, 5) {
		if err != nil {
			got = append(got, audittrail.ErrorCode(err))
			continue
		}
		got = append(got, fmt.Sprintf("page of %d", len(page.Events)))
	}
	if want := []string{"page of 5", audittrail.EPermissionDenied}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestPagesStopCancelsReadAhead checks that a loop that stops while the
// next page is being read cancels that request and returns only once it
// has ended: no goroutine of the loop outlives it.
func TestPagesStopCancelsReadAhead(t *testing.T) {
	p := &pager{}
	for i := range 8 {
		p.events = append(p.events, &pb.Event{Name: "events/" + uuidFor(i)})
	}
	started, cancelled := make(chan struct{}), make(chan struct{})
	c := dial(t, serve(t, &fake{search: func(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		if r.PageToken != "" {
			close(started)
			<-ctx.Done() // answers only when the client gives up
			close(cancelled)
			return nil, ctx.Err()
		}
		return p.search(ctx, r)
	}}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, err := range c.Events(t.Context(), audittrail.Filter{}, 5) {
			if err != nil {
				t.Error(err)
			}
			<-started // the read ahead reached the server
			break
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not return after a break while the next page was read")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the read ahead cancelled")
	}
}

func uuidFor(i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
}

func TestEventsStopsAtError(t *testing.T) {
	c := dial(t, serve(t, &fake{search: func(context.Context, *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "filter.principal_regex is not a valid RE2 regular expression")
	}}))
	n := 0
	for e, err := range c.Events(context.Background(), audittrail.Filter{}, 0) {
		n++
		if e != nil || audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Errorf("got %v, %v; want nil and an EInvalid error", e, err)
		}
	}
	if n != 1 {
		t.Errorf("%d iterations, want 1", n)
	}
}

func TestRetry(t *testing.T) {
	ok := &pb.SearchEventsResponse{SearchedUntilTime: timestamppb.New(audittrail.DefaultStartTime)}
	retryAfter := func(d time.Duration) error {
		s, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			panic(err)
		}
		return s.Err()
	}
	tests := []struct {
		name      string
		failures  []error // answers before success
		attempts  int
		wantCalls int
		wantCode  string
		minTime   time.Duration
	}{
		{"unavailable then ok", []error{status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down")}, 3, 3, "", 0},
		{"unavailable too often", []error{status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down")}, 3, 3, audittrail.EUnavailable, 0},
		{"retry delay honoured", []error{retryAfter(300 * time.Millisecond)}, 3, 2, "", 300 * time.Millisecond},
		{"exhausted without delay", []error{status.Error(codes.ResourceExhausted, "quota")}, 3, 2, "", 0},
		{"message too large is final", []error{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5 vs. 4)")}, 3, 1, audittrail.EExhausted, 0},
		{"invalid is final", []error{status.Error(codes.InvalidArgument, "no")}, 3, 1, audittrail.EInvalid, 0},
		{"retries off", []error{status.Error(codes.Unavailable, "down")}, 1, 1, audittrail.EUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			addr := serve(t, &fake{search: func(context.Context, *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
				n := int(calls.Add(1))
				if n <= len(tt.failures) {
					return nil, tt.failures[n-1]
				}
				return ok, nil
			}})
			c := dial(t, addr, client.WithRetry(tt.attempts, 10*time.Millisecond))
			t0 := time.Now()
			_, err := c.SearchEvents(context.Background(), audittrail.SearchEventsRequest{})
			if got := audittrail.ErrorCode(err); got != tt.wantCode {
				t.Errorf("error %v, want code %q", err, tt.wantCode)
			}
			if int(calls.Load()) != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tt.wantCalls)
			}
			if el := time.Since(t0); el < tt.minTime {
				t.Errorf("took %s, want at least the %s the server asked for", el, tt.minTime)
			}
			if tt.wantCode != "" && tt.wantCalls > 1 && !strings.Contains(err.Error(), "gave up after") {
				t.Errorf("error %q does not say that it gave up after retrying", err)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	// A port nothing listens on: take a free one and close it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	c := dial(t, addr, client.WithRetry(4, 20*time.Millisecond))
	t0 := time.Now()
	_, err = c.CreateEvent(context.Background(), "b096430b-c7a8-47f2-a129-d9ae58cf454f", testEvent())
	var e *audittrail.Error
	if !errors.As(err, &e) || e.Code != audittrail.EUnavailable {
		t.Fatalf("error %#v, want an EUnavailable *audittrail.Error", err)
	}
	if !strings.Contains(e.Message, "gave up after 4 attempts") {
		t.Errorf("message %q does not count the 4 attempts", e.Message)
	}
	// Three waits of 10-20, 20-40 and 40-80 ms lie between the attempts.
	if el := time.Since(t0); el < 70*time.Millisecond {
		t.Errorf("4 attempts took %s; the backoff did not wait", el)
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	addr := serve(t, &fake{search: func(context.Context, *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}})
	c := dial(t, addr, client.WithRetry(100, time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := c.SearchEvents(ctx, audittrail.SearchEventsRequest{})
	if audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("error %v, want EUnavailable", err)
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("took %s after the context ended", el)
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := client.Dial(context.Background(), ""); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("empty address: %v", err)
	}
	if _, err := client.Dial(context.Background(), "127.0.0.1:1", client.WithTLS("/does/not/exist.pem")); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	var calls atomic.Int32
	addr := serve(t, &fake{search: func(ctx context.Context, _ *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
		if calls.Add(1) == 1 {
			grpc.SetTrailer(ctx, metadata.Pairs("retry-after", "0.25"))
			return nil, status.Error(codes.ResourceExhausted, "rate limited")
		}
		return &pb.SearchEventsResponse{}, nil
	}})
	c := dial(t, addr, client.WithRetry(3, time.Millisecond))
	t0 := time.Now()
	if _, err := c.SearchEvents(context.Background(), audittrail.SearchEventsRequest{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el < 250*time.Millisecond || calls.Load() != 2 {
		t.Errorf("%d calls in %s; want 2, the second after the 250ms the server asked for", calls.Load(), el)
	}
}
