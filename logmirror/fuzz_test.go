package logmirror

import (
	"testing"
	"time"

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
