package merkle

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Defaults of NewProofCache: levels 8 and above of the whole tree (2.5 MB at
// 10M leaves) and every stored hash of the newest 8,192 leaves (0.5–1 MB).
const (
	DefaultCacheLevel = 8
	DefaultCacheTail  = 1 << 13
)

// cacheReadChunk bounds the indexes of one ReadHashes call of Extend (the
// first fill of a large tree reads ~2·size/2^level + 2·tail hashes).
const cacheReadChunk = 1 << 14

// ProofCache keeps, in memory, the stored hashes that inclusion proofs
// against the latest checkpoint share, so that proving a page of events
// reads nothing, or few hashes, from storage (docs/design/merkle.md,
// "Proof cache"):
//
//   - every stored hash at level >= Level of the tree (the upper nodes that
//     every proof crosses): about 2·size/2^Level hashes;
//   - every stored hash of the newest Tail leaves (all levels: newest-first
//     pages are there): a suffix of the storage indexes, about 2·Tail hashes
//     (up to twice that before it is trimmed);
//   - the hashes of the incomplete subtrees on the right edge of the tree of
//     the cached size (one per set bit of the size), which every proof near
//     the end of the tree needs and which are otherwise rehashed per proof.
//
// It holds only hashes read from a tlog.HashReader by Extend, which the
// caller calls with the size of a verified checkpoint over the stored tree:
// stored hashes never change once written, so a hash cached at a storage
// index below tlog.StoredHashCount of that size is the stored one for every
// later tree, and the cache never needs invalidating. Extend also recomputes
// the root of the tree from the cached right edge, for the caller to compare
// with the checkpoint's.
//
// Memory at a position the cache holds is never written again (slices only
// grow, and a trimmed tail is copied), which lets InclusionHashes hand out
// slices of it. A ProofCache is safe for concurrent use.
type ProofCache struct {
	level int    // levels >= level are kept for the whole tree
	tailN uint64 // leaves whose every stored hash is kept

	fill sync.Mutex // serialises Extend; the fields below change only under it and mu

	mu       sync.RWMutex
	size     uint64
	upper    [][]tlog.Hash // upper[l-level][n]: node (l, n), n < size>>l
	tailBase int64         // storage index of tail[0]
	tail     []tlog.Hash   // storage indexes [tailBase, tlog.StoredHashCount(size))
	edge     []tlog.Hash   // edge[j]: hash of [lo_j, size), see rightEdge
	root     tlog.Hash
}

// NewProofCache returns an empty cache keeping levels >= level of the tree
// and every hash of the newest tail leaves (tail is raised to 2^level, so
// that the right edge of the tree is always cached). level 0 keeps the
// whole tree.
func NewProofCache(level int, tail uint64) *ProofCache {
	level = min(max(level, 0), 62)
	tail = max(tail, uint64(1)<<level)
	return &ProofCache{level: level, tailN: tail}
}

// Size is the tree size the cache covers.
func (c *ProofCache) Size() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size
}

// Bytes is the memory the cached hashes take (not counting slice slack).
func (c *ProofCache) Bytes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.tail) + len(c.edge)
	for _, u := range c.upper {
		n += len(u)
	}
	return n * len(tlog.Hash{})
}

// Extend makes the cache cover the tree of size leaves, reading what it
// lacks from r (in sorted calls of at most 16,384 indexes), and returns the
// root of that tree computed from the cached hashes. r must hold the stored
// tree of at least size leaves; size must be the size of a checkpoint the
// caller verified, and the caller should compare the root with the
// checkpoint's. A size at or below the cached one reads nothing; the root
// returned is then the cached size's.
func (c *ProofCache) Extend(r tlog.HashReader, size uint64) (tlog.Hash, error) {
	if size > MaxTreeSize {
		return tlog.Hash{}, fmt.Errorf("merkle: tree size %d exceeds the maximum", size)
	}
	c.fill.Lock()
	defer c.fill.Unlock()
	// Only Extend writes the fields, under fill: reading them here needs no mu.
	if size <= c.size {
		return c.root, nil
	}
	if r == nil {
		return tlog.Hash{}, errors.New("merkle: nil hash reader")
	}
	end := tlog.StoredHashCount(int64(c.size))
	newEnd := tlog.StoredHashCount(int64(size))
	var newTailBase int64
	if size > c.tailN {
		newTailBase = tlog.StoredHashCount(int64(size - c.tailN))
	}
	contig := max(end, newTailBase) // [contig, newEnd) is read whole
	var idx []int64
	for l := c.level; size>>l > 0; l++ {
		have := int64(0)
		if l-c.level < len(c.upper) {
			have = int64(len(c.upper[l-c.level]))
		}
		for n := have; n < int64(size>>l); n++ {
			x := tlog.StoredHashIndex(l, n)
			if x >= contig {
				break // increasing in n
			}
			idx = append(idx, x)
		}
	}
	slices.Sort(idx)
	nUpper := len(idx)
	for x := contig; x < newEnd; x++ {
		idx = append(idx, x)
	}
	hs := make([]tlog.Hash, 0, len(idx))
	for i := 0; i < len(idx); i += cacheReadChunk {
		part := idx[i:min(i+cacheReadChunk, len(idx))]
		got, err := r.ReadHashes(part)
		if err != nil {
			return tlog.Hash{}, fmt.Errorf("merkle: proof cache: %w", err)
		}
		if len(got) != len(part) {
			return tlog.Hash{}, fmt.Errorf("merkle: proof cache: %d hashes read for %d indexes", len(got), len(part))
		}
		hs = append(hs, got...)
	}
	read := func(x int64) tlog.Hash {
		if x >= contig {
			return hs[nUpper+int(x-contig)]
		}
		return hs[sort.Search(nUpper, func(i int) bool { return idx[i] >= x })]
	}

	// Build the new state beside the old one, then swap it in under mu.
	upper := slices.Clone(c.upper)
	for l := c.level; size>>l > 0; l++ {
		if l-c.level == len(upper) {
			upper = append(upper, nil)
		}
		u := upper[l-c.level]
		for n := int64(len(u)); n < int64(size>>l); n++ {
			u = append(u, read(tlog.StoredHashIndex(l, n)))
		}
		upper[l-c.level] = u
	}
	tailBase, tail := c.tailBase, c.tail
	if newTailBase > end {
		tailBase, tail = contig, slices.Clone(hs[nUpper:])
	} else {
		tail = append(tail, hs[nUpper:]...)
		if dead := newTailBase - tailBase; dead > 0 && dead >= int64(len(tail))/2 {
			tail = slices.Clone(tail[dead:])
			tailBase = newTailBase
		}
	}
	node := func(level int, n uint64) (tlog.Hash, error) {
		x := tlog.StoredHashIndex(level, int64(n))
		if x >= tailBase && x-tailBase < int64(len(tail)) {
			return tail[x-tailBase], nil
		}
		if level >= c.level && level-c.level < len(upper) && n < uint64(len(upper[level-c.level])) {
			return upper[level-c.level][n], nil
		}
		return tlog.Hash{}, fmt.Errorf("merkle: proof cache: node (%d, %d) of the right edge is not cached", level, n)
	}
	edge, err := rightEdge(size, node)
	if err != nil {
		return tlog.Hash{}, err
	}
	c.mu.Lock()
	c.size, c.upper, c.tailBase, c.tail, c.edge, c.root = size, upper, tailBase, tail, edge, edge[0]
	c.mu.Unlock()
	return edge[0], nil
}

// rightEdge returns the hashes of the subtrees [lo_j, size) of the tree of
// size leaves (size > 0), where lo_0 = 0 and lo_{j+1} = lo_j + 2^b_j for the
// set bits b_0 > b_1 > ... of size: edge[0] is the root, edge[j] for j > 0
// the incomplete right siblings that RFC 6962 proofs near the end of the
// tree use, the last one a complete subtree.
func rightEdge(size uint64, node func(level int, n uint64) (tlog.Hash, error)) ([]tlog.Hash, error) {
	t := bits.OnesCount64(size)
	edge := make([]tlog.Hash, t)
	los := make([]uint64, t)
	lvs := make([]int, t)
	var lo uint64
	for j, rest := 0, size; j < t; j++ {
		b := 63 - bits.LeadingZeros64(rest)
		los[j], lvs[j] = lo, b
		lo += 1 << b
		rest &^= 1 << b
	}
	for j := t - 1; j >= 0; j-- {
		h, err := node(lvs[j], los[j]>>lvs[j])
		if err != nil {
			return nil, err
		}
		if j < t-1 {
			h = tlog.NodeHash(h, edge[j+1])
		}
		edge[j] = h
	}
	return edge, nil
}

// lookup returns a cached stored hash; mu must be held.
func (c *ProofCache) lookup(level int, n uint64) (tlog.Hash, bool) {
	if l := level - c.level; l >= 0 && l < len(c.upper) && n < uint64(len(c.upper[l])) {
		return c.upper[l][n], true
	}
	if x := storedIndex(level, n); x >= c.tailBase && x-c.tailBase < int64(len(c.tail)) {
		return c.tail[x-c.tailBase], true
	}
	return tlog.Hash{}, false
}

// storedIndex is tlog.StoredHashIndex in constant time: node (level, n) is
// stored just after leaf m = (n+1)·2^level - 1 and the level nodes that leaf
// completes below it, and leaf m is stored at 2m - popcount(m).
func storedIndex(level int, n uint64) int64 {
	m := (n+1)<<level - 1
	return int64(2*m) - int64(bits.OnesCount64(m)) + int64(level)
}

// InclusionProofs returns the inclusion proofs of leaves in the tree of size
// leaves, equal to InclusionProof's, from the cache and, for the hashes it
// does not hold (the lower levels of older leaves), one sorted ReadHashes
// call on r. size must be at most the cached size (see Extend); r must hold
// the tree of the cached size. The proofs share one backing array of hashes.
func (c *ProofCache) InclusionProofs(r tlog.HashReader, size uint64, leaves []uint64) ([]*Inclusion, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if size == 0 || size > c.size {
		return nil, fmt.Errorf("merkle: proof cache covers the tree of size %d, not %d", c.size, size)
	}
	for _, m := range leaves {
		if m >= size {
			return nil, fmt.Errorf("merkle: no leaf %d in a tree of size %d", m, size)
		}
	}
	if size == c.size {
		// Usually every hash is cached: one pass.
		if out, ok := c.proveCached(size, leaves); ok {
			return out, nil
		}
	}
	// Pass 1: the storage indexes that the cache lacks.
	var miss []int64
	need := func(level int, n uint64) {
		if _, ok := c.lookup(level, n); !ok {
			miss = append(miss, storedIndex(level, n))
		}
	}
	for _, m := range leaves {
		walkPath(m, size, need, func(int) {})
	}
	if size != c.size {
		// An older tree: its right edge is not the cached one.
		for rest, lo := size, uint64(0); rest != 0; {
			b := 63 - bits.LeadingZeros64(rest)
			need(b, lo>>b)
			lo += 1 << b
			rest &^= 1 << b
		}
	}
	var missH []tlog.Hash
	if len(miss) > 0 {
		if r == nil {
			return nil, errors.New("merkle: nil hash reader")
		}
		slices.Sort(miss)
		miss = slices.Compact(miss)
		hs, err := r.ReadHashes(miss)
		if err != nil {
			return nil, fmt.Errorf("merkle: inclusion proofs: %w", err)
		}
		if len(hs) != len(miss) {
			return nil, fmt.Errorf("merkle: inclusion proofs: %d hashes read for %d indexes", len(hs), len(miss))
		}
		missH = hs
	}
	// Pass 2: the proofs from the cache and what pass 1 read.
	node := func(level int, n uint64) (tlog.Hash, bool) {
		if h, ok := c.lookup(level, n); ok {
			return h, true
		}
		if i, ok := slices.BinarySearch(miss, storedIndex(level, n)); ok {
			return missH[i], true
		}
		return tlog.Hash{}, false
	}
	edge := c.edge
	if size != c.size {
		var err error
		edge, err = rightEdge(size, func(level int, n uint64) (tlog.Hash, error) {
			if h, ok := node(level, n); ok {
				return h, nil
			}
			return tlog.Hash{}, fmt.Errorf("merkle: inclusion proofs: node (%d, %d) not read", level, n)
		})
		if err != nil {
			return nil, err
		}
	}
	out, ok := c.prove(size, leaves, edge, node)
	if !ok {
		return nil, errors.New("merkle: inclusion proofs: a node was not read")
	}
	return out, nil
}

// InclusionHashes returns the hashes of the inclusion proofs of leaves in
// the tree of the cached size, leaf to root, one slice per leaf, without
// copying them: each hash aliases the cache's memory, which is never written
// again (the caller must not modify it). It reports false when size is not
// the cached size, a leaf is outside the tree, or the cache lacks a hash
// (older leaves): the caller then uses InclusionProofs.
func (c *ProofCache) InclusionHashes(size uint64, leaves []uint64) ([][][]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if size == 0 || size != c.size {
		return nil, false
	}
	all, ends, ok := c.cachedPaths(size, leaves)
	if !ok {
		return nil, false
	}
	out := make([][][]byte, len(leaves))
	start := 0
	for i, end := range ends {
		out[i] = all[start:end:end]
		start = end
	}
	return out, true
}

// MultiInclusionHashes returns the hashes of the multi-inclusion proof of
// leaves (strictly ascending) in the tree of the cached size (see
// MultiInclusion) from the cache alone, without copying them: each aliases
// the cache's memory and must not be modified. A page of neighbouring
// events needs a handful of the cache's nodes, where their single paths
// walk hundreds. It reports false when size is not the cached size, the
// leaves are not strictly ascending inside the tree, or the cache lacks a
// hash (older leaves): the caller then builds the proof from the single
// paths (MultiInclusionSources).
func (c *ProofCache) MultiInclusionHashes(size uint64, leaves []uint64) ([][]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if size == 0 || size != c.size || len(leaves) == 0 {
		return nil, false
	}
	for i, x := range leaves {
		if x >= size || i > 0 && x <= leaves[i-1] {
			return nil, false
		}
	}
	out := make([][]byte, 0, 2*bits.Len64(size))
	ok := true
	// node is the hash of subtree [lo, hi): a complete one is a stored
	// node, an incomplete one the right-edge subtree [lo_j, size).
	node := func(lo, hi uint64, j int) []byte {
		if hi == size && (hi-lo)&(hi-lo-1) != 0 {
			return c.edge[j][:]
		}
		level := bits.TrailingZeros64(hi - lo)
		h, hit := c.lookupRef(level, lo>>level)
		ok = ok && hit
		return h
	}
	// j counts the steps right along the right edge: [lo, size) is
	// edge subtree j.
	var walk func(lo, hi uint64, ls []uint64, j int)
	walk = func(lo, hi uint64, ls []uint64, j int) {
		if hi-lo == 1 || !ok {
			return
		}
		mid := lo + split(hi-lo)
		jr := j
		if hi == size {
			jr = j + 1
		}
		m, _ := slices.BinarySearch(ls, mid)
		if m == 0 {
			out = append(out, node(lo, mid, j))
		} else {
			walk(lo, mid, ls[:m], j)
		}
		if m == len(ls) {
			out = append(out, node(mid, hi, jr))
		} else {
			walk(mid, hi, ls[m:], jr)
		}
	}
	walk(0, size, leaves, 0)
	if !ok {
		return nil, false
	}
	return out, true
}

// lookupRef is lookup without copying the hash; mu must be held.
func (c *ProofCache) lookupRef(level int, n uint64) ([]byte, bool) {
	if l := level - c.level; l >= 0 && l < len(c.upper) && n < uint64(len(c.upper[l])) {
		return c.upper[l][n][:], true
	}
	if x := storedIndex(level, n); x >= c.tailBase && x-c.tailBase < int64(len(c.tail)) {
		return c.tail[x-c.tailBase][:], true
	}
	return nil, false
}

// proveCached is prove for the cached size from the cache alone.
func (c *ProofCache) proveCached(size uint64, leaves []uint64) ([]*Inclusion, bool) {
	all, ends, ok := c.cachedPaths(size, leaves)
	if !ok {
		return nil, false
	}
	hs := make([]tlog.Hash, len(all))
	for k, h := range all {
		hs[k] = tlog.Hash(h)
	}
	ps := make([]Inclusion, len(leaves))
	out := make([]*Inclusion, len(leaves))
	start := 0
	for i, end := range ends {
		ps[i] = Inclusion{LeafIndex: leaves[i], TreeSize: size, Hashes: hs[start:end:end]}
		out[i] = &ps[i]
		start = end
	}
	return out, true
}

// cachedPaths returns the audit paths of leaves in the tree of the cached
// size from the cache alone, leaf to root, one after the other in all (each
// hash aliasing the cache), and where each ends; false when a leaf is
// outside the tree or a hash is not cached. It is walkPath and lookup
// written out: the path of nearly every page. mu must be held.
func (c *ProofCache) cachedPaths(size uint64, leaves []uint64) ([][]byte, []int, bool) {
	all := make([][]byte, len(leaves)*bits.Len64(size-1))
	ends := make([]int, len(leaves))
	k := 0
	for i, m := range leaves {
		if m >= size {
			return nil, nil, false
		}
		start := k
		lo, hi := uint64(0), size
		j := 0
		for hi-lo > 1 {
			w := uint64(1) << (63 - bits.LeadingZeros64(hi-lo-1))
			var level int
			var n uint64
			if m < lo+w {
				r := hi - lo - w
				if r&(r-1) != 0 {
					all[k] = c.edge[j+1][:]
					k++
					hi = lo + w
					continue
				}
				level = bits.TrailingZeros64(r)
				n = (lo + w) >> level
				hi = lo + w
			} else {
				level = bits.TrailingZeros64(w)
				n = lo >> level
				lo += w
				if hi == size {
					j++
				}
			}
			if l := level - c.level; l >= 0 && l < len(c.upper) && n < uint64(len(c.upper[l])) {
				all[k] = c.upper[l][n][:]
			} else if x := storedIndex(level, n) - c.tailBase; x >= 0 && x < int64(len(c.tail)) {
				all[k] = c.tail[x][:]
			} else {
				return nil, nil, false
			}
			k++
		}
		slices.Reverse(all[start:k])
		ends[i] = k
	}
	return all[:k], ends, true
}

// prove builds the proofs of leaves in the tree of size leaves from node
// and the tree's right edge, leaf to root, in one backing array. It reports
// false when node lacks a hash.
func (c *ProofCache) prove(size uint64, leaves []uint64, edge []tlog.Hash, node func(level int, n uint64) (tlog.Hash, bool)) ([]*Inclusion, bool) {
	all := make([]tlog.Hash, 0, len(leaves)*bits.Len64(size-1))
	ps := make([]Inclusion, len(leaves))
	out := make([]*Inclusion, len(leaves))
	ok := true
	for i, m := range leaves {
		start := len(all)
		walkPath(m, size, func(level int, n uint64) {
			h, hit := node(level, n)
			ok = ok && hit
			all = append(all, h)
		}, func(j int) {
			all = append(all, edge[j])
		})
		if !ok {
			return nil, false
		}
		slices.Reverse(all[start:])
		ps[i] = Inclusion{LeafIndex: m, TreeSize: size, Hashes: all[start:len(all):len(all)]}
		out[i] = &ps[i]
	}
	return out, true
}

// walkPath walks the RFC 6962 audit path of leaf m in the tree of size
// leaves from the root down, calling stored for each sibling that is a
// complete subtree (stored node (level, n)) and edge(j) for each that is
// the incomplete right-edge subtree [lo_j, size) of rightEdge. It returns
// the length of the path.
func walkPath(m, size uint64, stored func(level int, n uint64), edge func(j int)) int {
	lo, hi := uint64(0), size
	j := 0 // while hi == size, lo == lo_j
	d := 0
	for hi-lo > 1 {
		k := uint64(1) << (63 - bits.LeadingZeros64(hi-lo-1)) // largest power of 2 < hi-lo
		if m < lo+k {
			w := hi - lo - k
			if w&(w-1) == 0 {
				b := bits.TrailingZeros64(w)
				stored(b, (lo+k)>>b)
			} else {
				// hi == size: [lo+k, size) is incomplete, lo+k == lo_{j+1}.
				edge(j + 1)
			}
			hi = lo + k
		} else {
			b := bits.TrailingZeros64(k)
			stored(b, lo>>b)
			lo += k
			if hi == size {
				j++
			}
		}
		d++
	}
	return d
}
