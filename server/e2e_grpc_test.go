package server_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/server"
)

func pbEvent(t time.Time, resource string) *pb.Event {
	return &pb.Event{
		EventTime:       timestamppb.New(t),
		EventSource:     "h2oai-appstore-server",
		Action:          "actions/appstore/apps/ADMIN_DELETE",
		Status:          &pb.Status{Code: 0},
		Principal:       "users/a2b3b8a6-05c6-47d1-8ae1-774113404975",
		SourceIpAddress: "2001:db8::1",
		Resource:        resource,
		Metadata:        map[string]string{"region": "eu"},
		Type:            pb.EventType_TYPE_SYSTEM,
	}
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	s, ok := status.FromError(err)
	if !ok || s.Code() != code || !strings.Contains(s.Message(), msg) {
		t.Errorf("got %v, want %s with a message containing %q", err, code, msg)
	}
}

func TestE2EGRPC(t *testing.T) {
	srv := testserver.Start(t)
	internal := dialGRPC(t, srv.InternalAddr)
	public := dialGRPC(t, srv.PublicAddr)
	producer, reader := withToken(t, srv.ProducerToken), withToken(t, srv.ReaderToken)

	t0 := time.Date(2026, 4, 1, 12, 0, 0, 123456789, time.UTC)
	id := newID()
	created, err := internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: id, Event: pbEvent(t0, "//appstore/apps/1")})
	if err != nil {
		t.Fatal(err)
	}
	if e := created.Event; e.Name != "events/"+id || !e.EventTime.AsTime().Equal(t0) || e.ReceiveTime == nil ||
		e.Metadata["region"] != "eu" || e.Type != pb.EventType_TYPE_SYSTEM || e.Workspace != "" {
		t.Errorf("created %v", e)
	}

	ids := []string{newID(), "not-a-uuid", newID()}
	batch, err := internal.BatchCreateEvents(producer, &pb.BatchCreateEventsRequest{Requests: []*pb.CreateEventRequest{
		{EventId: ids[0], Event: pbEvent(t0.Add(time.Second), "//appstore/apps/2")},
		{EventId: ids[1], Event: pbEvent(t0.Add(2*time.Second), "//appstore/apps/3")},
		{EventId: ids[2], Event: nil},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Events) != 1 || batch.Events[0].Name != "events/"+ids[0] {
		t.Errorf("batch events %v", batch.Events)
	}
	if f := batch.FailedRequests[1]; f == nil || f.Code != int32(codes.InvalidArgument) || f.Message != "event_id must be in UUIDv4 format" {
		t.Errorf("failed[1] = %v", f)
	}
	if f := batch.FailedRequests[2]; f == nil || f.Code != int32(codes.InvalidArgument) || f.Message != "event is required" {
		t.Errorf("failed[2] = %v", f)
	}

	// Search on both listeners.
	for name, c := range map[string]pb.EventServiceClient{"public": public, "internal": internal} {
		resp, err := c.SearchEvents(reader, &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{
			EventSourceExact: ptr("h2oai-appstore-server"),
			StartEventTime:   timestamppb.New(t0),
		}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, e := range resp.Events {
			got = append(got, e.Name)
		}
		if want := []string{"events/" + ids[0], "events/" + id}; !slices.Equal(got, want) {
			t.Errorf("%s search: %v, want %v", name, got, want)
		}
		if !resp.SearchedUntilTime.AsTime().Equal(t0) || resp.NextPageToken != "" {
			t.Errorf("%s search: until %v, token %q", name, resp.SearchedUntilTime.AsTime(), resp.NextPageToken)
		}
	}

	// Create is not served on the public listener, whatever the caller.
	for _, token := range []string{srv.ProducerToken, srv.ReaderToken, "wrong", ""} {
		ctx := withToken(t, token)
		_, err := public.CreateEvent(ctx, &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(t0, "x")})
		wantCode(t, err, codes.Unimplemented, "event creation is served only on the internal listener")
		_, err = public.BatchCreateEvents(ctx, &pb.BatchCreateEventsRequest{})
		wantCode(t, err, codes.Unimplemented, "event creation is served only on the internal listener")
	}

	// Authentication and authorization, the same as over REST.
	_, err = internal.SearchEvents(t.Context(), &pb.SearchEventsRequest{})
	wantCode(t, err, codes.Unauthenticated, "bearer token")
	_, err = public.SearchEvents(withToken(t, "wrong"), &pb.SearchEventsRequest{})
	wantCode(t, err, codes.Unauthenticated, "bearer token")
	_, err = internal.CreateEvent(t.Context(), &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(t0, "x")})
	wantCode(t, err, codes.Unauthenticated, "bearer token")
	_, err = internal.CreateEvent(reader, &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(t0, "x")})
	wantCode(t, err, codes.PermissionDenied, "may not create events")
	_, err = public.SearchEvents(producer, &pb.SearchEventsRequest{})
	wantCode(t, err, codes.PermissionDenied, "may not search events")

	// Validation errors name the field.
	_, err = internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: "x", Event: pbEvent(t0, "x")})
	wantCode(t, err, codes.InvalidArgument, "event_id must be in UUIDv4 format")
	_, err = public.SearchEvents(reader, &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ActionRegex: ptr("*")}})
	wantCode(t, err, codes.InvalidArgument, "filter.action_regex")
	_, err = internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: id, Event: pbEvent(t0, "another")})
	wantCode(t, err, codes.AlreadyExists, "")
	tooMany := &pb.BatchCreateEventsRequest{}
	for range audittrail.MaxBatch + 1 {
		tooMany.Requests = append(tooMany.Requests, &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(t0, "many")})
	}
	_, err = internal.BatchCreateEvents(producer, tooMany)
	wantCode(t, err, codes.InvalidArgument, "the limit is 1000 per batch")
}

// TestE2EGRPCMessageTooLarge sends messages over the limits of the REST
// body: audittrail.MaxRequestBodySize on the internal listener,
// server.MaxPublicRequestSize on the public one.
func TestE2EGRPCMessageTooLarge(t *testing.T) {
	srv := testserver.Start(t)
	internal, public := dialGRPC(t, srv.InternalAddr), dialGRPC(t, srv.PublicAddr)
	e := pbEvent(time.Now(), strings.Repeat("r", audittrail.MaxRequestBodySize))
	_, err := internal.CreateEvent(withToken(t, srv.ProducerToken), &pb.CreateEventRequest{EventId: newID(), Event: e})
	wantCode(t, err, codes.ResourceExhausted, "")

	// A search just over the public limit: refused by the public listener
	// (a caller that does not authenticate is refused before its message
	// is read, whatever its size), and by the internal one, where only the
	// creates take more (its codec does not decode it).
	big := &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: ptr(strings.Repeat("r", server.MaxPublicRequestSize))}}
	_, err = public.SearchEvents(withToken(t, srv.ReaderToken), big)
	wantCode(t, err, codes.ResourceExhausted, fmt.Sprint(server.MaxPublicRequestSize))
	_, err = public.SearchEvents(withToken(t, "wrong"), big)
	wantCode(t, err, codes.Unauthenticated, "missing or invalid bearer token")
	_, err = internal.SearchEvents(withToken(t, srv.ReaderToken), big)
	wantCode(t, err, codes.ResourceExhausted, fmt.Sprintf("a SearchEventsRequest of %d bytes is over the limit of %d bytes of requests other than creates",
		proto.Size(big), server.MaxPublicRequestSize))
	// A search of the limit is decoded, and searched (no event has such a
	// resource).
	fits := &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: ptr(strings.Repeat("r", server.MaxPublicRequestSize-10))}}
	if n := proto.Size(fits); n > server.MaxPublicRequestSize {
		t.Fatalf("the search meant to fit is %d bytes", n)
	}
	resp, err := internal.SearchEvents(withToken(t, srv.ReaderToken), fits)
	if err != nil || len(resp.Events) != 0 {
		t.Errorf("internal listener, a search of %d bytes: %v, %v", proto.Size(fits), resp, err)
	}
	// A batch over the limit of searches is a create: read and stored.
	var reqs []*pb.CreateEventRequest
	for range 100 { // events of 56 KiB, under audittrail.MaxEventBytes
		e := pbEvent(time.Now(), "big/batch")
		e.Metadata = map[string]string{}
		for k := range 14 {
			e.Metadata[fmt.Sprintf("k%d", k)] = strings.Repeat("m", 4000)
		}
		reqs = append(reqs, &pb.CreateEventRequest{EventId: newID(), Event: e})
	}
	batch := &pb.BatchCreateEventsRequest{Requests: reqs}
	if n := proto.Size(batch); n <= server.MaxPublicRequestSize {
		t.Fatalf("the batch meant to be over the limit of searches is %d bytes", n)
	}
	if _, err := internal.BatchCreateEvents(withToken(t, srv.ProducerToken), batch); err != nil {
		t.Errorf("a batch of %d bytes: %v", proto.Size(batch), err)
	}
}

// TestE2EGRPCInvalidUTF8: a request with a string that is not UTF-8 is
// INVALID_ARGUMENT naming the field (grpc-go would answer INTERNAL for the
// decoding failure), and nothing is stored; the server goes on serving the
// connection. The request of a caller that did not authenticate is not
// decoded: UNAUTHENTICATED.
func TestE2EGRPCInvalidUTF8(t *testing.T) {
	srv := testserver.Start(t)
	// The client's codec writes with generated code, which does not check
	// strings (protobuf-go's would refuse to send them).
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wire.ClientCodec())))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	internal, public := pb.NewEventServiceClient(dial(srv.InternalAddr)), pb.NewEventServiceClient(dial(srv.PublicAddr))
	bad := pbEvent(time.Now(), "utf8/bad")
	bad.Action = "actions/x/y/\xff"
	_, err := internal.CreateEvent(withToken(t, srv.ProducerToken), &pb.CreateEventRequest{EventId: newID(), Event: bad})
	wantCode(t, err, codes.InvalidArgument, "event.action is not valid UTF-8")
	good, meta := pbEvent(time.Now(), "utf8/bad"), pbEvent(time.Now(), "utf8/bad")
	meta.Metadata = map[string]string{"k": "\xc3"}
	batch := &pb.BatchCreateEventsRequest{Requests: []*pb.CreateEventRequest{{EventId: newID(), Event: good}, {EventId: newID(), Event: meta}}}
	_, err = internal.BatchCreateEvents(withToken(t, ""), batch)
	wantCode(t, err, codes.Unauthenticated, "missing or invalid bearer token")
	_, err = internal.BatchCreateEvents(withToken(t, srv.ProducerToken), batch)
	wantCode(t, err, codes.InvalidArgument, `requests[1].event.metadata["k"] is not valid UTF-8`)
	_, err = public.SearchEvents(withToken(t, srv.ReaderToken), &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ActionExact: ptr("\xff")}})
	wantCode(t, err, codes.InvalidArgument, "filter.action_exact is not valid UTF-8")
	// Nothing of the batch was stored, and the connection still serves.
	res, err := public.SearchEvents(withToken(t, srv.ReaderToken), &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: ptr("utf8/bad")}})
	if err != nil || len(res.Events) != 0 {
		t.Errorf("after the refused requests: %v, %d events stored", err, len(res.GetEvents()))
	}
}

func ptr[T any](v T) *T { return &v }

// TestE2EGRPCObserved: calls on gRPC's own transport (a plain listener's
// gRPC connections, server/split.go) are counted like those through net/http,
// calls refused before the interceptors included, and their self-audit
// events name the caller's address and user agent.
func TestE2EGRPCObserved(t *testing.T) {
	srv := testserver.Start(t)
	internal := dialGRPC(t, srv.InternalAddr)
	public := dialGRPC(t, srv.PublicAddr)
	if _, err := internal.CreateEvent(withToken(t, srv.ProducerToken), &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Now(), "//appstore/apps/1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := public.SearchEvents(withToken(t, srv.ReaderToken), &pb.SearchEventsRequest{}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.PublicAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Invoke(withToken(t, srv.ReaderToken), "/ai.h2o.audittrail.v1.EventService/NoSuchMethod", &pb.SearchEventsRequest{}, &pb.SearchEventsResponse{})
	wantCode(t, err, codes.Unimplemented, "unknown method NoSuchMethod for service ai.h2o.audittrail.v1.EventService")
	err = conn.Invoke(withToken(t, srv.ReaderToken), "/no.Such/Method", &pb.SearchEventsRequest{}, &pb.SearchEventsResponse{})
	wantCode(t, err, codes.Unimplemented, "unknown service no.Such")
	// The admin service is served on the internal listener only.
	err = conn.Invoke(withToken(t, srv.ReaderToken), pb.AdminService_ListApiTokens_FullMethodName, &pb.SearchEventsRequest{}, &pb.SearchEventsResponse{})
	wantCode(t, err, codes.Unimplemented, "unknown service ai.h2o.audittrail.v1.AdminService")

	// The binary's listeners split connections (server/split.go): on an
	// HTTP/2 preface the splitter speaks first, an empty SETTINGS frame,
	// where net/http alone would send its own settings.
	for _, addr := range []string{srv.PublicAddr, srv.InternalAddr} {
		wantSplitterSettings(t, addr, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	}

	r := call(t, "GET", srv.InternalURL+"/metrics", "", "")
	for _, want := range []string{
		`audittrail_requests_total{code="OK",listener="internal",method="CreateEvent",protocol="grpc"} 1`,
		`audittrail_requests_total{code="OK",listener="public",method="SearchEvents",protocol="grpc"} 1`,
		`audittrail_requests_total{code="Unimplemented",listener="public",method="unknown",protocol="grpc"} 2`,
		`audittrail_requests_total{code="Unimplemented",listener="public",method="ListApiTokens",protocol="grpc"} 1`,
		`audittrail_request_duration_seconds_count{code="OK",listener="public",method="SearchEvents",protocol="grpc"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The search's self-audit event: the caller's address and user agent
	// came from the connection and the call's metadata.
	res, err := public.SearchEvents(withToken(t, srv.ReaderToken), &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{
		EventSourceExact: proto.String(audittrail.DefaultSelfAuditSource), ActionExact: proto.String(audittrail.ActionSearchEvents)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) == 0 {
		t.Fatal("no self-audit event of the search")
	}
	e := res.Events[len(res.Events)-1]
	if !strings.HasPrefix(e.UserAgent, "grpc-go/") || e.SourceIpAddress != "private" && e.SourceIpAddress != "127.0.0.1" {
		t.Errorf("self-audit event of a gRPC search: user agent %q, source %q", e.UserAgent, e.SourceIpAddress)
	}
}
