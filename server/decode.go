package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

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
			return err
		}
		return m.decode(raw, msg)
	})
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
		return err
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
