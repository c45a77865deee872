package server

import (
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail/internal/fastjson"
)

// fastJSON is the REST marshaler of the gateway: the answers of search and
// create, the API's hottest path, and of the log's entries, are written by
// package fastjson, which
// gives the JSON that the embedded JSONPb gives, at a fraction of its cost
// (protojson's reflection was about a third of a search's CPU). Everything
// else, and every message that fastjson is not sure to write exactly as
// protojson would (a field it does not know, invalid UTF-8, ...), goes to
// JSONPb, which also does all the decoding.
type fastJSON struct{ *runtime.JSONPb }

// withFastJSON returns m, sped up by fastjson when fastjson implements m's
// options.
func withFastJSON(m *runtime.JSONPb) runtime.Marshaler {
	if !fastjson.Supports(m.MarshalOptions) {
		return m
	}
	return fastJSON{m}
}

func (m fastJSON) Marshal(v any) ([]byte, error) {
	if p, ok := v.(proto.Message); ok {
		if b, ok := fastjson.Marshal(p); ok {
			return b, nil
		}
	}
	return m.JSONPb.Marshal(v)
}
