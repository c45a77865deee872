package wire

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// The protobuf codec the codecs fall back on.
	_ "google.golang.org/grpc/encoding/proto"
)

// The gRPC codecs of the server and of the Go client marshal with the code
// protoc-gen-go-vtproto generates (MarshalVT: no reflection) instead of
// protobuf-go's reflection, which sizes and then writes every map entry of
// every event: a page of 1000 events took about 5.7 ms of server CPU to
// marshal (a profile of the server's BenchmarkSearch grpc/workspace-1000),
// more than the store's search of the page, and as long again for the
// client to decode (docs/design/architecture.md, "gRPC answers").
//
// Decoding differs by side. The server decodes requests with protobuf-go,
// which refuses strings that are not UTF-8; the generated decoder does not
// check, and the service's own checks would then answer the same bad
// request with another error. The client decodes answers with the
// generated code: what the server writes was checked on its way in.

// ServerCodec is the codec of the server's listeners: generated marshalling,
// protobuf-go decoding.
func ServerCodec() encoding.CodecV2 { return codec{fallback: encoding.GetCodecV2("proto")} }

// ClientCodec is the codec of the Go client: generated marshalling and
// decoding.
func ClientCodec() encoding.CodecV2 {
	return codec{fallback: encoding.GetCodecV2("proto"), decodeVT: true}
}

type codec struct {
	fallback encoding.CodecV2
	decodeVT bool
}

// vtMessage is a message with generated code.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
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

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(vtMessage)
	if !c.decodeVT || !ok {
		return c.fallback.Unmarshal(data, v)
	}
	// UnmarshalVT copies the strings it decodes, so the buffer can go
	// back to the pool.
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// Name is the content subtype of protobuf: the other side notices nothing.
func (codec) Name() string { return "proto" }
