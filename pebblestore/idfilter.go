package pebblestore

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
)

// idFilter is a bloom filter over the ids of every stored event, in memory,
// so that the idempotency check of a new id (almost every id a producer
// sends) usually needs no read at all.
//
// Why: the check is a SeekPrefixGE per id on an iterator over the id range.
// The tables' bloom filters answer it without reading a block, but every
// seek also descends the memtables' skiplists, which no filter covers: in a
// perf profile of the server's batch ingest (1M events) the lookups were 6.6
// % of its CPU, two thirds of it in those skiplist seeks. A filter hit (an id
// seen before, or a false positive, ~1 %) takes the old path.
//
// The filter is built at Open in the background from the id keys, and the
// writer adds every id it stores from the start, so once the build is done
// (ready) a negative answer means the id is not stored. Before that, and
// always after a failed build, lookups read the database as before. It is
// a list of parts: the first sized at Open for twice the events then stored
// (at least 1M), each later one twice the one before, started when the last
// is full. At least 10 bits per id (a part's blocks are rounded up to a
// power of two), k = 7 probes in one 512-bit block: TestIDFilter bounds the
// false positives at 2 % over several parts (0.35 % when written); a part
// for 20M ids, the first of a store opened with 10M events, takes 32 MiB.
//
// Only the writer goroutine reads it and adds to the last part; the builder
// adds to the first part concurrently, hence the atomic words.
type idFilter struct {
	seed  maphash.Seed
	parts []*bloomPart // the writer's; parts[0] is shared with the builder
	ready atomic.Bool
	done  chan struct{} // closed when the build has ended (either way)
	stop  context.CancelFunc
}

// bloomPart is one blocked bloom filter: blocks of 8 words (one cache line),
// each id's k bits in the block its hash selects.
type bloomPart struct {
	words []atomic.Uint64 // outside the Go heap where possible (allocFilterWords)
	free  func()
	mask  uint64 // blocks − 1 (a power of two)
	cap   int64  // ids it was sized for
	n     atomic.Int64
}

const (
	idFilterBitsPerID = 10
	idFilterProbes    = 7
	idFilterMinIDs    = 1 << 20
)

func newBloomPart(ids int64) *bloomPart {
	blocks := uint64(1) << bits.Len64(uint64(ids*idFilterBitsPerID/512))
	words, free := allocFilterWords(int(blocks * 8))
	return &bloomPart{words: words, free: free, mask: blocks - 1, cap: ids}
}

// probe calls f with each of the id's k (word, bit) positions in p: the
// block from the hash's low bits, each position 9 bits of a second hash
// mixed from it (splitmix64's finalizer). Positions in arithmetic
// progression (double hashing) gave 2–6 % false positives in blocks this
// small.
func (p *bloomPart) probe(h uint64, f func(w *atomic.Uint64, bit uint64) bool) bool {
	block := (h & p.mask) * 8
	x := h ^ h>>30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	for range idFilterProbes {
		if !f(&p.words[block+(x>>6)&7], 1<<(x&63)) {
			return false
		}
		x >>= 9
	}
	return true
}

func (p *bloomPart) add(h uint64) {
	p.probe(h, func(w *atomic.Uint64, bit uint64) bool { w.Or(bit); return true })
	p.n.Add(1)
}

func (p *bloomPart) mayContain(h uint64) bool {
	return p.probe(h, func(w *atomic.Uint64, bit uint64) bool { return w.Load()&bit != 0 })
}

// newIDFilter starts building the filter of the ids stored in db, of which
// there are about events.
func newIDFilter(db *pebble.DB, events uint64) *idFilter {
	ctx, stop := context.WithCancel(context.Background())
	f := &idFilter{seed: maphash.MakeSeed(), done: make(chan struct{}), stop: stop}
	f.parts = []*bloomPart{newBloomPart(max(2*int64(events), idFilterMinIDs))}
	first := f.parts[0]
	go func() {
		defer close(f.done)
		if err := f.build(ctx, db, first); err == nil {
			f.ready.Store(true)
		}
	}()
	return f
}

// build adds the id keys of db to p.
func (f *idFilter) build(ctx context.Context, db *pebble.DB, p *bloomPart) error {
	n := 0
	return scan(db, []byte{pfxID}, func(k, _ []byte) error {
		if len(k) == 1+16 {
			p.add(maphash.Bytes(f.seed, k[1:]))
		}
		if n++; n%4096 == 0 {
			return ctx.Err() // Close stops a build still running
		}
		return nil
	})
}

// add records a stored id (writer only).
func (f *idFilter) add(id uuid.UUID) {
	last := f.parts[len(f.parts)-1]
	if last.n.Load() >= last.cap {
		last = newBloomPart(2 * last.cap)
		f.parts = append(f.parts, last)
	}
	last.add(maphash.Bytes(f.seed, id[:]))
}

// absent says that id is certainly not stored (writer only).
func (f *idFilter) absent(id uuid.UUID) bool {
	if !f.ready.Load() {
		return false
	}
	h := maphash.Bytes(f.seed, id[:])
	for _, p := range f.parts {
		if p.mayContain(h) {
			return false
		}
	}
	return true
}

// close stops a build still running, waits for it and frees the parts; the
// writer must have ended.
func (f *idFilter) close() {
	f.stop()
	<-f.done
	for _, p := range f.parts {
		p.free()
	}
	f.parts = nil
}
