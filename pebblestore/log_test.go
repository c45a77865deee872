package pebblestore_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/storetest"
)

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
	var ref storetest.RefTree
	for n := int64(0); n < size; {
		k := storetest.GrowStep(r, n, size)
		idx, hs := ref.Grow(t, n, k)
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
		for _, s := range []*pebblestore.Store{sparse, full, mixed} {
			storetest.CheckSample(t, s, ref, n, r, 200)
		}
	}
	// Every hash, in one call (proofs: storetest.RunTree).
	storetest.CheckEveryHash(t, sparse, ref)
	storetest.CheckEveryHash(t, mixed, ref)
	// About one stored hash per leaf instead of two: the nodes of levels 8,
	// 16, ... as keys of their own, the leaves by tiles of 256 (those of
	// the last, partial tile as keys of their own).
	stored := ref.UpperNodes()
	keys, tiles, err := sparse.TreeKeysForTest()
	if err != nil {
		t.Fatal(err)
	}
	if keys != stored+size%256 || tiles != size/256 {
		t.Errorf("%d tree keys and %d leaf tiles stored for %d leaves (%d hashes), want %d and %d", keys, tiles, size, len(ref), stored+size%256, size/256)
	}
}

// TestTreeFormatUpgrade: a store of format 3 (every tree level stored) is
// read the same and moved to the current format (formatVersion) when opened; a later
// format is refused.
func TestTreeFormatUpgrade(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var ref storetest.RefTree
	idx, hs := ref.Grow(t, 0, 1000)
	if err := s.PutTreeHashesForTest(1000, idx, hs); err != nil {
		t.Fatal(err)
	}
	s = reopenAsFormat(t, s, storeConfig(dir), 3)
	storetest.CheckEveryHash(t, s, ref)
	future := byte(pebblestore.FormatVersionForTest + 1)
	if err := s.SetFormatForTest(future); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: dir}); err == nil {
		s.Close()
		t.Fatalf("a store of format %d was opened", future)
	} else if !strings.Contains(err.Error(), fmt.Sprintf("storage format %02x is not supported", future)) {
		t.Fatalf("opening format %d: %v", future, err)
	}
}

// TestTreeConformance runs the tree storage tests every LogStore passes.
func TestTreeConformance(t *testing.T) {
	storetest.RunTree(t, func(t *testing.T) audittrail.LogStore { return openStore(t, t.TempDir()) })
}
