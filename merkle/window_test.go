package merkle

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	f := newProofFixture(t, 20)
	events := sampleEvents(20)
	p, _ := ConsistencyProof(f.tree, 5, 12)
	w, err := VerifyWindow(f.cps[5], f.cps[12], p)
	if err != nil {
		t.Fatal(err)
	}
	if w.First != 6 || w.Last != 12 || w.Count() != 7 || w.Size != 12 || !w.Start.Equal(horizonFor(5)) || !w.End.Equal(horizonFor(12)) {
		t.Fatalf("window %+v", w)
	}
	// A drained listing of the window: seqs 6..12, each proven against the
	// end checkpoint and received inside the window.
	var seqs []uint64
	for _, e := range events[5:12] {
		proof, err := InclusionProof(f.tree, e.Seq-1, w.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyEventInclusion(f.cps[12], e, proof); err != nil {
			t.Fatal(err)
		}
		if err := w.CheckEvent(e); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	seqs[0], seqs[6] = seqs[6], seqs[0] // any order
	if err := w.CheckCoverage(seqs); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]uint64{
		"missing one": {6, 7, 8, 9, 10, 11},
		"duplicate":   {6, 7, 8, 9, 10, 11, 11},
		"outside":     {6, 7, 8, 9, 10, 11, 13},
		"before":      {5, 7, 8, 9, 10, 11, 12},
		"extra":       {6, 7, 8, 9, 10, 11, 12, 13},
		"nothing":     nil,
	} {
		if w.CheckCoverage(bad) == nil {
			t.Errorf("coverage %s (%v) accepted", name, bad)
		}
	}
	// Events outside the window are on the right side of its bounds.
	for _, e := range []int{0, 4, 12, 19} {
		if err := w.CheckEvent(events[e]); err != nil {
			t.Errorf("event seq %d: %v", events[e].Seq, err)
		}
	}
	// An event whose receive time contradicts the signed horizons.
	for _, c := range []struct {
		i  int
		rt time.Time
	}{{7, horizonFor(12)}, {7, horizonFor(5).Add(-1)}, {3, horizonFor(5)}, {15, horizonFor(12).Add(-1)}} {
		e := cloneEvent(events[c.i])
		e.ReceiveTime = c.rt
		if w.CheckEvent(e) == nil {
			t.Errorf("seq %d received at %v accepted", e.Seq, c.rt)
		}
	}
	// Empty window between equal sizes.
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	later, _ := signedCheckpoint(t, signer, verifier, f.tree, 12, horizonFor(12).Add(time.Minute))
	w2, err := VerifyWindow(f.cps[12], later, &Consistency{OldSize: 12, NewSize: 12})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Count() != 0 || w2.CheckCoverage(nil) != nil {
		t.Fatalf("empty window %+v", w2)
	}
	if _, err := VerifyWindow(later, f.cps[12], &Consistency{OldSize: 12, NewSize: 12}); err == nil {
		t.Fatal("window ending before it starts accepted")
	}
	// The consistency proof is required.
	if _, err := VerifyWindow(f.cps[5], f.cps[12], &Consistency{OldSize: 5, NewSize: 12}); err == nil {
		t.Fatal("window without a valid consistency proof accepted")
	}
}
