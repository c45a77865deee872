package server

import (
	"testing"

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
