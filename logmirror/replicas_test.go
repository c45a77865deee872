package logmirror_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/logmirror"
)

// roundRobin is a load balancer in front of replicas: each call goes to
// the next one.
type roundRobin struct {
	replicas []*client.Client
	n        atomic.Uint64
}

func (r *roundRobin) next() *client.Client {
	return r.replicas[r.n.Add(1)%uint64(len(r.replicas))]
}

func (r *roundRobin) Checkpoint(ctx context.Context) ([]byte, error) { return r.next().Checkpoint(ctx) }

func (r *roundRobin) LogPage(ctx context.Context, start uint64, n int) (*audittrail.LogEntries, error) {
	return r.next().LogPage(ctx, start, n)
}

// TestMirrorBehindLoadBalancer mirrors two PostgreSQL replicas of one log
// through a round-robin balancer while events arrive, every update right
// after the signer's new checkpoint. The replica that does not sign serves
// the checkpoints the other stored a moment later; a mirror that meets a
// smaller checkpoint than its own waits for it (UpdateOptions.BehindWait)
// rather than report a rolled-back log. In the runs so far the replica
// caught up before the mirror saw it behind; the wait itself is tested with
// a replica made to lag (TestMirrorRefusesLies).
func TestMirrorBehindLoadBalancer(t *testing.T) {
	url := pgtest.Start(t)
	f := start(t, "--store", url)
	b := testserver.Start(t, "--store", url)
	lb := &roundRobin{replicas: []*client.Client{f.auditor, dial(t, b.PublicAddr, b.ReaderToken)}}
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	total := uint64(0)
	for round := range 12 {
		f.produce(t, 40)
		total += 40
		// The signer's new checkpoint, then two updates at once: the one
		// through the other replica often meets the checkpoint before.
		f.checkpoint(t, total)
		for i := range 2 {
			if _, err := m.Update(t.Context(), lb, logmirror.UpdateOptions{PageSize: 50}); err != nil {
				t.Fatalf("round %d, update %d: %v", round, i, err)
			}
		}
	}
	if m.Size() < total {
		t.Errorf("the mirror holds %d entries after %d events were signed", m.Size(), total)
	}
	checkEntries(t, dir, f.verifier, m.Size(), nil)
}
