package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// boundedReader reads the tree of a MemStore as it was at size leaves: an
// index at or past tlog.StoredHashCount(size) is an error, so a cache that
// reads past the tree it was extended to fails. It counts the hashes read.
type boundedReader struct {
	m     *MemStore
	limit int64
	mu    sync.Mutex
	reads int
	calls int
}

func (b *boundedReader) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	b.mu.Lock()
	b.reads += len(ix)
	b.calls++
	b.mu.Unlock()
	for _, x := range ix {
		if x >= b.limit {
			return nil, fmt.Errorf("read of storage index %d past the verified tree (%d hashes)", x, b.limit)
		}
	}
	return b.m.ReadHashes(ix)
}

func randomLeaves(r *rand.Rand, n int) []tlog.Hash {
	out := make([]tlog.Hash, n)
	var b [8]byte
	for i := range out {
		binary.BigEndian.PutUint64(b[:], r.Uint64())
		out[i] = sha256.Sum256(b[:])
	}
	return out
}

// TestProofCacheMatchesUncached checks, on random trees grown in random
// steps, with random cache shapes, that the cache's proofs equal
// InclusionProof's for random leaves of the cached size and of older
// sizes, that Extend's root is the tree's, and that the cache never reads a
// hash past the tree it is extended to.
func TestProofCacheMatchesUncached(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		total := 1 + r.IntN(3000)
		leaves := randomLeaves(r, total)
		m := &MemStore{}
		c := NewProofCache(r.IntN(7), uint64(r.IntN(300)))
		stored := 0
		for stored < total {
			next := min(total, stored+1+r.IntN(1+total/3))
			if _, err := Integrate(m, uint64(stored), leaves[stored:next]); err != nil {
				t.Fatal(err)
			}
			stored = next
			// The verified size may lag the stored tree.
			size := uint64(stored - r.IntN(1+stored/4))
			if size == 0 {
				continue
			}
			br := &boundedReader{m: m, limit: tlog.StoredHashCount(int64(size))}
			root, err := c.Extend(br, size)
			if err != nil {
				t.Fatalf("seed %d: Extend(%d): %v", seed, size, err)
			}
			want, err := TreeRoot(m, max(size, c.Size()))
			if err != nil {
				t.Fatal(err)
			}
			if root != want {
				t.Fatalf("seed %d: Extend(%d) root %x, want %x", seed, size, root, want)
			}
			cached := c.Size()
			br.limit = tlog.StoredHashCount(int64(cached))
			for _, sz := range []uint64{cached, 1 + r.Uint64N(cached)} {
				var ls []uint64
				for range 1 + r.IntN(60) {
					if r.IntN(2) == 0 {
						ls = append(ls, sz-1-r.Uint64N(min(sz, 64))) // newest
					} else {
						ls = append(ls, r.Uint64N(sz))
					}
				}
				got, err := c.InclusionProofs(br, sz, ls)
				if err != nil {
					t.Fatalf("seed %d: InclusionProofs(size %d): %v", seed, sz, err)
				}
				if hs, ok := c.InclusionHashes(sz, ls); ok {
					for i := range ls {
						if len(hs[i]) != len(got[i].Hashes) {
							t.Fatalf("seed %d: leaf %d of %d: %d hashes, want %d", seed, ls[i], sz, len(hs[i]), len(got[i].Hashes))
						}
						for k, h := range hs[i] {
							if tlog.Hash(h) != got[i].Hashes[k] {
								t.Fatalf("seed %d: leaf %d of %d: InclusionHashes differs at %d", seed, ls[i], sz, k)
							}
						}
					}
				} else if sz == cached && c.level == 0 {
					t.Fatalf("seed %d: InclusionHashes of size %d refused by a cache of the whole tree", seed, sz)
				}
				// The multi-inclusion proof of the same leaves, from the
				// cache alone when it holds every hash.
				set := slices.Clone(ls)
				slices.Sort(set)
				set = slices.Compact(set)
				want, err := ProveMultiInclusion(m, sz, set)
				if err != nil {
					t.Fatal(err)
				}
				if hs, ok := c.MultiInclusionHashes(sz, set); ok {
					if len(hs) != len(want.Hashes) {
						t.Fatalf("seed %d: multi-inclusion of %d leaves in %d: %d hashes, want %d", seed, len(set), sz, len(hs), len(want.Hashes))
					}
					for k, h := range hs {
						if tlog.Hash(h) != want.Hashes[k] {
							t.Fatalf("seed %d: multi-inclusion of %d leaves in %d differs at %d", seed, len(set), sz, k)
						}
					}
				} else if sz == cached && c.level == 0 {
					t.Fatalf("seed %d: MultiInclusionHashes of size %d refused by a cache of the whole tree", seed, sz)
				}
				if len(set) > 1 {
					if _, ok := c.MultiInclusionHashes(sz, []uint64{set[1], set[0]}); ok {
						t.Fatal("MultiInclusionHashes took descending leaves")
					}
				}
				for i, l := range ls {
					p, err := InclusionProof(m, l, sz)
					if err != nil {
						t.Fatal(err)
					}
					if got[i].LeafIndex != l || got[i].TreeSize != sz || !hashesEqual(got[i].Hashes, p.Hashes) {
						t.Fatalf("seed %d: leaf %d of %d: cached proof %v, want %v", seed, l, sz, got[i], p)
					}
					if err := tlog.CheckRecord(got[i].Hashes, int64(sz), refRoot(leaves[:sz]), int64(l), leaves[l]); err != nil {
						t.Fatalf("seed %d: leaf %d of %d: %v", seed, l, sz, err)
					}
				}
			}
		}
	}
}

// TestProofCacheReadsNothingForNewest checks that a page of the newest
// leaves is proven from memory, that older leaves cost one read call, and
// that memory stays bounded.
func TestProofCacheReadsNothingForNewest(t *testing.T) {
	const size = 5000
	leaves := randomLeaves(rand.New(rand.NewPCG(1, 2)), size)
	m := buildTree(t, leaves)
	c := NewProofCache(4, 256)
	br := &boundedReader{m: m, limit: m.Len()}
	if _, err := c.Extend(br, size); err != nil {
		t.Fatal(err)
	}
	if c.Bytes() > (2*size/16+2*2*256+64)*32 {
		t.Errorf("cache holds %d bytes", c.Bytes())
	}
	var newest, oldest []uint64
	for i := range uint64(50) {
		newest = append(newest, size-1-i)
		oldest = append(oldest, 100+i)
	}
	br.reads, br.calls = 0, 0
	if _, err := c.InclusionProofs(br, size, newest); err != nil {
		t.Fatal(err)
	}
	if br.calls != 0 {
		t.Errorf("newest page: %d read calls, want 0", br.calls)
	}
	if _, ok := c.InclusionHashes(size, newest); !ok {
		t.Error("InclusionHashes refused the newest page")
	}
	if _, ok := c.InclusionHashes(size, oldest); ok {
		t.Error("InclusionHashes served a page whose lower levels are not cached")
	}
	if _, ok := c.InclusionHashes(size-1, newest[1:]); ok {
		t.Error("InclusionHashes served another size than the cached one")
	}
	if _, err := c.InclusionProofs(br, size, oldest); err != nil {
		t.Fatal(err)
	}
	if br.calls != 1 {
		t.Errorf("older page: %d read calls, want 1", br.calls)
	}
	// Extending by a little reads only the new hashes.
	m2 := buildTree(t, append(leaves, randomLeaves(rand.New(rand.NewPCG(3, 4)), 10)...))
	br = &boundedReader{m: m2, limit: m2.Len()}
	if _, err := c.Extend(br, size+10); err != nil {
		t.Fatal(err)
	}
	if want := int(tlog.StoredHashCount(size+10) - tlog.StoredHashCount(size)); br.reads != want {
		t.Errorf("Extend by 10 leaves read %d hashes, want %d", br.reads, want)
	}
}

func TestProofCacheErrors(t *testing.T) {
	leaves := randomLeaves(rand.New(rand.NewPCG(5, 6)), 100)
	m := buildTree(t, leaves)
	c := NewProofCache(2, 8)
	if _, err := c.InclusionProofs(m, 10, []uint64{1}); err == nil {
		t.Error("proofs from an empty cache")
	}
	if _, err := c.Extend(&boundedReader{m: m, limit: 10}, 100); err == nil {
		t.Error("Extend past what the reader holds succeeded")
	}
	if c.Size() != 0 {
		t.Errorf("failed Extend left size %d", c.Size())
	}
	if _, err := c.Extend(m, 50); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size uint64
		leaf uint64
	}{{51, 0}, {50, 50}, {0, 0}} {
		if _, err := c.InclusionProofs(m, tc.size, []uint64{tc.leaf}); err == nil {
			t.Errorf("leaf %d of size %d: no error", tc.leaf, tc.size)
		}
	}
	if _, err := c.Extend(m, MaxTreeSize+1); err == nil {
		t.Error("Extend past MaxTreeSize")
	}
}

// TestProofCacheConcurrent proves while another goroutine extends (run
// with -race).
func TestProofCacheConcurrent(t *testing.T) {
	leaves := randomLeaves(rand.New(rand.NewPCG(8, 9)), 2000)
	m := buildTree(t, leaves)
	c := NewProofCache(3, 64)
	if _, err := c.Extend(m, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for s := uint64(2); s <= 2000; s += 37 {
			if _, err := c.Extend(m, s); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		sz := c.Size()
		ps, err := c.InclusionProofs(m, sz, []uint64{0, sz / 2, sz - 1})
		if err != nil {
			t.Fatal(err)
		}
		root := refRoot(leaves[:sz])
		for _, p := range ps {
			if err := tlog.CheckRecord(p.Hashes, int64(sz), root, int64(p.LeafIndex), leaves[p.LeafIndex]); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
}

func TestStoredIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	for range 100000 {
		level := r.IntN(20)
		n := r.Uint64N(1 << (40 - level))
		if got, want := storedIndex(level, n), tlog.StoredHashIndex(level, int64(n)); got != want {
			t.Fatalf("storedIndex(%d, %d) = %d, want %d", level, n, got, want)
		}
	}
	for level := range 62 {
		if got, want := storedIndex(level, 0), tlog.StoredHashIndex(level, 0); got != want {
			t.Fatalf("storedIndex(%d, 0) = %d, want %d", level, got, want)
		}
	}
}

// BenchmarkProofCache proves a page of 50 leaves of a tree of 100,000 in
// memory: the newest (all cached), older ones (lowest levels read from the
// MemStore), and, for comparison, with InclusionProof one by one.
//
//	go test ./merkle -run '^$' -bench ProofCache -benchmem
func BenchmarkProofCache(b *testing.B) {
	const size = 100_000
	m := buildTree(b, randomLeaves(rand.New(rand.NewPCG(1, 1)), size))
	c := NewProofCache(DefaultCacheLevel, DefaultCacheTail)
	if _, err := c.Extend(m, size); err != nil {
		b.Fatal(err)
	}
	page := func(first uint64) []uint64 {
		var ls []uint64
		for i := range uint64(50) {
			ls = append(ls, first+49-i)
		}
		return ls
	}
	for _, bc := range []struct {
		name   string
		leaves []uint64
	}{{"newest", page(size - 50)}, {"old", page(1000)}} {
		b.Run("cached-"+bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.InclusionProofs(m, size, bc.leaves); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("tlog-"+bc.name, func(b *testing.B) {
			for b.Loop() {
				for _, l := range bc.leaves {
					if _, err := InclusionProof(m, l, size); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// FuzzProofCache: for any tree size (up to 600), cache shape, steps of
// Extend and leaves, the cache's proofs are InclusionProof's.
func FuzzProofCache(f *testing.F) {
	f.Add(uint16(100), uint8(2), uint16(8), uint16(37), uint16(5))
	f.Add(uint16(1), uint8(0), uint16(0), uint16(0), uint16(0))
	f.Add(uint16(512), uint8(8), uint16(300), uint16(511), uint16(256))
	leaves := randomLeaves(rand.New(rand.NewPCG(42, 42)), 600)
	m := buildTree(f, leaves)
	f.Fuzz(func(t *testing.T, size uint16, level uint8, tail uint16, leaf uint16, first uint16) {
		n := uint64(size)%600 + 1
		c := NewProofCache(int(level%10), uint64(tail))
		if f := uint64(first) % (n + 1); f > 0 {
			if _, err := c.Extend(m, f); err != nil {
				t.Fatal(err)
			}
		}
		root, err := c.Extend(m, n)
		if err != nil {
			t.Fatal(err)
		}
		if want := refRoot(leaves[:n]); root != want {
			t.Fatalf("root of %d: %x, want %x", n, root, want)
		}
		l := uint64(leaf) % n
		got, err := c.InclusionProofs(m, n, []uint64{l, n - 1})
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range []uint64{l, n - 1} {
			want, err := InclusionProof(m, x, n)
			if err != nil {
				t.Fatal(err)
			}
			if !hashesEqual(got[i].Hashes, want.Hashes) {
				t.Fatalf("leaf %d of %d: cached proof differs", x, n)
			}
		}
	})
}
