package merkle

import (
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/tlog"
)

// LeafVersion is the first byte of every leaf LeafData produces. A change of
// the encoding gets a new version; a verifier refuses versions it does not
// know.
const LeafVersion = 1

// LeafData returns the canonical encoding of e, the data of its leaf. It is
// deterministic (map entries sorted by key bytes), length-prefixed (so no two
// events share an encoding), and covers every field of Event except
// LoginPrincipal, which is not part of the committed record: the service
// resolves it when a search is answered, so it can differ between two reads
// of the same event. Times are encoded as instants at nanosecond precision
// (their location is not encoded). docs/design/merkle.md gives the layout
// byte by byte:
//
//	version     u8 = 1
//	id          str
//	event_time  time
//	receive_time time
//	event_source, action   str, str
//	read_only   u8 (0 or 1)
//	status      u8 presence (0 or 1), then if 1: code i32, message str
//	principal, source_ip, user_agent, resource, workspace   str ×5
//	request_parameters, metadata   map, map
//	type        i32
//	seq         u64
//
// where all integers are big-endian, str is a u32 byte length then the
// bytes, time is Unix seconds i64 then nanoseconds u32 (0..999999999), and
// map is a u32 entry count then, in increasing byte order of the keys, each
// key and value as str. A nil map and an empty map encode alike.
func LeafData(e *audittrail.Event) []byte {
	n := 1 + 4 + len(e.ID) + 12 + 12 + 4 + len(e.EventSource) + 4 + len(e.Action) + 1 + 1 +
		5*4 + len(e.Principal) + len(e.SourceIP) + len(e.UserAgent) + len(e.Resource) + len(e.Workspace) +
		4 + mapSize(e.RequestParameters) + 4 + mapSize(e.Metadata) + 4 + 8
	if e.Status != nil {
		n += 4 + 4 + len(e.Status.Message)
	}
	return appendLeafData(make([]byte, 0, n), e, nil)
}

// appendLeafData appends LeafData(e) to b; keys, when not nil, is scratch
// space for sorting map entries, reused across calls.
func appendLeafData(b []byte, e *audittrail.Event, keys *[]mapEntry) []byte {
	b = appendLeafHead(b, e)
	b = appendMap(b, e.RequestParameters, keys)
	b = appendMap(b, e.Metadata, keys)
	return appendLeafTail(b, e)
}

// appendLeafHead appends the fields of LeafData(e) before its maps.
func appendLeafHead(b []byte, e *audittrail.Event) []byte {
	b = append(b, LeafVersion)
	b = appendString(b, e.ID)
	b = appendTime(b, e.EventTime)
	b = appendTime(b, e.ReceiveTime)
	b = appendString(b, e.EventSource)
	b = appendString(b, e.Action)
	b = appendBool(b, e.ReadOnly)
	if e.Status == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(e.Status.Code))
		b = appendString(b, e.Status.Message)
	}
	b = appendString(b, e.Principal)
	b = appendString(b, e.SourceIP)
	b = appendString(b, e.UserAgent)
	b = appendString(b, e.Resource)
	return appendString(b, e.Workspace)
}

// appendLeafTail appends the fields of LeafData(e) after its maps.
func appendLeafTail(b []byte, e *audittrail.Event) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(e.Type))
	return binary.BigEndian.AppendUint64(b, e.Seq)
}

// LeafHash returns the RFC 6962 leaf hash of e: SHA-256(0x00 || LeafData(e)).
func LeafHash(e *audittrail.Event) tlog.Hash {
	return tlog.RecordHash(LeafData(e))
}

// LeafIndex returns the index of e's leaf, Seq-1, and false when e has no
// sequence number (Seq 0) or one beyond MaxTreeSize.
func LeafIndex(e *audittrail.Event) (uint64, bool) {
	if e.Seq == 0 || e.Seq > MaxTreeSize {
		return 0, false
	}
	return e.Seq - 1, true
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendMap(b []byte, m map[string]string, scratch *[]mapEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
	if len(m) == 0 {
		return b
	}
	var es []mapEntry
	if scratch != nil {
		es = (*scratch)[:0]
	}
	for k, v := range m {
		es = append(es, mapEntry{k, v})
	}
	// Go compares strings byte by byte; keys are distinct.
	slices.SortFunc(es, func(x, y mapEntry) int { return strings.Compare(x.k, y.k) })
	for _, e := range es {
		b = appendString(b, e.k)
		b = appendString(b, e.v)
	}
	if scratch != nil {
		clear(es) // hold no strings of the caller's event
		*scratch = es[:0]
	}
	return b
}

// mapEntry is one entry of a map being encoded.
type mapEntry struct{ k, v string }

func mapSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += 8 + len(k) + len(v)
	}
	return n
}
