package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestFastJSONREST checks the REST answers of create, batch create and
// search, which the gateway writes with package fastjson, against protojson
// (the gateway's encoder before it) on the same answers obtained over gRPC:
// the idempotent retry of a create returns the stored event again, and a
// search with a fixed time range and the same caller returns the same page
// and page token. The events carry the strings that are hard to escape.
func TestFastJSONREST(t *testing.T) {
	e := startAuthEnv(t)
	grpcClient := dialGRPC(t, e.internal)
	producer, reader := withToken(t, e.producer), withToken(t, e.reader)
	r := rand.New(rand.NewPCG(7, 7))
	protoJSON := protojson.MarshalOptions{EmitDefaultValues: true}

	// Events before 2020: the self-audit records of the searches below,
	// stamped now, stay out of the range searched.
	var reqs []*pb.CreateEventRequest
	for i := range 40 {
		reqs = append(reqs, &pb.CreateEventRequest{EventId: newID(), Event: trickyEvent(r, i)})
	}
	reqs[3].Event.Action = ""                      // invalid: a failed request
	reqs[17].Event.SourceIpAddress = "not an ip\n" // invalid

	t.Run("create", func(t *testing.T) {
		req := reqs[0]
		body, _ := protojson.Marshal(req.Event)
		got := call(t, "POST", e.url(true)+"/v1/events?eventId="+req.EventId, e.producer, string(body))
		if got.status != http.StatusOK {
			t.Fatalf("create: %s", got)
		}
		again, err := grpcClient.CreateEvent(producer, req)
		if err != nil {
			t.Fatal(err)
		}
		wantSameJSON(t, got.body, protoJSON, again)
	})

	t.Run("batch create", func(t *testing.T) {
		breq := &pb.BatchCreateEventsRequest{Requests: reqs[1:]}
		body, _ := protojson.Marshal(breq)
		got := call(t, "POST", e.url(true)+"/v1/events:batchCreate", e.producer, string(body))
		if got.status != http.StatusOK {
			t.Fatalf("batch create: %s", got)
		}
		again, err := grpcClient.BatchCreateEvents(producer, breq)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.FailedRequests) != 2 {
			t.Errorf("failed requests %v, want 2", again.FailedRequests)
		}
		wantSameJSON(t, got.body, protoJSON, again)
	})

	t.Run("search", func(t *testing.T) {
		for _, size := range []int32{1000, 7} {
			sreq := &pb.SearchEventsRequest{PageSize: size, Filter: &pb.SearchEventsRequest_Filter{
				StartEventTime: timestamppb.New(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)),
				EndEventTime:   timestamppb.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)),
			}}
			body, _ := protojson.Marshal(sreq)
			got := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, string(body))
			if got.status != http.StatusOK {
				t.Fatalf("search: %s", got)
			}
			again, err := grpcClient.SearchEvents(reader, sreq)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(int(size), len(reqs)-2); len(again.Events) != want {
				t.Errorf("page of %d events, want %d", len(again.Events), want)
			}
			wantSameJSON(t, got.body, protoJSON, again)
		}
	})
}

// wantSameJSON checks that the REST body is the JSON value that o writes
// for m.
func wantSameJSON(t *testing.T, body []byte, o protojson.MarshalOptions, m proto.Message) {
	t.Helper()
	want, err := o.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) any {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		return v
	}
	if !reflect.DeepEqual(decode(body), decode(want)) {
		t.Errorf("REST answer differs from protojson\nREST:      %s\nprotojson: %s", body, want)
	}
}

// trickyEvent is a valid event whose strings need every kind of escape
// and whose optional parts vary with i.
func trickyEvent(r *rand.Rand, i int) *pb.Event {
	pieces := []string{"\x00", "\x1f", "\x7f", "\b\f\n\r\t", `"`, `\`, "/", "\u2028", "\u2029", "\ufffd",
		"é", "日本", "😀", "<&>", "x", "users/jane", "%41"}
	str := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		return b.String()
	}
	// Every precision protojson distinguishes: 0, 3, 6 and 9 digits.
	nanos := []int32{0, 123_000_000, 123_456_000, 123_456_789}[i%4]
	ev := &pb.Event{
		EventTime:       &timestamppb.Timestamp{Seconds: r.Int64N(1_577_836_800), Nanos: nanos},
		EventSource:     "src" + str(3),
		Action:          "act" + str(3),
		ReadOnly:        i%2 == 0,
		Principal:       "users/" + str(2),
		SourceIpAddress: []string{"1.2.3.4", "2001:db8::1", "private"}[i%3],
		UserAgent:       str(i % 5),
		Resource:        fmt.Sprintf("//svc/workspaces/w%d/r/%s", i%3, str(2)),
		Type:            pb.EventType(i % 3),
	}
	if i%4 != 0 {
		ev.Status = &pb.Status{Code: int32(i % 17), Message: str(i % 3)}
	}
	if i%3 != 0 {
		ev.Metadata = map[string]string{"tenant": str(1), "z9": str(2), "a_b": ""}
		ev.RequestParameters = map[string]string{str(1) + "k": str(2), "page_size": "100"}
	}
	if i%5 == 0 {
		ev.WorkspaceOverride = proto.String("workspaces/override")
	}
	return ev
}
