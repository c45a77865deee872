package wire_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/wire"
)

// storedEvents returns n sample events as the store returns them.
func storedEvents(tb testing.TB, n int) []*audittrail.Event {
	g := sample.New(1, sample.Options{})
	out := make([]*audittrail.Event, 0, n)
	for range n {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, sample.DefaultEnd, true)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestEventsToProto checks that converting a page at once gives the
// messages of EventToProto, also for events without a status, without maps
// or with a login name, and that the messages share nothing.
func TestEventsToProto(t *testing.T) {
	events := storedEvents(t, 20)
	events[3].Status = nil
	events[4].RequestParameters, events[4].Metadata = nil, nil
	events[5].LoginPrincipal = "someone@example.com"
	got := wire.EventsToProto(events)
	if len(got) != len(events) {
		t.Fatalf("%d messages for %d events", len(got), len(events))
	}
	for i, e := range events {
		if want := wire.EventToProto(e); !proto.Equal(got[i], want) {
			t.Errorf("event %d:\n got %v\nwant %v", i, got[i], want)
		}
	}
	if got[3].Status != nil {
		t.Errorf("event without status: status %v", got[3].Status)
	}
	got[0].EventTime.Seconds++
	got[0].Status.Code++
	if proto.Equal(got[0], got[1]) || got[1].EventTime.Seconds != events[1].EventTime.Unix() || got[1].Status.Code != events[1].Status.Code {
		t.Error("the messages of two events share a timestamp or a status")
	}
	if out := wire.EventsToProto(nil); out == nil || len(out) != 0 {
		t.Errorf("no events: %#v, want an empty list", out)
	}
}

// BenchmarkEventsToProto compares the conversion of a search answer's
// events one by one (EventToProto) with EventsToProto.
//
//	go test ./internal/wire -run '^$' -bench EventsToProto -benchmem
func BenchmarkEventsToProto(b *testing.B) {
	for _, n := range []int{50, 1000} {
		events := storedEvents(b, n)
		b.Run(fmt.Sprintf("one-by-one/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var out []*pb.Event
			for b.Loop() {
				out = make([]*pb.Event, 0, len(events))
				for _, e := range events {
					out = append(out, wire.EventToProto(e))
				}
			}
			if len(out) != len(events) {
				b.Fatalf("%d messages for %d events", len(out), len(events))
			}
		})
		b.Run(fmt.Sprintf("at-once/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				wire.EventsToProto(events)
			}
		})
	}
}

// BenchmarkGRPCCodec marshals and decodes a search answer of 1000 sample
// events with protobuf-go (as grpc's default codec does: a sizing pass,
// then the writing pass) and with the generated code of the server's and
// the client's codecs.
//
//	go test ./internal/wire -run '^$' -bench GRPCCodec -benchmem
func BenchmarkGRPCCodec(b *testing.B) {
	resp := &pb.SearchEventsResponse{Events: wire.EventsToProto(storedEvents(b, 1000)), NextPageToken: "t"}
	raw, err := proto.Marshal(resp)
	if err != nil {
		b.Fatal(err)
	}
	codec := wire.ClientCodec()
	b.Run("marshal/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			_ = proto.Size(resp)
			if _, err := (proto.MarshalOptions{UseCachedSize: true}).Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal/generated", func(b *testing.B) {
		for b.Loop() {
			data, err := codec.Marshal(resp)
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
		}
	})
	b.Run("decode/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			if err := proto.Unmarshal(raw, &pb.SearchEventsResponse{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/generated", func(b *testing.B) {
		for b.Loop() {
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &pb.SearchEventsResponse{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A producer's batch of 1000 events, as the server decodes it.
	batch := &pb.BatchCreateEventsRequest{}
	for i, e := range resp.Events {
		batch.Requests = append(batch.Requests, &pb.CreateEventRequest{EventId: fmt.Sprintf("b096430b-c7a8-47f2-a129-%012x", i), Event: e})
	}
	rawBatch, err := proto.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode-batch/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			if err := proto.Unmarshal(rawBatch, &pb.BatchCreateEventsRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	server := wire.ServerCodec(0)
	b.Run("decode-batch/server", func(b *testing.B) {
		for b.Loop() {
			if err := server.Unmarshal(mem.BufferSlice{mem.SliceBuffer(rawBatch)}, &pb.BatchCreateEventsRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEventTimeYearOne: an event_time of 0001-01-01T00:00:00Z (the
// earliest a Timestamp holds, over REST and gRPC alike) was given: it is
// refused as out of range, naming the range, not as missing (it is the zero
// time.Time, which validation reads as "no time").
func TestEventTimeYearOne(t *testing.T) {
	for _, c := range []struct {
		name string
		ts   *timestamppb.Timestamp
		want string
	}{
		{"year 1", &timestamppb.Timestamp{Seconds: -62135596800}, "event.event_time 0001-01-01T00:00:00Z is out of range: it must be from 1970-01-01T00:00:00Z to before 2262-01-01T00:00:00Z"},
		{"year 1 plus 1ns", &timestamppb.Timestamp{Seconds: -62135596800, Nanos: 1}, "event.event_time 0001-01-01T00:00:00.000000001Z is out of range: it must be from 1970-01-01T00:00:00Z to before 2262-01-01T00:00:00Z"},
		{"missing", nil, "event.event_time is required"},
	} {
		p := &pb.Event{EventTime: c.ts, EventSource: "s", Action: "a", Principal: "users/p", SourceIpAddress: "1.1.1.1"}
		ne, err := wire.EventFromProto(p)
		if err == nil {
			_, err = audittrail.PrepareNewEvent("6a2f41a3-c54c-4c01-9f1e-d1d7c8a5b6e7", ne, time.Now(), true)
		}
		if err == nil || audittrail.ErrorCode(err) != audittrail.EInvalid || audittrail.ErrorMessage(err) != c.want {
			t.Errorf("%s: got %v, want INVALID %q", c.name, err, c.want)
		}
	}
}
