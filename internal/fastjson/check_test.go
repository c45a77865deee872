package fastjson

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestCheckSeesSchemaChanges edits the descriptors of event.proto the way
// another change to the API could, and checks what the encoder then does
// with the edited message type: a new field with presence is guarded (the
// message goes to protojson when it is set), any other new or changed field
// disables the encoder for the type.
func TestCheckSeesSchemaChanges(t *testing.T) {
	const file = "ai/h2o/audittrail/v1/event.proto"
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	repeated := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	newField := func(typ *descriptorpb.FieldDescriptorProto_Type, label *descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String("extra"), JsonName: proto.String("extra"),
			Number: proto.Int32(99), Type: typ, Label: label}
	}
	field := func(m *descriptorpb.DescriptorProto, name string) *descriptorpb.FieldDescriptorProto {
		for _, f := range m.Field {
			if f.GetName() == name {
				return f
			}
		}
		t.Fatalf("no field %s", name)
		return nil
	}
	for _, tc := range []struct {
		name    string
		message string
		edit    func(m *descriptorpb.DescriptorProto)
		guarded []string // the fields guarded, when the encoder stays on
		off     bool     // whether the encoder is off for the type
	}{
		{name: "unchanged", message: "Event", edit: func(*descriptorpb.DescriptorProto) {}},
		{name: "unchanged search", message: "SearchEventsResponse", edit: func(*descriptorpb.DescriptorProto) {}},
		{name: "new message field", message: "Event", guarded: []string{"extra"}, edit: func(m *descriptorpb.DescriptorProto) {
			f := newField(msg, optional)
			f.TypeName = proto.String(".google.protobuf.Timestamp")
			m.Field = append(m.Field, f)
		}},
		{name: "new optional string", message: "Event", guarded: []string{"extra"}, edit: func(m *descriptorpb.DescriptorProto) {
			f := newField(str, optional)
			f.Proto3Optional = proto.Bool(true)
			f.OneofIndex = proto.Int32(int32(len(m.OneofDecl)))
			m.OneofDecl = append(m.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String("_extra")})
			m.Field = append(m.Field, f)
		}},
		{name: "new plain string", message: "SearchEventsResponse", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			m.Field = append(m.Field, newField(str, optional))
		}},
		{name: "new repeated string", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			m.Field = append(m.Field, newField(str, repeated))
		}},
		{name: "field removed", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			m.Field = slices.DeleteFunc(m.Field, func(f *descriptorpb.FieldDescriptorProto) bool { return f.GetName() == "user_agent" })
		}},
		{name: "field renamed in JSON", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			field(m, "user_agent").JsonName = proto.String("agent")
		}},
		{name: "field renumbered", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			field(m, "user_agent").Number = proto.Int32(99)
		}},
		{name: "type changed", message: "Status", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			field(m, "code").Type = descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum()
		}},
		{name: "string made optional", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			f := field(m, "resource")
			f.Proto3Optional = proto.Bool(true)
			f.OneofIndex = proto.Int32(int32(len(m.OneofDecl)))
			m.OneofDecl = append(m.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String("_resource")})
		}},
		{name: "string made repeated", message: "Event", off: true, edit: func(m *descriptorpb.DescriptorProto) {
			field(m, "resource").Label = repeated
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdp := protodesc.ToFileDescriptorProto(pb.File_ai_h2o_audittrail_v1_event_proto)
			var m *descriptorpb.DescriptorProto
			for _, d := range fdp.MessageType {
				if d.GetName() == tc.message {
					m = d
				}
			}
			if m == nil {
				t.Fatalf("no message %s in %s", tc.message, file)
			}
			tc.edit(m)
			fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
			if err != nil {
				t.Fatal(err)
			}
			md := fd.Messages().ByName(protoreflect.Name(tc.message))
			p := check(md, schema[md.FullName()])
			if off := p.err != nil; off != tc.off {
				t.Fatalf("encoder off = %v (%v), want %v", off, p.err, tc.off)
			}
			if tc.off {
				return
			}
			var guarded []string
			for _, g := range p.guards {
				guarded = append(guarded, string(g.Name()))
			}
			if !slices.Equal(guarded, tc.guarded) {
				t.Errorf("guarded fields %v, want %v", guarded, tc.guarded)
			}
		})
	}
}

// TestNeedsPropagates checks that a type containing one the encoder cannot
// write is not written either.
func TestNeedsPropagates(t *testing.T) {
	broken := check((&pb.Status{}).ProtoReflect().Descriptor(), []string{"1 code int64"})
	if broken.err == nil {
		t.Fatal("a wrong schema was accepted")
	}
	p := check((&pb.Event{}).ProtoReflect().Descriptor(), schema["ai.h2o.audittrail.v1.Event"]).needs(plans.timestamp, broken)
	if p.err == nil {
		t.Error("an Event is written although its Status cannot be")
	}
}
