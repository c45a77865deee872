package merkle

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxTreeSize is the largest tree size (and so the largest leaf count) the
// package accepts anywhere: in checkpoints, proofs and Integrate. The
// arithmetic of golang.org/x/mod/sumdb/tlog is exact only below 2^62.
const MaxTreeSize = 1<<62 - 1

// EmptyRoot is the root hash of the empty tree: SHA-256 of no bytes
// (RFC 6962, section 2.1).
var EmptyRoot = mustTreeHash()

func mustTreeHash() tlog.Hash {
	h, err := tlog.TreeHash(0, nil)
	if err != nil {
		panic(err)
	}
	return h
}

// HashStore keeps the hashes of a tree in the tlog stored-hash layout: the
// hash of the node at (level, n) lives at storage index
// tlog.StoredHashIndex(level, n). A tree of size s occupies exactly the
// indexes [0, tlog.StoredHashCount(s)), and appending leaves only ever adds
// indexes at the end, so a store keeps them as an append-only sequence, for
// example one key per index (big-endian, so keys sort by index) in an
// embedded key-value store, or one row per index in SQL. Any proof reads at
// most about 2·log2(size) hashes.
//
// The stores of the service implement it (in the same transaction as the
// events they integrate); MemStore is the in-memory version for tests and
// tools.
type HashStore interface {
	// ReadHashes returns the hashes at the given storage indexes, one per
	// index, or an error (for instance when an index is not stored).
	tlog.HashReader
	// WriteHashes stores hashes[i] at storage index indexes[i]. Integrate
	// calls it once per call with increasing, contiguous indexes starting at
	// the old tlog.StoredHashCount. An implementation may reject writes that
	// do not extend what it holds.
	WriteHashes(indexes []int64, hashes []tlog.Hash) error
}

// Integrate appends leaves (leaf hashes, see LeafHash) to the tree of size
// oldSize kept in store, writes the new hashes with one WriteHashes call, and
// returns the root of the tree of size oldSize+len(leaves).
//
// oldSize must be the size of the tree store holds: the caller keeps it in
// the same transaction as the hashes. Integrate reads at most about log2 of
// the size hashes per leaf from store, and none that it is writing, so the
// store need not make its pending writes readable.
func Integrate(store HashStore, oldSize uint64, leaves []tlog.Hash) (tlog.Hash, error) {
	if store == nil {
		return tlog.Hash{}, errors.New("merkle: Integrate: nil store")
	}
	if oldSize > MaxTreeSize || uint64(len(leaves)) > MaxTreeSize-oldSize {
		return tlog.Hash{}, fmt.Errorf("merkle: Integrate: tree size %d+%d exceeds the maximum", oldSize, len(leaves))
	}
	base := tlog.StoredHashCount(int64(oldSize))
	ov := &overlay{store: store, base: base}
	for i, h := range leaves {
		n := int64(oldSize) + int64(i)
		if tlog.StoredHashIndex(0, n) != base+int64(len(ov.pending)) {
			return tlog.Hash{}, errors.New("merkle: Integrate: stored-hash layout mismatch")
		}
		hs, err := tlog.StoredHashesForRecordHash(n, h, ov)
		if err != nil {
			return tlog.Hash{}, fmt.Errorf("merkle: Integrate leaf %d: %w", n, err)
		}
		ov.pending = append(ov.pending, hs...)
	}
	newSize := int64(oldSize) + int64(len(leaves))
	if len(ov.pending) > 0 {
		indexes := make([]int64, len(ov.pending))
		for i := range indexes {
			indexes[i] = base + int64(i)
		}
		if err := store.WriteHashes(indexes, ov.pending); err != nil {
			return tlog.Hash{}, fmt.Errorf("merkle: Integrate: %w", err)
		}
	}
	root, err := tlog.TreeHash(newSize, ov)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("merkle: Integrate: root: %w", err)
	}
	return root, nil
}

// Overlay returns a reader of the tree as Integrate left it before the
// hashes it wrote are stored: those of storage indexes from base (the first
// index Integrate wrote) are pending, in order; the others are read from
// store. (logsign proves consistency to witnesses from a tree it has not
// stored yet.)
func Overlay(store tlog.HashReader, base int64, pending []tlog.Hash) tlog.HashReader {
	return &overlay{store: store, base: base, pending: pending}
}

// overlay reads hashes from the store below base and from pending above it.
type overlay struct {
	store   tlog.HashReader
	base    int64
	pending []tlog.Hash
}

func (o *overlay) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var fromStore []int64
	var pos []int
	for i, x := range indexes {
		switch {
		case x < 0:
			return nil, fmt.Errorf("merkle: negative storage index %d", x)
		case x >= o.base:
			if x-o.base >= int64(len(o.pending)) {
				return nil, fmt.Errorf("merkle: storage index %d not yet written", x)
			}
			out[i] = o.pending[x-o.base]
		default:
			fromStore = append(fromStore, x)
			pos = append(pos, i)
		}
	}
	if len(fromStore) > 0 {
		hs, err := o.store.ReadHashes(fromStore)
		if err != nil {
			return nil, err
		}
		if len(hs) != len(fromStore) {
			return nil, fmt.Errorf("merkle: ReadHashes returned %d hashes for %d indexes", len(hs), len(fromStore))
		}
		for j, h := range hs {
			out[pos[j]] = h
		}
	}
	return out, nil
}

// TreeRoot returns the root hash of the tree of the given size whose hashes r
// holds (it reads at most 1+log2(size) of them).
func TreeRoot(r tlog.HashReader, size uint64) (tlog.Hash, error) {
	if size > MaxTreeSize {
		return tlog.Hash{}, fmt.Errorf("merkle: tree size %d exceeds the maximum", size)
	}
	if size > 0 && r == nil {
		return tlog.Hash{}, errors.New("merkle: nil hash reader")
	}
	return tlog.TreeHash(int64(size), r)
}

// MemStore is a HashStore in memory, safe for concurrent use. It refuses
// reads of indexes it does not hold and writes that would leave a gap or
// change a stored hash.
type MemStore struct {
	mu     sync.RWMutex
	hashes []tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (m *MemStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("merkle: MemStore: no hash at storage index %d (holding %d)", x, len(m.hashes))
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// WriteHashes implements HashStore.
func (m *MemStore) WriteHashes(indexes []int64, hashes []tlog.Hash) error {
	if len(indexes) != len(hashes) {
		return fmt.Errorf("merkle: MemStore: %d indexes for %d hashes", len(indexes), len(hashes))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	held := int64(len(m.hashes))
	var add []tlog.Hash
	for i, x := range indexes {
		switch {
		case x < 0 || x > held+int64(len(add)):
			return fmt.Errorf("merkle: MemStore: write at storage index %d would leave a gap (holding %d)", x, held+int64(len(add)))
		case x < held:
			if m.hashes[x] != hashes[i] {
				return fmt.Errorf("merkle: MemStore: storage index %d already holds another hash", x)
			}
		case x < held+int64(len(add)):
			if add[x-held] != hashes[i] {
				return fmt.Errorf("merkle: MemStore: storage index %d written twice with different hashes", x)
			}
		default:
			add = append(add, hashes[i])
		}
	}
	m.hashes = append(m.hashes, add...)
	return nil
}

// Len returns the number of stored hashes (tlog.StoredHashCount of the size).
func (m *MemStore) Len() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.hashes))
}
