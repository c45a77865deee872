package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/merkle"
)

// oneEventLog is a log whose latest checkpoint covers 3 leaves and that
// holds one event, of leaf seq; it records the inclusion proof asked for.
type oneEventLog struct {
	VerifiableLog // nil: the methods the test does not reach
	seq           uint64
	asked         [2]uint64
}

func (l *oneEventLog) Checkpoint() ([]byte, *merkle.Checkpoint) {
	return []byte("note"), &merkle.Checkpoint{Size: 3}
}

func (l *oneEventLog) EventByID(context.Context, string) (*audittrail.Event, error) {
	return &audittrail.Event{ID: "x", Seq: l.seq}, nil
}

func (l *oneEventLog) InclusionProof(seq, treeSize uint64) (*merkle.Inclusion, error) {
	l.asked = [2]uint64{seq, treeSize}
	return &merkle.Inclusion{LeafIndex: seq - 1, TreeSize: treeSize}, nil
}

// TestInclusionProofSizes: an event the latest checkpoint does not cover
// yet is UNAVAILABLE (try again), a tree size below the event's leaf is the
// caller's error, and without a size the proof is for the latest
// checkpoint's. The messages name the event's seq and its leaf index (seq
// - 1, as the proof's leaf_index and "audittrail verify answer" give it).
func TestInclusionProofSizes(t *testing.T) {
	ctx := audittrail.NewContextWithPrincipal(context.Background(), &audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAuditor}})
	for _, c := range []struct {
		seq, size uint64
		code      codes.Code
		msg       string
		asked     [2]uint64
	}{
		{seq: 5, size: 0, code: codes.Unavailable, msg: "events/x is seq 5 (leaf index 4) of the log, and the latest signed checkpoint covers 3: it is not provable yet"},
		{seq: 5, size: 4, code: codes.InvalidArgument, msg: "events/x is seq 5 (leaf index 4) of the log, not in a tree of 4: give a tree_size of 5 or more"},
		{seq: 2, size: 0, code: codes.OK, asked: [2]uint64{2, 3}},
		{seq: 2, size: 7, code: codes.OK, asked: [2]uint64{2, 7}}, // another replica's checkpoint: the log decides
	} {
		l := &oneEventLog{seq: c.seq}
		svc := &logService{log: l}
		_, err := svc.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Name: "events/x", TreeSize: c.size})
		st := status.Convert(err)
		if st.Code() != c.code || !strings.Contains(st.Message(), c.msg) || l.asked != c.asked {
			t.Errorf("leaf %d, tree_size %d: %v %q, asked %v; want %v %q, asked %v", c.seq, c.size, st.Code(), st.Message(), l.asked, c.code, c.msg, c.asked)
		}
	}
}
