package pebblestore

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Packed posting lists (storage format 5).
//
// A posting says "the event at (time, seq) has this value". Format 4 wrote
// one empty-valued key per posting (x + dict + id + time + seq), about eight
// per event: half of the store's ingest CPU went to them (memtable inserts,
// flushes and compactions of ~22-byte keys), measured by leaving them out
// (BenchmarkAppend1000, callers=4, 1M events: 26 → 13.5 µs of CPU per
// event; packed, 20.6). Now a group commit writes one key per list and time bucket it
// touches, a block: the key names the list and the block's newest posting,
// the value holds the block's other postings, newest first, as deltas.
//
// Key: p + dict(1) + id(4) + time(8) + seq(8) for dictionary values, k +
// dict(1) + fold32(fnv64(value))(4) + time(8) + seq(8) for inline values
// (format 5 wrote q + dict + fnv64(value)(8) + time + seq: read beside k
// where a store has them); (time, seq) is
// the block's newest posting. Value: for each further posting, newest
// first, uvarint(previous time − time) and varint(seq − previous seq)
// (zigzag: a group's seqs follow arrival, not time order).
//
// Blocks of one list from different group commits may overlap in time
// (producers send events of the same minutes), so a list is read as a lazy
// merge: blocks are visited in key order, newest first, and a block is
// opened (decoded) only once its newest posting is the next candidate. A
// block never spans two buckets of postBucketShift, so a search resuming
// below a cursor at time t need only look at the blocks of t's bucket above
// the cursor for postings below it: the keys of older buckets are all below
// t, those of newer buckets hold nothing below t.
//
// postBucketShift is the bucket width of blocks: 2^38 ns, about 4.6
// minutes. Wider buckets pack more postings per key when events are sparse
// in time (the benchmark's 10M events come 3.9 per second of event time: a
// bucket holds ~1,060 of them; keys per event by width in
// docs/design/storage.md); narrower ones bound what a resumed search reads
// of the bucket at its cursor, a block per group commit that posted to the
// list (at 300 small groups a second, up to ~80,000 per bucket).
const postBucketShift = 38

// Epochs (storage format 8).
//
// Each list grows at its own end, all lists at once: in a key space of one
// list after another, every flush of the memtable overlaps every table of
// the lists below it, and compactions rewrite them again and again. Measured
// by BenchmarkWriteAmplification at 10M events (internal/sample): the packed
// lists of dictionary values were rewritten 6.0 times what they store, those
// of inline values 5.9 times, against 1.2-1.5 for the records and the value
// column, which are written in time order. So format 8 puts an epoch of
// event time in front of the list: w + epoch + dict + id + time + seq (z for
// inline values). New postings go to the current epoch's key range; the
// older epochs' tables are left alone, as the records' are.
//
// A list is read one epoch after another, newest first: epochs are
// disjoint in time and a block never spans two (an epoch is a whole number
// of buckets), so the postings of an epoch all come before those of the
// epoch below it. What it costs is one seek per epoch of the time range
// searched that holds any posting (epochSet), for a list with few postings;
// a list with a page of postings in its newest epoch reads one.
//
// epochShift is the epoch width: 2^epochShift ns. Wider epochs mean fewer
// seeks for a rare value over a long range, narrower ones less rewriting
// while an epoch fills (design/performance.md, "Ingest", has both measured).
const epochShift = 47

// epochOf returns the epoch of sortTime t.
func epochOf(t uint64) uint32 { return uint32(t >> epochShift) }

// epochSet is the set of epochs the store has posting blocks in, sorted:
// a search seeks only those. The writer adds an epoch before it commits the
// first block in it, so a search that loads the set after opening its
// iterator sees the epoch of every block the iterator sees;
// retention removes the epochs it deleted whole. Readers load the slice
// without a lock; writers replace it.
type epochSet struct {
	mu sync.Mutex // serializes writers
	p  atomic.Pointer[[]uint32]
}

func (es *epochSet) load() []uint32 {
	if p := es.p.Load(); p != nil {
		return *p
	}
	return nil
}

// add adds epoch e.
func (es *epochSet) add(e uint32) {
	if _, found := slices.BinarySearch(es.load(), e); found {
		return
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	cur := es.load()
	i, found := slices.BinarySearch(cur, e)
	if found {
		return
	}
	next := slices.Insert(slices.Clone(cur), i, e)
	es.p.Store(&next)
}

// dropBelow removes the epochs below e.
func (es *epochSet) dropBelow(e uint32) {
	es.mu.Lock()
	defer es.mu.Unlock()
	cur := es.load()
	i, _ := slices.BinarySearch(cur, e)
	next := slices.Clone(cur[i:])
	es.p.Store(&next)
}

// within returns the epochs from lo to hi, inclusive, newest first.
func (es *epochSet) within(lo, hi uint32) []uint32 {
	cur := es.load()
	i, _ := slices.BinarySearch(cur, lo)
	j, found := slices.BinarySearch(cur, hi)
	if found {
		j++
	}
	if i >= j {
		return nil
	}
	out := slices.Clone(cur[i:j])
	slices.Reverse(out)
	return out
}

// loadEpochs reads the epochs of the store's w and z keys: one seek per
// epoch.
func (s *Store) loadEpochs() error {
	for _, kind := range []byte{pfxEpochPacked, pfxEpochHashed} {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; {
			k := it.Key()
			if len(k) < 5 {
				return firstErr(fmt.Errorf("pebblestore: corrupt posting key %x", k), it.Close())
			}
			e := binary.BigEndian.Uint32(k[1:5])
			s.epochs.add(e)
			if e == 1<<32-1 {
				break
			}
			ok = it.SeekGE(binary.BigEndian.AppendUint32([]byte{kind}, e+1))
		}
		if err := firstErr(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	return nil
}

// epochListPrefix returns the prefix of list's blocks in epoch e: kind
// (w or z), e, then list, the dictionary and the value's id or hash.
func epochListPrefix(dst []byte, kind byte, e uint32, list []byte) []byte {
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint32(dst, e)
	return append(dst, list...)
}

// epochKind returns the kind of the epoch lists that replace the packed
// lists of kind (p or k).
func epochKind(kind byte) byte {
	if kind == pfxPacked {
		return pfxEpochPacked
	}
	return pfxEpochHashed
}

// packedPrefix returns the packed list prefix of the list prefix pfx (x…
// or h…, listPrefix and hashListPrefix): p… with the same dictionary id,
// k… with the hash folded to 32 bits.
func packedPrefix(pfx []byte) []byte {
	switch pfx[0] {
	case pfxPost:
		p := bytes.Clone(pfx)
		p[0] = pfxPacked
		return p
	case pfxHash:
		p := append([]byte{pfxPackedHashed}, pfx[1])
		return binary.BigEndian.AppendUint32(p, fold32(binary.BigEndian.Uint64(pfx[2:])))
	default:
		panic("pebblestore: not a list prefix")
	}
}

// packedPrefix64 returns the prefix of format 5's packed list (q…) of the
// list prefix pfx of an inline value (h…).
func packedPrefix64(pfx []byte) []byte {
	if pfx[0] != pfxHash {
		panic("pebblestore: not a hashed list prefix")
	}
	p := bytes.Clone(pfx)
	p[0] = pfxPackedHash64
	return p
}

// postWrites collects a group's postings by list and writes them as
// blocks. Lists of dictionary values are found through a dense slot per
// value id (an array index per posting; a group posts ~8 times per event),
// lists of inline values through a map by hash.
type postWrites struct {
	slots    [numDicts][]uint32    // by dictionary and value id: index+1 in lists, 0 for none
	hashed   map[hashedList]uint32 // index+1 in lists
	lists    []postList            // the lists the group posts to; entries reused across groups
	order    []uint32              // lists in key order
	key, val []byte
	hash64   bool // write format 5's q lists (a test knob: Store.legacyWrites)
	// unpartitioned: write format 7's lists, p and k keys, without
	// epochs (a test knob: Store.legacyWrites).
	unpartitioned bool
	epochs        *epochSet // where the epochs written to are added; nil: not noted (tests)
}

type hashedList struct {
	d    dictID
	hash uint64
}

// postList is one list's postings in a group.
type postList struct {
	kind byte   // pfxPacked, pfxPackedHashed or pfxPackedHash64: the list's kind without its epoch
	d    dictID //
	list uint64 // the dictionary id, or the hash of the inline value
	ents []postEnt
}

// postEnt is a posting's event: sortTime of its time, and its seq.
type postEnt struct{ t, seq uint64 }

func (e postEnt) compare(f postEnt) int {
	if c := cmp.Compare(e.t, f.t); c != 0 {
		return c
	}
	return cmp.Compare(e.seq, f.seq)
}

// add adds the posting of the event (ns, seq) to the list of dictionary
// value id of d.
func (w *postWrites) add(d dictID, id uint32, ns int64, seq uint64) {
	s := w.slots[d]
	if int(id) >= len(s) {
		// Elements past the length were never written: they are zero.
		s = slices.Grow(s, int(id)+1-len(s))[:int(id)+1]
		w.slots[d] = s
	}
	if s[id] == 0 {
		s[id] = w.newList(pfxPacked, d, uint64(id))
	}
	l := &w.lists[s[id]-1]
	l.ents = append(l.ents, postEnt{sortTime(ns), seq})
}

// addHashed adds the posting of the event (ns, seq) to the hashed list of
// inline value v of d.
func (w *postWrites) addHashed(d dictID, v []byte, ns int64, seq uint64) {
	if w.hashed == nil {
		w.hashed = map[hashedList]uint32{}
	}
	kind, h := byte(pfxPackedHashed), uint64(fold32(fnv64a(v)))
	if w.hash64 {
		kind, h = pfxPackedHash64, fnv64a(v)
	}
	k := hashedList{d, h}
	i := w.hashed[k]
	if i == 0 {
		i = w.newList(kind, d, k.hash)
		w.hashed[k] = i
	}
	l := &w.lists[i-1]
	l.ents = append(l.ents, postEnt{sortTime(ns), seq})
}

// newList starts a list and returns its index+1.
func (w *postWrites) newList(kind byte, d dictID, list uint64) uint32 {
	n := len(w.lists)
	if n < cap(w.lists) {
		w.lists = w.lists[:n+1]
	} else {
		w.lists = append(w.lists, postList{})
	}
	l := &w.lists[n]
	l.kind, l.d, l.list, l.ents = kind, d, list, l.ents[:0]
	return uint32(n + 1)
}

func (w *postWrites) reset() {
	for _, l := range w.lists {
		if l.kind == pfxPacked {
			w.slots[l.d][l.list] = 0
		}
	}
	clear(w.hashed)
	w.lists = w.lists[:0]
}

// bytes bounds what writeTo adds to a batch.
func (w *postWrites) bytes() int {
	n := 0
	for _, l := range w.lists {
		n += 6 + 8 + timeSeqLen + len(l.ents)*2*binary.MaxVarintLen64
	}
	return n
}

// writeTo adds the group's blocks to b, in key order.
func (w *postWrites) writeTo(b *pebble.Batch) error {
	w.order = w.order[:0]
	for i := range w.lists {
		w.order = append(w.order, uint32(i))
	}
	slices.SortFunc(w.order, func(x, y uint32) int {
		a, b := &w.lists[x], &w.lists[y]
		if c := cmp.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		if c := cmp.Compare(a.d, b.d); c != 0 {
			return c
		}
		return cmp.Compare(a.list, b.list)
	})
	for _, i := range w.order {
		l := &w.lists[i]
		ents := l.ents
		// Newest first. A request's events mostly come in time order, so
		// a list is often sorted oldest first already.
		if slices.IsSortedFunc(ents, postEnt.compare) {
			slices.Reverse(ents)
		} else {
			slices.SortFunc(ents, func(a, b postEnt) int { return b.compare(a) })
		}
		for j := 0; j < len(ents); {
			first := ents[j]
			w.key = w.appendKey(w.key[:0], l, first)
			w.val = w.val[:0]
			prev := first
			k := j + 1
			for ; k < len(ents) && ents[k].t>>postBucketShift == first.t>>postBucketShift; k++ {
				p := ents[k]
				if p == prev {
					continue // two inline values of one event with the same hash: one posting
				}
				w.val = binary.AppendUvarint(w.val, prev.t-p.t)
				w.val = binary.AppendVarint(w.val, int64(p.seq-prev.seq))
				prev = p
			}
			if err := b.Set(w.key, w.val, nil); err != nil { // Set copies
				return err
			}
			j = k
		}
	}
	return nil
}

// appendKey appends the key of l's block whose newest posting is newest:
// under its epoch (format 8) unless l is of format 5's kind or w writes
// format 7's lists.
func (w *postWrites) appendKey(dst []byte, l *postList, newest postEnt) []byte {
	if l.kind != pfxPackedHash64 && !w.unpartitioned {
		e := epochOf(newest.t)
		if w.epochs != nil {
			w.epochs.add(e)
		}
		dst = append(dst, epochKind(l.kind))
		dst = binary.BigEndian.AppendUint32(dst, e)
	} else {
		dst = append(dst, l.kind)
	}
	dst = append(dst, byte(l.d))
	if l.kind == pfxPackedHash64 {
		dst = binary.BigEndian.AppendUint64(dst, l.list)
	} else {
		dst = binary.BigEndian.AppendUint32(dst, uint32(l.list))
	}
	dst = binary.BigEndian.AppendUint64(dst, newest.t)
	return binary.BigEndian.AppendUint64(dst, newest.seq)
}

var errCorruptPostings = errors.New("pebblestore: corrupt posting block")

// postBlock is an opened block: its undecoded rest and current posting.
type postBlock struct {
	t, seq uint64
	data   []byte
	buf    []byte // owns data
}

// advance moves b to its next posting; false when it has none.
func (b *postBlock) advance() (bool, error) {
	if len(b.data) == 0 {
		return false, nil
	}
	dt, n := binary.Uvarint(b.data)
	if n <= 0 || dt > b.t {
		return false, errCorruptPostings
	}
	ds, m := binary.Varint(b.data[n:])
	if m <= 0 {
		return false, errCorruptPostings
	}
	b.data = b.data[n+m:]
	b.t -= dt
	b.seq += uint64(ds)
	return true, nil
}

type blockHeap []*postBlock

func (h blockHeap) Len() int { return len(h) }
func (h blockHeap) Less(i, j int) bool {
	return h[i].t > h[j].t || h[i].t == h[j].t && h[i].seq > h[j].seq
}
func (h blockHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *blockHeap) Push(x any)   { *h = append(*h, x.(*postBlock)) }
func (h *blockHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// packedList yields the postings of one list in [lo, hi), newest first: a
// lazy merge of its blocks (see the top of this file), one epoch after
// another for a list of format 8 (see "Epochs").
type packedList struct {
	it      *pebble.Iterator
	plen    int
	pending bool // it is at a block not opened yet
	open    blockHeap
	free    []*postBlock
	hiT     uint64 // hi: postings at or above it are skipped
	hiSeq   uint64
	loT     uint64 // lo: the list ends below it
	loSeq   uint64
	t, seq  uint64 // the current posting
	// Epochs: the list's identity (dict + id or hash), its kind (w or z),
	// the epochs still to read after the current one, newest first, and
	// the bounds of the current one.
	list         []byte
	kind         byte
	epochs       []uint32
	lower, upper []byte
}

// newPackedList opens the packed list of packed prefix p (packedPrefix)
// over the (time, seq) suffixes [lo, hi): of format 7 and earlier.
func (s *Store) newPackedList(p, lo, hi []byte) (*packedList, error) {
	pl := newListRange(lo, hi)
	pl.setBounds(p)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pl.lower, UpperBound: pl.upper})
	if err != nil {
		return nil, err
	}
	pl.it = it
	pl.pending = it.Last()
	return pl, nil
}

// newEpochList opens the list of packed prefix p (packedPrefix: p or k,
// dictionary, id or hash) in the epochs of format 8 over [lo, hi); nil
// when the store has no epoch in that range.
func (s *Store) newEpochList(p, lo, hi []byte) (*packedList, error) {
	pl := newListRange(lo, hi)
	pl.kind, pl.list = epochKind(p[0]), p[1:]
	// The iterator before the epochs: the writer adds an epoch before it
	// commits a block in it, so every block in the iterator's view is in
	// an epoch loaded after it. The other way round, a group committed in
	// between with blocks in a new epoch and in a known one showed the
	// search half of it (TestEpochAddedDuringSearch).
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pl.kind}, UpperBound: []byte{pl.kind + 1}})
	if err != nil {
		return nil, err
	}
	pl.epochs = s.epochs.within(epochOf(pl.loT), epochOf(pl.hiT))
	if len(pl.epochs) == 0 {
		return nil, it.Close()
	}
	pl.nextEpochBounds()
	pl.it = it
	it.SetBounds(pl.lower, pl.upper)
	pl.pending = it.Last()
	return pl, nil
}

// newListRange returns a list to read over the (time, seq) suffixes [lo,
// hi), zero-padded if shorter.
func newListRange(lo, hi []byte) *packedList {
	pl := &packedList{}
	pl.loT, pl.loSeq = decodeSuffix(lo)
	pl.hiT, pl.hiSeq = decodeSuffix(hi)
	return pl
}

// nextEpochBounds sets the bounds to the next epoch of pl.epochs and
// removes it from them.
func (pl *packedList) nextEpochBounds() {
	p := epochListPrefix(nil, pl.kind, pl.epochs[0], pl.list)
	pl.epochs = pl.epochs[1:]
	pl.setBounds(p)
}

// setBounds sets pl's iterator bounds for the blocks of prefix p (one list,
// or one list's epoch) that may hold postings in [lo, hi): from p + lo to
// the end of hi's bucket. Blocks of hi's bucket may hold postings below hi;
// blocks of newer buckets cannot. New slices each time: the iterator may
// keep the ones it was given.
func (pl *packedList) setBounds(p []byte) {
	pl.plen = len(p)
	upper := bytes.Clone(p)
	if b := pl.hiT>>postBucketShift + 1; b < 1<<(64-postBucketShift) {
		upper = binary.BigEndian.AppendUint64(upper, b<<postBucketShift)
		upper = binary.BigEndian.AppendUint64(upper, 0)
	} else {
		upper = append(upper, bytes.Repeat([]byte{0xff}, timeSeqLen+1)...)
	}
	pl.upper = upper
	lower := binary.BigEndian.AppendUint64(bytes.Clone(p), pl.loT)
	pl.lower = binary.BigEndian.AppendUint64(lower, pl.loSeq)
}

// nextEpoch moves pl to its next epoch; false when it has none left.
func (pl *packedList) nextEpoch() bool {
	if len(pl.epochs) == 0 {
		return false
	}
	pl.nextEpochBounds()
	pl.it.SetBounds(pl.lower, pl.upper)
	pl.pending = pl.it.Last()
	return true
}

// decodeSuffix splits a (time, seq) suffix, zero-padded if shorter.
func decodeSuffix(b []byte) (t, seq uint64) {
	var x [timeSeqLen]byte
	copy(x[:], b)
	return binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:])
}

// next moves to the next posting; false at the end of the list or on an
// error (err).
func (pl *packedList) next() (bool, error) {
	for {
		// Open every block whose newest posting is above the open
		// blocks' current ones: it may hold the next posting.
		for pl.pending {
			k := pl.it.Key()[pl.plen:]
			kt, kseq := decodeSuffix(k)
			if len(pl.open) > 0 && !(kt > pl.open[0].t || kt == pl.open[0].t && kseq > pl.open[0].seq) {
				break
			}
			b := pl.block()
			v, err := pl.it.ValueAndErr()
			if err != nil {
				return false, err
			}
			b.buf = append(b.buf[:0], v...)
			b.data, b.t, b.seq = b.buf, kt, kseq
			heap.Push(&pl.open, b)
			pl.pending = pl.it.Prev()
		}
		if !pl.pending {
			if err := pl.it.Error(); err != nil {
				return false, err
			}
		}
		if len(pl.open) == 0 {
			// This epoch is read (or the list's only one): every
			// posting of the next is below its postings.
			if pl.nextEpoch() {
				continue
			}
			return false, nil
		}
		top := pl.open[0]
		pl.t, pl.seq = top.t, top.seq
		if ok, err := top.advance(); err != nil {
			return false, err
		} else if ok {
			heap.Fix(&pl.open, 0)
		} else {
			pl.free = append(pl.free, heap.Pop(&pl.open).(*postBlock))
		}
		if pl.t < pl.loT || pl.t == pl.loT && pl.seq < pl.loSeq {
			return false, nil // newest first: everything after is below lo too
		}
		if pl.t < pl.hiT || pl.t == pl.hiT && pl.seq < pl.hiSeq {
			return true, nil
		}
	}
}

func (pl *packedList) block() *postBlock {
	if n := len(pl.free); n > 0 {
		b := pl.free[n-1]
		pl.free = pl.free[:n-1]
		return b
	}
	return &postBlock{}
}

// suffix appends the current posting's (time, seq) suffix to dst[:0].
func (pl *packedList) suffix(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst[:0], pl.t)
	return binary.BigEndian.AppendUint64(dst, pl.seq)
}

func (pl *packedList) close() { pl.it.Close() }
