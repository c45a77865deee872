package fastjson_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/fastjson"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/wire"
)

// realisticPage is a search answer of n events as the server sends it:
// sample events (the model of production traffic), stored and converted
// as the service does, with a page token.
func realisticPage(tb testing.TB, n int) *pb.SearchEventsResponse {
	g := sample.New(1, sample.Options{})
	now := sample.DefaultEnd
	resp := &pb.SearchEventsResponse{
		NextPageToken:     "AXmBq3g9b2Nq7k8c1r2bY3lHc0ZpbHRlci1kaWdlc3QtY2FsbGVyLWRpZ2VzdC1obWFjLXNpZ25hdHVyZQ",
		SearchedUntilTime: timestamppb.New(now.Add(-720 * time.Hour)),
	}
	for range n {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, now, true)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Events = append(resp.Events, wire.EventToProto(e))
	}
	return resp
}

func TestRealisticPage(t *testing.T) {
	if !compare(t, realisticPage(t, 1000)) {
		t.Fatal("not written")
	}
}

// BenchmarkMarshal compares protojson (what the gateway used) with fastjson
// on search answers of 50 and 1000 realistic events.
//
//	go test ./internal/fastjson -run '^$' -bench Marshal -benchmem
func BenchmarkMarshal(b *testing.B) {
	for _, n := range []int{50, 1000} {
		page := realisticPage(b, n)
		out, _ := fastjson.Marshal(page)
		b.Run(fmt.Sprintf("protojson/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				if _, err := protoJSON.Marshal(page); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("fastjson/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				if _, ok := fastjson.Marshal(page); !ok {
					b.Fatal("not written")
				}
			}
		})
	}
}
