package logmirror

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// FuzzParseLine feeds arbitrary lines to the parser of entries.jsonl: it
// must not panic, and a line it accepts must mean one leaf, whatever its
// spelling: written out again and parsed, it hashes the same.
func FuzzParseLine(f *testing.F) {
	e := &audittrail.Event{
		ID: "6de6a319-2470-47f4-b9b3-a12280e6eeec", EventTime: time.Unix(1764300000, 123456000).UTC(),
		ReceiveTime: time.Unix(1764300001, 987654321).UTC(), EventSource: "h2oai-gateway-server",
		Action: "actions/gateway/documents/GET", ReadOnly: true, Status: &audittrail.Status{Code: 5, Message: "not found"},
		Principal: "users/jane", SourceIP: "private", UserAgent: "curl/8", Resource: "//gateway/documents/1",
		Workspace: "workspaces/w", RequestParameters: map[string]string{"a": "b"}, Metadata: map[string]string{"k": "v"},
		Type: audittrail.TypeAPI, Seq: 7,
	}
	line, err := appendLine(nil, e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(line)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"name":"events/x","eventTime":"2026-01-01T00:00:00Z","receiveTime":"1970-01-01T00:00:00.000000001Z"}`))
	f.Add([]byte(`{"requestParameters":{"a":"1","a":"2"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseLine(line, 7)
		if err != nil {
			return
		}
		again, err := appendLine(nil, e)
		if err != nil {
			return // e.g. a time protojson reads but cannot write
		}
		e2, err := parseLine(again, 7)
		if err != nil {
			t.Fatalf("a line written from a parsed line does not parse: %v\n%s", err, again)
		}
		if merkle.LeafHash(e) != merkle.LeafHash(e2) {
			t.Fatalf("one event, two leaves:\n%s\n%s", line, again)
		}
	})
}

// FuzzParseDeletedLine feeds arbitrary lines to the parser of a deleted
// leaf's line: it must not panic, a line it takes for a deleted leaf's must
// start with its prefix, and one it accepts must be exactly the line
// written for its hash (one spelling per leaf, so a copy cannot differ
// unnoticed).
func FuzzParseDeletedLine(f *testing.F) {
	var h tlog.Hash
	for i := range h {
		h[i] = byte(i * 7)
	}
	line := appendDeletedLine(nil, h)
	f.Add(line[:len(line)-1])
	f.Add([]byte(`{"deletedLeafHash":"AAAA"}`))
	f.Add([]byte(`{"deletedLeafHash":""}`))
	f.Add([]byte(`{"deletedLeafHash":"` + strings.Repeat("A", 43) + `="} `))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, isDeleted, err := parseDeletedLine(line)
		if isDeleted != bytes.HasPrefix(line, []byte(deletedPrefix)) {
			t.Fatalf("%q taken for a deleted leaf's line: %v", line, isDeleted)
		}
		if !isDeleted || err != nil {
			return
		}
		if again := appendDeletedLine(nil, got); !bytes.Equal(again[:len(again)-1], line) {
			t.Fatalf("%q accepted for hash %x, whose line is %q", line, got, again)
		}
	})
}
