package fastjson_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail/internal/fastjson"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// protoJSON is the REST API's encoder (server.NewJSONMarshaler), the
// reference fastjson must match.
var protoJSON = protojson.MarshalOptions{EmitDefaultValues: true}

// compare checks fastjson against protojson on m: fastjson writes m exactly
// when protojson can (both fail on invalid UTF-8 and out-of-range times),
// and then writes the same JSON value; the bytes are also the same once
// protojson's random spaces are removed (same key order, same escapes),
// which is stronger than the contract and catches a key written twice. It
// reports whether m was written.
func compare(tb testing.TB, m proto.Message) bool {
	tb.Helper()
	want, werr := protoJSON.Marshal(m)
	got, ok := fastjson.Marshal(m)
	switch {
	case werr != nil && ok:
		tb.Fatalf("fastjson wrote a message that protojson refuses (%v):\n%s", werr, got)
	case werr != nil:
		return false
	case !ok:
		tb.Fatalf("fastjson declined a message that protojson writes:\n%s", want)
	}
	if !sameJSON(tb, want, got) {
		tb.Fatalf("different JSON values\nprotojson: %s\nfastjson:  %s", want, got)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(compact.Bytes(), got) {
		tb.Fatalf("same value, different bytes\nprotojson: %s\nfastjson:  %s", compact.Bytes(), got)
	}
	return true
}

// sameJSON reports whether a and b decode to the same value. Numbers are
// kept as written (json.Number), so 1 and 1.0 differ.
func sameJSON(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	decode := func(data []byte) any {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			tb.Fatalf("not JSON: %v\n%s", err, data)
		}
		if dec.More() {
			tb.Fatalf("more than one JSON value:\n%s", data)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// gen makes random messages with every field in every state the encoder
// distinguishes: nil and empty maps and lists, nil status and times,
// control characters, quotes, backslashes, U+2028/9, astral runes, times at
// the ends of protojson's range and with 0 to 9 fractional digits, every
// EventType value and numbers without a name. bad is the chance that a
// message also gets one value protojson refuses (invalid UTF-8, a time out
// of range).
type gen struct {
	r   *rand.Rand
	bad float64
}

var pieces = []string{
	"", "a", "users/jane", "h2oai-enginemanager-server", "actions/enginemanager/daiEngines/CREATE",
	`"`, `\`, "/", `\"`, "\x00", "\x01", "\x07", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t",
	"\u2028", "\u2029", "\ufffd", "\ufeff", "\u00a0", "é", "日本語", "😀", "\U0010ffff", "<script>&amp;</script>",
	"%zz", "{}", "[1,2]", "null", "\\u0000", strings.Repeat("x", 300),
}

// invalidUTF8 are strings protojson refuses.
var invalidUTF8 = []string{"\xff", "\xc3", "a\x80b", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "ok\xe2\x82"}

func (g *gen) string() string {
	var b strings.Builder
	for range g.r.IntN(5) {
		switch g.r.IntN(3) {
		case 0:
			b.WriteString(pieces[g.r.IntN(len(pieces))])
		case 1:
			b.WriteRune(rune(g.r.IntN(0x80)))
		default:
			r := rune(g.r.IntN(0x110000))
			if r >= 0xd800 && r < 0xe000 { // surrogates are not runes
				r = 'S'
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (g *gen) stringMap() map[string]string {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	n := 1 + g.r.IntN(5)
	if g.r.IntN(8) == 0 {
		n = 17 + g.r.IntN(10) // more than the encoder sorts without allocating
	}
	m := make(map[string]string, n)
	for range n {
		m[g.string()] = g.string()
	}
	return m
}

const (
	minSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
)

func (g *gen) timestamp() *timestamppb.Timestamp {
	switch g.r.IntN(12) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{}
	case 2:
		return &timestamppb.Timestamp{Seconds: minSeconds}
	case 3:
		return &timestamppb.Timestamp{Seconds: maxSeconds, Nanos: 999_999_999}
	}
	secs := minSeconds + g.r.Int64N(maxSeconds-minSeconds+1)
	if g.r.IntN(2) == 0 { // around now, as most events are
		secs = 1_700_000_000 + g.r.Int64N(100_000_000)
	}
	var nanos int32
	switch g.r.IntN(5) {
	case 0:
	case 1:
		nanos = g.r.Int32N(1000) * 1_000_000 // 3 digits
	case 2:
		nanos = g.r.Int32N(1_000_000) * 1_000 // 6 digits
	case 3:
		nanos = g.r.Int32N(1_000_000_000) // 9 digits
	default:
		nanos = []int32{1, 10, 100, 1_000, 10_000, 100_000, 999_999_999, 100_000_000}[g.r.IntN(8)]
	}
	return &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
}

func (g *gen) eventType() pb.EventType {
	if g.r.IntN(8) == 0 { // a number the enum does not name
		return pb.EventType([]int32{3, 63, 64, 1000, -1, math.MaxInt32, math.MinInt32}[g.r.IntN(7)])
	}
	return pb.EventType(g.r.IntN(3))
}

func (g *gen) event() *pb.Event {
	e := &pb.Event{
		Name:              g.string(),
		EventTime:         g.timestamp(),
		ReceiveTime:       g.timestamp(),
		EventSource:       g.string(),
		Action:            g.string(),
		ReadOnly:          g.r.IntN(2) == 0,
		Principal:         g.string(),
		LoginPrincipal:    g.string(),
		SourceIpAddress:   g.string(),
		UserAgent:         g.string(),
		Resource:          g.string(),
		Workspace:         g.string(),
		RequestParameters: g.stringMap(),
		Metadata:          g.stringMap(),
		Type:              g.eventType(),
	}
	switch g.r.IntN(4) {
	case 0:
	case 1:
		e.Status = &pb.Status{}
	default:
		e.Status = &pb.Status{Code: []int32{0, 3, 7, 16, -1, math.MaxInt32, math.MinInt32}[g.r.IntN(7)], Message: g.string()}
	}
	switch g.r.IntN(4) {
	case 0:
		e.WorkspaceOverride = proto.String("")
	case 1:
		e.WorkspaceOverride = proto.String(g.string())
	}
	return e
}

func (g *gen) events() []*pb.Event {
	switch g.r.IntN(10) {
	case 0:
		return nil
	case 1:
		return []*pb.Event{}
	}
	events := make([]*pb.Event, 1+g.r.IntN(60))
	for i := range events {
		events[i] = g.event()
	}
	return events
}

// message returns a random response of one of the three types fastjson
// writes.
func (g *gen) message() proto.Message {
	var m proto.Message
	var events []*pb.Event
	switch g.r.IntN(4) {
	case 3:
		events = g.events()
		entries := &pb.GetLogEntriesResponse{Start: []uint64{0, 1, math.MaxUint64, g.r.Uint64()}[g.r.IntN(4)], Events: events,
			CommittedSize: []uint64{0, math.MaxUint64, g.r.Uint64()}[g.r.IntN(3)], Proofs: g.proofs()}
		if g.r.IntN(3) == 0 { // a page of deleted leaves (the server never sends both)
			entries.Events = nil
			for range g.r.IntN(5) {
				h := make([]byte, 32)
				for i := range h {
					h[i] = byte(g.r.IntN(256))
				}
				entries.DeletedLeafHashes = append(entries.DeletedLeafHashes, h)
			}
		}
		m = entries
	case 0:
		events = g.events()
		m = &pb.SearchEventsResponse{Events: events, NextPageToken: g.string(), SearchedUntilTime: g.timestamp(), Proofs: g.proofs()}
	case 1:
		c := &pb.CreateEventResponse{}
		if g.r.IntN(8) != 0 {
			c.Event = g.event()
			events = []*pb.Event{c.Event}
		}
		c.Receipt = g.proofs()
		m = c
	default:
		events = g.events()
		b := &pb.BatchCreateEventsResponse{Events: events, Receipts: g.proofs()}
		switch g.r.IntN(3) {
		case 0:
		case 1:
			b.FailedRequests = map[int32]*statuspb.Status{}
		default:
			b.FailedRequests = make(map[int32]*statuspb.Status)
			for range 1 + g.r.IntN(20) {
				k := g.r.Int32N(1000)
				if g.r.IntN(10) == 0 {
					k = []int32{-1, math.MaxInt32, math.MinInt32}[g.r.IntN(3)]
				}
				b.FailedRequests[k] = &statuspb.Status{Code: g.r.Int32N(17), Message: g.string()}
			}
		}
		m = b
	}
	if g.r.Float64() < g.bad {
		g.spoil(m, events)
	}
	return m
}

// proofs returns nil (the default answer) half of the time, else random
// log proofs: empty lists, pending inclusions, 0 to 40 hashes of 32 bytes or
// odd lengths (base64 padding), extreme sizes.
func (g *gen) proofs() *pb.LogProofs {
	if g.r.IntN(2) == 0 {
		return nil
	}
	p := &pb.LogProofs{Checkpoint: g.string(), TreeSize: []uint64{0, 1, math.MaxUint64, g.r.Uint64()}[g.r.IntN(4)]}
	if g.r.IntN(4) == 0 {
		p.Checkpoint = "audittrail/log\n42\nq6ZB2dXSo1rZb7KqxXv2V8F8n0Y9Y0nH0hGQ0F2q0Ck=\n\n\u2014 audittrail/log AbCd\n"
	}
	for range g.r.IntN(6) {
		in := &pb.EventInclusion{Name: g.string(), LeafIndex: []uint64{0, math.MaxUint64, g.r.Uint64N(1 << 40)}[g.r.IntN(3)], Pending: g.r.IntN(3) == 0}
		p.Inclusions = append(p.Inclusions, in)
	}
	if g.r.IntN(5) != 0 {
		p.Hashes = [][]byte{}
	}
	for range g.r.IntN(41) {
		h := make([]byte, []int{32, 32, 32, 0, 1, 2, 31}[g.r.IntN(7)])
		for i := range h {
			h[i] = byte(g.r.IntN(256))
		}
		p.Hashes = append(p.Hashes, h)
	}
	return p
}

// spoil puts one value protojson refuses into m.
func (g *gen) spoil(m proto.Message, events []*pb.Event) {
	bad := invalidUTF8[g.r.IntN(len(invalidUTF8))]
	if len(events) == 0 {
		switch m := m.(type) {
		case *pb.SearchEventsResponse:
			m.NextPageToken = bad
		case *pb.CreateEventResponse:
			m.Event = &pb.Event{Resource: bad}
		case *pb.BatchCreateEventsResponse:
			m.FailedRequests = map[int32]*statuspb.Status{0: {Message: bad}}
		}
		return
	}
	e := events[g.r.IntN(len(events))]
	badTime := []*timestamppb.Timestamp{
		{Seconds: minSeconds - 1}, {Seconds: maxSeconds + 1}, {Nanos: -1}, {Nanos: 1_000_000_000},
		{Seconds: math.MinInt64}, {Seconds: math.MaxInt64},
	}[g.r.IntN(6)]
	switch g.r.IntN(8) {
	case 0:
		e.Name = bad
	case 1:
		e.Principal = "users/" + bad
	case 2:
		e.Metadata = map[string]string{"k": bad}
	case 3:
		e.RequestParameters = map[string]string{bad: "v", "a": "b"}
	case 4:
		e.Status = &pb.Status{Message: bad}
	case 5:
		e.WorkspaceOverride = &bad
	case 6:
		e.EventTime = badTime
	default:
		e.ReceiveTime = badTime
	}
}
