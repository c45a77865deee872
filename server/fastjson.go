package server

import (
	"bytes"
	"encoding/json"
	"io"

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
// JSONPb, which also does all the decoding; what it writes is compacted
// (stableJSON), so that every answer, errors included, is written without
// spaces, as fastjson writes.
type fastJSON struct {
	*runtime.JSONPb
	fast bool // fastjson writes JSONPb's options (fastjson.Supports)
}

// withFastJSON returns m, sped up by fastjson when fastjson implements m's
// options, and with protojson's random spaces removed.
func withFastJSON(m *runtime.JSONPb) runtime.Marshaler {
	return fastJSON{JSONPb: m, fast: fastjson.Supports(m.MarshalOptions)}
}

func (m fastJSON) Marshal(v any) ([]byte, error) {
	if p, ok := v.(proto.Message); ok && m.fast {
		if b, ok := fastjson.Marshal(p); ok {
			return b, nil
		}
	}
	b, err := m.JSONPb.Marshal(v)
	if err != nil || m.Indent != "" {
		return b, err
	}
	return stableJSON(b)
}

// NewEncoder is JSONPb's, through Marshal.
func (m fastJSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, m.Delimiter()...))
		return err
	})
}

// stableJSON returns protojson's single-line output without its spaces.
// protojson writes a space after every comma, or after none, depending on
// a hash of the program's binary (protobuf-go's internal/detrand), so that
// nobody depends on its exact bytes: one build of the server wrote
// `{"code":3, "message":...}` and the next `{"code":3,"message":...}`, and
// the error bodies of the REST API changed between releases. Compacted,
// they are what fastjson writes: no space outside strings, the same names,
// order and escapes.
func stableJSON(b []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(b))
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
