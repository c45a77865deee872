package storetest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// RefTree is a Merkle tree's every stored hash in memory, in the tlog
// storage-index layout: the reference the tree tests compare a store with.
type RefTree []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (r *RefTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*r)) {
			return nil, fmt.Errorf("reference tree: no hash %d", x)
		}
		out[i] = (*r)[x]
	}
	return out, nil
}

// Grow appends k leaves (the hash of their index) to the tree of size n
// and returns the new hashes' indexes and the hashes, as an integrator
// passes them to AppendTree.
func (r *RefTree) Grow(t testing.TB, n, k int64) ([]int64, [][32]byte) {
	t.Helper()
	var idx []int64
	var hs [][32]byte
	for i := n; i < n+k; i++ {
		var leaf [8]byte
		binary.BigEndian.PutUint64(leaf[:], uint64(i))
		h, err := tlog.StoredHashes(i, leaf[:], r)
		if err != nil {
			t.Fatal(err)
		}
		for j, x := range h {
			*r = append(*r, x)
			idx = append(idx, tlog.StoredHashIndex(0, i)+int64(j))
			hs = append(hs, x)
		}
	}
	return idx, hs
}

// TreeReader reads a store's tree hashes as a tlog.HashReader.
type TreeReader struct{ S audittrail.LogStore }

// ReadHashes implements tlog.HashReader.
func (r TreeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := r.S.ReadTreeHashes(indexes)
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, err
}

// CheckEveryHash reads every hash of the tree from s in one call and
// compares it with the reference's.
func CheckEveryHash(t testing.TB, s audittrail.LogStore, ref RefTree) {
	t.Helper()
	all := make([]int64, len(ref))
	for i := range all {
		all[i] = int64(i)
	}
	got, err := s.ReadTreeHashes(all)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if got[i] != ref[i] {
			level, n := tlog.SplitStoredHashIndex(int64(i))
			t.Fatalf("hash %d (level %d, node %d) differs", i, level, n)
		}
	}
}

// GrowStep returns how many leaves the next AppendTree of a test adds to a
// tree of n leaves growing to size: 1 to 3000, a quarter of the time 1 (so
// that tiles complete in calls of every shape), never past size.
func GrowStep(r *rand.Rand, n, size int64) int64 {
	if r.IntN(4) == 0 {
		return min(1, size-n)
	}
	return min(int64(1+r.IntN(3000)), size-n)
}

// CheckSample reads from s, a store of the reference's tree of n leaves,
// the hashes at samples random indexes and the first and last, and
// compares them with the reference's; a hash past the tree must not read.
func CheckSample(t testing.TB, s audittrail.LogStore, ref RefTree, n int64, r *rand.Rand, samples int) {
	t.Helper()
	count := tlog.StoredHashCount(n)
	idx := []int64{count - 1, 0}
	for range samples {
		idx = append(idx, r.Int64N(count))
	}
	got, err := s.ReadTreeHashes(idx)
	if err != nil {
		t.Fatalf("size %d: %v", n, err)
	}
	for i, x := range idx {
		if got[i] != ref[x] {
			level, k := tlog.SplitStoredHashIndex(x)
			t.Fatalf("size %d: hash %d (level %d, node %d) differs", n, x, level, k)
		}
	}
	if _, err := s.ReadTreeHashes([]int64{count}); err == nil {
		t.Fatalf("size %d: hash %d beyond the tree was read", n, count)
	}
}

// UpperNodes counts the tree's nodes at levels 8, 16, ...: those a store
// keeps one by one beside the leaves (merkle.TileHeight).
func (r RefTree) UpperNodes() int {
	n := 0
	for i := range r {
		if level, _ := tlog.SplitStoredHashIndex(int64(i)); level > 0 && merkle.StoredLevel(level) {
			n++
		}
	}
	return n
}

// RunTree runs the conformance tests of a LogStore's tree storage
// (AppendTree, TreeSize, ReadTreeHashes) on fresh stores made by open, which
// the tests close when done. A store may keep only some of the hashes and
// recompute the others (merkle.TileHeight): every hash of the tree must
// read as written.
func RunTree(t *testing.T, open func(t *testing.T) audittrail.LogStore) {
	t.Run("Grow", func(t *testing.T) { testTreeGrow(t, open(t)) })
	t.Run("ReadsDuringAppends", func(t *testing.T) { testTreeReadsDuringAppends(t, open(t)) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, open(t)) })
}

// testCheckpoints stores checkpoints with the tree, reads them back whole,
// by pages from a size and as the latest, and deletes some of them.
func testCheckpoints(t *testing.T, s audittrail.LogStore) {
	defer closeLog(t, s)
	ctx := t.Context()
	var ref RefTree
	var sizes []uint64
	for n := int64(0); n < 300; n += 10 {
		idx, hs := ref.Grow(t, n, 10)
		var cp []byte
		if n%20 == 0 {
			cp = fmt.Appendf(nil, "checkpoint of %d\n", n+10)
			sizes = append(sizes, uint64(n+10))
		}
		if err := s.AppendTree(uint64(n+10), idx, hs, cp); err != nil {
			t.Fatal(err)
		}
	}
	text := func(size uint64) string { return fmt.Sprintf("checkpoint of %d\n", size) }
	check := func(what string, want []uint64) {
		t.Helper()
		all, err := s.Checkpoints(ctx)
		if err != nil || len(all) != len(want) {
			t.Fatalf("%s: %d checkpoints, %v; want %d", what, len(all), err, len(want))
		}
		for i, size := range want {
			if string(all[i]) != text(size) {
				t.Fatalf("%s: checkpoint %d is %q, want %q", what, i, all[i], text(size))
			}
		}
		for _, from := range []uint64{0, 1, want[0], want[0] + 1, want[len(want)/2], want[len(want)-1], want[len(want)-1] + 1, 1 << 63} {
			var exp []uint64
			for _, size := range want {
				if size >= from {
					exp = append(exp, size)
				}
			}
			for _, limit := range []int{1, 3, 1000} {
				got, err := s.CheckpointsFrom(ctx, from, limit)
				if err != nil || len(got) != min(limit, len(exp)) {
					t.Fatalf("%s: CheckpointsFrom(%d, %d): %d, %v; want %d", what, from, limit, len(got), err, min(limit, len(exp)))
				}
				for i := range got {
					if string(got[i]) != text(exp[i]) {
						t.Fatalf("%s: CheckpointsFrom(%d, %d)[%d] = %q, want %q", what, from, limit, i, got[i], text(exp[i]))
					}
				}
			}
		}
		latest, err := s.LatestCheckpoint(ctx)
		if err != nil || string(latest) != text(want[len(want)-1]) {
			t.Fatalf("%s: latest %q, %v", what, latest, err)
		}
	}
	check("stored", sizes)
	// Delete every other one but the latest, and sizes without one.
	var del, kept []uint64
	for i, size := range sizes {
		if i%2 == 0 && i < len(sizes)-1 {
			del = append(del, size)
		} else {
			kept = append(kept, size)
		}
	}
	if err := s.DeleteCheckpoints(ctx, append(del, 5, 1<<40)); err != nil {
		t.Fatal(err)
	}
	check("after deleting some", kept)
	if err := s.DeleteCheckpoints(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TreeSize(); err != nil || got != 300 {
		t.Fatalf("tree size after deleting checkpoints: %d, %v", got, err)
	}
	CheckEveryHash(t, s, ref)
}

func closeLog(t *testing.T, s audittrail.LogStore) {
	t.Helper()
	if c, ok := s.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

// testTreeGrow grows a tree in steps of random sizes past 65,536 leaves
// (three stored levels of tiles), reading hashes after every step, then
// every hash in one call, and proofs built from the store's hashes.
func testTreeGrow(t *testing.T, s audittrail.LogStore) {
	defer closeLog(t, s)
	const size = 70_000
	r := rand.New(rand.NewPCG(3, 4))
	var ref RefTree
	for n := int64(0); n < size; {
		k := GrowStep(r, n, size)
		idx, hs := ref.Grow(t, n, k)
		n += k
		var checkpoint []byte
		if r.IntN(3) == 0 {
			checkpoint = fmt.Appendf(nil, "checkpoint of %d\n", n)
		}
		if err := s.AppendTree(uint64(n), idx, hs, checkpoint); err != nil {
			t.Fatalf("appending leaves %d to %d: %v", n-k, n, err)
		}
		if got, err := s.TreeSize(); err != nil || got != uint64(n) {
			t.Fatalf("tree size %d, %v; want %d", got, err, n)
		}
		CheckSample(t, s, ref, n, r, 200)
	}
	CheckEveryHash(t, s, ref)
	for i := range 100 {
		a, n := r.Int64N(size), size-r.Int64N(100)
		if a >= n || a == 0 {
			continue
		}
		what, prove := fmt.Sprintf("consistency proof %d → %d", a, n), func(hr tlog.HashReader) ([]tlog.Hash, error) {
			p, err := tlog.ProveTree(n, a, hr)
			return p, err
		}
		if i%2 == 1 {
			what, prove = fmt.Sprintf("proof of leaf %d in %d", a, n), func(hr tlog.HashReader) ([]tlog.Hash, error) {
				p, err := tlog.ProveRecord(n, a, hr)
				return p, err
			}
		}
		want, err := prove(&ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := prove(TreeReader{s})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s differs: %d hashes, want %d", what, len(got), len(want))
		}
	}
}

// testTreeReadsDuringAppends reads the newest hashes while the integrator
// appends: a store that moves leaves into a tile when the tile completes
// must show every read one state of the tree (a read that finds a tile
// incomplete and then its leaves moved would fail or read wrong hashes).
func testTreeReadsDuringAppends(t *testing.T, s audittrail.LogStore) {
	defer closeLog(t, s)
	const size = 30_000
	var ref RefTree
	type step struct {
		n   int64
		idx []int64
		hs  [][32]byte
	}
	var steps []step
	r := rand.New(rand.NewPCG(5, 6))
	for n := int64(0); n < size; {
		k := min(int64(1+r.IntN(200)), size-n)
		idx, hs := ref.Grow(t, n, k)
		n += k
		steps = append(steps, step{n, idx, hs})
	}
	var committed atomic.Int64
	done := make(chan error, 1)
	go func() {
		for _, st := range steps {
			if err := s.AppendTree(uint64(st.n), st.idx, st.hs, nil); err != nil {
				done <- err
				return
			}
			committed.Store(st.n)
		}
		done <- nil
	}()
	rr := rand.New(rand.NewPCG(7, 8))
	for reads := 0; ; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d reads during the appends", reads)
			return
		default:
		}
		n := committed.Load()
		if n < 2 {
			continue
		}
		// The newest leaves, where tiles complete, and a node above them.
		idx := []int64{tlog.StoredHashIndex(0, n-1), tlog.StoredHashIndex(0, max(0, n-1-rr.Int64N(300))), tlog.StoredHashIndex(3, (n-1)>>3>>1<<1)}
		if idx[2] >= tlog.StoredHashCount(n) {
			idx = idx[:2]
		}
		got, err := s.ReadTreeHashes(idx)
		if err != nil {
			t.Fatalf("tree of %d leaves or more: %v", n, err)
		}
		reads++
		for i, x := range idx {
			if got[i] != ref[x] {
				t.Fatalf("tree of %d leaves or more: hash %d differs", n, x)
			}
		}
	}
}
