package fastjson_test

import (
	"encoding/binary"
	"strings"
	"testing"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// FuzzFastJSON builds the three response types from the fuzz input (strings
// of any bytes, valid UTF-8 or not, any times, any enum numbers, maps) and
// checks that fastjson writes them exactly when protojson can, with the
// same JSON.
//
//	go test ./internal/fastjson -run '^$' -fuzz FuzzFastJSON -fuzztime 1m
func FuzzFastJSON(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x02\x05hello\x81\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"))
	f.Add([]byte("\x03\x86\"\\\x00\x1f\x7f\x0c\x00\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04\x85\u2028x"))
	f.Add([]byte("\x01\x83\xff\xfe\xfd\x89\xed\xa0\x80\x09\x09\x09\x09\x09\x09\x09\x09\x09"))
	f.Add([]byte("\x04" + strings.Repeat("\x8a😀日本\u2029\t", 8) + "\xff\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Add([]byte("\x07\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range fuzzMessages(data) {
			compare(t, m)
		}
	})
}

// source hands out the fuzz input as values; past its end it gives zeros.
type source struct{ data []byte }

func (s *source) bytes(n int) []byte {
	n = min(n, len(s.data))
	b := s.data[:n]
	s.data = s.data[n:]
	return b
}

func (s *source) byte() byte {
	if b := s.bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (s *source) uint64() uint64 {
	var b [8]byte
	copy(b[:], s.bytes(8))
	return binary.LittleEndian.Uint64(b[:])
}

// string takes up to 63 bytes as they are when the length byte's high bit
// is set, and made valid UTF-8 otherwise, so that both kinds are common.
func (s *source) string() string {
	n := s.byte()
	str := string(s.bytes(int(n & 0x3f)))
	if n&0x80 == 0 {
		str = strings.ToValidUTF8(str, "\ufffd")
	}
	return str
}

func (s *source) stringMap() map[string]string {
	n := s.byte()
	if n == 0 {
		return nil
	}
	m := map[string]string{}
	for range n % 20 {
		m[s.string()] = s.string()
	}
	return m
}

// timestamp is nil, in protojson's range (with 0, 3, 6 or 9 digits), or
// anything.
func (s *source) timestamp() *timestamppb.Timestamp {
	flags := s.byte()
	if flags&1 == 0 {
		return nil
	}
	secs, nanos := int64(s.uint64()), int32(uint32(s.uint64()))
	if flags&2 != 0 {
		secs = minSeconds + int64(uint64(secs)%(maxSeconds-minSeconds+1))
		nanos = int32(uint32(nanos) % 1_000_000_000)
		switch flags >> 2 & 3 {
		case 1:
			nanos -= nanos % 1_000_000
		case 2:
			nanos -= nanos % 1_000
		}
	}
	return &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
}

func (s *source) event() *pb.Event {
	e := &pb.Event{
		Name:              s.string(),
		EventTime:         s.timestamp(),
		ReceiveTime:       s.timestamp(),
		EventSource:       s.string(),
		Action:            s.string(),
		ReadOnly:          s.byte()&1 == 1,
		Principal:         s.string(),
		LoginPrincipal:    s.string(),
		SourceIpAddress:   s.string(),
		UserAgent:         s.string(),
		Resource:          s.string(),
		Workspace:         s.string(),
		RequestParameters: s.stringMap(),
		Metadata:          s.stringMap(),
		Type:              pb.EventType(int8(s.byte())),
	}
	if flags := s.byte(); flags&1 != 0 {
		e.Status = &pb.Status{Code: int32(s.uint64()), Message: s.string()}
	}
	if flags := s.byte(); flags&1 != 0 {
		e.WorkspaceOverride = proto.String(s.string())
	}
	return e
}

func fuzzMessages(data []byte) []proto.Message {
	s := &source{data: data}
	events := make([]*pb.Event, s.byte()%8)
	for i := range events {
		events[i] = s.event()
	}
	search := &pb.SearchEventsResponse{Events: events, NextPageToken: s.string(), SearchedUntilTime: s.timestamp()}
	create := &pb.CreateEventResponse{}
	if len(events) > 0 {
		create.Event = events[0]
	}
	batch := &pb.BatchCreateEventsResponse{Events: events}
	if n := s.byte(); n > 0 {
		batch.FailedRequests = map[int32]*statuspb.Status{}
		for range n % 20 {
			batch.FailedRequests[int32(s.uint64())] = &statuspb.Status{Code: int32(s.byte()), Message: s.string()}
		}
	}
	return []proto.Message{search, create, batch}
}
