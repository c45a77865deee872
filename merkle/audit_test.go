package merkle

import (
	"maps"
	"slices"
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

func TestLeafHasher(t *testing.T) {
	var h LeafHasher
	events := sampleEvents(60)
	wide := cloneEvent(events[3])
	wide.ReceiveTime = time.Date(3000, 1, 1, 0, 0, 0, 7, time.UTC)
	empty := cloneEvent(events[4])
	empty.Metadata, empty.RequestParameters = map[string]string{}, map[string]string{"": ""}
	events = append(events, wide, empty, &audittrail.Event{})
	for range 2 { // the second round reuses the buffers
		for _, e := range events {
			if got, want := h.Hash(e), LeafHash(e); got != want {
				t.Fatalf("LeafHasher.Hash(seq %d) = %x, want %x", e.Seq, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { h.Hash(events[1]) }); n != 0 {
		t.Errorf("LeafHasher.Hash allocates %v times", n)
	}
}

// TestLeafTableAudit fills a LeafTable in reverse order (in its own memory
// or in the room of the Auditor's FlatStore) and checks that AddTo audits
// like Add in order, a tampered leaf included.
func TestLeafTableAudit(t *testing.T) {
	for _, n := range []int{1, 50, 70000} { // 70000: mapped memory
		events, _, cps := auditFixture(t, n, uint64(n/3), uint64(n))
		events[n/2] = cloneEvent(events[n/2])
		events[n/2].Principal = "users/mallory"
		events[n-1] = cloneEvent(events[n-1])
		events[n-1].ReceiveTime = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) // out of Unix ns: kept aside
		want, err := Audit(events, cps, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, inTree := range []bool{false, true} {
			tree := NewFlatStore(uint64(n))
			a, err := NewAuditor(cps, tree)
			if err != nil {
				t.Fatal(err)
			}
			var lt *LeafTable
			if inTree {
				lt = NewLeafTable(uint64(n), tree)
			} else {
				lt = NewLeafTable(uint64(n), nil)
			}
			if lt.inTree != inTree {
				t.Fatalf("n %d: table in the tree's room: %v", n, lt.inTree)
			}
			for i := n - 1; i >= 0; i-- {
				lt.Set(uint64(i), LeafHash(events[i]), events[i].ReceiveTime)
			}
			if lt.FirstUnset() != uint64(n) || !lt.IsSet(uint64(n-1)) || lt.IsSet(uint64(n)) {
				t.Fatalf("n %d: FirstUnset %d", n, lt.FirstUnset())
			}
			if err := lt.AddTo(a, uint64(n)); err != nil {
				t.Fatal(err)
			}
			got, err := a.Finish(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Root != want.Root || got.Leaves != want.Leaves || got.Disagreeing != want.Disagreeing ||
				got.HorizonCount != want.HorizonCount || got.ReceiveOrder != want.ReceiveOrder ||
				(got.Divergence == nil) != (want.Divergence == nil) || got.OK() {
				t.Fatalf("n %d, in tree %v: report %+v, want %+v", n, inTree, got, want)
			}
			lt.Release()
			tree.Release()
		}
	}
}

func TestLeafTableIncomplete(t *testing.T) {
	events, _, cps := auditFixture(t, 10, 10)
	a, err := NewAuditor(cps, nil)
	if err != nil {
		t.Fatal(err)
	}
	lt := NewLeafTable(10, nil)
	defer lt.Release()
	for i := range 9 {
		lt.Set(uint64(i), LeafHash(events[i]), events[i].ReceiveTime)
	}
	if lt.FirstUnset() != 9 {
		t.Fatalf("FirstUnset = %d, want 9", lt.FirstUnset())
	}
	if err := lt.AddTo(a, 10); err == nil {
		t.Fatal("AddTo with leaf 9 unset succeeded")
	}
	if err := lt.AddTo(a, 11); err == nil {
		t.Fatal("AddTo beyond the table succeeded")
	}
}

// BenchmarkLeafHasher compares LeafHash with a reused LeafHasher (the audit's
// hashing of every event).
func BenchmarkLeafHasher(b *testing.B) {
	e := sampleEvent(2) // with metadata, parameters and status
	b.Run("LeafHash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			LeafHash(e)
		}
	})
	b.Run("LeafHasher", func(b *testing.B) {
		b.ReportAllocs()
		var h LeafHasher
		for b.Loop() {
			h.Hash(e)
		}
	})
}

func TestLeafHasherSorted(t *testing.T) {
	var h LeafHasher
	entries := func(m map[string]string) []MapEntry {
		var es []MapEntry
		for _, k := range slices.Sorted(maps.Keys(m)) {
			es = append(es, MapEntry{k, m[k]})
		}
		return es
	}
	for _, e := range sampleEvents(40) {
		bare := cloneEvent(e)
		bare.Metadata, bare.RequestParameters = map[string]string{"ignored": "x"}, nil
		if got, want := h.HashSorted(bare, entries(e.RequestParameters), entries(e.Metadata)), LeafHash(e); got != want {
			t.Fatalf("HashSorted(seq %d) = %x, want %x", e.Seq, got, want)
		}
	}
}
