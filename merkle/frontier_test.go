package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestFrontier grows a tree one leaf at a time and checks, at every size,
// the frontier's root against the root tlog computes from the whole stored
// tree, and that a frontier rebuilt from its hashes goes on alike.
func TestFrontier(t *testing.T) {
	store := &MemStore{}
	var f Frontier
	if got, want := f.Root(), sha256.Sum256(nil); got != tlog.Hash(want) {
		t.Fatalf("empty root %x, want SHA-256 of nothing %x", got, want)
	}
	for n := uint64(0); n < 300; n++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], n)
		leaf := tlog.RecordHash(b[:])
		if _, err := Integrate(store, n, []tlog.Hash{leaf}); err != nil {
			t.Fatal(err)
		}
		if err := f.Append(leaf); err != nil {
			t.Fatal(err)
		}
		want, err := tlog.TreeHash(int64(n+1), store)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != n+1 || f.Root() != want {
			t.Fatalf("size %d: frontier (size %d) root %x, tree root %x", n+1, f.Size(), f.Root(), want)
		}
		g, err := NewFrontier(f.Size(), f.Hashes())
		if err != nil {
			t.Fatalf("size %d: %v", n+1, err)
		}
		if g.Root() != want {
			t.Fatalf("size %d: rebuilt frontier's root differs", n+1)
		}
	}
}

func TestNewFrontierRefuses(t *testing.T) {
	h := tlog.RecordHash([]byte("x"))
	for _, tc := range []struct {
		size   uint64
		hashes []tlog.Hash
	}{
		{0, []tlog.Hash{h}},
		{1, nil},
		{3, []tlog.Hash{h}},
		{4, []tlog.Hash{h, h}},
		{MaxTreeSize + 1, nil},
	} {
		if _, err := NewFrontier(tc.size, tc.hashes); err == nil {
			t.Errorf("NewFrontier(%d, %d hashes) accepted", tc.size, len(tc.hashes))
		}
	}
}
