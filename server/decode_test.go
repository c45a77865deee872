package server_test

import (
	"strings"
	"testing"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/server"
)

// TestDecodeErrorNamesField: a body protojson refuses for a value gets the
// path of that value's field, in the API's field names, in front of
// protojson's message (which only gives a line and column); a body it cannot
// place keeps protojson's message.
func TestDecodeErrorNamesField(t *testing.T) {
	m := server.NewJSONMarshaler()
	for _, tc := range []struct {
		body string
		msg  func() any
		want string
	}{
		{`{"filter": {"startEventTime": "2026-13-01T00:00:00Z"}}`, search, `filter.start_event_time (line 1:31): invalid google.protobuf.Timestamp value`},
		{`{"filter": {"start_event_time": 5}}`, search, `filter.start_event_time (line 1:33): unexpected token 5`},
		{`{"pageSize": "x"}`, search, `page_size (line 1:14):`},
		{`{"filter": {"includeTypes": ["TYPE_API", 5.5]}}`, search, `filter.include_types[1] (line 1:42):`},
		{`{"filter": {"metadataExact": {"k": 7}}}`, search, `filter.metadata_exact["k"] (line 1:36): invalid value for string field value: 7`},
		{"{\n  \"filter\": {\n    \"principalExact\": \"é\",\n    \"endEventTime\": \"nope\"\n  }\n}", search, `filter.end_event_time (line 4:21):`},
		{`{"filter": {"principalExact": "éé", "endEventTime": true}}`, search, `filter.end_event_time (line 1:53): unexpected token true`},
		{`{"requests": [{"eventId": "x"}, {"event": {"status": {"code": "bad"}}}]}`, batch, `requests[1].event.status.code (line 1:`},
		{`{"filter": 3}`, search, `filter (line 1:12): unexpected token 3`},
		{`{"filter": {}, "filter": {}}`, search, `filter (line 1:16): duplicate field`},
		// Half a UTF-16 surrogate pair in the body's last string: protojson
		// says only "unexpected EOF".
		{`{"filter": {"principalExact": "\uD800"}}`, search, `filter.principal_exact (line 1:31): a \u escape of half a UTF-16 surrogate pair (\uD800 to \uDFFF) without its other half is not a character`},
		{`{"filter": {"metadataExact": {"k": "x\udc00"}}}`, search, `filter.metadata_exact["k"] (line 1:36): a \u escape of half a UTF-16 surrogate pair`},
		{`{"requests": [{"event": {"metadata": {"k": "\uDBFF"}}}]}`, batch, `requests[0].event.metadata["k"] (line 1:44): a \u escape of half a UTF-16 surrogate pair`},
		// Elsewhere protojson names the six bytes after it as an escape.
		{`{"filter": {"principalExact": "\uDC00\uD800", "actionExact": "abc"}}`, search, `filter.principal_exact (line 1:31): a \u escape of half`},
		{`{"filter": {"principalExact": "\\\uD800", "actionExact": "abc"}}`, search, `filter.principal_exact (line 1:31): a \u escape of half a UTF-16 surrogate pair`},
		// A pair, and an escaped backslash before "uD800", are characters.
		{`{"filter": {"principalExact": "\uD800\uDC00"}, "pageSize": "x"}`, search, `page_size (line 1:`},
		{`{"filter": {"principalExact": "\\uD800"}, "pageSize": "x"}`, search, `page_size (line 1:`},
		// Not placed: protojson's own message.
		{`{"filter": }`, search, `proto: syntax error (line 1:12): unexpected token }`},
		{`[1]`, search, `proto: syntax error (line 1:1): unexpected token [`},
	} {
		err := m.Unmarshal([]byte(tc.body), tc.msg())
		// protobuf-go writes a space or a no-break space at random.
		if err == nil || !strings.HasPrefix(strings.ReplaceAll(err.Error(), "\u00a0", " "), tc.want) {
			t.Errorf("%s: %v, want a message starting %q", tc.body, err, tc.want)
		}
	}
}

func search() any { return &pb.SearchEventsRequest{} }
func batch() any  { return &pb.BatchCreateEventsRequest{} }
