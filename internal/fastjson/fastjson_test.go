package fastjson_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail/internal/fastjson"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestSchema fails when the generated messages have changed in a way that
// makes fastjson hand every search or create answer to protojson: the
// output is still right, but the speed is lost. Teach the encoder the new
// field (fastjson.go: schema and the encoder) and the generator of these
// tests.
func TestSchema(t *testing.T) {
	if err := fastjson.Check(); err != nil {
		t.Fatalf("fastjson no longer writes some answers:\n%v", err)
	}
}

// TestRandomMessages is the property test: on many random responses, some
// with a value protojson refuses, fastjson writes what protojson writes and
// fails where protojson fails.
func TestRandomMessages(t *testing.T) {
	g := &gen{r: rand.New(rand.NewPCG(1, 2)), bad: 0.15}
	n := 1000
	if testing.Short() {
		n = 100
	}
	written, refused := 0, 0
	for range n {
		if compare(t, g.message()) {
			written++
		} else {
			refused++
		}
	}
	// Both outcomes must have been exercised for the test to mean anything.
	if written < n/2 || refused < n/20 {
		t.Errorf("%d messages written, %d refused by both: the generator is off", written, refused)
	}
}

func TestCases(t *testing.T) {
	ts := func(secs int64, nanos int32) *timestamppb.Timestamp {
		return &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
	}
	full := func(f func(e *pb.Event)) *pb.SearchEventsResponse {
		e := &pb.Event{
			Name: "events/1", EventTime: ts(1767225600, 0), ReceiveTime: ts(1767225600, 123456789),
			EventSource: "s", Action: "a", ReadOnly: true, Status: &pb.Status{Code: 7, Message: "denied"},
			Principal: "users/jane", SourceIpAddress: "private", Metadata: map[string]string{"b": "2", "a": "1"},
			Type: pb.EventType_TYPE_API,
		}
		f(e)
		return &pb.SearchEventsResponse{Events: []*pb.Event{e}}
	}
	for name, m := range map[string]proto.Message{
		"empty search":         &pb.SearchEventsResponse{},
		"empty create":         &pb.CreateEventResponse{},
		"empty batch":          &pb.BatchCreateEventsResponse{},
		"empty event":          &pb.CreateEventResponse{Event: &pb.Event{}},
		"full event":           full(func(*pb.Event) {}),
		"control characters":   full(func(e *pb.Event) { e.UserAgent = "\x00\x01\b\t\n\v\f\r\x1b\x1f\x7f end" }),
		"quotes and backslash": full(func(e *pb.Event) { e.Resource = `a"b\c\\"\u0041` }),
		"line separators":      full(func(e *pb.Event) { e.Action = "\u2028\u2029" }),
		"html":                 full(func(e *pb.Event) { e.Action = "<script>alert('&')</script>" }),
		"astral and U+FFFD":    full(func(e *pb.Event) { e.Principal = "😀\U0010ffff\ufffd" }),
		"unicode map keys": full(func(e *pb.Event) {
			e.RequestParameters = map[string]string{"é": "1", "e": "2", "E": "3", "": "4", "😀": "\n"}
		}),
		"17 map entries":   full(func(e *pb.Event) { e.Metadata = manyEntries(17) }),
		"nil maps":         full(func(e *pb.Event) { e.Metadata, e.RequestParameters = nil, nil }),
		"no status":        full(func(e *pb.Event) { e.Status = nil }),
		"zero status":      full(func(e *pb.Event) { e.Status = &pb.Status{} }),
		"no times":         full(func(e *pb.Event) { e.EventTime, e.ReceiveTime = nil, nil }),
		"epoch":            full(func(e *pb.Event) { e.EventTime = &timestamppb.Timestamp{} }),
		"first second":     full(func(e *pb.Event) { e.EventTime = ts(minSeconds, 0) }),
		"last nanosecond":  full(func(e *pb.Event) { e.EventTime = ts(maxSeconds, 999_999_999) }),
		"before 1970":      full(func(e *pb.Event) { e.EventTime = ts(-1, 500_000_000) }),
		"3 digits":         full(func(e *pb.Event) { e.EventTime = ts(1, 10_000_000) }),
		"6 digits":         full(func(e *pb.Event) { e.EventTime = ts(1, 10_000) }),
		"9 digits":         full(func(e *pb.Event) { e.EventTime = ts(1, 10) }),
		"unspecified type": full(func(e *pb.Event) { e.Type = pb.EventType_TYPE_UNSPECIFIED }),
		"system type":      full(func(e *pb.Event) { e.Type = pb.EventType_TYPE_SYSTEM }),
		"unnamed type":     full(func(e *pb.Event) { e.Type = 42 }),
		"negative type":    full(func(e *pb.Event) { e.Type = -3 }),
		"empty override":   full(func(e *pb.Event) { e.WorkspaceOverride = proto.String("") }),
		"override":         full(func(e *pb.Event) { e.WorkspaceOverride = proto.String("workspaces/w") }),
		"log entries":      &pb.GetLogEntriesResponse{Start: 41, Events: full(func(*pb.Event) {}).Events, CommittedSize: 1 << 63},
		"no log entries":   &pb.GetLogEntriesResponse{},
		"deleted log entries": &pb.GetLogEntriesResponse{Start: 7, CommittedSize: 90,
			DeletedLeafHashes: [][]byte{bytes.Repeat([]byte{0xfb}, 32), bytes.Repeat([]byte{0x3e}, 32)}},
		"page token and cursor": &pb.SearchEventsResponse{NextPageToken: "abc-_=", SearchedUntilTime: ts(1751328000, 0)},
		"batch failures": &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*statuspb.Status{
			10: {Code: 3, Message: "event.action is required"}, 2: {Code: 6}, -1: {}, 1000: {Message: "\x00"}}},
		// Refused by both: fastjson must decline, protojson then fails.
		"invalid UTF-8":           full(func(e *pb.Event) { e.Name = "\xff" }),
		"invalid UTF-8 key":       full(func(e *pb.Event) { e.Metadata = map[string]string{"\xc3": ""} }),
		"surrogate half":          full(func(e *pb.Event) { e.Resource = "\xed\xa0\x80" }),
		"year 0":                  full(func(e *pb.Event) { e.EventTime = ts(minSeconds-1, 0) }),
		"year 10000":              full(func(e *pb.Event) { e.ReceiveTime = ts(maxSeconds+1, 0) }),
		"negative nanos":          full(func(e *pb.Event) { e.EventTime = ts(0, -1) }),
		"a billion nanos":         full(func(e *pb.Event) { e.EventTime = ts(0, 1_000_000_000) }),
		"invalid UTF-8 in status": &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*statuspb.Status{0: {Message: "a\x80"}}},
	} {
		t.Run(name, func(t *testing.T) { compare(t, m) })
	}
}

func manyEntries(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[string(rune('z'-i))+"k"] = string(rune('a' + i))
	}
	return m
}

// TestDeclines covers what fastjson leaves to protojson although protojson
// writes it: fields fastjson does not write, unknown fields, Any details,
// nil elements, other types.
func TestDeclines(t *testing.T) {
	unknown := func(m proto.Message) proto.Message {
		var b []byte
		b = protowire.AppendTag(b, 999, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		m.ProtoReflect().SetUnknown(b)
		return m
	}
	detail, err := anypb.New(&pb.Status{Code: 1})
	if err != nil {
		t.Fatal(err)
	}
	event := func() *pb.Event { return &pb.Event{Name: "events/1", EventTime: &timestamppb.Timestamp{Seconds: 1}} }
	for name, m := range map[string]proto.Message{
		"unknown field in proofs":     &pb.SearchEventsResponse{Proofs: unknown(&pb.LogProofs{}).(*pb.LogProofs)},
		"unknown field in inclusion":  &pb.CreateEventResponse{Receipt: &pb.LogProofs{Inclusions: []*pb.EventInclusion{unknown(&pb.EventInclusion{}).(*pb.EventInclusion)}}},
		"nil inclusion":               &pb.BatchCreateEventsResponse{Receipts: &pb.LogProofs{Inclusions: []*pb.EventInclusion{nil}}},
		"unknown field in response":   unknown(&pb.SearchEventsResponse{}),
		"unknown field in event":      &pb.CreateEventResponse{Event: unknown(event()).(*pb.Event)},
		"unknown field in status":     &pb.CreateEventResponse{Event: &pb.Event{Status: unknown(&pb.Status{}).(*pb.Status)}},
		"unknown field in time":       &pb.CreateEventResponse{Event: &pb.Event{EventTime: unknown(&timestamppb.Timestamp{}).(*timestamppb.Timestamp)}},
		"unknown field in rpc status": &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*statuspb.Status{1: unknown(&statuspb.Status{}).(*statuspb.Status)}},
		"status details":              &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*statuspb.Status{1: {Details: []*anypb.Any{detail}}}},
		"nil event in list":           &pb.SearchEventsResponse{Events: []*pb.Event{event(), nil}},
		"nil rpc status":              &pb.BatchCreateEventsResponse{FailedRequests: map[int32]*statuspb.Status{1: nil}},
		"nil search":                  (*pb.SearchEventsResponse)(nil),
		"nil create":                  (*pb.CreateEventResponse)(nil),
		"nil batch":                   (*pb.BatchCreateEventsResponse)(nil),
		"nil log entries":             (*pb.GetLogEntriesResponse)(nil),
		"nil event in log entries":    &pb.GetLogEntriesResponse{Events: []*pb.Event{nil}},
		"other type":                  event(),
		"request":                     &pb.SearchEventsRequest{},
	} {
		t.Run(name, func(t *testing.T) {
			if b, ok := fastjson.Marshal(m); ok {
				t.Errorf("fastjson wrote %s; it should leave the message to protojson", b)
			}
			if _, err := protoJSON.Marshal(m); err != nil {
				t.Errorf("protojson fails too (%v): the case tests nothing", err)
			}
		})
	}
}

func TestSupports(t *testing.T) {
	for _, tc := range []struct {
		opts protojson.MarshalOptions
		want bool
	}{
		{protojson.MarshalOptions{EmitDefaultValues: true}, true},
		{protojson.MarshalOptions{EmitDefaultValues: true, AllowPartial: true}, true},
		{protojson.MarshalOptions{}, false},
		{protojson.MarshalOptions{EmitUnpopulated: true}, false},
		{protojson.MarshalOptions{EmitDefaultValues: true, EmitUnpopulated: true}, false},
		{protojson.MarshalOptions{EmitDefaultValues: true, UseProtoNames: true}, false},
		{protojson.MarshalOptions{EmitDefaultValues: true, UseEnumNumbers: true}, false},
		{protojson.MarshalOptions{EmitDefaultValues: true, Multiline: true}, false},
		{protojson.MarshalOptions{EmitDefaultValues: true, Indent: "  "}, false},
	} {
		if got := fastjson.Supports(tc.opts); got != tc.want {
			t.Errorf("Supports(%+v) = %v, want %v", tc.opts, got, tc.want)
		}
	}
}

// TestEveryPosition puts each ASCII character, and runes of 2, 3 and 4
// bytes, at each position of a string long enough for the encoder's 8-byte
// steps, so that every byte lane of every step is checked.
func TestEveryPosition(t *testing.T) {
	const filler = "abcdefghijklmnopqrstuvwx"
	var specials []string
	for c := range 0x80 {
		specials = append(specials, string(rune(c)))
	}
	specials = append(specials, "é", "\u2028", "😀", "\xff")
	for _, sp := range specials {
		for i := range len(filler) {
			compare(t, &pb.CreateEventResponse{Event: &pb.Event{Name: filler[:i] + sp + filler[i:]}})
		}
	}
}

// TestAppendEvent checks the encoder of single events against protojson on
// random events, as compare does for answers.
func TestAppendEvent(t *testing.T) {
	g := &gen{r: rand.New(rand.NewPCG(3, 4)), bad: 0.15}
	written := 0
	for range 1000 {
		ev := g.event()
		if g.r.Float64() < g.bad {
			g.spoil(&pb.CreateEventResponse{Event: ev}, []*pb.Event{ev})
		}
		want, werr := protoJSON.Marshal(ev)
		got, ok := fastjson.AppendEvent([]byte("prefix"), ev)
		switch {
		case werr != nil && ok:
			t.Fatalf("AppendEvent wrote an event that protojson refuses (%v):\n%s", werr, got)
		case !ok && string(got) != "prefix":
			t.Fatalf("AppendEvent declined but changed the buffer: %q", got)
		case werr != nil:
			continue
		case !ok:
			t.Fatalf("AppendEvent declined an event that protojson writes:\n%s", want)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, want); err != nil {
			t.Fatal(err)
		}
		if string(got) != "prefix"+compact.String() {
			t.Fatalf("AppendEvent\n got %s\nwant prefix%s", got, compact.Bytes())
		}
		written++
	}
	if written < 500 {
		t.Errorf("only %d of 1000 events written: the generator is off", written)
	}
}
