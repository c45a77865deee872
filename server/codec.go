package server

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// The protobuf codec that vtCodec falls back on.
	_ "google.golang.org/grpc/encoding/proto"
)

// vtCodec is the gRPC codec of the listeners: it marshals with the code
// protoc-gen-go-vtproto generates (MarshalVT: no reflection) and leaves
// everything else to grpc's protobuf codec.
//
// Why: a page of 1000 events took 5.7 ms of server CPU in protobuf-go's
// marshalling alone (a profile of BenchmarkSearch grpc/workspace-1000: its
// map fields go through reflection, and grpc sizes the message before
// marshalling it, a second pass), more than the store's search of the page.
// Requests are still decoded by protobuf-go, which checks that strings are
// UTF-8: the generated unmarshaller does not, and the service's own
// checks then would give a different error for the same bad request.
// What is marshalled comes from the store, whose events were checked when
// they were written.
type vtCodec struct{ fallback encoding.CodecV2 }

// vtMarshaler is a message with generated marshalling code.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

func newVTCodec() vtCodec { return vtCodec{fallback: encoding.GetCodecV2("proto")} }

func (c vtCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c vtCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.fallback.Unmarshal(data, v) }

// Name is the content subtype of protobuf: clients notice nothing.
func (vtCodec) Name() string { return "proto" }
