package logsign_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/postgres"
)

// randomSeqs returns a page of neighbours, newest first, or scattered seqs
// of a tree of size leaves.
func randomSeqs(r *rand.Rand, size uint64) []uint64 {
	var seqs []uint64
	if r.IntN(2) == 0 {
		for s := 1 + r.Uint64N(size); s >= 1 && len(seqs) < 50; s-- {
			seqs = append(seqs, s)
		}
		return seqs
	}
	for range 1 + r.IntN(20) {
		seqs = append(seqs, 1+r.Uint64N(size))
	}
	return seqs
}

// checkCached checks that served's CachedInclusionProofs equal ref's
// InclusionProofs (proofs read from storage) for random seqs of the latest
// checkpoint's tree and of older trees, and verify against the checkpoint.
func checkCached(t *testing.T, r *rand.Rand, served, ref *logsign.Log, st audittrail.LogStore) {
	t.Helper()
	_, cp := served.Checkpoint()
	if cp == nil {
		t.Fatal("no checkpoint")
	}
	for round := range 6 {
		size := cp.Size
		if round%3 == 2 {
			size = 1 + r.Uint64N(cp.Size)
		}
		seqs := randomSeqs(r, size)
		arg := size
		if size == cp.Size && round == 0 {
			arg = 0 // the latest checkpoint's size
		}
		got, err := served.CachedInclusionProofs(seqs, arg)
		if err != nil {
			t.Fatalf("size %d, seqs %v: %v", size, seqs, err)
		}
		want, err := ref.InclusionProofs(seqs, size)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("size %d: (-storage +cache)\n%s", size, d)
		}
		hs, err := served.CachedProofHashes(seqs, arg)
		if err != nil {
			t.Fatal(err)
		}
		for k := range want {
			w := [][]byte{}
			for _, h := range want[k].Hashes {
				w = append(w, h[:])
			}
			if d := cmp.Diff(w, hs[k]); d != "" {
				t.Fatalf("size %d, seq %d: hashes (-storage +cache)\n%s", size, seqs[k], d)
			}
		}
		// The multi-inclusion proof of the same seqs, ascending: from the
		// cache's nodes (or its single proofs) as from storage's proofs.
		asc := slices.Clone(seqs)
		slices.Sort(asc)
		asc = slices.Compact(asc)
		multi, err := served.CachedMultiProofHashes(asc, arg)
		if err != nil {
			t.Fatalf("size %d, seqs %v: %v", size, asc, err)
		}
		wantPaths, err := ref.InclusionProofs(asc, size)
		if err != nil {
			t.Fatal(err)
		}
		leaves, paths := make([]uint64, len(asc)), make([][][]byte, len(asc))
		for k, p := range wantPaths {
			leaves[k] = p.LeafIndex
			for _, h := range p.Hashes {
				paths[k] = append(paths[k], h[:])
			}
		}
		wantMulti, err := merkle.MultiInclusionFromPaths(size, leaves, paths)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(wantMulti, multi); d != "" {
			t.Fatalf("size %d, seqs %v: multi-inclusion hashes (-storage +cache)\n%s", size, asc, d)
		}
		if size == cp.Size {
			proof := &merkle.MultiInclusion{TreeSize: size}
			for _, h := range multi {
				proof.Hashes = append(proof.Hashes, [32]byte(h))
			}
			var ls []merkle.Leaf
			for _, seq := range asc {
				evs, err := st.EventsBySeq(context.Background(), seq, seq)
				if err != nil {
					t.Fatal(err)
				}
				ls = append(ls, merkle.Leaf{Index: seq - 1, Hash: merkle.LeafHash(evs[0])})
			}
			if _, err := merkle.VerifyMultiInclusion(cp, ls, proof); err != nil {
				t.Fatal(err)
			}
			for k, seq := range seqs {
				evs, err := st.EventsBySeq(context.Background(), seq, seq)
				if err != nil {
					t.Fatal(err)
				}
				if err := merkle.VerifyEventInclusion(cp, evs[0], got[k]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestCachedInclusionProofs: on the embedded store, with a cache small
// enough that older leaves are read from storage, the cached proofs equal
// the proofs read from storage, for random pages, in trees grown in random
// steps and in older trees, and a seq outside the tree is an error.
func TestCachedInclusionProofs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	l := newLog(t, st, dir)
	r := rand.New(rand.NewPCG(5, 6))
	for _, shape := range []struct {
		level int
		tail  uint64
	}{{2, 16}, {0, 1}, {merkle.DefaultCacheLevel, merkle.DefaultCacheTail}} {
		logsign.SetProofCacheShape(l, shape.level, shape.tail)
		for range 4 {
			appendEvents(t, st, 1+r.IntN(300), 0)
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			checkCached(t, r, l, l, st)
		}
	}
	_, cp := l.Checkpoint()
	if _, err := l.CachedInclusionProofs([]uint64{cp.Size + 1}, 0); err == nil {
		t.Error("a seq past the tree was proven")
	}
	if _, err := l.CachedInclusionProofs([]uint64{0}, 0); err == nil {
		t.Error("seq 0 was proven")
	}
}

// corruptTree serves a stored tree with one hash changed.
type corruptTree struct {
	audittrail.LogStore
	index int64
}

func (c corruptTree) ReadTreeHashes(ix []int64) ([][32]byte, error) {
	hs, err := c.LogStore.ReadTreeHashes(ix)
	for i, x := range ix {
		if err == nil && x == c.index {
			hs[i][0] ^= 1
		}
	}
	return hs, err
}

// TestCachedProofsWrongTree: a cache filled from a stored tree whose right
// edge does not have the latest checkpoint's root is refused, every time.
func TestCachedProofsWrongTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	l := newLog(t, st, dir)
	appendEvents(t, st, 100, 0)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := logsign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// Node (6, 0), the left half of the tree of 100 leaves, is on its
	// right edge.
	bad, err := logsign.New(ctx, logsign.Config{Store: corruptTree{st, 126}, Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := bad.CachedInclusionProofs([]uint64{1, 100}, 0)
		if err == nil || !strings.Contains(err.Error(), "root") {
			t.Fatalf("proofs from a tree without the checkpoint's root: %v", err)
		}
	}
}

// TestCachedProofsReplicasPostgres: two replicas on one database, A leads
// and B serves; B's cache, filled from what A stored, gives the proofs
// read from storage as A integrates more; after A leaves and B takes over
// and integrates, and after A comes back as a follower, both caches still
// do.
func TestCachedProofsReplicasPostgres(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	dir := t.TempDir()
	signer, vkey, err := logsign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*postgres.Store, *logsign.Log) {
		st, err := postgres.Open(ctx, postgres.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		l, err := logsign.New(ctx, logsign.Config{Store: st, Signer: signer, VerifierKey: vkey})
		if err != nil {
			t.Fatal(err)
		}
		logsign.SetProofCacheShape(l, 2, 8)
		return st, l
	}
	flush := func(l *logsign.Log) {
		t.Helper()
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	stA, la := open()
	stB, lb := open()
	defer stB.Close()
	n := 0
	grow := func(st *postgres.Store, leader, follower *logsign.Log) {
		t.Helper()
		k := 1 + r.IntN(60)
		appendEvents(t, st, k, n)
		n += k
		flush(leader)
		flush(follower) // refreshes
		if !leader.Leading() || follower.Leading() {
			t.Fatalf("leader leads %v, follower leads %v", leader.Leading(), follower.Leading())
		}
		checkCached(t, r, follower, leader, st)
		checkCached(t, r, leader, follower, st)
	}
	appendEvents(t, stA, 50, n)
	n += 50
	flush(la)
	for range 3 {
		grow(stA, la, lb)
	}
	stA.Close() // A leaves; B takes over
	waitLead := time.Now().Add(10 * time.Second)
	for !lb.Leading() {
		flush(lb)
		if time.Now().After(waitLead) {
			t.Fatal("B does not take over")
		}
	}
	stA2, la2 := open()
	defer stA2.Close()
	logsign.SetProofCacheShape(la2, 3, 4)
	for range 3 {
		grow(stB, lb, la2)
	}
}

// failingTree refuses every tree write.
type failingTree struct{ audittrail.LogStore }

func (failingTree) AppendTree(uint64, []int64, [][32]byte, []byte) error {
	return errors.New("disk full")
}

// TestFailuresCounted: rounds of Run that fail are counted (the metric
// audittrail_log_failures_total), and rounds that succeed are not.
func TestFailuresCounted(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	appendEvents(t, st, 5, 0)
	run := func(store audittrail.LogStore) *logsign.Log {
		l := newLogWith(t, dir, logsign.Config{Store: store, Interval: 5 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		l.Run(ctx)
		return l
	}
	if n := run(failingTree{st}).Failures(); n < 2 {
		t.Errorf("%d failed rounds counted, want several", n)
	}
	l := run(st)
	if n := l.Failures(); n != 0 {
		t.Errorf("%d failed rounds counted for a working store", n)
	}
	if _, cp := l.Checkpoint(); cp == nil || cp.Size != 5 {
		t.Errorf("checkpoint %v, want size 5", cp)
	}
}
