package merkle

import (
	"fmt"

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
