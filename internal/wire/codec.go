package wire

import (
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"

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
// request with another error. Except the producers' requests (CreateEvent,
// BatchCreateEvents): their decoding was 5.8 % of the server's CPU under
// batch ingest (perf, 1M events), so they are decoded by the generated code
// and their strings checked by checkedUTF8; a request with a string that is
// not UTF-8, or that the generated code refuses, is decoded again by
// protobuf-go for its error. A request of the API refused only for a string
// that is not UTF-8 is then decoded anyway, its error kept for the server's
// interceptor (DecodeError). The client decodes answers with the generated
// code, leaving their strings in a copy of the answer (see Unmarshal): what
// the server writes was checked on its way in.

// ServerCodec is the codec of the server's listeners: generated marshalling,
// protobuf-go decoding but for the producers' requests. A request of the
// API other than the producers' that is over maxOther bytes (0: no limit)
// is not decoded: it is left empty and its error (RESOURCE_EXHAUSTED) kept
// for the server's interceptor (DecodeError), as a bad string's is. The
// listener's own limit (grpc.MaxRecvMsgSize) is the producers' batches'
// (100 MiB on the internal listener), while no valid search or other
// request comes near 1 MiB: decoding 100 MiB of a search's metadata_exact
// map took 8.7 s of the server's CPU for a caller who may search.
func ServerCodec(maxOther int) encoding.CodecV2 {
	return codec{fallback: encoding.GetCodecV2("proto"), decodeIngest: true, maxOther: maxOther}
}

// ClientCodec is the codec of the Go client: generated marshalling and
// decoding.
func ClientCodec() encoding.CodecV2 {
	return codec{fallback: encoding.GetCodecV2("proto"), decodeVT: true}
}

type codec struct {
	fallback     encoding.CodecV2
	decodeVT     bool // every message with generated code
	decodeIngest bool // the producers' requests, their strings checked
	maxOther     int  // the size limit of the API's other requests, 0 for none
}

// vtMessage is a message with generated code.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// vtUnsafeMessage is a message whose generated decoder can leave its strings
// and bytes in the buffer it decodes.
type vtUnsafeMessage interface {
	UnmarshalVTUnsafe([]byte) error
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
	if c.maxOther > 0 && data.Len() > c.maxOther {
		if err := tooLargeError(data.Len(), c.maxOther, v); err != nil {
			decodeErrors.Store(v, err)
			return nil
		}
	}
	err := c.unmarshal(data, v)
	if err != nil && c.decodeIngest {
		if bad := badStringError(data, v); bad != nil {
			decodeErrors.Store(v, bad)
			return nil
		}
		if bad := malformedError(err, v); bad != nil {
			decodeErrors.Store(v, bad)
			return nil
		}
	}
	return err
}

// malformedError returns the error of a request of the API whose bytes are
// not protobuf at all (a truncated message, a field of the wrong wire type),
// or nil for another message. Such a request is the client's fault, so it is
// kept like a bad string (decodeErrors), and answered INVALID_ARGUMENT by the
// listener's interceptor, as REST answers 400 for a body that is not JSON:
// grpc-go would answer INTERNAL, and the caller would take it for the
// server's failure. The message is left empty.
func malformedError(err error, v any) error {
	m, ok := v.(proto.Message)
	if !ok || m.ProtoReflect().Descriptor().ParentFile().Package() != apiPackage {
		return nil
	}
	proto.Reset(m)
	return audittrail.Errorf(audittrail.EInvalid, "the request is not a valid protobuf %s: %v", m.ProtoReflect().Descriptor().Name(), err)
}

// tooLargeError returns the error of a request v of size bytes, over max,
// when v is a request of the API other than the producers', or nil.
func tooLargeError(size, max int, v any) error {
	switch v.(type) {
	case *pb.BatchCreateEventsRequest, *pb.CreateEventRequest:
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok || m.ProtoReflect().Descriptor().ParentFile().Package() != apiPackage {
		return nil
	}
	return audittrail.Errorf(audittrail.ETooLarge, "a %s of %d bytes is over the limit of %d bytes of requests other than creates",
		m.ProtoReflect().Descriptor().Name(), size, max)
}

// A request string that is not UTF-8 makes protobuf-go's decoding fail, and
// grpc-go answers every decoding failure INTERNAL, before any code of ours
// runs: a client would take its own bad input for the server's fault (and
// retry it). So the server's codec decodes such a request of the API with
// the generated code, which does not check strings, keeps the error for it
// in decodeErrors, and the listener's interceptor (DecodeError) answers
// INVALID_ARGUMENT naming the field, as REST answers 400; a request that is
// not protobuf at all is kept there too (malformedError). The API's methods
// are all unary, so every request the codec decodes reaches the
// interceptor, which removes its entry. A request over the size limit of
// its kind (ServerCodec) is kept there too, not decoded.
var decodeErrors sync.Map // request message → error

// DecodeError returns (and forgets) the error the server's codec kept for
// req: a string of it that is not UTF-8, bytes that are not protobuf, or
// its size over the limit. Nil for any other request.
func DecodeError(req any) error {
	if err, ok := decodeErrors.LoadAndDelete(req); ok {
		return err.(error)
	}
	return nil
}

// badStringError returns the error of a request of the API whose bytes
// decode with the generated code and hold a string that is not UTF-8, or
// nil (another malformation, or another message).
func badStringError(data mem.BufferSlice, v any) error {
	m, ok := v.(interface {
		vtMessage
		proto.Message
	})
	if !ok || m.ProtoReflect().Descriptor().ParentFile().Package() != apiPackage {
		return nil
	}
	proto.Reset(m)
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	err := m.UnmarshalVT(buf.ReadOnlyData())
	buf.Free()
	if err != nil {
		proto.Reset(m)
		return nil
	}
	path := badStringPath(m.ProtoReflect(), "")
	if path == "" {
		proto.Reset(m)
		return nil
	}
	return audittrail.Errorf(audittrail.EInvalid, "%s is not valid UTF-8", path)
}

// apiPackage is the protobuf package of the API's messages.
var apiPackage = (&pb.Event{}).ProtoReflect().Descriptor().ParentFile().Package()

// badStringPath returns the path of the first string of m that is not
// UTF-8 ("event.metadata[\"k\"]", "requests[2].event.action"), or "".
func badStringPath(m protoreflect.Message, prefix string) string {
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				switch {
				case fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(key):
					found = name + " key " + strconv.QuoteToASCII(key)
				case fd.MapValue().Kind() == protoreflect.StringKind && !utf8.ValidString(mv.String()):
					found = name + "[" + strconv.QuoteToASCII(key) + "]"
				case fd.MapValue().Kind() == protoreflect.MessageKind:
					found = badStringPath(mv.Message(), name+"["+strconv.QuoteToASCII(key)+"].")
				}
				return found == ""
			})
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if !utf8.ValidString(l.Get(i).String()) {
						found = name + "[" + strconv.Itoa(i) + "]"
					}
				case protoreflect.MessageKind:
					found = badStringPath(l.Get(i).Message(), name+"["+strconv.Itoa(i)+"].")
				}
				if found != "" {
					break
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.ValidString(v.String()) {
				found = name
			}
		case fd.Kind() == protoreflect.MessageKind:
			found = badStringPath(v.Message(), name+".")
		}
		return found == ""
	})
	return found
}

func (c codec) unmarshal(data mem.BufferSlice, v any) error {
	if c.decodeIngest {
		var valid func() bool
		switch m := v.(type) {
		case *pb.BatchCreateEventsRequest:
			valid = func() bool { return validBatchUTF8(m) }
		case *pb.CreateEventRequest:
			valid = func() bool { return validCreateUTF8(m) }
		}
		if valid != nil {
			m := v.(interface {
				vtMessage
				proto.Message
			})
			buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
			err := m.UnmarshalVT(buf.ReadOnlyData())
			buf.Free()
			if err == nil && valid() {
				return nil
			}
			proto.Reset(m)
			return c.fallback.Unmarshal(data, v)
		}
	}
	if !c.decodeVT {
		return c.fallback.Unmarshal(data, v)
	}
	if r, ok := v.(*RawMessage); ok {
		r.Data = data.Materialize()
		return nil
	}
	m, ok := v.(vtUnsafeMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	// The client's answers are decoded without copying their strings: they
	// point into a copy of the answer that the decoded message owns (one
	// allocation of the answer's size instead of one per string, about a
	// third of the time of decoding a page of 1000 events). The copy stays
	// alive while any string of the answer does.
	return m.UnmarshalVTUnsafe(data.Materialize())
}

// RawMessage is an answer the client's codec does not decode: its bytes, a
// copy of the client's own. The Go client's Pages reads the next page's
// token from them, asks for that page, and only then decodes this one.
type RawMessage struct {
	Data []byte
}

// Name is the content subtype of protobuf: the other side notices nothing.
func (codec) Name() string { return "proto" }

// validBatchUTF8 and validCreateUTF8 say whether every string of a
// producer's request is UTF-8, as protobuf-go's decoder requires.
// TestIngestRequestStrings puts a bad string in every string field the
// descriptors name, so a field added to the API cannot be missed here.
func validBatchUTF8(m *pb.BatchCreateEventsRequest) bool {
	for _, r := range m.Requests {
		if !validCreateUTF8(r) {
			return false
		}
	}
	return true
}

func validCreateUTF8(m *pb.CreateEventRequest) bool {
	if m == nil {
		return true
	}
	return utf8.ValidString(m.EventId) && validEventUTF8(m.Event)
}

func validEventUTF8(e *pb.Event) bool {
	if e == nil {
		return true
	}
	for _, s := range [...]string{e.Name, e.EventSource, e.Action, e.Principal, e.LoginPrincipal, e.SourceIpAddress,
		e.UserAgent, e.Resource, e.Workspace} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	if e.WorkspaceOverride != nil && !utf8.ValidString(*e.WorkspaceOverride) {
		return false
	}
	if e.Status != nil && !utf8.ValidString(e.Status.Message) {
		return false
	}
	for _, m := range [...]map[string]string{e.RequestParameters, e.Metadata} {
		for k, v := range m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}
