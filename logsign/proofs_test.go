package logsign_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInclusionProofs: proving a set of seqs at once gives exactly the
// proofs of one call per seq, in every tree size, for neighbouring and
// scattered sets; a seq outside the tree is an error.
func TestInclusionProofs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	l := newLog(t, st, dir)
	appendEvents(t, st, 700, 0)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range []uint64{1, 2, 3, 64, 65, 699, 700} {
		for round := range 5 {
			var seqs []uint64
			if round%2 == 0 { // a page of neighbours, newest first
				top := 1 + r.Uint64N(size)
				for s := top; s >= 1 && len(seqs) < 50; s-- {
					seqs = append(seqs, s)
				}
			} else {
				for range 1 + r.IntN(20) {
					seqs = append(seqs, 1+r.Uint64N(size))
				}
			}
			got, err := l.InclusionProofs(seqs, size)
			if err != nil {
				t.Fatalf("size %d, seqs %v: %v", size, seqs, err)
			}
			for k, seq := range seqs {
				want, err := l.InclusionProof(seq, size)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want, got[k]); d != "" {
					t.Fatalf("size %d, seq %d: (-one by one +together)\n%s", size, seq, d)
				}
			}
		}
	}
	if _, err := l.InclusionProofs([]uint64{3, 701}, 700); err == nil {
		t.Error("a seq past the tree was proven")
	}
	if _, err := l.InclusionProofs([]uint64{0}, 700); err == nil {
		t.Error("seq 0 was proven")
	}
}
