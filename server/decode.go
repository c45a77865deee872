package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requestJSON decodes the REST API's request bodies: unknown fields are
// ignored (clients newer than the server may send some), but an enum value
// the API does not know is refused. protojson's DiscardUnknown, which
// grpc-gateway uses for the first, also throws away unknown enum names
// without a word: a filter with `"includeTypes": ["TYPE_SYSTEMX"]` would
// then match every type, and an event created with `"type": "TYPE_BOGUS"`
// would be stored as TYPE_UNSPECIFIED. (A number of no known value is kept
// by protojson and refused by the API's validation, wire.FilterFromProto and
// wire.EventFromProto.)
//
// A body is first decoded strictly, which succeeds for every body that only
// has known fields: the common case costs nothing more. Only a body that
// fails strictly is decoded again leniently and its JSON searched for enum
// names no value has (unknownEnumName).
type requestJSON struct {
	runtime.Marshaler
	lenient protojson.UnmarshalOptions // the marshaler's, DiscardUnknown set
}

func (m requestJSON) Unmarshal(data []byte, v any) error {
	msg, ok := protoTarget(v)
	if !ok {
		return m.Marshaler.Unmarshal(data, v)
	}
	return m.decode(data, msg)
}

func (m requestJSON) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	other := runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.lenient}
	return runtime.DecoderFunc(func(v any) error {
		msg, ok := protoTarget(v)
		if !ok {
			return other.Decode(v)
		}
		// One JSON value, as grpc-gateway's decoder reads (anything
		// after it in the body is ignored, as there).
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return bodyJSONError(err)
		}
		return m.decode(raw, msg)
	})
}

// bodyJSONError says what is wrong with a body that is not JSON, where
// encoding/json's errors say "unexpected EOF" for a body cut short and
// "invalid character '}' looking for beginning of value" without where.
// Other errors (the body's size limit, its read timeout) pass as they are.
func bodyJSONError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the request body is not whole JSON: it ends inside a value")
	case errors.As(err, &syntax):
		return fmt.Errorf("the request body is not valid JSON: %v, at byte %d", syntax, syntax.Offset)
	}
	return err
}

// protoTarget returns the message v is, or that v points to: the gateway
// decodes a request's body field into the field (`&protoReq.Event`, a
// pointer to the message's pointer), allocated here when nil, as
// grpc-gateway's own decoder does.
func protoTarget(v any) (proto.Message, bool) {
	if msg, ok := v.(proto.Message); ok {
		return msg, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer {
		return nil, false
	}
	field := rv.Elem()
	if !field.Type().Implements(protoMessageType) {
		return nil, false
	}
	if field.IsNil() {
		field.Set(reflect.New(field.Type().Elem()))
	}
	return field.Interface().(proto.Message), true
}

var protoMessageType = reflect.TypeFor[proto.Message]()

// decode decodes data into msg: see requestJSON.
func (m requestJSON) decode(data []byte, msg proto.Message) error {
	strict := m.lenient
	strict.DiscardUnknown = false
	if strict.Unmarshal(data, msg) == nil {
		return nil
	}
	if err := m.lenient.Unmarshal(data, msg); err != nil {
		if e := loneSurrogate(m.lenient, data, msg, err); e != nil {
			return e
		}
		return namingField(data, msg.ProtoReflect().Descriptor(), err)
	}
	var tree any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&tree); err != nil {
		return err // protojson took it: not expected
	}
	return unknownEnumName(tree, msg.ProtoReflect().Descriptor(), "")
}

// unknownEnumName returns an error for the first enum name in the JSON
// value v (decoded with encoding/json) of a message of type md that is not a
// name of the field's enum. Fields are matched by their JSON or proto name,
// as protojson does; unknown fields and values of other kinds are passed
// over (protojson has checked them). path names v in the error.
func unknownEnumName(v any, md protoreflect.MessageDescriptor, path string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil || val == nil {
			continue
		}
		name := string(fd.Name())
		if path != "" {
			name = path + "." + name
		}
		if err := unknownEnumInField(val, fd, name); err != nil {
			return err
		}
	}
	return nil
}

func unknownEnumInField(val any, fd protoreflect.FieldDescriptor, path string) error {
	switch {
	case fd.IsMap():
		obj, _ := val.(map[string]any)
		for k, item := range obj {
			if err := unknownEnumInValue(item, fd.MapValue(), fmt.Sprintf("%s[%q]", path, k)); err != nil {
				return err
			}
		}
	case fd.IsList():
		list, _ := val.([]any)
		for i, item := range list {
			if err := unknownEnumInValue(item, fd, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		return unknownEnumInValue(val, fd, path)
	}
	return nil
}

// unknownEnumInValue checks one value of field fd (an element, for a list
// or a map).
func unknownEnumInValue(val any, fd protoreflect.FieldDescriptor, path string) error {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		s, ok := val.(string)
		if !ok {
			return nil
		}
		values := fd.Enum().Values()
		if values.ByName(protoreflect.Name(s)) != nil {
			return nil
		}
		names := make([]string, values.Len())
		for i := range names {
			names[i] = string(values.Get(i).Name())
		}
		return fmt.Errorf("%s: %q is not a value of %s (%s)", path, s, fd.Enum().Name(), strings.Join(names, ", "))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return unknownEnumName(val, fd.Message(), path)
	}
	return nil
}

// loneSurrogate returns the error of a body with a string that holds a \u
// escape of half a UTF-16 surrogate pair (\uD800 to \uDFFF) without the
// other half, which is no character; nil for any other error (err,
// protojson's). protojson reads the six bytes after such an escape for the
// other half: it then says `invalid escape code "\", \"ac" in string` of
// whatever follows, and when the body ends within those six bytes (a lone
// surrogate in its last string) a bare "unexpected EOF", which names neither
// the field nor the fault. That is the only way it fails so on JSON that is
// whole (json.Valid), so such a body is decoded again with room after it,
// to find where.
func loneSurrogate(opts protojson.UnmarshalOptions, data []byte, msg proto.Message, err error) error {
	buf := data
	if protojsonEOF.MatchString(err.Error()) && json.Valid(data) {
		buf = append(bytes.Clone(data), "      "...)
		if err = opts.Unmarshal(buf, msg); err == nil {
			return nil
		}
	}
	m := protojsonPosition.FindStringSubmatch(err.Error())
	if m == nil || !strings.HasPrefix(m[3], "invalid escape code") {
		return nil
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	off := byteOffset(buf, line, col)
	if off < 0 || !hasLoneSurrogate(buf[off:]) {
		return nil
	}
	where := "a string"
	if path := jsonPathAt(buf, off, msg.ProtoReflect().Descriptor()); path != "" {
		where = path
	}
	return fmt.Errorf("%s (line %s:%s): a \\u escape of half a UTF-16 surrogate pair (\\uD800 to \\uDFFF) without its other half is not a character", where, m[1], m[2])
}

// hasLoneSurrogate reports whether the JSON string at the start of s (its
// opening quote) has a \u escape of a surrogate that is not half of a pair.
func hasLoneSurrogate(s []byte) bool {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		return rune(v), err == nil
	}
	if len(s) == 0 || s[0] != '"' {
		return false
	}
	for i := 1; i < len(s); {
		switch s[i] {
		case '"':
			return false
		case '\\':
			r, ok := hex4(s[i:])
			if !ok {
				i += 2
				continue
			}
			i += 6
			if !utf16.IsSurrogate(r) {
				continue
			}
			if r2, ok := hex4(s[i:]); ok && r < 0xDC00 && r2 >= 0xDC00 && r2 <= 0xDFFF {
				i += 6
				continue
			}
			return true
		default:
			i++
		}
	}
	return false
}

// protojsonEOF matches protojson's error for a body that ends too soon.
var protojsonEOF = regexp.MustCompile(`^proto:[\s\x{00a0}]+unexpected EOF$`)

// namingField puts the path of the field a protojson error is about in
// front of its message: `filter.start_event_time (line 1:28): invalid
// google.protobuf.Timestamp value "2026-13-01"` instead of `proto: (line
// 1:28): ...`, which names the value but leaves a person to count
// characters to find the field. Paths use the API's field names, as the
// other errors of a request do (unknownEnumName, the service's checks). An
// error without a position, or at a place the walk cannot name, is returned
// as it is.
func namingField(data []byte, md protoreflect.MessageDescriptor, err error) error {
	m := protojsonPosition.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	path := jsonPathAt(data, byteOffset(data, line, col), md)
	if path == "" {
		return err
	}
	return fmt.Errorf("%s (line %s:%s): %s", path, m[1], m[2], m[3])
}

// protojsonPosition matches protojson's errors with a position: "proto:
// (line 1:28): invalid ...", and "proto: syntax error (line 1:12):
// unexpected token 3" for a value of the wrong JSON type. protobuf-go
// writes a space or a no-break space at random after "proto:" and the
// position, so that nobody matches its messages exactly; this only looks
// for the position.
var protojsonPosition = regexp.MustCompile(`^proto:[\s\x{00a0}]+(?:syntax error[\s\x{00a0}]+)?\(line (\d+):(\d+)\):[\s\x{00a0}]+(.*)$`)

// byteOffset returns the offset of a 1-based line and column in data, as
// protojson counts them (columns in characters); -1 when outside data.
func byteOffset(data []byte, line, col int) int {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	for ; col > 1 && off < len(data); col-- {
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	if col > 1 || off >= len(data) {
		return -1
	}
	return off
}

// pathFrame is an object or array being read by jsonPathAt: a message's
// fields (md), a map's entries or a list's elements (field), or a value it
// cannot type (neither: a well-known type's JSON, an unknown field's).
type pathFrame struct {
	array     bool
	md        protoreflect.MessageDescriptor
	field     protoreflect.FieldDescriptor // the map or list field
	expectKey bool
	segment   string                       // the path of the current child, from this frame
	child     protoreflect.FieldDescriptor // a message's field being read
	index     int
}

// jsonPathAt returns the path ("filter.include_types[2]") of the innermost
// value or object key at byte offset off of data, the JSON of a message of
// type md; "" for the top level, an offset outside every value, or JSON the
// walk cannot read.
func jsonPathAt(data []byte, off int, md protoreflect.MessageDescriptor) string {
	if off < 0 {
		return ""
	}
	var stack []pathFrame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			seg := f.segment
			if f.array {
				seg = fmt.Sprintf("[%d]", f.index)
			}
			if b.Len() > 0 && !strings.HasPrefix(seg, "[") {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		}
		return b.String()
	}
	// open returns the frame of an object or array that is the current
	// child of the innermost frame.
	open := func(array bool) pathFrame {
		f := pathFrame{array: array, expectKey: !array}
		if len(stack) == 0 {
			f.md = md
			return f
		}
		top := stack[len(stack)-1]
		var fd protoreflect.FieldDescriptor // the field whose value opens
		switch {
		case top.md != nil:
			fd = top.child
		case top.field != nil && top.field.IsMap():
			if v := top.field.MapValue(); v.Kind() == protoreflect.MessageKind {
				f.md = typedMessage(v.Message())
			}
			return f
		case top.field != nil:
			if top.field.Kind() == protoreflect.MessageKind {
				f.md = typedMessage(top.field.Message())
			}
			return f
		}
		switch {
		case fd == nil:
		case fd.IsMap() || fd.IsList():
			f.field = fd
		case fd.Kind() == protoreflect.MessageKind:
			f.md = typedMessage(fd.Message())
		}
		return f
	}
	// valueDone moves the innermost frame past a value.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		if top := &stack[len(stack)-1]; top.array {
			top.index++
		} else {
			top.expectKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	for {
		start := int(d.InputOffset())
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		end := int(d.InputOffset())
		at := start <= off && off < end
		if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].expectKey {
			if key, ok := tok.(string); ok {
				top := &stack[n-1]
				top.expectKey, top.child, top.segment = false, nil, key
				switch {
				case top.md != nil:
					fd := top.md.Fields().ByJSONName(key)
					if fd == nil {
						fd = top.md.Fields().ByTextName(key)
					}
					if fd != nil {
						top.child, top.segment = fd, string(fd.Name())
					}
				case top.field != nil:
					top.segment = fmt.Sprintf("[%q]", key)
				}
				if at {
					return path()
				}
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if at {
				return path()
			}
			stack = append(stack, open(tok == json.Delim('[')))
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			if at {
				return path()
			}
			valueDone()
		}
		if len(stack) == 0 {
			return "" // the top-level value is over
		}
	}
}

// typedMessage is md, or nil for a well-known type whose JSON is not an
// object of its fields (Struct, Value, Any, ...).
func typedMessage(md protoreflect.MessageDescriptor) protoreflect.MessageDescriptor {
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil
	}
	return md
}
