package server_test

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/go-cmp/cmp"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/server"
)

// TestVTCodec: what the listeners' codec writes is what protobuf-go reads
// back as the same message, for pages of every size (small messages are
// copied, large ones go through grpc's buffer pool), and messages without
// generated code fall back to protobuf-go.
func TestVTCodec(t *testing.T) {
	codec := server.VTCodecForTest()
	if codec.Name() != "proto" {
		t.Fatalf("codec name %q: clients negotiate %q", codec.Name(), "proto")
	}
	r := rand.New(rand.NewPCG(3, 4))
	roundTrip := func(t *testing.T, in, out proto.Message) {
		t.Helper()
		data, err := codec.Marshal(in)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		defer data.Free()
		if err := proto.Unmarshal(data.Materialize(), out); err != nil {
			t.Fatalf("protobuf-go cannot read the codec's bytes: %v", err)
		}
		if diff := cmp.Diff(in, out, protocmp.Transform()); diff != "" {
			t.Fatalf("read back differs (-written +read):\n%s", diff)
		}
		var again mem.BufferSlice
		if again, err = codec.Marshal(in); err != nil {
			t.Fatal(err)
		}
		defer again.Free()
		if again.Len() != proto.Size(in) {
			t.Errorf("%d bytes written, protobuf-go sizes the message at %d", again.Len(), proto.Size(in))
		}
	}
	for _, n := range []int{0, 1, 2, 7, 50, 1000} {
		resp := &pb.SearchEventsResponse{NextPageToken: "tok", SearchedUntilTime: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}}
		for i := range n {
			ev := trickyEvent(r, i)
			ev.Name = "events/" + ev.Resource
			resp.Events = append(resp.Events, ev)
		}
		if n >= 50 && mem.IsBelowBufferPoolingThreshold(proto.Size(resp)) {
			t.Fatalf("a page of %d events (%d bytes) is below the pooling threshold: the pooled path goes untested", n, proto.Size(resp))
		}
		roundTrip(t, resp, &pb.SearchEventsResponse{})
	}
	roundTrip(t, &pb.BatchCreateEventsResponse{}, &pb.BatchCreateEventsResponse{})
	roundTrip(t, &emptypb.Empty{}, &emptypb.Empty{})
	// Requests are decoded by protobuf-go, which refuses strings that are
	// not UTF-8.
	bad := []byte{0x0a, 0x02, 0xff, 0xfe} // field 1 (a string in Event: name), bytes ff fe
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &pb.Event{}); err == nil {
		t.Error("a string field that is not UTF-8 was accepted")
	}
}
