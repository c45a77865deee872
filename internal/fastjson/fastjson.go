// Package fastjson writes the REST answers of the event API's hot paths
// (SearchEvents, CreateEvent and BatchCreateEvents, with the verifiable
// log's proofs and receipts when asked for) as JSON, producing the
// bytes that protojson.MarshalOptions{EmitDefaultValues: true} produces for
// them (apart from protojson's deliberately random spaces), without
// reflection.
//
// # Why a hand-written encoder
//
// A REST search of 50 events spent about a third of the server's CPU in
// protojson: it walks every field of every event through protoreflect,
// sorts the fields and map keys of each message, and allocates for each of
// them. The store's part of the same answer is several times smaller. The
// search answer is the API's hottest path, and these few message types
// change rarely, so we write them by hand, straight from the generated
// structs into one buffer that is sized up front.
//
// # How it stays identical to protojson
//
// The encoder never guesses. Marshal reports ok == false, and the caller
// (the server's REST marshaler) uses protojson, whenever a message holds
// anything the encoder does not write exactly as protojson would:
//
//   - a field the encoder does not know. The fields each message type is
//     written with are listed in schema and checked against the generated
//     descriptors when the package loads. A field added later with presence
//     (a message field, an optional or oneof field) is tested per message and sends the message to protojson
//     when set. A field that protojson would always write (a scalar without
//     presence, a list, a map), or a changed field, disables the encoder for
//     every type that contains it; Check reports it and a test fails, so the
//     speed is not lost without anyone noticing, but the output stays right.
//   - unknown fields: protojson leaves them out, and so could we, but the
//     server never sends any, and one rule (anything unexpected goes to
//     protojson) is easier to trust than a list of exceptions;
//   - a string that is not valid UTF-8, or a Timestamp out of protojson's
//     range: protojson fails on those, and the caller returns its error;
//   - google.rpc.Status details (Any values need the type registry), and nil
//     elements of lists and maps.
//
// The tests compare the two encoders on random messages, on fuzz input and
// through the REST endpoint, both after decoding (the contract: the same JSON
// value) and byte for byte after removing protojson's spaces (what we
// achieve: same key order, same escapes).
//
// Escaping follows protojson: '"', '\' and the control characters U+0000 to
// U+001F are escaped (\b \f \n \r \t, else \u00XX), everything else,
// including U+2028, U+2029, '<', '>' and '&', is written as is, which JSON
// allows.
package fastjson

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// Supports reports whether Marshal writes what protojson writes with the
// options o. It implements one set: EmitDefaultValues, lowerCamelCase
// names, enum names, compact output. AllowPartial and Resolver make no
// difference to the messages it writes (proto3 has no required fields, and
// it never writes an Any).
func Supports(o protojson.MarshalOptions) bool {
	return o.EmitDefaultValues && !o.EmitUnpopulated && !o.UseProtoNames && !o.UseEnumNumbers &&
		!o.Multiline && o.Indent == ""
}

// Marshal returns the JSON of m as protojson with EmitDefaultValues writes
// it, and ok == true, when m is a *SearchEventsResponse,
// *CreateEventResponse, *BatchCreateEventsResponse or
// *GetLogEntriesResponse that holds nothing the encoder leaves to protojson
// (see the package documentation). Otherwise it returns ok == false and the
// caller must use protojson.
func Marshal(m proto.Message) (b []byte, ok bool) {
	var e encoder
	switch m := m.(type) {
	case *pb.SearchEventsResponse:
		if m == nil || plans.search.err != nil {
			return nil, false
		}
		b = e.searchEventsResponse(make([]byte, 0, 128+eventsSize(m.Events)+len(m.NextPageToken)+proofsSize(m.Proofs)), m)
	case *pb.CreateEventResponse:
		if m == nil || plans.create.err != nil {
			return nil, false
		}
		b = e.createEventResponse(make([]byte, 0, 32+eventSize(m.Event)+proofsSize(m.Receipt)), m)
	case *pb.BatchCreateEventsResponse:
		if m == nil || plans.batch.err != nil {
			return nil, false
		}
		b = e.batchCreateEventsResponse(make([]byte, 0, 64+eventsSize(m.Events)+64*len(m.FailedRequests)+proofsSize(m.Receipts)), m)
	case *pb.GetLogEntriesResponse:
		if m == nil || plans.entries.err != nil {
			return nil, false
		}
		b = e.getLogEntriesResponse(make([]byte, 0, 128+eventsSize(m.Events)+proofsSize(m.Proofs)+48*len(m.DeletedLeafHashes)), m)
	default:
		return nil, false
	}
	if e.bad {
		return nil, false
	}
	return b, true
}

// Check returns why messages of a type that Marshal writes are always left
// to protojson: their generated schema differs from the one the encoder was
// written for (see schema). Nil means that the encoder covers every type.
func Check() error {
	return plans.schemaErr
}

// schema lists, for each message type the encoder writes, the fields it
// writes, by their signature (see signature). The encoder below writes them
// in this order, which is the order of declaration that protojson follows.
var schema = map[protoreflect.FullName][]string{
	"ai.h2o.audittrail.v1.SearchEventsResponse": {
		"1 events repeated message ai.h2o.audittrail.v1.Event",
		"2 nextPageToken string",
		"3 searchedUntilTime message google.protobuf.Timestamp",
		"4 proofs message ai.h2o.audittrail.v1.LogProofs",
	},
	"ai.h2o.audittrail.v1.CreateEventResponse": {
		"1 event message ai.h2o.audittrail.v1.Event",
		"2 receipt message ai.h2o.audittrail.v1.LogProofs",
	},
	"ai.h2o.audittrail.v1.BatchCreateEventsResponse": {
		"1 events repeated message ai.h2o.audittrail.v1.Event",
		"2 failedRequests map<int32, message google.rpc.Status>",
		"3 receipts message ai.h2o.audittrail.v1.LogProofs",
	},
	"ai.h2o.audittrail.v1.GetLogEntriesResponse": {
		"1 start uint64",
		"2 events repeated message ai.h2o.audittrail.v1.Event",
		"3 committedSize uint64",
		"4 proofs message ai.h2o.audittrail.v1.LogProofs",
		"5 deletedLeafHashes repeated bytes",
	},
	"ai.h2o.audittrail.v1.LogProofs": {
		"1 checkpoint string",
		"2 treeSize uint64",
		"3 inclusions repeated message ai.h2o.audittrail.v1.EventInclusion",
		"4 hashes repeated bytes",
	},
	"ai.h2o.audittrail.v1.EventInclusion": {
		"1 name string",
		"2 leafIndex uint64",
		"3 pending bool",
	},
	"ai.h2o.audittrail.v1.Event": {
		"1 name string",
		"2 eventTime message google.protobuf.Timestamp",
		"3 receiveTime message google.protobuf.Timestamp",
		"4 eventSource string",
		"5 action string",
		"6 readOnly bool",
		"7 status message ai.h2o.audittrail.v1.Status",
		"8 principal string",
		"9 loginPrincipal string",
		"10 sourceIpAddress string",
		"11 userAgent string",
		"12 resource string",
		"13 workspace string",
		"14 requestParameters map<string, string>",
		"15 metadata map<string, string>",
		"16 type enum ai.h2o.audittrail.v1.EventType",
		"17 workspaceOverride optional string",
	},
	"ai.h2o.audittrail.v1.Status": {
		"1 code int32",
		"2 message string",
	},
	"google.rpc.Status": {
		"1 code int32",
		"2 message string",
		"3 details repeated message google.protobuf.Any", // written only when empty
	},
	"google.protobuf.Timestamp": {
		"1 seconds int64",
		"2 nanos int32",
	},
}

// signature describes a field by what decides its JSON: number, JSON name,
// cardinality, presence and type, e.g. "17 workspaceOverride optional
// string" or "14 requestParameters map<string, string>".
func signature(fd protoreflect.FieldDescriptor) string {
	return strconv.Itoa(int(fd.Number())) + " " + fd.JSONName() + " " + typeName(fd)
}

func typeName(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map<" + kindName(fd.MapKey()) + ", " + kindName(fd.MapValue()) + ">"
	case fd.IsList():
		return "repeated " + kindName(fd)
	case fd.HasPresence() && fd.Message() == nil:
		return "optional " + kindName(fd)
	}
	return kindName(fd)
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return fd.Kind().String() + " " + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return "enum " + string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

// plan is what the encoder knows of one message type.
type plan struct {
	// guards are the fields with presence that the encoder does not write:
	// a message with any of them set goes to protojson.
	guards []protoreflect.FieldDescriptor
	// err, when not nil, says why every message of the type, and of the
	// types containing it, goes to protojson.
	err error
}

// check compares a message type with the fields the encoder writes for it.
func check(md protoreflect.MessageDescriptor, encoded []string) plan {
	var p plan
	var errs []error
	fields := md.Fields()
	have := make(map[string]bool, fields.Len())
	for i := range fields.Len() {
		have[signature(fields.Get(i))] = true
	}
	for _, sig := range encoded {
		if !have[sig] {
			errs = append(errs, fmt.Errorf("%s: no field %q", md.FullName(), sig))
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case slices.Contains(encoded, signature(fd)):
		case fd.HasPresence():
			p.guards = append(p.guards, fd)
		default:
			errs = append(errs, fmt.Errorf("%s: field %q is not written by fastjson (protojson always writes it)",
				md.FullName(), signature(fd)))
		}
	}
	if len(encoded) == 0 {
		errs = append(errs, fmt.Errorf("%s: no schema", md.FullName()))
	}
	p.err = errors.Join(errs...)
	return p
}

// needs makes p fail when a message type it contains fails.
func (p plan) needs(deps ...plan) plan {
	for _, d := range deps {
		p.err = errors.Join(p.err, d.err)
	}
	return p
}

// accepts reports whether m, of p's type, holds only what the encoder
// writes.
func (p *plan) accepts(m protoreflect.Message) bool {
	if len(m.GetUnknown()) != 0 {
		return false
	}
	for _, fd := range p.guards {
		if m.Has(fd) {
			return false
		}
	}
	return true
}

var plans = newPlans()

func newPlans() (p struct {
	search, create, batch, entries, event, status, rpcStatus, timestamp, proofs, inclusion plan
	schemaErr                                                                              error // of all types, each once
}) {
	of := func(m proto.Message) plan {
		md := m.ProtoReflect().Descriptor()
		c := check(md, schema[md.FullName()])
		p.schemaErr = errors.Join(p.schemaErr, c.err)
		return c
	}
	p.timestamp = of(&timestamppb.Timestamp{})
	p.status = of(&pb.Status{})
	p.rpcStatus = of(&statuspb.Status{})
	p.event = of(&pb.Event{}).needs(p.timestamp, p.status)
	p.inclusion = of(&pb.EventInclusion{})
	p.proofs = of(&pb.LogProofs{}).needs(p.inclusion)
	p.search = of(&pb.SearchEventsResponse{}).needs(p.event, p.timestamp, p.proofs)
	p.create = of(&pb.CreateEventResponse{}).needs(p.event, p.proofs)
	p.batch = of(&pb.BatchCreateEventsResponse{}).needs(p.event, p.rpcStatus, p.proofs)
	p.entries = of(&pb.GetLogEntriesResponse{}).needs(p.event, p.proofs)
	return p
}

// eventTypeNames are the quoted names of the EventType values numbered 0
// to 63, from the descriptor; other numbers are looked up (protojson writes
// a number without a name as a JSON number).
var eventTypeNames = func() (names [64]string) {
	values := pb.EventType(0).Descriptor().Values()
	for i := range values.Len() {
		if v := values.Get(i); v.Number() >= 0 && int(v.Number()) < len(names) {
			names[v.Number()] = strconv.Quote(string(v.Name()))
		}
	}
	return names
}()

// encoder writes JSON. Its methods append to a buffer and return it (the
// buffer lives in registers, not behind a pointer the garbage collector must
// watch). A value that cannot be written as protojson would sets bad, and
// the output is then discarded.
type encoder struct {
	bad bool
}

func (e *encoder) searchEventsResponse(b []byte, m *pb.SearchEventsResponse) []byte {
	if !plans.search.accepts(m.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"events":`...)
	b = e.events(b, m.Events)
	b = append(b, `,"nextPageToken":`...)
	b = e.string(b, m.NextPageToken)
	if m.SearchedUntilTime != nil {
		b = append(b, `,"searchedUntilTime":`...)
		b = e.timestamp(b, m.SearchedUntilTime)
	}
	if m.Proofs != nil {
		b = append(b, `,"proofs":`...)
		b = e.logProofs(b, m.Proofs)
	}
	return append(b, '}')
}

func (e *encoder) createEventResponse(b []byte, m *pb.CreateEventResponse) []byte {
	if !plans.create.accepts(m.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, '{')
	if m.Event != nil {
		b = append(b, `"event":`...)
		b = e.event(b, m.Event)
	}
	if m.Receipt != nil {
		if m.Event != nil {
			b = append(b, ',')
		}
		b = append(b, `"receipt":`...)
		b = e.logProofs(b, m.Receipt)
	}
	return append(b, '}')
}

func (e *encoder) batchCreateEventsResponse(b []byte, m *pb.BatchCreateEventsResponse) []byte {
	if !plans.batch.accepts(m.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"events":`...)
	b = e.events(b, m.Events)
	b = append(b, `,"failedRequests":{`...)
	var buf [16]int32
	keys := buf[:0]
	for k := range m.FailedRequests {
		keys = append(keys, k)
	}
	slices.Sort(keys) // protojson orders map entries by key
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `":`...)
		b = e.rpcStatus(b, m.FailedRequests[k])
	}
	b = append(b, '}')
	if m.Receipts != nil {
		b = append(b, `,"receipts":`...)
		b = e.logProofs(b, m.Receipts)
	}
	return append(b, '}')
}

func (e *encoder) getLogEntriesResponse(b []byte, m *pb.GetLogEntriesResponse) []byte {
	if !plans.entries.accepts(m.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"start":"`...)
	b = strconv.AppendUint(b, m.Start, 10)
	b = append(b, `","events":`...)
	b = e.events(b, m.Events)
	b = append(b, `,"committedSize":"`...)
	b = strconv.AppendUint(b, m.CommittedSize, 10)
	b = append(b, '"')
	if m.Proofs != nil {
		b = append(b, `,"proofs":`...)
		b = e.logProofs(b, m.Proofs)
	}
	b = append(b, `,"deletedLeafHashes":`...)
	b = appendBytesList(b, m.DeletedLeafHashes)
	return append(b, '}')
}

// appendBytesList appends a repeated bytes field's JSON: padded standard
// base64 strings, as protojson writes them.
func appendBytesList(b []byte, list [][]byte) []byte {
	b = append(b, '[')
	for i, h := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '"')
	}
	return append(b, ']')
}

// AppendEvent appends the JSON of one event, as protojson with
// EmitDefaultValues writes it, and reports ok == true; or returns b
// unchanged and ok == false when the event holds anything the encoder
// leaves to protojson (the caller must then use protojson). For writers of
// events one by one, such as the log mirror's JSON lines.
func AppendEvent(b []byte, ev *pb.Event) (_ []byte, ok bool) {
	if plans.event.err != nil {
		return b, false
	}
	var e encoder
	n := len(b)
	b = e.event(b, ev)
	if e.bad {
		return b[:n], false
	}
	return b, true
}

// logProofs writes the verifiable log's proofs of a response: uint64 as a
// quoted decimal and bytes as padded standard base64, as protojson does.
func (e *encoder) logProofs(b []byte, p *pb.LogProofs) []byte {
	if !plans.proofs.accepts(p.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"checkpoint":`...)
	b = e.string(b, p.Checkpoint)
	b = append(b, `,"treeSize":"`...)
	b = strconv.AppendUint(b, p.TreeSize, 10)
	b = append(b, `","inclusions":[`...)
	for i, in := range p.Inclusions {
		if i > 0 {
			b = append(b, ',')
		}
		if in == nil || !plans.inclusion.accepts(in.ProtoReflect()) {
			e.bad = true
			return b
		}
		b = append(b, `{"name":`...)
		b = e.string(b, in.Name)
		b = append(b, `,"leafIndex":"`...)
		b = strconv.AppendUint(b, in.LeafIndex, 10)
		if in.Pending {
			b = append(b, `","pending":true}`...)
		} else {
			b = append(b, `","pending":false}`...)
		}
	}
	b = append(b, `],"hashes":`...)
	b = appendBytesList(b, p.Hashes)
	return append(b, '}')
}

// proofsSize is about the length of p's JSON.
func proofsSize(p *pb.LogProofs) int {
	if p == nil {
		return 0
	}
	n := 64 + len(p.Checkpoint) + 48*len(p.Hashes)
	for _, in := range p.Inclusions {
		n += 64 + len(in.GetName())
	}
	return n
}

func (e *encoder) events(b []byte, events []*pb.Event) []byte {
	b = append(b, '[')
	for i, ev := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.event(b, ev)
	}
	return append(b, ']')
}

// event writes every field of an Event in declaration order: strings, bool,
// maps and the enum even when empty (EmitDefaultValues), message fields
// and the optional workspace_override only when set.
func (e *encoder) event(b []byte, ev *pb.Event) []byte {
	// A nil element would be written by protojson as an empty event; the
	// server never sends one.
	if ev == nil || !plans.event.accepts(ev.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"name":`...)
	b = e.string(b, ev.Name)
	if ev.EventTime != nil {
		b = append(b, `,"eventTime":`...)
		b = e.timestamp(b, ev.EventTime)
	}
	if ev.ReceiveTime != nil {
		b = append(b, `,"receiveTime":`...)
		b = e.timestamp(b, ev.ReceiveTime)
	}
	b = append(b, `,"eventSource":`...)
	b = e.string(b, ev.EventSource)
	b = append(b, `,"action":`...)
	b = e.string(b, ev.Action)
	if ev.ReadOnly {
		b = append(b, `,"readOnly":true`...)
	} else {
		b = append(b, `,"readOnly":false`...)
	}
	if ev.Status != nil {
		b = append(b, `,"status":`...)
		b = e.status(b, ev.Status)
	}
	b = append(b, `,"principal":`...)
	b = e.string(b, ev.Principal)
	b = append(b, `,"loginPrincipal":`...)
	b = e.string(b, ev.LoginPrincipal)
	b = append(b, `,"sourceIpAddress":`...)
	b = e.string(b, ev.SourceIpAddress)
	b = append(b, `,"userAgent":`...)
	b = e.string(b, ev.UserAgent)
	b = append(b, `,"resource":`...)
	b = e.string(b, ev.Resource)
	b = append(b, `,"workspace":`...)
	b = e.string(b, ev.Workspace)
	b = append(b, `,"requestParameters":`...)
	b = e.stringMap(b, ev.RequestParameters)
	b = append(b, `,"metadata":`...)
	b = e.stringMap(b, ev.Metadata)
	b = append(b, `,"type":`...)
	b = e.eventType(b, ev.Type)
	if ev.WorkspaceOverride != nil {
		b = append(b, `,"workspaceOverride":`...)
		b = e.string(b, *ev.WorkspaceOverride)
	}
	return append(b, '}')
}

func (e *encoder) status(b []byte, s *pb.Status) []byte {
	if !plans.status.accepts(s.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(s.Code), 10)
	b = append(b, `,"message":`...)
	b = e.string(b, s.Message)
	return append(b, '}')
}

// rpcStatus writes a google.rpc.Status without details; details are Any
// values, which only protojson (with the type registry) writes.
func (e *encoder) rpcStatus(b []byte, s *statuspb.Status) []byte {
	if s == nil || len(s.Details) != 0 || !plans.rpcStatus.accepts(s.ProtoReflect()) {
		e.bad = true
		return b
	}
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(s.Code), 10)
	b = append(b, `,"message":`...)
	b = e.string(b, s.Message)
	return append(b, `,"details":[]}`...)
}

func (e *encoder) eventType(b []byte, t pb.EventType) []byte {
	if t >= 0 && int(t) < len(eventTypeNames) && eventTypeNames[t] != "" {
		return append(b, eventTypeNames[t]...)
	}
	if v := t.Descriptor().Values().ByNumber(protoreflect.EnumNumber(t)); v != nil {
		return e.string(b, string(v.Name()))
	}
	return strconv.AppendInt(b, int64(t), 10)
}

type entry struct{ k, v string }

// stringMap writes a map<string, string> with its keys in protojson's
// order, bytewise ascending. An empty or nil map is {}.
func (e *encoder) stringMap(b []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	var buf [16]entry // no allocation for the usual few entries
	entries := buf[:0]
	for k, v := range m {
		entries = append(entries, entry{k, v})
	}
	if len(entries) <= len(buf) {
		// Insertion sort: fastest for a few entries, no calls.
		for i := 1; i < len(entries); i++ {
			for j := i; j > 0 && entries[j].k < entries[j-1].k; j-- {
				entries[j], entries[j-1] = entries[j-1], entries[j]
			}
		}
	} else {
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	}
	b = append(b, '{')
	for i, en := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.string(b, en.k)
		b = append(b, ':')
		b = e.string(b, en.v)
	}
	return append(b, '}')
}

// Range of google.protobuf.Timestamp that protojson writes (0001-01-01 to
// 9999-12-31, as RFC 3339 requires); it fails outside it.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// timestamp writes an RFC 3339 time in UTC with 0, 3, 6 or 9 fractional
// digits, the fewest that hold the nanoseconds, as protojson does.
func (e *encoder) timestamp(b []byte, ts *timestamppb.Timestamp) []byte {
	secs, nanos := ts.GetSeconds(), ts.GetNanos()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999_999_999 ||
		len(ts.ProtoReflect().GetUnknown()) != 0 {
		e.bad = true
		return b
	}
	t := time.Unix(secs, 0).UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	switch n := int(nanos); {
	case n == 0:
	case n%1_000_000 == 0:
		b = append(b, '.')
		b = appendDigits(b, n/1_000_000, 3)
	case n%1_000 == 0:
		b = append(b, '.')
		b = appendDigits(b, n/1_000, 6)
	default:
		b = append(b, '.')
		b = appendDigits(b, n, 9)
	}
	return append(b, 'Z', '"')
}

// appendDigits appends the non-negative v in exactly width decimal digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

const (
	hexDigits   = "0123456789abcdef"
	ones, highs = 0x0101010101010101, 0x8080808080808080
)

// plain marks the ASCII bytes written unescaped.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string writes s quoted and escaped as protojson escapes it (see the
// package documentation). Invalid UTF-8, on which protojson fails, sets bad.
func (e *encoder) string(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip plain ASCII 8 bytes at a time (SWAR): within each byte of
		// x, a borrow into the high bit of x-0x20 marks a control
		// character, of (x^'"')-1 a quote, of (x^'\\')-1 a backslash, and
		// x's own high bit a non-ASCII byte. A false alarm (a borrow
		// carried from a marked byte) is harmless: the bytes are then
		// looked at one by one below.
		for ; i+8 <= len(s); i += 8 {
			w := s[i : i+8]
			x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
				uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
			q, bs := x^(ones*'"'), x^(ones*'\\')
			if (x|(x-ones*0x20)|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
				break
			}
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			e.bad = true
			return b
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// eventSize is about the length of an event's JSON when nothing in it needs
// escaping: its strings plus the keys and punctuation (about 370 bytes). A
// little more than needed costs nothing; less makes append copy the output
// once more.
func eventSize(ev *pb.Event) int {
	if ev == nil {
		return 0
	}
	n := 370 + len(ev.Name) + len(ev.EventSource) + len(ev.Action) + len(ev.Principal) + len(ev.LoginPrincipal) +
		len(ev.SourceIpAddress) + len(ev.UserAgent) + len(ev.Resource) + len(ev.Workspace)
	if ev.Status != nil {
		n += len(ev.Status.Message)
	}
	if ev.WorkspaceOverride != nil {
		n += 24 + len(*ev.WorkspaceOverride)
	}
	// Entries are a few short strings; a guess saves iterating the maps.
	return n + 32*(len(ev.RequestParameters)+len(ev.Metadata))
}

func eventsSize(events []*pb.Event) int {
	n := 0
	for _, ev := range events {
		n += eventSize(ev)
	}
	return n
}
