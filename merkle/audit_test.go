package merkle

import (
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/tlog"
)

// auditFixture is a log of n sample events with signed checkpoints at the
// given sizes.
func auditFixture(t *testing.T, n int, sizes ...uint64) ([]*audittrail.Event, *MemStore, []*Checkpoint) {
	t.Helper()
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	events := sampleEvents(n)
	tree := buildTree(t, leafHashes(events))
	var cps []*Checkpoint
	for _, s := range sizes {
		var cp *Checkpoint
		if s <= uint64(n) {
			cp, _ = signedCheckpoint(t, signer, verifier, tree, s, horizonFor(s))
		} else { // beyond the audited events
			cp, _ = signRoot(t, signer, verifier, s, tlog.Hash{1}, horizonFor(s))
		}
		cps = append(cps, cp)
	}
	return events, tree, cps
}

func TestAuditClean(t *testing.T) {
	events, tree, cps := auditFixture(t, 50, 50, 0, 1, 10, 17, 32, 60)
	r, err := Audit(events, cps, tree)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := TreeRoot(tree, 50)
	if !r.OK() || r.Leaves != 50 || r.Root != root || r.Checked != 6 || r.Unchecked != 1 || r.Disagreeing != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestAuditFindsTamperedLeaf(t *testing.T) {
	for _, k := range []int{0, 1, 9, 10, 16, 31, 40, 49} {
		events, tree, cps := auditFixture(t, 50, 10, 17, 32, 50)
		// The events as exported later: one was altered after being logged.
		events[k] = cloneEvent(events[k])
		events[k].Principal = "users/mallory"
		var wantCP, wantFrom uint64
		for _, c := range cps {
			if c.Size > uint64(k) {
				wantCP = c.Size
				break
			}
			wantFrom = c.Size
		}
		r, err := Audit(events, cps, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := r.Divergence
		if r.OK() || d == nil || d.Checkpoint.Size != wantCP || d.FirstLeaf != wantFrom || d.Exact {
			t.Fatalf("leaf %d: report %+v, divergence %+v", k, r, d)
		}
		// With the log's hashes, the audit proves the exact leaf.
		r, err = Audit(events, cps, tree)
		if err != nil {
			t.Fatal(err)
		}
		d = r.Divergence
		if d == nil || !d.Exact || d.FirstLeaf != uint64(k) || d.LogLeaf != LeafHash(sampleEvent(uint64(k+1))) || d.Leaf != LeafHash(events[k]) {
			t.Fatalf("leaf %d: divergence %+v", k, d)
		}
	}
}

func TestAuditSwappedContent(t *testing.T) {
	events, tree, cps := auditFixture(t, 30, 30)
	// Two events swap places (each keeping the other's content but its own
	// position): the first of them is the first divergent leaf.
	a, b := cloneEvent(events[7]), cloneEvent(events[21])
	a.Seq, b.Seq = 22, 8
	events[7], events[21] = b, a
	r, err := Audit(events, cps, tree)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Divergence; d == nil || !d.Exact || d.FirstLeaf != 7 {
		t.Fatalf("divergence %+v", r.Divergence)
	}
}

func TestAuditUntrustedLogHashes(t *testing.T) {
	events, tree, cps := auditFixture(t, 30, 12, 30)
	events[20] = cloneEvent(events[20])
	events[20].Action = "Tampered"
	// The log serves hashes that do not match its checkpoint: no exact
	// position is claimed.
	bogus := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		hs, err := tree.ReadHashes(ix)
		for i := range hs {
			hs[i][0] ^= 1
		}
		return hs, err
	})
	r, err := Audit(events, cps, bogus)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Divergence; d == nil || d.Exact || d.FirstLeaf != 12 || d.Note == "" {
		t.Fatalf("divergence %+v", r.Divergence)
	}
}

func TestAuditSequence(t *testing.T) {
	events, _, cps := auditFixture(t, 10, 10)
	a, err := NewAuditor(cps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(events[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(events[2]); err == nil {
		t.Fatal("gap in seq accepted")
	}
	if err := a.Add(nil); err == nil {
		t.Fatal("nil event accepted")
	}
	if _, err := NewAuditor([]*Checkpoint{{Origin: testOrigin, Root: EmptyRoot, ReceivedBefore: baseTime}}, nil); err == nil {
		t.Fatal("unverified checkpoint accepted")
	}
	_, _, other := func() ([]*audittrail.Event, *MemStore, []*Checkpoint) {
		s, v, _, _ := testKeyPair(t, "other.example.com", "o")
		cp, _ := signRoot(t, s, v, 0, EmptyRoot, baseTime)
		return nil, nil, []*Checkpoint{cp}
	}()
	if _, err := NewAuditor(append(cps, other...), nil); err == nil {
		t.Fatal("checkpoints of two logs accepted")
	}
}

func TestAuditHorizons(t *testing.T) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	events := sampleEvents(20)
	tree := buildTree(t, leafHashes(events))
	// A checkpoint claiming leaf 9 (seq 10) was received after its horizon,
	// and one claiming no later event was received before it.
	early, _ := signedCheckpoint(t, signer, verifier, tree, 10, horizonFor(9))
	late, _ := signedCheckpoint(t, signer, verifier, tree, 5, horizonFor(7))
	good, _ := signedCheckpoint(t, signer, verifier, tree, 15, horizonFor(15))
	r, err := Audit(events, []*Checkpoint{good, early, late}, tree)
	if err != nil {
		t.Fatal(err)
	}
	if r.Divergence != nil || r.OK() {
		t.Fatalf("report %+v", r)
	}
	got := map[[2]uint64]bool{}
	for _, v := range r.Horizon {
		got[[2]uint64{v.Checkpoint.Size, v.LeafIndex}] = true
	}
	// early: leaf 9 inside but not before; late: leaves 5, 6 outside but
	// before its horizon.
	for _, want := range [][2]uint64{{10, 9}, {5, 5}, {5, 6}} {
		if !got[want] {
			t.Errorf("violation %v not reported: %+v", want, r.Horizon)
		}
	}
	if r.HorizonCount != 3 {
		t.Errorf("%d violations, want 3: %+v", r.HorizonCount, r.Horizon)
	}
	// Receive order.
	events[12] = cloneEvent(events[12])
	events[12].ReceiveTime = events[11].ReceiveTime.Add(-time.Nanosecond)
	r, err = Audit(events, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReceiveOrder != 12 || r.OK() {
		t.Fatalf("receive order %d", r.ReceiveOrder)
	}
}
