package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// The value column: the inline values of the indexed fields, stored a
// second time, packed by time bucket, so that a regex over a field whose
// dictionary is frozen reads only that field's values instead of every
// record.
//
// A dictionary freezes when its field has too many distinct values (a
// resource path names one object: at 10M events most are unique), and from
// then on new values are stored inline in the records. A regex over such a
// field cannot be turned into posting lists: its inline matches could only
// be found by scanning every record of the time range (60–170 bytes each,
// parsed header by header), which was as slow as PostgreSQL's sequential
// scan. The column holds, per field and time bucket, the packed entries
// (time, seq, value) of the events whose value is inline; a regex search
// scans a bucket's bytes for the regex's required literal at memory speed
// and runs the regex only on the values a literal falls in. Matches become
// candidates, merged newest first with the posting lists of the matching
// dictionary values, and are checked against their records like any
// posting (docs/design/storage.md, "The value column").
//
// Key: v + field(1) + sortTime(bucket start)(8) + seq(8) + 3, one key per
// group commit and bucket: seq is that of the group's first entry in the
// bucket, so keys are unique. Value: one or more operands, each
// uvarint(entries) uvarint(length of the entries) and the entries, each
// varint(time − the time before) varint(seq − the seq before)
// uvarint(prefix ref) uvarint(len) bytes (zigzag; an operand's first entry
// from the bucket's start and seq 0). A prefix ref of 0 says the bytes are
// the whole value; ref r > 0 says the value is value r−1 of the column's
// prefix dictionary followed by the bytes, which start at the value's last
// '/' (see "Prefixes" below). Stores of format 6 have keys ending in 2,
// whose entries have no prefix ref; stores of format 5 and earlier keys
// without the last byte, whose entries are uvarint(time − bucket start)
// uvarint(seq) uvarint(len) bytes: all three are read. A group's entries
// of a bucket come in seq order and mostly in time order, so the
// differences take about 2.5 bytes less per entry
// than offsets and seqs: measured on the benchmark's 1M events, the column
// 46.8 → 44.8 bytes per event (its values, which MinLZ does not
// entropy-code, are the rest). The operand's header lets a search skip its
// entries when the regex's literal does not occur in them.
//
// Prefixes (storage format 7). A value with a '/' at offset 8 or later is
// split at its last '/': the part before goes to a dictionary of its own
// (dictColPrefix), and the entry holds the part's id and the rest. Resource
// paths name one object under a parent shared by many (the benchmark's
// `//service/workspaces/<36-byte id>/collection/name-1234`: about 60 of
// 80 bytes are the parent, one of 54,601 at 10M events), so
// a pass reads the names alone, and a regex's literal is searched in the
// prefixes once per search instead of once per entry: an entry is a
// candidate when its prefix holds a literal or ends with the part of one
// before one of its '/'s (colPrefixes), or when a literal falls in its
// rest, found by the whole-operand search as before. A prefix enters the
// dictionary the second time the writer sees it (groupWriter.colPrefix):
// parents used once would fill it. The dictionary takes at most
// Config.DictionaryLimit prefixes, like the others; once frozen, new
// prefixes are written whole (ref 0), as is the first value under each.
//
// Why not one key per bucket, appended to with Pebble's merge operator:
// compactions would join a bucket's operands, but until they do (the newer
// data, and all of a freshly ingested store), every read merges them into a
// new buffer: measured on 1M freshly written events, the whole column was
// copied on every pass and a third of the pass went to memmove and the
// garbage collector.
const (
	// colBucketShift is the bucket width: 2^36 ns, about 69 s. A key
	// holds a group commit's entries of one bucket, so wider buckets make
	// larger values: fewer keys and blocks per pass, better compression.
	// Measured on 10M generated events against 2^34 (17 s): a full pass
	// 0.49–0.56 → 0.38–0.42 s, 34 → 28 bytes/event; 1M freshly written
	// (a key per group and bucket): 11–15 → 7.7–7.8 ms. Wider still would
	// make the unit of a first page large at high rates (a bucket holds
	// 690,000 events at 10,000 events/s).
	colBucketShift = 36
	colKeyLen      = 2 + 8 + 8 // format 5 and earlier: absolute entries
	colKeyLenDelta = colKeyLen + 1
	colDeltaMark   = 2 // the last byte of a key of difference-coded entries (format 6)
	colPrefixMark  = 3 // the last byte of a key of entries with prefix refs (format 7)
	// minColPrefix is the shortest prefix worth a dictionary value: an
	// entry's ref takes one to three bytes.
	minColPrefix = 8
)

// colFormat is how a column key's entries are written; the zero value is
// this build's.
type colFormat uint8

const (
	colPrefixed colFormat = iota // format 7
	colDelta                     // format 6
	colAbsolute                  // formats 5 and earlier
)

// splitColValue splits v at its last '/' into the prefix before it and the
// rest from it, when the prefix is at least minColPrefix bytes long.
func splitColValue(v []byte) (prefix, rest []byte, ok bool) {
	i := bytes.LastIndexByte(v, '/')
	if i < minColPrefix {
		return nil, v, false
	}
	return v[:i], v[i:], true
}

// colBucket is the bucket of time ns (floor division, also for negative
// times).
func colBucket(ns int64) int64 { return ns >> colBucketShift }

func colBucketPrefix(dst []byte, d dictID, bucket int64) []byte {
	dst = append(dst, pfxColumn, byte(d))
	return binary.BigEndian.AppendUint64(dst, sortTime(bucket<<colBucketShift))
}

// appendColEntry appends one entry of the bucket of ns as format 5 did
// (a test knob: Store.legacyWrites).
func appendColEntry(dst []byte, ns int64, seq uint64, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(ns-colBucket(ns)<<colBucketShift))
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// appendColDelta appends entry e as its differences from the entry
// before, prev, with its prefix ref when f is colPrefixed.
func appendColDelta(dst []byte, f colFormat, prev, e colEntry, ref uint32, v []byte) []byte {
	dst = binary.AppendVarint(dst, e.ns-prev.ns)
	dst = binary.AppendVarint(dst, int64(e.seq-prev.seq))
	if f == colPrefixed {
		dst = binary.AppendUvarint(dst, uint64(ref))
	}
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// colWrites collects a group's column entries by key.
type colWrites struct {
	idx    map[string]int // by bucket prefix
	keys   [][]byte
	vals   [][]byte   // entries
	last   []colEntry // per key, its last entry
	counts []int
	key    []byte
	op     []byte
	// format is colPrefixed but for test knobs (Store.legacyWrites), which
	// write the keys and entries of earlier formats.
	format colFormat
}

// add adds the entry of value v of field d at (ns, seq): v is the rest of
// the value after the prefix whose ref is ref, or the whole value (ref 0).
func (c *colWrites) add(d dictID, ns int64, seq uint64, ref uint32, v []byte) {
	if c.idx == nil {
		c.idx = map[string]int{}
	}
	b := colBucket(ns)
	c.key = colBucketPrefix(c.key[:0], d, b)
	i, ok := c.idx[string(c.key)]
	if !ok {
		i = len(c.keys)
		c.idx[string(c.key)] = i
		k := binary.BigEndian.AppendUint64(bytes.Clone(c.key), seq)
		switch c.format {
		case colDelta:
			k = append(k, colDeltaMark)
		case colPrefixed:
			k = append(k, colPrefixMark)
		}
		c.keys = append(c.keys, k)
		c.vals = append(c.vals, nil)
		c.last = append(c.last, colEntry{ns: b << colBucketShift})
		c.counts = append(c.counts, 0)
	}
	e := colEntry{ns: ns, seq: seq}
	if c.format == colAbsolute {
		c.vals[i] = appendColEntry(c.vals[i], ns, seq, v)
	} else {
		c.vals[i] = appendColDelta(c.vals[i], c.format, c.last[i], e, ref, v)
	}
	c.last[i] = e
	c.counts[i]++
}

func (c *colWrites) bytes() int {
	n := 0
	for i := range c.keys {
		n += len(c.keys[i]) + len(c.vals[i]) + 2*binary.MaxVarintLen64
	}
	return n
}

// writeTo adds the entries to b, one operand per key, in key order.
func (c *colWrites) writeTo(b *pebble.Batch) error {
	order := make([]int, len(c.keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return bytes.Compare(c.keys[x], c.keys[y]) })
	for _, i := range order {
		c.op = binary.AppendUvarint(c.op[:0], uint64(c.counts[i]))
		c.op = binary.AppendUvarint(c.op, uint64(len(c.vals[i])))
		c.op = append(c.op, c.vals[i]...)
		if err := b.Set(c.keys[i], c.op, nil); err != nil { // Set copies c.op
			return err
		}
	}
	return nil
}

func (c *colWrites) reset() {
	clear(c.idx)
	c.keys, c.vals, c.last, c.counts = c.keys[:0], c.vals[:0], c.last[:0], c.counts[:0]
}

// colEntry is a column match: an event's position.
type colEntry struct {
	ns  int64
	seq uint64
}

func (a colEntry) compare(b colEntry) int {
	if c := cmp.Compare(a.ns, b.ns); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// columnSource yields, newest first, the positions in [lo, hi) of the
// events whose inline value of field c.d matches the regex c. It reads the
// column in windows of buckets, newest window first, each window forwards:
// Pebble's Prev copies every value it steps over (measured: 575 MB of
// garbage per scan of 10M events), Next does not. Every entry read is
// charged to the search's budget (a column entry is an index entry). When
// the budget runs out between windows, it yields a marker at the start of
// the last window read: everything of the column at or above it has been
// yielded, so the search may resume below it.
type columnSource struct {
	ctx  context.Context
	it   *pebble.Iterator
	it2  *pebble.Iterator // reads the older half of wide windows; nil: one core
	c    *valueCond
	pg   *pager // the search's budget
	main colScanner
	aux  colScanner // the older half

	loBucket int64
	end      int64 // the next window ends before this bucket
	width    int64 // buckets of the next window
	density  int64 // entries per bucket in the last window
	more     bool  // buckets below end may hold entries
	key      []byte

	matches []colEntry // of the last window read, ascending; yielded from the end
	cur     colEntry
	floor   int64 // start of the last window read (Unix ns)
	scanned bool  // a window was read
	marker  bool  // cur is the marker: stop here
	err     error
}

// Window sizes: the first window is one bucket (a first page of a common
// match should not read far), then each doubles, within what keeps a window near
// colWindowEntries entries at the density seen so far. A window expected to
// hold colParallelEntries or more is read by two goroutines, one half each.
const colFirstWindow = 1

// A search that reads the column may examine, past its budget, up to
// maxScan/colOverrunDivisor candidates (at most colOverrunMax): the matches
// of the window it read last, which a next request would otherwise read
// again (pager.overrun). A candidate costs a record read; 256 of them,
// about a millisecond, against windows of up to 64 Ki entries.
const (
	colOverrunDivisor = 64
	colOverrunMax     = 256
)

// Variables for tests (SetColumnWindowsForTest).
var (
	colWindowEntries   = 1 << 16
	colParallelEntries = 1 << 13
)

// colScanner collects the matches of a range of the column.
type colScanner struct {
	ctx     context.Context // the search's; nil: none
	evals   int             // regex evaluations, for looking at ctx now and then
	m       *matcher
	metaKey []byte        // metadata: entries are pairs, and only those of this key + "\x00" count
	find    literalFinder // each scanner its own: it samples the text it reads
	pfx     *colPrefixes  // shared, read only
	lo, hi  colEntry
	matches []colEntry
	entries int // entries read
	key     []byte
	val     []byte // a prefixed entry's whole value
}

// colPrefixes is a search's view of the column's prefix dictionary, and
// which prefixes make their entries candidates whatever their rest.
type colPrefixes struct {
	vals valueView
	// cand has bit i set when some literal of the regex occurs in prefix
	// i, or may start in it and end in an entry's rest: the rest starts
	// with '/', so a literal l spans the two only at one of its own '/'s,
	// at k ≥ 1, with l[:k] ending the prefix.
	cand []uint64
	any  bool // some bit of cand is set
}

// newColPrefixes classifies the prefixes of vals for the literals lits
// (nil: no literal prefilter, every entry is a candidate anyway), starting
// from cached, a classification of the first n of them.
func newColPrefixes(vals valueView, lits []string, cached []uint64, n int) *colPrefixes {
	p := &colPrefixes{vals: vals}
	if lits == nil {
		return p
	}
	p.cand = cached
	if n < vals.len() {
		p.cand = make([]uint64, (vals.len()+63)/64)
		copy(p.cand, cached[:(n+63)/64])
		for i := n; i < vals.len(); i++ {
			v := vals.at(i)
			for _, l := range lits {
				if strings.Contains(v, l) || spansPrefix(v, l) {
					p.cand[i>>6] |= 1 << (i & 63)
					break
				}
			}
		}
	}
	for _, w := range p.cand {
		if w != 0 {
			p.any = true
			break
		}
	}
	return p
}

// colPrefixes classifies the column's prefixes (a view taken after the
// search's iterators were opened) for lits, extending the regex cache's
// classification when it has one: prefixes are only ever appended, and a
// classification costs about 50 ns per prefix (2.0–2.9 ms for the 49,758
// of 2M sample events, BenchmarkColumnPrefixes), against well under a
// millisecond for a first page of a common match.
func (s *Store) colPrefixes(lits []string) *colPrefixes {
	s.dicts.mu.RLock()
	vals := s.dicts.d[dictColPrefix].vals.view()
	s.dicts.mu.RUnlock()
	if lits == nil {
		return newColPrefixes(vals, nil, nil, 0)
	}
	key := "p\x00" + strings.Join(lits, "\x00") // regex conditions' keys start with a digit (newRegex)
	var cached []uint64
	n := 0
	if e := s.regex.get(key); e != nil && e.n <= vals.len() {
		cached, n = e.bits, e.n
	}
	p := newColPrefixes(vals, lits, cached, n)
	if n < vals.len() {
		s.regex.put(&regexEntry{key: key, bits: p.cand, n: vals.len()})
	}
	return p
}

// spansPrefix reports whether literal l may start in prefix v and end in
// the rest of a value split after v (a rest starts with '/').
func spansPrefix(v, l string) bool {
	for k := 1; k < len(l); k++ {
		if l[k] == '/' && strings.HasSuffix(v, l[:k]) {
			return true
		}
	}
	return false
}

func (p *colPrefixes) candidate(id uint32) bool {
	return int(id>>6) < len(p.cand) && p.cand[id>>6]&(1<<(id&63)) != 0
}

// newColumnSource opens the column of field d for the range [lo, hi) of
// (time, seq) suffixes; cores: wide windows may be read on two.
func (s *Store) newColumnSource(ctx context.Context, c *valueCond, lo, hi []byte, pg *pager, cores bool) (*columnSource, error) {
	cs := &columnSource{ctx: ctx, c: c, pg: pg, width: colFirstWindow}
	var l, h colEntry
	l.ns, l.seq = decodeTimeSeq(lo)
	h.ns, h.seq = decodeTimeSeq(hi)
	cs.main = colScanner{ctx: ctx, m: &c.re, find: literalFinder{lits: c.re.lits}, lo: l, hi: h}
	if c.d == dictMeta {
		cs.main.metaKey = []byte(c.metaKey + "\x00")
	}
	cs.aux = cs.main
	// The newest key below hi is at hi's time, or one nanosecond before
	// when hi is (t, 0): a position cannot have seq 0.
	top := h.ns
	if h.seq == 0 {
		top--
	}
	cs.loBucket = colBucket(l.ns)
	opts := &pebble.IterOptions{
		LowerBound: colBucketPrefix(nil, c.d, cs.loBucket),
		UpperBound: []byte{pfxColumn, byte(c.d) + 1},
	}
	if b := colBucket(top); b < math.MaxInt64>>colBucketShift { // else the next bucket's start does not fit
		opts.UpperBound = colBucketPrefix(nil, c.d, b+1)
	}
	// Both iterators are opened here, before the posting stream opens its
	// record iterator, so that every entry they see has its record.
	var err error
	if cs.it, err = s.db.NewIter(opts); err != nil {
		return nil, err
	}
	if cores && runtime.GOMAXPROCS(0) > 1 {
		if cs.it2, err = s.db.NewIter(opts); err != nil {
			cs.it.Close()
			return nil, err
		}
	}
	cs.main.pfx = s.colPrefixes(c.re.lits)
	cs.aux.pfx = cs.main.pfx
	cs.more = cs.position(cs.it.Last())
	return cs, nil
}

// seekBelow sets end past the newest bucket below bucket b that holds
// entries, skipping empty stretches of time in one seek; false when there is
// none.
func (cs *columnSource) seekBelow(b int64) bool {
	cs.key = colBucketPrefix(cs.key[:0], cs.c.d, b)
	return cs.position(cs.it.SeekLT(cs.key))
}

// position sets end past the bucket of the key the iterator is at; false
// when it is at none.
func (cs *columnSource) position(valid bool) bool {
	if !valid {
		cs.err = cs.it.Error()
		return false
	}
	k := cs.it.Key()
	if _, err := colKeyFormat(k); err != nil {
		cs.err = err
		return false
	}
	cs.end = colBucket(unsortTime(binary.BigEndian.Uint64(k[2:]))) + 1
	return true
}

// prev moves to the next position, newest first; false at the end, with
// err set on failure.
func (cs *columnSource) prev() bool {
	for len(cs.matches) == 0 {
		if cs.err != nil || cs.marker || !cs.more {
			return false
		}
		if cs.scanned && cs.pg.examined+cs.pg.indexed >= cs.pg.budget {
			cs.marker = true
			cs.cur = colEntry{ns: cs.floor}
			return true
		}
		if err := cs.ctx.Err(); err != nil {
			cs.err = err
			return false
		}
		cs.scanWindow()
	}
	cs.cur = cs.matches[len(cs.matches)-1]
	cs.matches = cs.matches[:len(cs.matches)-1]
	return true
}

var errCorruptColumn = errors.New("pebblestore: corrupt value column entry")

// colKeyFormat checks a column key's length and says how its entries are
// written.
func colKeyFormat(k []byte) (colFormat, error) {
	switch {
	case len(k) == colKeyLen:
		return colAbsolute, nil
	case len(k) == colKeyLenDelta && k[colKeyLen] == colDeltaMark:
		return colDelta, nil
	case len(k) == colKeyLenDelta && k[colKeyLen] == colPrefixMark:
		return colPrefixed, nil
	}
	return 0, fmt.Errorf("pebblestore: corrupt value column key %x", k)
}

// scanWindow reads the buckets [end−width, end) forwards and moves end
// below them.
func (cs *columnSource) scanWindow() {
	start := max(cs.end-cs.width, cs.loBucket)
	var err error
	if mid := start + (cs.end-start)/2; cs.it2 != nil && mid > start && cs.density*(cs.end-start) >= int64(colParallelEntries) {
		var err2 error
		done := make(chan struct{})
		columnHalves.Add(1)
		go func() {
			defer close(done)
			err2 = cs.aux.scanRange(cs.it2, cs.c.d, start, mid)
		}()
		err = cs.main.scanRange(cs.it, cs.c.d, mid, cs.end)
		<-done
		err = cmp.Or(err2, err)
		cs.main.matches = append(cs.main.matches, cs.aux.matches...)
		cs.aux.matches = cs.aux.matches[:0]
	} else {
		err = cs.main.scanRange(cs.it, cs.c.d, start, cs.end)
	}
	read := int64(cs.main.entries + cs.aux.entries)
	cs.pg.indexed += int(read)
	cs.main.entries, cs.aux.entries = 0, 0
	if err != nil {
		cs.err = err
		return
	}
	cs.matches, cs.main.matches = cs.main.matches, cs.matches[:0]
	slices.SortFunc(cs.matches, colEntry.compare)
	cs.floor, cs.scanned = start<<colBucketShift, true
	// The next window: twice as wide, but near colWindowEntries entries
	// at this window's density.
	cs.density = read / (cs.end - start)
	w := cs.width * 2
	if read > 0 {
		w = min(w, max(1, cs.width*int64(colWindowEntries)/read))
	}
	cs.width = w
	cs.more = start > cs.loBucket && cs.seekBelow(start)
}

// scanRange reads the buckets [start, end) of field d with it.
func (sc *colScanner) scanRange(it *pebble.Iterator, d dictID, start, end int64) error {
	sc.key = colBucketPrefix(sc.key[:0], d, start)
	for valid := it.SeekGE(sc.key); valid; valid = it.Next() {
		k := it.Key()
		format, err := colKeyFormat(k)
		if err != nil {
			return err
		}
		bucketStart := unsortTime(binary.BigEndian.Uint64(k[2:]))
		if colBucket(bucketStart) >= end {
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := sc.scanValue(bucketStart, v, format); err != nil {
			return err
		}
	}
	return it.Error()
}

// scanValue collects the matches of one key's operands. With a literal
// prefilter, the value's bytes are searched for the literals as a whole:
// an operand without one is skipped (when the whole bucket is inside the
// search's range and no prefix is a candidate by itself), and the regex
// runs only on the entries a literal starts in or whose prefix is a
// candidate.
func (sc *colScanner) scanValue(start int64, data []byte, format colFormat) error {
	m := sc.m
	s := unsafe.String(unsafe.SliceData(data), len(data)) // read only during the call
	hit := -1                                             // offset of the next literal at or after the current position; len(s): none
	inside := sc.lo.compare(colEntry{ns: start}) <= 0 && colEntry{ns: start + 1<<colBucketShift}.compare(sc.hi) <= 0
	skip := m.lits != nil && inside && (format != colPrefixed || !sc.pfx.any)
	if m.lits != nil && sc.find.sampled < literalSampleBytes {
		sc.find.sample(s)
	}
	for pos := 0; pos < len(s); {
		count, w1 := uvarint(data[pos:])
		if w1 <= 0 {
			return errCorruptColumn
		}
		blen, w2 := uvarint(data[pos+w1:])
		// An entry takes at least 3 bytes: a count beyond is corrupt
		// (and would corrupt the budget).
		if w2 <= 0 || blen > uint64(len(s)-pos-w1-w2) || count > blen/3 {
			return errCorruptColumn
		}
		body, end := pos+w1+w2, pos+w1+w2+int(blen)
		pos = end
		sc.entries += int(count)
		if skip {
			if hit < body {
				hit = sc.find.index(s, body)
			}
			if hit >= end {
				continue
			}
		}
		n, err := sc.scanEntries(start, data[:end], body, &hit, format)
		if err != nil {
			return err
		}
		if n != count {
			return errCorruptColumn
		}
	}
	return nil
}

// scanEntries collects the matches among the entries of data[from:] and
// returns how many there are; hit is as in scanValue, format says how the
// entries are written (the top of this file).
func (sc *colScanner) scanEntries(start int64, data []byte, from int, hit *int, format colFormat) (uint64, error) {
	m := sc.m
	s := unsafe.String(unsafe.SliceData(data), len(data))
	var n uint64
	e := colEntry{ns: start}
	for pos := from; pos < len(s); {
		off, w1 := uvarint(data[pos:])
		if w1 <= 0 {
			return 0, errCorruptColumn
		}
		seq, w2 := uvarint(data[pos+w1:])
		if w2 <= 0 {
			return 0, errCorruptColumn
		}
		if format != colAbsolute {
			// Zigzag, as binary.AppendVarint writes them.
			e.ns += int64(off>>1) ^ -int64(off&1)
			e.seq += uint64(int64(seq>>1) ^ -int64(seq&1))
		} else {
			e = colEntry{ns: start + int64(off), seq: seq}
		}
		pos += w1 + w2
		var ref uint64
		if format == colPrefixed {
			var w int
			// Every prefix an entry of the search's iterators refers to is
			// in the view: the writer publishes a prefix before the batch
			// using it commits, and the view is taken after the iterators
			// are opened.
			if ref, w = uvarint(data[pos:]); w <= 0 || ref > uint64(sc.pfx.vals.len()) {
				return 0, errCorruptColumn
			}
			pos += w
		}
		l, w3 := uvarint(data[pos:])
		a := pos + w3
		if w3 <= 0 || l > uint64(len(s)-a) {
			return 0, errCorruptColumn
		}
		b := a + int(l)
		if ref > 0 && (l == 0 || data[a] != '/') {
			return 0, errCorruptColumn // the literals' search relies on it (colPrefixes)
		}
		pos = b
		n++
		if e.compare(sc.lo) < 0 || e.compare(sc.hi) >= 0 {
			continue
		}
		if m.lits != nil && (ref == 0 || !sc.pfx.candidate(uint32(ref-1))) {
			if *hit < a {
				*hit = sc.find.index(s, a)
			}
			if *hit >= b {
				continue
			}
		}
		v := data[a:b]
		if ref > 0 {
			sc.val = append(append(sc.val[:0], sc.pfx.vals.at(int(ref-1))...), v...)
			v = sc.val
		}
		if sc.metaKey != nil {
			if !bytes.HasPrefix(v, sc.metaKey) {
				continue
			}
			v = v[len(sc.metaKey):]
		}
		if sc.evals++; sc.evals&(ctxCheckEvery-1) == 0 && sc.ctx != nil {
			if err := sc.ctx.Err(); err != nil {
				return 0, err
			}
		}
		if m.match(v) {
			sc.matches = append(sc.matches, e)
		}
	}
	return n, nil
}

// literalFinder finds the first of a set of literals in a text. Each
// literal is searched by its rarest byte (by the frequencies of the first
// literalSampleBytes of text it sees): strings.Index skips to candidates
// with IndexByte on a literal's first byte, and the first byte of a regex's
// literal is often the most common of the text ('/' in a resource path).
// The cost is about one IndexByte call per occurrence of the anchor byte,
// so a literal of common bytes only (`/app-instance-1194` over the
// resources of internal/sample, the end-to-end benchmark's data: its rarest
// byte 'i' is one in 61) is searched by two of its bytes at once instead
// (pairIndex, see pairAnchorRate).
type literalFinder struct {
	lits    []string
	anchors []int // per literal, the offset of its rarest byte
	// pairs holds, per literal, the offset of a second byte when its
	// rarest byte is common (more than one in pairAnchorRate) and the
	// literal is searched for both at once (pairIndex); else -1.
	pairs []int
	// pairHits counts, per literal and offset, how often the literal's
	// byte at that offset was at its place beside an occurrence of the
	// anchor in text, the text sampled so far (kept until the sample is
	// complete).
	pairHits [][]int
	text     []byte
	freq     [256]int
	sampled  int // bytes counted in freq
}

// pairAnchorRate: a literal whose rarest byte is more frequent than one
// byte in pairAnchorRate is searched by two of its bytes, eight positions
// at a time (pairIndex), instead of by IndexByte on one, which stops at
// every occurrence of the byte. Measured over the resources of 100,000
// events of internal/sample (BenchmarkLiteralFinder, and literals made with
// each byte of the text): IndexByte ran at 3–5 GB/s for anchors of one byte
// in 20 to 110 and pairIndex at 7–10.5; they cross between one in 200 and
// one in 215, beyond which IndexByte is faster (20–30 GB/s for one in 600
// or rarer, pairIndex staying at 10).
var pairAnchorRate = 200

// literalSampleBytes is the text sampled for the byte frequencies, over
// the first values a scanner reads. The first value alone can be a few
// hundred bytes (a group commit's entries of one bucket): on 1M events of
// internal/sample appended 1,000 at a time, the 263 bytes of the first
// value chose 't' (one byte in 49) for `/app-instance-1194`, 64 KiB chose
// 'i' (one in 71).
const literalSampleBytes = 64 << 10

// index returns the smallest offset at or after from where one of the
// literals starts in s, or len(s).
func (f *literalFinder) index(s string, from int) int {
	if f.anchors == nil {
		f.sample(s)
	}
	best := len(s)
	for i, l := range f.lits {
		k := f.anchors[i]
		if k2 := f.pairs[i]; k2 >= 0 {
			if p := pairIndex(s, from, best, l, min(k, k2), max(k, k2)); p >= 0 {
				best = p
			}
			continue
		}
		// Candidates are occurrences of l[k:] at or after from+k and
		// starting before best; each is checked for l[:k] before it.
		for at := from + k; at < best+k && at <= len(s); {
			j := strings.Index(s[at:min(len(s), best+len(l))], l[k:])
			if j < 0 {
				break
			}
			if p := at + j - k; s[p:p+k] == l[:k] {
				best = p
				break
			}
			at += j + 1
		}
	}
	return best
}

// sample counts the bytes of text (up to literalSampleBytes in all) and
// chooses the anchors by the counts so far. Any choice finds the same
// literals.
func (f *literalFinder) sample(text string) {
	text = text[:min(len(text), max(literalSampleBytes-f.sampled, 0))]
	for i := 0; i < len(text); i++ {
		f.freq[text[i]]++
	}
	f.sampled += len(text)
	from := len(f.text)
	f.text = append(f.text, text...)
	if f.anchors == nil {
		f.anchors = make([]int, len(f.lits))
		f.pairs = make([]int, len(f.lits))
		f.pairHits = make([][]int, len(f.lits))
	}
	for i, l := range f.lits {
		k := 0
		for j := 1; j < len(l); j++ {
			if f.freq[l[j]] < f.freq[l[k]] {
				k = j
			}
		}
		f.pairs[i] = -1
		if len(l) < 2 {
			f.anchors[i] = k
			continue
		}
		hits, at := f.pairHits[i], from
		if hits == nil || k != f.anchors[i] {
			hits, at = make([]int, len(l)), 0 // a new anchor: count over all the text
			f.pairHits[i] = hits
		}
		f.anchors[i] = k
		f.countPairs(l, k, hits, at)
		if f.freq[l[k]]*pairAnchorRate <= f.sampled {
			continue
		}
		// The second byte: the one found least often at its place beside
		// the anchor's occurrences (bytes of one common word occur
		// together), the rarer byte on equal counts.
		k2 := -1
		for j := range len(l) {
			if j != k && (k2 < 0 || hits[j] < hits[k2] || hits[j] == hits[k2] && f.freq[l[j]] < f.freq[l[k2]]) {
				k2 = j
			}
		}
		f.pairs[i] = k2
	}
	if f.sampled >= literalSampleBytes {
		f.text = nil // the choice is final
	}
}

// countPairs adds to hits[j], for each occurrence of l[k] in f.text at or
// after at, whether l[j] is at its place beside it (offsets within
// maxPairSpan of k only, which bounds the work for long literals).
func (f *literalFinder) countPairs(l string, k int, hits []int, at int) {
	const maxPairSpan = 32
	lo, hi := max(0, k-maxPairSpan), min(len(l), k+maxPairSpan+1)
	for at < len(f.text) {
		o := bytes.IndexByte(f.text[at:], l[k])
		if o < 0 {
			return
		}
		p := at + o - k // where l would start
		for j := lo; j < hi; j++ {
			if q := p + j; j != k && q >= 0 && q < len(f.text) && f.text[q] == l[j] {
				hits[j]++
			}
		}
		at += o + 1
	}
}

// pairIndex returns the smallest p in [from, limit) where l occurs in s, or
// -1. Candidates are the positions where l's bytes at offsets a < b both
// occur, tested eight at a time: the two bytes are compared with every
// byte of two 64-bit words b−a bytes apart, and a zero byte of the
// combined difference marks a candidate ((x − 0x01…) &^ x & 0x80… finds
// the lowest zero byte exactly; the bytes above it are only hints, so
// only the lowest is taken, and the search goes on after it).
func pairIndex(s string, from, limit int, l string, a, b int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	bs := bytesOf(s)
	pa, pb := ones*uint64(l[a]), ones*uint64(l[b])
	d := b - a
	// i is where byte a of the candidate starting at i−a would be.
	i, end := from+a, min(limit, len(s)-len(l)+1)+a
	for i < end && i+d+8 <= len(s) {
		// Four words at a time while no candidate is in them.
		for i+32 <= end && i+d+32 <= len(s) {
			w := bs[i : i+32 : i+32]
			v := bs[i+d : i+d+32 : i+d+32]
			x0 := (binary.LittleEndian.Uint64(w[0:8]) ^ pa) | (binary.LittleEndian.Uint64(v[0:8]) ^ pb)
			x1 := (binary.LittleEndian.Uint64(w[8:16]) ^ pa) | (binary.LittleEndian.Uint64(v[8:16]) ^ pb)
			x2 := (binary.LittleEndian.Uint64(w[16:24]) ^ pa) | (binary.LittleEndian.Uint64(v[16:24]) ^ pb)
			x3 := (binary.LittleEndian.Uint64(w[24:32]) ^ pa) | (binary.LittleEndian.Uint64(v[24:32]) ^ pb)
			if ((x0-ones)&^x0|(x1-ones)&^x1|(x2-ones)&^x2|(x3-ones)&^x3)&highs != 0 {
				break
			}
			i += 32
		}
		if i >= end || i+d+8 > len(s) {
			break
		}
		x := (binary.LittleEndian.Uint64(bs[i:]) ^ pa) | (binary.LittleEndian.Uint64(bs[i+d:]) ^ pb)
		t := (x - ones) &^ x & highs
		if t == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(t) >> 3
		if i >= end {
			return -1
		}
		if p := i - a; s[p:p+len(l)] == l {
			return p
		}
		i++
	}
	for ; i < end; i++ {
		if p := i - a; s[i] == l[a] && s[i+d] == l[b] && s[p:p+len(l)] == l {
			return p
		}
	}
	return -1
}

func (cs *columnSource) suffix(dst []byte) []byte {
	return appendTimeSeq(dst[:0], cs.cur.ns, cs.cur.seq)
}

func (cs *columnSource) close() error {
	if cs.it2 != nil {
		cs.it2.Close()
	}
	return cs.it.Close()
}

// buildColumn writes the value column of a store made before it existed
// (storage format 1): one pass over the records. It first deletes whatever
// an interrupted build left, so that a crash during the build only makes
// the next Open start over.
func (s *Store) buildColumn() error {
	start := time.Now()
	lo, hi := []byte{pfxColumn}, []byte{pfxColumn + 1}
	if err := s.db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxEvent}, UpperBound: []byte{pfxEvent + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var (
		cols    colWrites
		v       recView
		entries int
		events  int
	)
	flush := func() error {
		if len(cols.keys) == 0 {
			return nil
		}
		b := s.db.NewBatch()
		defer b.Close()
		if err := cols.writeTo(b); err != nil {
			return err
		}
		cols.reset()
		return b.Commit(pebble.NoSync)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != 1+16 {
			return fmt.Errorf("pebblestore: corrupt event key %x", k)
		}
		ns, seq := decodeTimeSeq(k[1:])
		rec, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := v.parseHeader(rec, true); err != nil {
			return fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
		}
		events++
		for f := range audittrail.NumFields {
			if v.inline&(1<<f) != 0 {
				cols.add(dictID(f), ns, seq, 0, v.fieldIn[f])
				entries++
			}
		}
		for _, pair := range v.metaIn {
			cols.add(dictMeta, ns, seq, 0, pair)
			entries++
		}
		if entries >= 1<<16 {
			if err := flush(); err != nil {
				return err
			}
			entries = 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if err := s.db.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
		return err
	}
	s.log.Info("pebblestore: built the value column of a store from an earlier version",
		"events", events, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
