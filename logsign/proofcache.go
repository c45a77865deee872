package logsign

import (
	"errors"
	"fmt"

	"github.com/audittrail/audittrail/merkle"
)

// proofCache returns the log's proof cache (docs/design/merkle.md, "Proof
// cache"), making it on first use.
func (l *Log) proofCache() *merkle.ProofCache {
	if c := l.proofs.Load(); c != nil {
		return c
	}
	l.proofs.CompareAndSwap(nil, merkle.NewProofCache(l.cacheLevel, l.cacheTail))
	return l.proofs.Load()
}

// CachedInclusionProofs is InclusionProofs served from the log's proof
// cache: it proves leaves seq-1 in the tree of treeSize leaves (0: the latest
// signed checkpoint's size), which must be at most the latest signed
// checkpoint's size; a larger one is proven from storage by InclusionProofs.
//
// The cache holds the upper levels of the tree and every hash of its newest
// leaves, read from the store once, so a page of recent events is proven
// from memory and a page of older ones with one read of its lowest levels.
// It is extended, on the first call after a new checkpoint, with the stored
// hashes of the checkpoint's tree only (the tree a verified checkpoint
// signed, which the store holds and never changes), and the root it then
// recomputes must be the checkpoint's: on a mismatch the cache is dropped
// and the call fails. So on a shared store every replica fills its own
// cache from what the leader stored, and a change of leader needs no
// invalidation.
func (l *Log) CachedInclusionProofs(seqs []uint64, treeSize uint64) ([]*merkle.Inclusion, error) {
	c, leaves, size, err := l.cachedTree(seqs, treeSize)
	if err != nil || c == nil {
		if err == nil {
			return l.InclusionProofs(seqs, treeSize)
		}
		return nil, err
	}
	return c.InclusionProofs(l.hashReader(), size, leaves)
}

// CachedProofHashes is CachedInclusionProofs giving each proof's hashes
// only (leaf to root), without copying those the cache holds: they alias
// its memory, which is never written again, and must not be modified. The
// search answers' proofs use it (server/proofs.go).
func (l *Log) CachedProofHashes(seqs []uint64, treeSize uint64) ([][][]byte, error) {
	c, leaves, size, err := l.cachedTree(seqs, treeSize)
	if err != nil {
		return nil, err
	}
	if c != nil {
		if hs, ok := c.InclusionHashes(size, leaves); ok {
			return hs, nil
		}
	}
	var ps []*merkle.Inclusion
	if c != nil {
		ps, err = c.InclusionProofs(l.hashReader(), size, leaves)
	} else {
		ps, err = l.InclusionProofs(seqs, treeSize)
	}
	if err != nil {
		return nil, err
	}
	total := 0
	for _, p := range ps {
		total += len(p.Hashes)
	}
	all := make([][]byte, total)
	out := make([][][]byte, len(ps))
	for i, p := range ps {
		out[i], all = all[:len(p.Hashes):len(p.Hashes)], all[len(p.Hashes):]
		for k := range p.Hashes {
			out[i][k] = p.Hashes[k][:]
		}
	}
	return out, nil
}

// CachedMultiProofHashes returns the hashes of the multi-inclusion proof
// (merkle.MultiInclusion) of seqs (strictly ascending) in the tree of
// treeSize leaves (0: the latest signed checkpoint's): from the proof cache
// alone when it holds them (a page of recent events), else from the single
// proofs (CachedProofHashes). Hashes from the cache alias its memory, which
// is never written again, and must not be modified. The answers with proofs
// use it (server/proofs.go).
func (l *Log) CachedMultiProofHashes(seqs []uint64, treeSize uint64) ([][]byte, error) {
	c, leaves, size, err := l.cachedTree(seqs, treeSize)
	if err != nil {
		return nil, err
	}
	if c != nil {
		if hs, ok := c.MultiInclusionHashes(size, leaves); ok {
			return hs, nil
		}
	}
	paths, err := l.CachedProofHashes(seqs, treeSize)
	if err != nil {
		return nil, err
	}
	if c == nil {
		// Past the latest signed checkpoint: CachedProofHashes proved from
		// storage, in the tree of treeSize leaves.
		size = treeSize
		leaves = make([]uint64, len(seqs))
		for i, seq := range seqs {
			leaves[i] = seq - 1
		}
	}
	return merkle.MultiInclusionFromPaths(size, leaves, paths)
}

// cachedTree returns the proof cache extended to the latest signed
// checkpoint, the leaf indexes of seqs and the tree size to prove them in;
// a nil cache (and no error) when the size is past the latest signed
// checkpoint's, for the caller to prove from storage.
func (l *Log) cachedTree(seqs []uint64, treeSize uint64) (*merkle.ProofCache, []uint64, uint64, error) {
	_, cp := l.Checkpoint()
	if cp == nil || treeSize > cp.Size {
		return nil, nil, 0, nil
	}
	if treeSize == 0 {
		treeSize = cp.Size
	}
	leaves := make([]uint64, len(seqs))
	for i, seq := range seqs {
		if seq == 0 || seq > treeSize {
			return nil, nil, 0, fmt.Errorf("logsign: seq %d is not in the tree of size %d", seq, treeSize)
		}
		leaves[i] = seq - 1
	}
	c := l.proofCache()
	if c.Size() < cp.Size {
		root, err := c.Extend(l.hashReader(), cp.Size)
		if err != nil {
			return nil, nil, 0, err
		}
		if c.Size() == cp.Size && root != cp.Root {
			l.proofs.CompareAndSwap(c, nil)
			return nil, nil, 0, errors.New("logsign: the stored tree does not have the root of the latest signed checkpoint")
		}
	}
	return c, leaves, treeSize, nil
}
