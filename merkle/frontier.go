package merkle

import (
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// Frontier is the right edge of a tree that grows one leaf at a time: the
// roots of the perfect subtrees its leaves decompose into, largest first
// (one per set bit of the size, so at most 64). It is all a mirror needs to
// keep to extend the tree and compute its root (RFC 9162 section 2.1.1)
// without storing the tree: checking a new checkpoint against the leaves
// mirrored so far costs one hash per new leaf and node, and no proof.
//
// tlog's stored-hash functions need every hash of the tree (HashReader);
// this is the few of them that the next leaves depend on.
type Frontier struct {
	size   uint64
	hashes []tlog.Hash
}

// NewFrontier returns the frontier of a tree of size leaves from its
// subtree roots, largest first (as Hashes returns them). It fails unless
// there is one per set bit of size.
func NewFrontier(size uint64, hashes []tlog.Hash) (*Frontier, error) {
	if size > MaxTreeSize {
		return nil, fmt.Errorf("merkle: tree size %d beyond %d", size, uint64(MaxTreeSize))
	}
	if len(hashes) != bits.OnesCount64(size) {
		return nil, fmt.Errorf("merkle: a tree of %d leaves has %d subtree roots on its right edge, not %d", size, bits.OnesCount64(size), len(hashes))
	}
	return &Frontier{size: size, hashes: append([]tlog.Hash(nil), hashes...)}, nil
}

// Size is the number of leaves.
func (f *Frontier) Size() uint64 { return f.size }

// Hashes returns the subtree roots, largest first (a copy).
func (f *Frontier) Hashes() []tlog.Hash { return append([]tlog.Hash(nil), f.hashes...) }

var errFrontierFull = errors.New("merkle: the tree is at its maximum size")

// Append adds the leaf with hash leaf (LeafHash of the event with Seq
// Size()+1).
func (f *Frontier) Append(leaf tlog.Hash) error {
	if f.size >= MaxTreeSize {
		return errFrontierFull
	}
	// Each trailing 1 bit of the size is a perfect subtree the same height
	// as the one being carried: they merge, as in binary addition.
	h := leaf
	for n := f.size; n&1 == 1; n >>= 1 {
		h = tlog.NodeHash(f.hashes[len(f.hashes)-1], h)
		f.hashes = f.hashes[:len(f.hashes)-1]
	}
	f.hashes = append(f.hashes, h)
	f.size++
	return nil
}

// Root returns the tree's root hash (EmptyRoot for no leaves).
func (f *Frontier) Root() tlog.Hash {
	if len(f.hashes) == 0 {
		return EmptyRoot
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.hashes[i], h)
	}
	return h
}
