package server_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// TestGRPCCodecs: what the server's and the client's codecs write is what
// protobuf-go reads back as the same message, and what they read is what
// protobuf-go wrote, for pages of every size (small messages are copied,
// large ones go through grpc's buffer pool) with every escape and optional
// part; messages without generated code fall back to protobuf-go; and the
// server still refuses a request string that is not UTF-8 (the client's
// generated decoder takes it).
func TestGRPCCodecs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var msgs []proto.Message
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
		batch := &pb.BatchCreateEventsRequest{IncludeReceipts: n%2 == 0}
		for _, ev := range resp.Events {
			batch.Requests = append(batch.Requests, &pb.CreateEventRequest{Event: ev})
		}
		msgs = append(msgs, resp, batch)
	}
	msgs = append(msgs, &pb.BatchCreateEventsResponse{}, &emptypb.Empty{})

	for name, codec := range map[string]encoding.CodecV2{"server": wire.ServerCodec(0), "client": wire.ClientCodec()} {
		t.Run(name, func(t *testing.T) {
			if codec.Name() != "proto" {
				t.Fatalf("codec name %q: the other side negotiates %q", codec.Name(), "proto")
			}
			for _, in := range msgs {
				data, err := codec.Marshal(in)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				if data.Len() != proto.Size(in) {
					t.Errorf("%T: %d bytes written, protobuf-go sizes it at %d", in, data.Len(), proto.Size(in))
				}
				out := in.ProtoReflect().New().Interface()
				if err := proto.Unmarshal(data.Materialize(), out); err != nil {
					t.Fatalf("protobuf-go cannot read the codec's %T: %v", in, err)
				}
				data.Free()
				if diff := cmp.Diff(in, out, protocmp.Transform()); diff != "" {
					t.Fatalf("%T read back by protobuf-go differs (-written +read):\n%s", in, diff)
				}
				raw, err := proto.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				got := in.ProtoReflect().New().Interface()
				if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, got); err != nil {
					t.Fatalf("the codec cannot read protobuf-go's %T: %v", in, err)
				}
				if diff := cmp.Diff(in, got, protocmp.Transform()); diff != "" {
					t.Fatalf("%T written by protobuf-go, read by the codec differs (-written +read):\n%s", in, diff)
				}
			}
			bad := []byte{0x0a, 0x02, 0xff, 0xfe} // Event field 1 (name, a string): bytes ff fe
			ev := &pb.Event{}
			err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, ev)
			// The server decodes it, and keeps the error for its
			// interceptor (wire.DecodeError), which answers
			// INVALID_ARGUMENT where grpc-go would answer INTERNAL.
			if bad := wire.DecodeError(ev); name == "server" && (err != nil || audittrail.ErrorMessage(bad) != "name is not valid UTF-8") {
				t.Errorf("the server's codec on a string field that is not UTF-8: %v, kept %v; want it decoded and 'name is not valid UTF-8' kept", err, bad)
			}
			if name == "client" && err != nil {
				t.Errorf("the client's generated decoder refused a string that is not UTF-8: %v (update the docs if vtprotobuf now checks)", err)
			}
		})
	}
}

// TestIngestRequestStrings: the server decodes the producers' requests
// with generated code and checks their strings itself (internal/wire,
// codec.go); a string that is not UTF-8 in any string field the descriptors
// name, map keys and values included, at any depth, is refused with
// protobuf-go's own error, as every other request is.
func TestIngestRequestStrings(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	codec := wire.ServerCodec(0)
	fields := 0
	// check makes a request, lets mutate put a bad string in it, and
	// decodes it.
	check := func(path string, mutate func(req *pb.BatchCreateEventsRequest)) {
		fields++
		ev := trickyEvent(r, 1)
		req := &pb.BatchCreateEventsRequest{Requests: []*pb.CreateEventRequest{
			{EventId: "b096430b-c7a8-47f2-a129-d9ae58cf454f", Event: ev},
			{EventId: "c096430b-c7a8-47f2-a129-d9ae58cf454f", Event: trickyEvent(r, 2)},
		}}
		mutate(req)
		raw, err := req.MarshalVT() // protobuf-go would refuse to write it
		if err != nil {
			t.Fatal(err)
		}
		want := proto.Unmarshal(raw, &pb.BatchCreateEventsRequest{})
		if want == nil {
			t.Fatalf("%s: protobuf-go accepts the bad string: the test does not test", path)
		}
		got := &pb.BatchCreateEventsRequest{}
		err = codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, got)
		if kept := wire.DecodeError(got); err != nil || audittrail.ErrorCode(kept) != audittrail.EInvalid || !strings.Contains(kept.Error(), "is not valid UTF-8") {
			t.Errorf("%s not UTF-8: the server's codec says %v and keeps %v; want INVALID_ARGUMENT kept for the interceptor", path, err, kept)
		}
		one, err := req.Requests[1].MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		gotOne := &pb.CreateEventRequest{}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(one)}, gotOne); err == nil && wire.DecodeError(gotOne) == nil && strings.HasPrefix(path, ".requests[1]") {
			t.Errorf("%s not UTF-8: the server's codec accepts it in a CreateEventRequest", path)
		}
	}
	// visit calls check for every string field reachable from the request;
	// at returns the message at path inside a request.
	var visit func(path string, md protoreflect.MessageDescriptor, at func(m protoreflect.Message) protoreflect.Message)
	visit = func(path string, md protoreflect.MessageDescriptor, at func(m protoreflect.Message) protoreflect.Message) {
		fs := md.Fields()
		for i := range fs.Len() {
			fd := fs.Get(i)
			p := path + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapKey().Kind() == protoreflect.StringKind {
					check(p+" key", func(req *pb.BatchCreateEventsRequest) {
						at(req.ProtoReflect()).Mutable(fd).Map().Set(protoreflect.ValueOfString("\xff").MapKey(), protoreflect.ValueOfString("v"))
					})
				}
				if fd.MapValue().Kind() == protoreflect.StringKind {
					check(p+" value", func(req *pb.BatchCreateEventsRequest) {
						at(req.ProtoReflect()).Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("\xfe"))
					})
				}
			case fd.IsList():
				if fd.Kind() == protoreflect.MessageKind {
					visit(p+"[1]", fd.Message(), func(m protoreflect.Message) protoreflect.Message {
						return at(m).Get(fd).List().Get(1).Message()
					})
				} else if fd.Kind() == protoreflect.StringKind {
					t.Fatalf("%s: a repeated string field; extend this test and the codec's check", p)
				}
			case fd.Kind() == protoreflect.StringKind:
				check(p, func(req *pb.BatchCreateEventsRequest) {
					at(req.ProtoReflect()).Set(fd, protoreflect.ValueOfString("ok\xffbad"))
				})
			case fd.Kind() == protoreflect.MessageKind:
				visit(p, fd.Message(), func(m protoreflect.Message) protoreflect.Message {
					return at(m).Mutable(fd).Message()
				})
			}
		}
	}
	visit("", (&pb.BatchCreateEventsRequest{}).ProtoReflect().Descriptor(), func(m protoreflect.Message) protoreflect.Message { return m })
	// name, event_source, action, principal, login_principal,
	// source_ip_address, user_agent, resource, workspace, workspace_override,
	// status.message, two maps' keys and values, event_id.
	if fields != 16 {
		t.Errorf("%d string fields checked; the request had 16 when this test was written", fields)
	}
}
