package merkle

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// A multi-inclusion proof proves several leaves of one tree at once, the
// events of a search page or of a batch receipt. Their audit paths share
// most hashes: the 50 paths of a page of neighbouring events in a tree of
// 10M leaves hold about 1,200 hashes of which about 75 differ. The
// multi-inclusion proof sends each needed hash once.
//
// Which hashes, in which order: the tree of n leaves splits at k, the
// largest power of two smaller than n (RFC 9162, section 2.1.1); the left
// subtree holds leaves [0, k), the right one [k, n), and each splits the
// same way. A walk from the root, left subtree before right, goes down
// every subtree that holds a proven leaf; every subtree it meets that holds
// none is not entered, and its hash is the proof's next hash. A verifier
// walks the same way, taking the proof's hashes in turn and hashing each
// proven leaf's own, and compares the root it computes with the signed one.
// The walk depends only on the tree size and the set of proven leaf
// indexes, so every hash has exactly one place: a proof with a hash too
// many or too few is rejected. docs/design/merkle.md has an example.
//
// This is our own code, not tlog's or transparency-dev's: neither offers
// proofs of several leaves. It is short, and its test checks it against
// the reference implementation of the single-leaf audit path.

// MultiInclusion is the proof that a tree of TreeSize leaves holds several
// given leaves (see above). Like Inclusion, TreeSize says what the prover
// meant; the verifier checks it against the signed checkpoint.
type MultiInclusion struct {
	TreeSize uint64      `json:"tree_size"`
	Hashes   []tlog.Hash `json:"hashes"`
}

// Leaf is a leaf a multi-inclusion proof proves: its index in the tree and
// its hash (LeafHash of the event at seq Index+1).
type Leaf struct {
	Index uint64
	Hash  tlog.Hash
}

// PathHash names a hash of the audit paths a multi-inclusion proof is built
// from: hash Level (0 is the leaf's sibling, the last the root's child) of
// the audit path of the Leaf-th proven leaf.
type PathHash struct {
	Leaf, Level int
}

// MultiInclusionSources returns where each hash of the multi-inclusion
// proof of leaves (leaf indexes, strictly ascending) in the tree of
// treeSize leaves is found in their single-leaf audit paths (InclusionProof,
// leaf to root): a prover that has the paths builds the proof without
// reading a hash again.
func MultiInclusionSources(treeSize uint64, leaves []uint64) ([]PathHash, error) {
	if treeSize > MaxTreeSize {
		return nil, fmt.Errorf("merkle: tree size %d too large", treeSize)
	}
	for i, x := range leaves {
		if x >= treeSize {
			return nil, fmt.Errorf("merkle: no leaf %d in a tree of size %d", x, treeSize)
		}
		if i > 0 && x <= leaves[i-1] {
			return nil, errors.New("merkle: the leaves of a multi-inclusion proof must be strictly ascending")
		}
	}
	out := make([]PathHash, 0, 2*len(leaves)+bits.Len64(treeSize))
	// The depth of a subtree is the number of splits above it; hash Level
	// of a leaf's path is the sibling at depth pathLen-1-Level.
	var walk func(lo, hi uint64, ls []uint64, first, depth int)
	walk = func(lo, hi uint64, ls []uint64, first, depth int) {
		if hi-lo == 1 {
			return
		}
		mid := lo + split(hi-lo)
		m, _ := slices.BinarySearch(ls, mid)
		if m == 0 { // only the right subtree holds proven leaves
			out = append(out, PathHash{Leaf: first, Level: pathLen(ls[0], treeSize) - 1 - depth})
		} else {
			walk(lo, mid, ls[:m], first, depth+1)
		}
		if m == len(ls) {
			out = append(out, PathHash{Leaf: first, Level: pathLen(ls[0], treeSize) - 1 - depth})
		} else {
			walk(mid, hi, ls[m:], first+m, depth+1)
		}
	}
	if len(leaves) > 0 {
		walk(0, treeSize, leaves, 0, 0)
	}
	return out, nil
}

// MultiInclusionFromPaths returns the hashes of the multi-inclusion proof of
// leaves (strictly ascending) in the tree of treeSize leaves, taken from
// their single-leaf audit paths (leaf to root, one per leaf, in the order of
// leaves) without copying them.
func MultiInclusionFromPaths(treeSize uint64, leaves []uint64, paths [][][]byte) ([][]byte, error) {
	sources, err := MultiInclusionSources(treeSize, leaves)
	if err != nil {
		return nil, err
	}
	if len(paths) != len(leaves) {
		return nil, fmt.Errorf("merkle: %d audit paths for %d leaves", len(paths), len(leaves))
	}
	out := make([][]byte, len(sources))
	for i, s := range sources {
		p := paths[s.Leaf]
		if s.Level >= len(p) {
			return nil, fmt.Errorf("merkle: the audit path of leaf %d in the tree of size %d has %d hashes", leaves[s.Leaf], treeSize, len(p))
		}
		out[i] = p[s.Level]
	}
	return out, nil
}

// ProveMultiInclusion returns the multi-inclusion proof of leaves (leaf
// indexes, strictly ascending) in the tree of treeSize leaves that r holds.
func ProveMultiInclusion(r tlog.HashReader, treeSize uint64, leaves []uint64) (*MultiInclusion, error) {
	sources, err := MultiInclusionSources(treeSize, leaves)
	if err != nil {
		return nil, err
	}
	paths := make([][]tlog.Hash, len(leaves))
	for i, x := range leaves {
		p, err := InclusionProof(r, x, treeSize)
		if err != nil {
			return nil, err
		}
		paths[i] = p.Hashes
	}
	out := &MultiInclusion{TreeSize: treeSize, Hashes: make([]tlog.Hash, len(sources))}
	for i, s := range sources {
		out.Hashes[i] = paths[s.Leaf][s.Level]
	}
	return out, nil
}

// VerifyMultiInclusion checks that the tree of the verified checkpoint cp
// holds every one of leaves at its index, with proof. The leaves may come in
// any order; an index may repeat only with the same hash. On success it
// returns each leaf's own audit path, in the order of leaves: the Inclusion
// proof a single-leaf verifier (VerifyInclusion, "audittrail verify
// inclusion") accepts, derived from the hashes the check computed.
func VerifyMultiInclusion(cp *Checkpoint, leaves []Leaf, proof *MultiInclusion) ([]*Inclusion, error) {
	if !cp.Verified() {
		return nil, errNotVerified
	}
	if proof == nil {
		return nil, errors.New("merkle: no multi-inclusion proof")
	}
	if proof.TreeSize != cp.Size {
		return nil, fmt.Errorf("merkle: multi-inclusion proof is for tree size %d, the checkpoint has %d", proof.TreeSize, cp.Size)
	}
	if len(leaves) == 0 {
		if len(proof.Hashes) != 0 {
			return nil, errors.New("merkle: a multi-inclusion proof of no leaves must be empty")
		}
		return nil, nil
	}
	order := make([]int, len(leaves)) // positions in leaves, by leaf index
	for i := range order {
		order[i] = i
		if leaves[i].Index >= cp.Size {
			return nil, fmt.Errorf("merkle: leaf %d is not in the checkpoint's tree of size %d", leaves[i].Index, cp.Size)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(leaves[a].Index, leaves[b].Index) })
	distinct := make([]Leaf, 0, len(leaves))
	for _, i := range order {
		l := leaves[i]
		if n := len(distinct); n > 0 && distinct[n-1].Index == l.Index {
			if distinct[n-1].Hash != l.Hash {
				return nil, fmt.Errorf("merkle: two different leaves at index %d", l.Index)
			}
			continue
		}
		distinct = append(distinct, l)
	}
	// Each distinct leaf's audit path. The walk appends a subtree's
	// sibling after the hashes below it, so each path comes out leaf side
	// first, as an audit path lists them.
	paths := make([][]tlog.Hash, len(distinct))
	next := 0
	var walk func(lo, hi uint64, ls []Leaf, ps [][]tlog.Hash) (tlog.Hash, error)
	walk = func(lo, hi uint64, ls []Leaf, ps [][]tlog.Hash) (tlog.Hash, error) {
		if hi-lo == 1 {
			return ls[0].Hash, nil
		}
		mid := lo + split(hi-lo)
		m, _ := slices.BinarySearchFunc(ls, mid, func(l Leaf, x uint64) int { return cmp.Compare(l.Index, x) })
		side := func(lo, hi uint64, ls []Leaf, ps [][]tlog.Hash) (tlog.Hash, error) {
			if len(ls) > 0 {
				return walk(lo, hi, ls, ps)
			}
			if next == len(proof.Hashes) {
				return tlog.Hash{}, errors.New("too few hashes")
			}
			next++
			return proof.Hashes[next-1], nil
		}
		left, err := side(lo, mid, ls[:m], ps[:m])
		if err != nil {
			return left, err
		}
		right, err := side(mid, hi, ls[m:], ps[m:])
		if err != nil {
			return right, err
		}
		for i := range ps[:m] {
			ps[i] = append(ps[i], right)
		}
		for i := range ps[m:] {
			ps[m+i] = append(ps[m+i], left)
		}
		return tlog.NodeHash(left, right), nil
	}
	root, err := walk(0, cp.Size, distinct, paths)
	if err == nil && next != len(proof.Hashes) {
		err = fmt.Errorf("%d hashes too many", len(proof.Hashes)-next)
	}
	if err != nil {
		return nil, fmt.Errorf("merkle: malformed multi-inclusion proof of %d leaves in the tree of size %d: %w", len(distinct), cp.Size, err)
	}
	if root != cp.Root {
		return nil, fmt.Errorf("merkle: the %d leaves are not proven in the tree of size %d", len(distinct), cp.Size)
	}
	out := make([]*Inclusion, len(leaves))
	k := -1
	var p *Inclusion
	for _, i := range order {
		if k < 0 || distinct[k].Index != leaves[i].Index {
			k++
			p = &Inclusion{LeafIndex: distinct[k].Index, TreeSize: cp.Size, Hashes: nonNil(paths[k])}
		}
		out[i] = p
	}
	return out, nil
}

// split is the size of the left subtree of a tree of n > 1 leaves: the
// largest power of two smaller than n.
func split(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// pathLen is the length of the audit path of leaf i in the tree of n
// leaves: the number of splits from the root down to it.
func pathLen(i, n uint64) int {
	d := 0
	for lo, hi := uint64(0), n; hi-lo > 1; d++ {
		if mid := lo + split(hi-lo); i < mid {
			hi = mid
		} else {
			lo = mid
		}
	}
	return d
}
