package client

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/wire"
)

// samplePage returns n sample events as a server returns them, and the
// wire bytes of a search answer holding them.
func samplePage(tb testing.TB, n int) ([]*audittrail.Event, []byte) {
	g := sample.New(1, sample.Options{})
	events := make([]*audittrail.Event, 0, n)
	for i := range n {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, sample.DefaultEnd, true)
		if err != nil {
			tb.Fatal(err)
		}
		if i%7 == 3 {
			e.LoginPrincipal = "someone@example.com"
		}
		events = append(events, e)
	}
	raw, err := proto.Marshal(&pb.SearchEventsResponse{Events: wire.EventsToProto(events), NextPageToken: "next"})
	if err != nil {
		tb.Fatal(err)
	}
	return events, raw
}

// decodePage is what a search does with an answer's bytes: the client's
// codec, then the conversion of the events.
func decodePage(tb testing.TB, raw []byte) []*audittrail.Event {
	var resp pb.SearchEventsResponse
	if err := wire.ClientCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &resp); err != nil {
		tb.Fatal(err)
	}
	events, err := eventsFromProto(resp.Events)
	if err != nil {
		tb.Fatal(err)
	}
	return events
}

// TestDecodedPageOwnsItsBytes checks that a decoded page equals the events
// the server sent, field by field, and still does after the buffer gRPC
// handed to the codec is reused: the codec leaves the strings in a copy of
// the answer, never in gRPC's pooled buffer.
func TestDecodedPageOwnsItsBytes(t *testing.T) {
	want, raw := samplePage(t, 200)
	got := decodePage(t, raw)
	for i := range raw {
		raw[i] = 'x'
	}
	if len(got) != len(want) {
		t.Fatalf("%d events decoded, %d sent", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// The events share one array but not their fields.
	got[0].Metadata["changed"] = "yes"
	if _, ok := got[1].Metadata["changed"]; ok {
		t.Fatal("two decoded events share a map")
	}
}

// BenchmarkClientDecode decodes a search answer of 1000 sample events as
// the client does (the codec and the conversion into events).
//
//	go test ./client -run '^$' -bench ClientDecode -benchmem
func BenchmarkClientDecode(b *testing.B) {
	_, raw := samplePage(b, 1000)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		decodePage(b, raw)
	}
}

// TestNextPageToken checks the token read without decoding the events
// against the full decoding, on answers as the server writes them and on
// hand-made ones, and that a broken answer is an error.
func TestNextPageToken(t *testing.T) {
	_, page := samplePage(t, 30)
	encode := func(m *pb.SearchEventsResponse) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tokenField := protowire.AppendTag(nil, nextPageTokenField, protowire.BytesType)
	twice := append(encode(&pb.SearchEventsResponse{NextPageToken: "first"}), tokenField...)
	twice = protowire.AppendString(twice, "second") // the last occurrence wins
	unknown := protowire.AppendTag(encode(&pb.SearchEventsResponse{NextPageToken: "t"}), 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	for _, tt := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"a page with a token", page, "next"},
		{"no token", encode(&pb.SearchEventsResponse{Events: []*pb.Event{{Name: "events/x"}}}), ""},
		{"empty answer", nil, ""},
		{"token only", encode(&pb.SearchEventsResponse{NextPageToken: "abc"}), "abc"},
		{"the field twice", twice, "second"},
		{"an unknown field after it", unknown, "t"},
	} {
		got, ok := nextPageToken(tt.raw)
		if !ok || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, ok, tt.want)
		}
		var full pb.SearchEventsResponse
		if err := full.UnmarshalVT(tt.raw); err != nil || full.NextPageToken != tt.want {
			t.Errorf("%s: the full decoding says %q, %v", tt.name, full.NextPageToken, err)
		}
	}
	// Bytes it cannot step over: truncations, and a group (which the
	// generated decoder skips, without checking its end marker).
	group := []byte{0x43, 0x24}
	for _, raw := range [][]byte{page[:len(page)-3], page[:5], {0xff}, append(tokenField, 10, 'a'), group} {
		if got, ok := nextPageToken(raw); ok {
			t.Errorf("% x...: got token %q, want no token read", raw[:min(len(raw), 8)], got)
		}
	}
}

// FuzzNextPageToken checks that where the token's reading steps over the
// whole answer and the full decoding accepts it, they agree (where it does
// not, Pages takes the full decoding's token).
func FuzzNextPageToken(f *testing.F) {
	_, page := samplePage(f, 3)
	f.Add(page)
	f.Add([]byte{})
	f.Add(protowire.AppendString(protowire.AppendTag(nil, nextPageTokenField, protowire.BytesType), "tok"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := nextPageToken(raw)
		var full pb.SearchEventsResponse
		if full.UnmarshalVT(raw) != nil || !ok {
			return
		}
		if got != full.NextPageToken {
			t.Fatalf("token read %q; the full decoding %q", got, full.NextPageToken)
		}
	})
}
