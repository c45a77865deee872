package pebblestore_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail/pebblestore"
)

// refTree is the tree's every stored hash in memory (the reference).
type refTree []tlog.Hash

func (r *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = (*r)[x]
	}
	return out, nil
}

// grow appends k leaves to the tree of size n and returns their new
// hashes' indexes and hashes.
func (r *refTree) grow(t *testing.T, n, k int64) ([]int64, [][32]byte) {
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
			x0 := tlog.StoredHashIndex(0, i) + int64(j)
			*r = append(*r, x)
			idx = append(idx, x0)
			hs = append(hs, x)
		}
	}
	return idx, hs
}

// storeReader reads a store's tree hashes as a tlog.HashReader.
type storeReader struct{ s *pebblestore.Store }

func (r storeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := r.s.ReadTreeHashes(indexes)
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, err
}

// checkEveryHash reads every hash of the tree from s in one call and
// compares it with the reference's.
func checkEveryHash(t *testing.T, s *pebblestore.Store, ref refTree) {
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

// TestTreeTiles: the store keeps only the hashes of levels 0, 8, 16, ...,
// the leaves by tiles of 256, and reads every stored hash of the tree as
// written, for trees grown in steps of random sizes past 65,536 leaves
// (three stored levels), as well as from a store that holds every level
// (written before the tiles) and from one whose first leaves are keys of
// their own (format 5).
func TestTreeTiles(t *testing.T) {
	const size = 70_000
	r := rand.New(rand.NewPCG(3, 4))
	sparse := openStore(t, t.TempDir())
	defer sparse.Close()
	full := openStore(t, t.TempDir())
	defer full.Close()
	// mixed is written as format 5 did (every leaf its own key) up to
	// about half the leaves, in a tile's middle, then as format 6 does.
	mixed := openStore(t, t.TempDir())
	defer mixed.Close()
	mixed.WriteFormat5ForTest()
	var ref refTree
	check := func(n int64, samples int) {
		t.Helper()
		count := tlog.StoredHashCount(n)
		idx := make([]int64, samples)
		for i := range idx {
			idx[i] = r.Int64N(count)
		}
		idx = append(idx, count-1, 0)
		for _, s := range []*pebblestore.Store{sparse, full, mixed} {
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
		}
		// Past the tree: not stored.
		if _, err := sparse.ReadTreeHashes([]int64{count}); err == nil {
			t.Fatalf("size %d: hash %d beyond the tree was read", n, count)
		}
	}
	for n := int64(0); n < size; {
		k := min(int64(1+r.IntN(3000)), size-n)
		if r.IntN(4) == 0 {
			k = 1
		}
		idx, hs := ref.grow(t, n, k)
		n += k
		if err := sparse.AppendTree(uint64(n), idx, hs, nil); err != nil {
			t.Fatal(err)
		}
		if err := full.PutTreeHashesForTest(uint64(n), idx, hs); err != nil {
			t.Fatal(err)
		}
		if n > size/2 {
			mixed.WriteCurrentFormatForTest()
		}
		if err := mixed.AppendTree(uint64(n), idx, hs, nil); err != nil {
			t.Fatal(err)
		}
		check(n, 200)
	}
	// Every hash, in one call; then proofs of consistency and of leaves,
	// built from the store's hashes and from the reference's.
	checkEveryHash(t, sparse, ref)
	checkEveryHash(t, mixed, ref)
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
		got, err := prove(storeReader{sparse})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s differs: %d hashes, want %d", what, len(got), len(want))
		}
	}
	// About one stored hash per leaf instead of two: the nodes of levels 8,
	// 16, ... as keys of their own, the leaves by tiles of 256 (those of
	// the last, partial tile as keys of their own).
	stored := 0
	for i := range ref {
		if level, _ := tlog.SplitStoredHashIndex(int64(i)); level%8 == 0 && level > 0 {
			stored++
		}
	}
	keys, tiles, err := sparse.TreeKeysForTest()
	if err != nil {
		t.Fatal(err)
	}
	if keys != stored+size%256 || tiles != size/256 {
		t.Errorf("%d tree keys and %d leaf tiles stored for %d leaves (%d hashes), want %d and %d", keys, tiles, size, len(ref), stored+size%256, size/256)
	}
}

// TestTreeFormatUpgrade: a store of format 3 (every tree level stored) is
// read the same and moved to the current format (6) when opened; a later
// format is refused.
func TestTreeFormatUpgrade(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var ref refTree
	idx, hs := ref.grow(t, 0, 1000)
	if err := s.PutTreeHashesForTest(1000, idx, hs); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFormatForTest(3); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	if v, err := s.FormatForTest(); err != nil || v != 6 {
		t.Fatalf("format after opening a format 3 store: %d, %v; want 6", v, err)
	}
	checkEveryHash(t, s, ref)
	if err := s.SetFormatForTest(7); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("a store of format 7 was opened")
	} else if !strings.Contains(err.Error(), "storage format 07 is not supported") {
		t.Fatalf("opening format 7: %v", err)
	}
}

// TestTreeReadsDuringAppends: proofs are read while the integrator appends:
// a read that finds a tile incomplete and then its leaves moved into the
// tile key (or the reverse) would fail or read wrong hashes; every read sees
// one state of the tree.
func TestTreeReadsDuringAppends(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	const size = 30_000
	var ref refTree
	type step struct {
		n   int64
		idx []int64
		hs  [][32]byte
	}
	var steps []step
	r := rand.New(rand.NewPCG(5, 6))
	for n := int64(0); n < size; {
		k := min(int64(1+r.IntN(200)), size-n)
		idx, hs := ref.grow(t, n, k)
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
		// The newest leaves, where tiles complete.
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
