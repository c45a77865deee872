package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestStableJSON: what the REST marshaler writes with protojson (an error's
// google.rpc.Status, the log's answers) has no space outside strings,
// whatever protojson drew for this build (see stableJSON); strings keep
// theirs.
func TestStableJSON(t *testing.T) {
	m := NewJSONMarshaler()
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"status", status.New(codes.InvalidArgument, `filter.include_types[0]: "TYPE_BOGUS", : { }`).Proto(),
			`{"code":3,"message":"filter.include_types[0]: \"TYPE_BOGUS\", : { }","details":[]}`},
		{"checkpoint", &pb.GetCheckpointResponse{Checkpoint: "a: b, c\n"},
			`{"checkpoint":"a: b, c\n","treeSize":"0"}`},
	} {
		b, err := m.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %#q (%v), want %#q", c.name, b, err, c.want)
		}
	}
	// protojson's spaces, as a build that draws them writes them.
	b, err := stableJSON([]byte(`{"code": 3, "message":"a: b, c", "details":[ ]}`))
	if want := `{"code":3,"message":"a: b, c","details":[]}`; err != nil || string(b) != want {
		t.Errorf("stableJSON: %#q (%v), want %#q", b, err, want)
	}
}

// TestJSONTimestampOffsets documents what the REST API does with the UTC
// offsets +24:00 and +23:60, which RFC 3339 does not allow (hours 00–23,
// minutes 00–59): protojson, which reads the timestamps of JSON bodies,
// takes them as Go's time.Parse does, as 24 hours, so that
// 2026-01-02T00:00:00+24:00 is 2026-01-01T00:00:00Z (docs/limits.md).
// We do not patch protojson; should it start refusing them, this test
// fails and the documentation must change.
func TestJSONTimestampOffsets(t *testing.T) {
	m := NewJSONMarshaler()
	for _, offset := range []string{"+24:00", "+23:60"} {
		var req pb.SearchEventsRequest
		err := m.Unmarshal([]byte(`{"filter": {"startEventTime": "2026-01-02T00:00:00`+offset+`"}}`), &req)
		want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if err != nil || !req.GetFilter().GetStartEventTime().AsTime().Equal(want) {
			t.Errorf("%s: %v (%v), want %v as documented", offset, req.GetFilter().GetStartEventTime().AsTime(), err, want)
		}
	}
}
