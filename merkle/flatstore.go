package merkle

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// FlatStore is a HashStore in one slice, sized up front for a tree of known
// size so that building it never copies the hashes already held (a MemStore
// grows by appending, which briefly needs up to twice its size). It accepts
// only writes that extend what it holds, and is not safe for concurrent
// writes; reads may run concurrently with each other.
type FlatStore struct {
	hashes  []tlog.Hash
	release func()
}

// NewFlatStore returns an empty FlatStore with room for the hashes of a tree
// of size leaves (it grows beyond if needed): 32·StoredHashCount(size) bytes,
// about 64 bytes per leaf. On Unix a large store is mapped outside the Go
// heap; call Release when done with it.
func NewFlatStore(size uint64) *FlatStore {
	n := int64(0)
	if size > 0 && size <= MaxTreeSize {
		n = tlog.StoredHashCount(int64(size))
	}
	hs, release := allocHashes(n)
	return &FlatStore{hashes: hs, release: release}
}

// Release frees the memory of the store, which must not be used after.
func (s *FlatStore) Release() {
	if s.release != nil {
		s.release()
	}
	s.hashes, s.release = nil, nil
}

// ReadHashes implements tlog.HashReader.
func (s *FlatStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("merkle: FlatStore: no hash at storage index %d (holding %d)", x, len(s.hashes))
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

// WriteHashes implements HashStore: indexes must continue the held ones.
func (s *FlatStore) WriteHashes(indexes []int64, hashes []tlog.Hash) error {
	if len(indexes) != len(hashes) {
		return fmt.Errorf("merkle: FlatStore: %d indexes for %d hashes", len(indexes), len(hashes))
	}
	for i, x := range indexes {
		if x != int64(len(s.hashes)) {
			return fmt.Errorf("merkle: FlatStore: write at storage index %d does not extend the held %d", x, len(s.hashes))
		}
		if len(s.hashes) == cap(s.hashes) && s.release != nil {
			// Growing beyond the mapped room: continue on the heap.
			hs := make([]tlog.Hash, len(s.hashes), 2*cap(s.hashes)+1)
			copy(hs, s.hashes)
			s.release()
			s.hashes, s.release = hs, nil
		}
		s.hashes = append(s.hashes, hashes[i])
	}
	return nil
}

// Len is the number of hashes held.
func (s *FlatStore) Len() int64 { return int64(len(s.hashes)) }

// appendLeaves is Integrate(s, oldSize, leaves) without its root and its
// intermediate slices: it appends each leaf's stored hashes in place (the
// audit integrates millions of leaves, and Integrate's allocations per leaf
// were a tenth of its time). s must hold the tree of oldSize leaves.
func (s *FlatStore) appendLeaves(oldSize uint64, leaves []tlog.Hash) error {
	if oldSize > MaxTreeSize || uint64(len(leaves)) > MaxTreeSize-oldSize {
		return fmt.Errorf("merkle: FlatStore: tree size %d+%d exceeds the maximum", oldSize, len(leaves))
	}
	if s.Len() != tlog.StoredHashCount(int64(oldSize)) {
		return fmt.Errorf("merkle: FlatStore: holding %d hashes, not the tree of %d leaves", s.Len(), oldSize)
	}
	for i, h := range leaves {
		n := int64(oldSize) + int64(i)
		s.push(h)
		// Each trailing 1 bit of n completes a subtree, whose left half is
		// stored already (as in tlog.StoredHashesForRecordHash).
		for l := range bits.TrailingZeros64(uint64(n + 1)) {
			h = tlog.NodeHash(s.hashes[tlog.StoredHashIndex(l, n>>uint(l)-1)], h)
			s.push(h)
		}
	}
	return nil
}

// push appends h, as WriteHashes does.
func (s *FlatStore) push(h tlog.Hash) {
	if len(s.hashes) == cap(s.hashes) && s.release != nil {
		hs := make([]tlog.Hash, len(s.hashes), 2*cap(s.hashes)+1)
		copy(hs, s.hashes)
		s.release()
		s.hashes, s.release = hs, nil
	}
	s.hashes = append(s.hashes, h)
}

// leafRoom returns the store's room for the leaf hashes of a tree of n
// leaves, when it is empty and sized for them: the slice of its whole
// capacity, in which leaf i's hash goes at storage index
// leafStorageIndex(i). A LeafTable keeps its hashes there before they are
// integrated (appendLeaves writes each again at the same index), so that
// they take no memory of their own.
func (s *FlatStore) leafRoom(n uint64) ([]tlog.Hash, bool) {
	if len(s.hashes) != 0 || n == 0 || n > MaxTreeSize || int64(cap(s.hashes)) < tlog.StoredHashCount(int64(n)) {
		return nil, false
	}
	return s.hashes[:cap(s.hashes)], true
}

// leafStorageIndex is tlog.StoredHashIndex(0, i): before leaf i's hash come
// those of the i leaves before it and of the i - popcount(i) complete
// subtrees of two leaves or more that they form.
func leafStorageIndex(i uint64) int64 {
	return int64(2*i) - int64(bits.OnesCount64(i))
}
