package server_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/server"
)

// The fuzz targets feed arbitrary request bodies through what a REST request
// goes through before it reaches the store: the gateway's JSON decoding with
// the server's options, the conversion of package wire, and the validation
// of the domain. None of it may panic, whatever the bytes.

var fuzzNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func FuzzSearchRequestJSON(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"filter": {}, "pageSize": 0, "pageToken": ""}`,
		`{"filter": {"startEventTime": "2026-01-01T00:00:00.123456+02:00", "endEventTime": null, "resourceRegex": "(rsrc1|rsrc2)",
			"readOnly": true, "statusCodeRegex": "^(0|3)$", "metadataExact": {"a": "b"}, "metadataRegex": {"k": "^v"},
			"includeTypes": ["TYPE_API"], "excludeTypes": [2], "principal_exact": "users/x"}, "page_size": 1001}`,
		`{"filter": {"actionRegex": "(a"}}`,
		`{"filter": {"startEventTime": "0001-01-01T00:00:00Z"}}`,
		`{"filter": {"startEventTime": "9999-12-31T23:59:59.999999999Z"}}`,
		`{"pageSize": -5, "pageToken": "AAAA"}`,
		`{"filter": null, "pageSize": null}`,
		`[1, 2]`,
		`{"filter": {"metadataExact": {"a": null}}}`,
		`{"filter": {"includeTypes": ["TYPE_SYSTEMX"], "unknown": 1}}`,
		`{"filter": {"exclude_types": ["TYPE_API", null]}, "later": {"includeTypes": ["X"]}}`,
	} {
		f.Add([]byte(s))
	}
	m := server.NewJSONMarshaler()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req pb.SearchEventsRequest
		if err := m.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
			checkRefusal(t, body, &pb.SearchEventsRequest{}, err)
			return
		}
		checkAsLenient(t, body, &req)
		filter, err := wire.FilterFromProto(req.GetFilter())
		if err != nil {
			checkInvalid(t, err)
			return
		}
		filter.Fingerprint()
		q, err := filter.Compile(fuzzNow)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if !q.Start.Before(q.End) {
			t.Errorf("compiled query with start %v not before end %v", q.Start, q.End)
		}
		// A compiled query must be usable on any event.
		q.Match(&audittrail.Event{EventTime: fuzzNow.Add(-time.Hour), Metadata: map[string]string{"a": "b", "k": "v"}})
		if _, err := m.Marshal(&req); err != nil {
			t.Errorf("a decoded request does not encode: %v", err)
		}
	})
}

func FuzzCreateRequestJSON(f *testing.F) {
	event := `{"eventTime": "2026-03-04T05:06:07.123456+02:00", "eventSource": "h2oai-x-server", "action": "actions/x/CREATE",
		"readOnly": false, "status": {"code": 0, "message": ""}, "principal": "users/jane", "sourceIpAddress": "10.1.2.3",
		"userAgent": "ua", "resource": "//x/workspaces/w1/things/t", "requestParameters": {"q": "1"},
		"metadata": {"region": "eu"}, "type": "TYPE_API"}`
	for _, s := range []struct{ id, body string }{
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", event},
		{"invalid", event},
		{"B096430B-C7A8-47F2-A129-D9AE58CF454F", `{"event_time": "2026-01-01T00:00:00Z", "source_ip_address": "::1", "workspace_override": ""}`},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", `{"eventTime": null, "status": null, "metadata": {"Bad": "x"}, "type": 7}`},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", `{"eventTime": "1969-12-31T23:59:59Z"}`},
		{"", `null`},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", `{"type": "TYPE_BOGUS", "more": [1]}`},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", `{"requests": [{"eventId": "x", "event": {"type": "1", "x": {}}}]}`},
	} {
		f.Add(s.id, []byte(s.body))
	}
	m := server.NewJSONMarshaler()
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		// The body of CreateEvent is the event.
		var e pb.Event
		if err := m.NewDecoder(bytes.NewReader(body)).Decode(&e); err == nil {
			checkAsLenient(t, body, &e)
			prepare(t, id, &e)
		} else {
			checkRefusal(t, body, &pb.Event{}, err)
		}
		// The body of BatchCreateEvents holds the requests.
		var batch pb.BatchCreateEventsRequest
		if err := m.NewDecoder(bytes.NewReader(body)).Decode(&batch); err == nil {
			checkAsLenient(t, body, &batch)
			for _, r := range batch.GetRequests() {
				prepare(t, r.GetEventId(), r.GetEvent())
			}
		} else {
			checkRefusal(t, body, &pb.BatchCreateEventsRequest{}, err)
		}
	})
}

func prepare(t *testing.T, id string, e *pb.Event) {
	ne, err := wire.EventFromProto(e)
	if err != nil {
		checkInvalid(t, err)
		return
	}
	stored, err := audittrail.PrepareNewEvent(id, ne, fuzzNow, true)
	if err != nil {
		checkInvalid(t, err)
		return
	}
	if stored.ID == "" || stored.EventTime.IsZero() || !stored.ReceiveTime.Equal(fuzzNow) {
		t.Errorf("prepared event lacks server fields: %+v", stored)
	}
	// What is stored goes back out.
	out := wire.EventToProto(stored)
	if _, err := server.NewJSONMarshaler().Marshal(out); err != nil {
		t.Errorf("a prepared event does not encode: %v", err)
	}
}

// The REST decoding is protojson's with unknown fields ignored, except that
// it refuses enum names no value has, which protojson would drop
// (requestJSON). lenient is protojson's alone.
var lenient = protojson.UnmarshalOptions{DiscardUnknown: true}

// checkAsLenient requires what the server decoded to be what protojson
// decodes.
func checkAsLenient(t *testing.T, body []byte, got proto.Message) {
	t.Helper()
	want := got.ProtoReflect().New().Interface()
	if err := lenient.Unmarshal(bytes.TrimSpace(body), want); err != nil {
		// The server reads one JSON value and ignores what follows.
		return
	}
	if !proto.Equal(got, want) {
		t.Errorf("decoded %v, protojson decodes %v", got, want)
	}
}

// checkRefusal requires a body that protojson takes to be refused only for
// an enum name.
func checkRefusal(t *testing.T, body []byte, empty proto.Message, err error) {
	t.Helper()
	if lenient.Unmarshal(body, empty) == nil && !strings.Contains(err.Error(), "is not a value of") {
		t.Errorf("refused %q, which protojson takes: %v", body, err)
	}
}

// checkInvalid requires a rejection to be the caller's error, with a message.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	if audittrail.ErrorCode(err) != audittrail.EInvalid || audittrail.ErrorMessage(err) == "" {
		t.Errorf("rejection %v is not an EInvalid error with a message", err)
	}
}

// FuzzServerCodec feeds arbitrary bytes to the server's gRPC codec as the
// requests it decodes by generated code (the producers') and by protobuf-go
// (a search): it never panics; what it decodes without keeping an error,
// protobuf-go decodes to the same message; what it keeps an error for
// (wire.DecodeError), protobuf-go refuses, and the error is
// INVALID_ARGUMENT naming a string that is not UTF-8.
func FuzzServerCodec(f *testing.F) {
	ev := &pb.Event{Action: "a", Metadata: map[string]string{"k": "v"}, RequestParameters: map[string]string{"p": "q"}}
	for _, m := range []proto.Message{
		&pb.BatchCreateEventsRequest{Requests: []*pb.CreateEventRequest{{EventId: "id", Event: ev}}},
		&pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ActionExact: proto.String("x")}, PageToken: "t"},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
		f.Add(bytes.Replace(b, []byte("v"), []byte{0xff}, 1))
	}
	codec := wire.ServerCodec(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newMsg := range []func() proto.Message{
			func() proto.Message { return &pb.BatchCreateEventsRequest{} },
			func() proto.Message { return &pb.CreateEventRequest{} },
			func() proto.Message { return &pb.SearchEventsRequest{} },
		} {
			got, want := newMsg(), newMsg()
			err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(data))}, got)
			kept := wire.DecodeError(got)
			wantErr := proto.Unmarshal(data, want)
			switch {
			case err != nil:
				// Every failure to decode a request of the API is
				// kept for the interceptor (INVALID_ARGUMENT).
				t.Fatalf("%T: the codec fails (grpc-go would answer INTERNAL): %v; protobuf-go says %v", got, err, wantErr)
			case kept != nil:
				if wantErr == nil || audittrail.ErrorCode(kept) != audittrail.EInvalid ||
					!strings.Contains(kept.Error(), "is not valid UTF-8") && !strings.Contains(kept.Error(), "is not a valid protobuf") {
					t.Fatalf("%T: kept %v, protobuf-go says %v", got, kept, wantErr)
				}
				if !proto.Equal(got, newMsg()) && !strings.Contains(kept.Error(), "is not valid UTF-8") {
					t.Fatalf("%T: a malformed request left partly decoded", got)
				}
			case wantErr != nil:
				// The producers' requests are decoded by generated code,
				// which skips some malformed unknown fields protobuf-go
				// refuses (a group left open at the end): tolerated.
				if _, ok := got.(*pb.SearchEventsRequest); ok {
					t.Fatalf("%T: the codec decodes what protobuf-go refuses (%v)", got, wantErr)
				}
			case cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreUnknown()) != "":
				// Unknown fields aside: the generated decoder keeps
				// theirs as it likes.
				t.Fatalf("%T: the codec and protobuf-go decode differently", got)
			}
		}
	})
}
