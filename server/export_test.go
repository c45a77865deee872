package server

import "google.golang.org/grpc/encoding"

// VTCodecForTest returns the listeners' gRPC codec.
func VTCodecForTest() encoding.CodecV2 { return newVTCodec() }
