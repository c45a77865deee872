package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// The index check (CheckIndexes, run by "audittrail verify store"): every
// key of the database is read once, so that Pebble checks the checksum of
// every data block, and the derived structures are checked against the
// records they are derived from.
//
// The records (e keys) and the indexes are read as they are stored, in key
// order, on several goroutines, with no point lookup. Each index entry that
// names an event (a posting, a value column entry, an id entry, a log
// position) is reduced to a 64-bit hash of what it says (index, dictionary,
// value id or hash, event time, seq) under a seed drawn for the check; the
// records add the hashes of the entries they should have to a sum per seq,
// the indexes subtract those of the entries they hold. Every sum is zero
// when the indexes hold exactly the records' entries: one uint64 per event
// of memory (80 MB at 10M events). Only when a sum is not zero is the store
// read a second time, collecting the entries of the disagreeing events
// (the first maxDetailedEvents of them) to say which entry is missing or
// extra. See docs/design/storage.md, "Index check".

// IndexFinding is one problem CheckIndexes found.
type IndexFinding struct {
	// Kind is one of "corrupt" (a block or key that cannot be read or
	// decoded), "missing" (an event lacks an entry of an index), "extra"
	// (an index entry names an event that does not exist or does not have
	// that value), "dictionary" (a record refers to a value its dictionary
	// does not hold, holds a value inline that its dictionary holds, or a
	// dictionary holds a value twice), "layout" (an entry in the wrong
	// place: an epoch, bucket or key that does not fit what it holds), and
	// "statistics" (posting counts, unused dictionary values).
	Kind string
	// Index names the index or keyspace: "postings of principal", "value
	// column of resource", "id index", "log positions", "dictionary of
	// action", "posting counts of action", "database".
	Index string
	// Seq, EventID and Time name the event concerned, when there is one.
	Seq     uint64
	EventID string
	Time    time.Time
	Detail  string
	// Warning: no search result depends on it (the planner's statistics,
	// which lag by design, and values no event refers to): "verify store"
	// prints it as a note and does not fail on it.
	Warning bool
}

func (f IndexFinding) String() string {
	var b strings.Builder
	b.WriteString(f.Index)
	b.WriteString(": ")
	if f.Seq != 0 {
		fmt.Fprintf(&b, "event seq %d", f.Seq)
		if f.EventID != "" {
			fmt.Fprintf(&b, " (id %s)", f.EventID)
		}
		if !f.Time.IsZero() {
			fmt.Fprintf(&b, " at %s", f.Time.UTC().Format(time.RFC3339Nano))
		}
		b.WriteString(": ")
	}
	b.WriteString(f.Detail)
	return b.String()
}

// IndexCheck is what CheckIndexes read and compared.
type IndexCheck struct {
	Keys, Bytes uint64 // keys read and their bytes (keys and values)
	Events      uint64 // records read
	// Entries is the number of index entries compared with the records.
	Entries uint64
	// BeforeCutoff counts the records and index entries before the
	// retention cutoff, which are hidden from searches and being deleted:
	// they are read, but not compared.
	BeforeCutoff uint64
	// Disagreeing is the number of events whose index entries disagree
	// with their record.
	Disagreeing uint64
	// Complete: every key was read. When false (a corrupt block), the
	// comparison was not made: its findings would be those of the keys
	// not read.
	Complete bool
}

// maxDetailedEvents bounds the events whose entries the second pass
// collects and names one by one; the others are counted.
const maxDetailedEvents = 1000

// CheckIndexes reads every key of the store and checks the indexes against
// the records: every event has the postings, value column entries, id entry
// and log position its fields give it, every such entry names an event that
// exists and has that value, the records refer only to values their
// dictionaries hold (and hold inline only the values they must), the
// dictionaries hold each value once, and the posting counts are those of
// the records. Each problem is passed to report (from one goroutine at a
// time). Entries of events before the retention cutoff are not compared.
// workers goroutines read parts of the key space. The error is for a check
// that could not run (the context, a closed store); what the check finds,
// corrupt blocks included, is reported.
func (s *Store) CheckIndexes(ctx context.Context, workers int, report func(IndexFinding)) (IndexCheck, error) {
	if err := s.rlock(); err != nil {
		return IndexCheck{}, err
	}
	defer s.closeMu.RUnlock()
	c := &checker{s: s, report: report, last: s.lastSeq.Load(), cutoff: s.cutoff.Load(),
		seed: rand.Uint64(), vseed: maphash.MakeSeed()}
	c.acc = make([]uint64, c.last+1)
	s.dicts.mu.RLock()
	for d := range numDicts {
		c.vals[d] = s.dicts.d[d].vals.view()
		c.erased[d] = make(map[uint32]bool, len(s.dicts.d[d].erased))
		for id := range s.dicts.d[d].erased {
			c.erased[d][id] = true
		}
		c.frozen[d] = s.dicts.d[d].frozen
	}
	c.frozenKeys = make(map[string]bool, len(s.dicts.frozenKeys))
	for k := range s.dicts.frozenKeys {
		c.frozenKeys[k] = true
	}
	s.dicts.mu.RUnlock()
	for d := range numDicts {
		c.counts[d] = make([]uint64, c.vals[d].len())
		c.stored[d] = make([]uint64, c.vals[d].len())
	}
	tasks, err := c.tasks(workers)
	if err != nil {
		return IndexCheck{}, err
	}
	if err := c.run(ctx, tasks, workers); err != nil {
		return c.stats(), err
	}
	if c.incomplete.Load() {
		return c.stats(), nil
	}
	c.checkCounts()
	// The sums.
	c.detail = map[uint64]*eventEntries{}
	for seq, sum := range c.acc {
		if sum == 0 {
			continue
		}
		c.disagreeing++
		if len(c.detail) < maxDetailedEvents {
			c.detail[uint64(seq)] = &eventEntries{}
		}
	}
	if c.disagreeing == 0 {
		return c.stats(), nil
	}
	c.pass2 = true
	if err := c.run(ctx, tasks, workers); err != nil {
		return c.stats(), err
	}
	c.reportDetail()
	return c.stats(), nil
}

// checker is one run of CheckIndexes.
type checker struct {
	s      *Store
	report func(IndexFinding)
	mu     sync.Mutex // serializes report and guards detail
	last   uint64
	cutoff int64
	seed   uint64
	vseed  maphash.Seed
	acc    []uint64 // per seq: the records' entries' hashes minus the indexes' (atomic)
	pass2  bool
	// detail holds, in the second pass, the entries of the disagreeing
	// events it names one by one.
	detail      map[uint64]*eventEntries
	disagreeing uint64

	vals       [numDicts]valueView
	erased     [numDicts]map[uint32]bool
	frozen     [numDicts]bool
	frozenKeys map[string]bool
	counts     [numDicts][]uint64 // postings per value, from the records (atomic)
	// stored holds the counts of the n keys, by dictionary and id (one
	// task reads them all); strayCounts the keys of counts of values the
	// dictionaries do not hold.
	stored      [numDicts][]uint64
	strayCounts [][]byte

	corrupted map[string]bool // the read errors reported; guarded by mu

	keys, bytes, events, entries, beforeCutoff atomic.Uint64
	incomplete                                 atomic.Bool
}

func (c *checker) stats() IndexCheck {
	return IndexCheck{Keys: c.keys.Load(), Bytes: c.bytes.Load(), Events: c.events.Load(), Entries: c.entries.Load(),
		BeforeCutoff: c.beforeCutoff.Load(), Disagreeing: c.disagreeing, Complete: !c.incomplete.Load()}
}

func (c *checker) find(f IndexFinding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report(f)
}

// ixKind is the index an entry belongs to.
type ixKind uint8

const (
	ixPost   ixKind = iota + 1 // a posting of a dictionary value (w, p, x keys)
	ixHashed                   // a posting of an inline value, by fold32 of its hash (z, k, q, h keys)
	ixColumn                   // a value column entry (v keys)
	ixID                       // an id entry (i keys)
	ixPos                      // a log position (o, s keys)
)

// ixEntry is what an index entry says of an event.
type ixEntry struct {
	kind ixKind
	d    dictID
	list uint64 // the value's id; its fold32 hash; a column entry's or id's value hashed
	ns   int64  // the event time (0 for ids, which do not hold it)
	seq  uint64
}

func (c *checker) hash(e ixEntry) uint64 {
	h := mix64(c.seed ^ uint64(e.kind)<<8 ^ uint64(e.d))
	h = mix64(h ^ e.list)
	h = mix64(h ^ uint64(e.ns))
	return mix64(h ^ e.seq)
}

// mix64 is MurmurHash3's finalizer: a bijection of 64-bit words that
// spreads every input bit over the output.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// shown is an entry of the second pass with what a message says of it.
type shown struct {
	e    ixEntry
	h    uint64
	what string
}

// eventEntries are the entries of one disagreeing event (second pass).
type eventEntries struct {
	id        string
	ns        int64
	hasRecord bool
	want, got []shown
}

// emit adds (records: want) or subtracts (indexes) the hash of e. v is the
// value or id bytes of a column or id entry, for the second pass's
// messages.
func (c *checker) emit(want bool, e ixEntry, v []byte) {
	if e.seq == 0 || e.seq > c.last {
		if !want && !c.pass2 {
			c.find(IndexFinding{Kind: "extra", Index: c.indexName(e), Detail: fmt.Sprintf("an entry names seq %d (time %s), beyond the store's last seq %d", e.seq, fmtNs(e.ns), c.last)})
		}
		return
	}
	h := c.hash(e)
	if !c.pass2 {
		if want {
			atomic.AddUint64(&c.acc[e.seq], h)
		} else {
			atomic.AddUint64(&c.acc[e.seq], -h)
			c.entries.Add(1)
		}
		return
	}
	ee := c.detail[e.seq]
	if ee == nil {
		return
	}
	sh := shown{e: e, h: h, what: c.describe(e, v)}
	c.mu.Lock()
	if want {
		ee.want = append(ee.want, sh)
	} else {
		ee.got = append(ee.got, sh)
	}
	c.mu.Unlock()
}

func fmtNs(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func (c *checker) indexName(e ixEntry) string {
	switch e.kind {
	case ixPost:
		return "postings of " + e.d.String()
	case ixHashed:
		return "postings of inline values of " + e.d.String()
	case ixColumn:
		return "value column of " + e.d.String()
	case ixID:
		return "id index"
	}
	return "log positions"
}

// describe says what entry e holds.
func (c *checker) describe(e ixEntry, v []byte) string {
	switch e.kind {
	case ixPost:
		if int(e.list) < c.vals[e.d].len() && !c.erased[e.d][uint32(e.list)] {
			return fmt.Sprintf("value %q (id %d)", showValue(c.vals[e.d].at(int(e.list))), e.list)
		}
		return fmt.Sprintf("value id %d, which the dictionary does not hold", e.list)
	case ixHashed:
		return fmt.Sprintf("an inline value hashing to %08x", e.list)
	case ixColumn:
		return fmt.Sprintf("value %q", showValue(string(v)))
	case ixID:
		return fmt.Sprintf("id %x", v)
	}
	return "time " + fmtNs(e.ns)
}

// showValue shows a metadata pair as key=value.
func showValue(v string) string { return strings.Replace(v, "\x00", "=", 1) }

// reportDetail names the entries that differ, per disagreeing event.
func (c *checker) reportDetail() {
	seqs := make([]uint64, 0, len(c.detail))
	for seq := range c.detail {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		ee := c.detail[seq]
		f := IndexFinding{Seq: seq, EventID: ee.id}
		if ee.hasRecord {
			f.Time = time.Unix(0, ee.ns)
		}
		byHash := func(a, b shown) int { return cmp.Compare(a.h, b.h) }
		slices.SortFunc(ee.want, byHash)
		slices.SortFunc(ee.got, byHash)
		n := 0
		i, j := 0, 0
		for i < len(ee.want) || j < len(ee.got) {
			switch {
			case j == len(ee.got) || i < len(ee.want) && ee.want[i].h < ee.got[j].h:
				w := ee.want[i]
				f.Kind, f.Index = "missing", c.indexName(w.e)
				f.Detail = fmt.Sprintf("the event's %s is not in the index: a search by it misses the event", w.what)
				if w.e.kind == ixID {
					f.Detail = fmt.Sprintf("the event's %s is not in the index: lookups and retries by id miss the event", w.what)
				} else if w.e.kind == ixPos {
					f.Detail = fmt.Sprintf("the event's %s is not its log position", w.what)
				}
				c.find(f)
				i++
				n++
			case i == len(ee.want) || ee.got[j].h < ee.want[i].h:
				g := ee.got[j]
				f.Kind, f.Index = "extra", c.indexName(g.e)
				if !ee.hasRecord {
					f.Detail = fmt.Sprintf("an entry with %s names time %s and this seq, but no such event is stored", g.what, fmtNs(g.e.ns))
					if g.e.kind == ixID {
						f.Detail = fmt.Sprintf("an entry with %s names this seq, but no such event is stored", g.what)
					}
				} else {
					f.Detail = fmt.Sprintf("an entry with %s (time %s) names the event, which does not have it", g.what, fmtNs(g.e.ns))
				}
				c.find(f)
				j++
				n++
			default:
				i++
				j++
			}
		}
		if n == 0 {
			f.Kind, f.Index, f.Detail = "extra", "indexes", "the event's index entries disagree with its record"
			c.find(f)
		}
	}
	if more := c.disagreeing - uint64(len(c.detail)); more > 0 {
		c.find(IndexFinding{Kind: "missing", Index: "indexes", Detail: fmt.Sprintf("%d more events disagree with their index entries (not itemized)", more)})
	}
}

// checkCounts compares the stored posting counts with the records', and
// notes the dictionary values no record refers to.
func (c *checker) checkCounts() {
	for d := range dictMeta + 1 {
		var wrong, unused int
		var firstWrong, firstUnused string
		for id := range c.counts[d] {
			if c.erased[d][uint32(id)] {
				continue
			}
			have := atomic.LoadUint64(&c.counts[d][id])
			if stored := c.stored[d][id]; have != stored {
				if wrong++; wrong == 1 {
					firstWrong = fmt.Sprintf("%q: stored %d, events %d", showValue(c.vals[d].at(id)), c.stored[d][id], have)
				}
			}
			if have == 0 {
				if unused++; unused == 1 {
					firstUnused = showValue(c.vals[d].at(id))
				}
			}
		}
		if wrong > 0 {
			c.find(IndexFinding{Kind: "statistics", Index: "posting counts of " + d.String(), Warning: true,
				Detail: fmt.Sprintf("%d values' counts differ from their events' (the first, %s); the planner's statistics, saved about once a second and at Close: a backup or a crash leaves them behind", wrong, firstWrong)})
		}
		if unused > 0 {
			c.find(IndexFinding{Kind: "statistics", Index: "dictionary of " + d.String(), Warning: true,
				Detail: fmt.Sprintf("%d values no stored event refers to (the first, %q)", unused, firstUnused)})
		}
	}
	for _, k := range c.strayCounts {
		c.find(IndexFinding{Kind: "statistics", Index: "posting counts", Warning: true,
			Detail: fmt.Sprintf("a count for value %d of %s, which the dictionary does not hold", binary.BigEndian.Uint32(k[2:]), dictID(k[1]))})
	}
}

// checkTask is a key range read by one worker, and how its keys are
// checked.
type checkTask struct {
	lo, hi []byte // hi nil: to the end
	kind   byte   // the keys' prefix; 0: read only
}

// tasks cuts the whole key space into ranges, each key in exactly one:
// the keyspaces the check understands (records in slices of about equal
// event counts, posting lists by epoch, the value column by field), and
// the ranges between them, read only.
func (c *checker) tasks(workers int) ([]checkTask, error) {
	handled := []byte{pfxDict, pfxEvent, pfxHash, pfxID, pfxPackedHashed, pfxCount, pfxPositions, pfxPacked, pfxPackedHash64, pfxSeq, pfxColumn, pfxEpochPacked, pfxPost, pfxEpochHashed}
	slices.Sort(handled)
	var tasks []checkTask
	var prev []byte // the end of the last range
	for _, p := range handled {
		if prev == nil || prev[0] < p {
			tasks = append(tasks, checkTask{lo: prev, hi: []byte{p}})
		}
		var cuts [][]byte // inside the keyspace, ascending
		switch p {
		case pfxEvent:
			chunks, err := c.s.auditChunks(max(1, workers) * auditScanChunksPerWorker)
			if err != nil {
				return nil, err
			}
			for _, ch := range chunks[1:] {
				cuts = append(cuts, append([]byte{pfxEvent}, ch.lo...))
			}
		case pfxEpochPacked, pfxEpochHashed:
			for _, e := range c.s.epochs.load() {
				cuts = append(cuts, binary.BigEndian.AppendUint32([]byte{p}, e))
			}
		case pfxColumn:
			for d := 1; d < numDicts; d++ {
				cuts = append(cuts, []byte{p, byte(d)})
			}
		}
		lo := []byte{p}
		for _, cut := range cuts {
			if bytes.Compare(cut, lo) > 0 {
				tasks = append(tasks, checkTask{lo: lo, hi: cut, kind: p})
				lo = cut
			}
		}
		tasks = append(tasks, checkTask{lo: lo, hi: []byte{p + 1}, kind: p})
		prev = []byte{p + 1}
	}
	tasks = append(tasks, checkTask{lo: prev})
	return tasks, nil
}

// run reads the tasks on workers goroutines.
func (c *checker) run(ctx context.Context, tasks []checkTask, workers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := feed(ctx, tasks)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &checkWorker{c: c}
			for t := range todo {
				if err := w.task(ctx, t); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return ctx.Err()
}

// checkWorker is one goroutine's state.
type checkWorker struct {
	c      *checker
	v      recView
	hashed []ixEntry // an event's hashed postings, deduplicated
	times  []int64
	val    []byte
}

// task reads the keys of t. A key that cannot be read (a corrupt block) is
// a finding, and ends the task: the check is then incomplete.
func (w *checkWorker) task(ctx context.Context, t checkTask) error {
	c := w.c
	it, err := c.s.db.NewIter(&pebble.IterOptions{LowerBound: t.lo, UpperBound: t.hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var last []byte
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			c.corrupt(t, k, err)
			return nil
		}
		if !c.pass2 {
			c.keys.Add(1)
			c.bytes.Add(uint64(len(k) + len(v)))
		}
		last = append(last[:0], k...)
		if err := w.key(t.kind, k, v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		c.corrupt(t, last, err)
	}
	return nil
}

// corrupt reports a read error in t after key last.
func (c *checker) corrupt(t checkTask, last []byte, err error) {
	c.incomplete.Store(true)
	if c.pass2 {
		return
	}
	// The first line: the error of a corrupt block goes on with its
	// details' carrier.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	c.mu.Lock()
	seen := c.corrupted[msg]
	if c.corrupted == nil {
		c.corrupted = map[string]bool{}
	}
	c.corrupted[msg] = true
	c.mu.Unlock()
	if seen {
		return // a block read by two tasks
	}
	where := fmt.Sprintf("in the key range [%x, %x)", t.lo, t.hi)
	if last != nil {
		where = fmt.Sprintf("after key %x", last)
	}
	c.find(IndexFinding{Kind: "corrupt", Index: "database", Detail: fmt.Sprintf("cannot read %s: %s", where, msg)})
}

// key checks one key of a task of kind.
func (w *checkWorker) key(kind byte, k, v []byte) error {
	c := w.c
	switch kind {
	case 0:
		if !c.pass2 && len(k) > 0 && !slices.Contains(keyPrefixes, k[0]) {
			c.find(IndexFinding{Kind: "layout", Index: "database", Detail: fmt.Sprintf("a key of no known kind: %x", k)})
		}
	case pfxEvent:
		w.record(k, v)
	case pfxEpochPacked, pfxEpochHashed, pfxPacked, pfxPackedHashed, pfxPackedHash64, pfxPost, pfxHash:
		w.postings(k, v)
	case pfxColumn:
		w.column(k, v)
	case pfxID:
		seq, _, _, ok := decodeIDValue(v)
		if len(k) != 17 || !ok {
			w.layout("id index", k, "cannot be decoded")
			return nil
		}
		c.emit(false, ixEntry{kind: ixID, list: maphash.Bytes(c.vseed, k[1:]), seq: seq}, k[1:])
	case pfxPositions:
		first, err := positionsFirst(k)
		if err == nil {
			w.times, err = decodePositions(w.times[:0], v)
		}
		if err != nil {
			w.layout("log positions", k, "cannot be decoded")
			return nil
		}
		for i, ns := range w.times {
			w.position(first+uint64(i), ns)
		}
	case pfxSeq:
		if len(k) != 1+seqLen || len(v) != 8 {
			w.layout("log positions", k, "cannot be decoded")
			return nil
		}
		w.position(binary.BigEndian.Uint64(k[1:]), int64(binary.BigEndian.Uint64(v)))
	case pfxDict:
		w.dictValue(k, v)
	case pfxCount:
		if len(k) != 6 || len(v) != 8 {
			w.layout("posting counts", k, "cannot be decoded")
			return nil
		}
		if !c.pass2 {
			// One task reads the n range: no other goroutine writes these.
			d, id := k[1], binary.BigEndian.Uint32(k[2:])
			if int(d) < numDicts && int(id) < len(c.stored[d]) {
				c.stored[d][id] = binary.BigEndian.Uint64(v)
			} else {
				c.strayCounts = append(c.strayCounts, bytes.Clone(k))
			}
		}
	}
	return nil
}

func (w *checkWorker) layout(index string, k []byte, what string) {
	if !w.c.pass2 {
		w.c.find(IndexFinding{Kind: "layout", Index: index, Detail: fmt.Sprintf("key %x %s", k, what)})
	}
}

func (w *checkWorker) position(seq uint64, ns int64) {
	if ns < w.c.cutoff {
		if !w.c.pass2 {
			w.c.beforeCutoff.Add(1)
		}
		return
	}
	w.c.emit(false, ixEntry{kind: ixPos, ns: ns, seq: seq}, nil)
}

// record checks a record's references and adds the entries it should
// have.
func (w *checkWorker) record(k, rec []byte) {
	c := w.c
	if len(k) != 1+timeSeqLen {
		w.layout("records", k, "is not a record's key")
		return
	}
	ns, seq := decodeTimeSeq(k[1:])
	bad := func(index, detail string) {
		if !c.pass2 {
			c.find(IndexFinding{Kind: "dictionary", Index: index, Seq: seq, Time: time.Unix(0, ns), Detail: detail})
		}
	}
	v := &w.v
	if err := v.parse(rec); err != nil {
		if !c.pass2 {
			c.find(IndexFinding{Kind: "corrupt", Index: "records", Seq: seq, Time: time.Unix(0, ns), Detail: err.Error()})
		}
		return
	}
	if !c.pass2 {
		c.events.Add(1)
	} else if ee := c.detail[seq]; ee != nil {
		var id [36]byte
		encodeUUID(&id, v.tail[:16])
		c.mu.Lock()
		ee.id, ee.ns, ee.hasRecord = string(id[:]), ns, true
		c.mu.Unlock()
	}
	if seq == 0 || seq > c.last {
		if !c.pass2 {
			c.find(IndexFinding{Kind: "extra", Index: "records", Seq: seq, Time: time.Unix(0, ns),
				Detail: fmt.Sprintf("a record beyond the log's last seq %d", c.last)})
		}
		return
	}
	compare := ns >= c.cutoff
	if !compare && !c.pass2 {
		c.beforeCutoff.Add(1)
	}
	w.hashed = w.hashed[:0]
	ref := func(d dictID, id uint32, in []byte) {
		if in != nil {
			w.inline(d, in, seq, ns, compare, bad)
			return
		}
		if int(id) >= len(c.counts[d]) || c.erased[d][id] {
			bad("dictionary of "+d.String(), fmt.Sprintf("the record refers to value id %d, which the dictionary does not hold", id))
			return
		}
		if !c.pass2 && d != dictUserAgent {
			atomic.AddUint64(&c.counts[d][id], 1)
		}
		if compare && d != dictUserAgent {
			c.emit(true, ixEntry{kind: ixPost, d: d, list: uint64(id), ns: ns, seq: seq}, nil)
		}
	}
	for f := range audittrail.NumFields {
		var in []byte
		if v.inline&(1<<f) != 0 {
			in = v.fieldIn[f]
		}
		ref(dictID(f), v.fields[f], in)
	}
	if v.uaIn == nil {
		ref(dictUserAgent, v.ua, nil)
	}
	for _, id := range v.meta {
		ref(dictMeta, id, nil)
	}
	for _, in := range v.metaIn {
		w.inline(dictMeta, in, seq, ns, compare, bad)
	}
	if compare {
		for _, e := range w.hashed {
			c.emit(true, e, nil)
		}
		c.emit(true, ixEntry{kind: ixPos, ns: ns, seq: seq}, nil)
	}
	c.emit(true, ixEntry{kind: ixID, list: maphash.Bytes(c.vseed, v.tail[:16]), seq: seq}, v.tail[:16])
}

// inline checks an inline value of d in the record of (ns, seq): its
// dictionary (or metadata key) must be frozen and must not hold it, or an
// exact search, which reads the value's id list alone, misses the event.
// It adds its hashed posting (once per list and event, as the writer) and
// its value column entry.
func (w *checkWorker) inline(d dictID, in []byte, seq uint64, ns int64, compare bool, bad func(index, detail string)) {
	c := w.c
	if !c.pass2 {
		frozen := c.frozen[d]
		if d == dictMeta && !frozen {
			k, _, _ := bytes.Cut(in, []byte{0})
			frozen = c.frozenKeys[string(k)]
		}
		if !frozen {
			bad("dictionary of "+d.String(), fmt.Sprintf("the record holds value %q inline, but the dictionary is not frozen: exact searches read only its id lists", showValue(string(in))))
		}
		c.s.dicts.mu.RLock()
		id, ok := c.s.dicts.d[d].vals.lookup(in)
		c.s.dicts.mu.RUnlock()
		if ok {
			bad("dictionary of "+d.String(), fmt.Sprintf("the record holds value %q inline, which the dictionary holds as id %d: exact searches read only the id's list", showValue(string(in)), id))
		}
	}
	if !compare {
		return
	}
	e := ixEntry{kind: ixHashed, d: d, list: uint64(fold32(fnv64a(in))), ns: ns, seq: seq}
	if !slices.Contains(w.hashed, e) {
		w.hashed = append(w.hashed, e)
	}
	c.emit(true, ixEntry{kind: ixColumn, d: d, list: maphash.Bytes(c.vseed, in), ns: ns, seq: seq}, in)
}

// postings reads a posting block (or a posting key of format 4 and
// earlier) and subtracts its postings.
func (w *checkWorker) postings(k, v []byte) {
	c := w.c
	kind := k[0]
	var e ixEntry
	var rest []byte // time and seq
	switch kind {
	case pfxEpochPacked, pfxEpochHashed:
		if len(k) != 1+4+1+4+timeSeqLen {
			w.layout("postings", k, "is not a posting block's key")
			return
		}
		e.d, e.list, rest = dictID(k[5]), uint64(binary.BigEndian.Uint32(k[6:])), k[10:]
		if epochOf(binary.BigEndian.Uint64(rest)) != binary.BigEndian.Uint32(k[1:]) {
			w.layout("postings", k, "is in an epoch that is not its newest posting's: searches of its time do not read it")
		}
	case pfxPacked, pfxPackedHashed, pfxPost:
		if len(k) != 1+1+4+timeSeqLen {
			w.layout("postings", k, "is not a posting block's key")
			return
		}
		e.d, e.list, rest = dictID(k[1]), uint64(binary.BigEndian.Uint32(k[2:])), k[6:]
	case pfxPackedHash64, pfxHash:
		if len(k) != 1+1+8+timeSeqLen {
			w.layout("postings", k, "is not a posting block's key")
			return
		}
		e.d, e.list, rest = dictID(k[1]), uint64(fold32(binary.BigEndian.Uint64(k[2:]))), k[10:]
	}
	e.kind = ixPost
	if kind == pfxEpochHashed || kind == pfxPackedHashed || kind == pfxPackedHash64 || kind == pfxHash {
		e.kind = ixHashed
	}
	if e.d > dictMeta {
		w.layout("postings", k, "names a dictionary without postings")
		return
	}
	b := postBlock{data: v}
	b.t, b.seq = decodeSuffix(rest)
	if kind == pfxPost || kind == pfxHash {
		b.data = nil // one posting per key
	}
	bucket := b.t >> postBucketShift
	for ok := true; ok; {
		if b.t>>postBucketShift != bucket {
			w.layout("postings", k, fmt.Sprintf("holds a posting (seq %d) outside its block's time bucket", b.seq))
		}
		e.ns, e.seq = unsortTime(b.t), b.seq
		if e.ns < c.cutoff {
			if !c.pass2 {
				c.beforeCutoff.Add(1)
			}
		} else {
			c.emit(false, e, nil)
		}
		var err error
		if ok, err = b.advance(); err != nil {
			if !c.pass2 {
				c.find(IndexFinding{Kind: "corrupt", Index: c.indexName(e), Detail: fmt.Sprintf("posting block %x cannot be decoded: %v", k, err)})
			}
			return
		}
	}
}

// column reads a value column key and subtracts its entries.
func (w *checkWorker) column(k, v []byte) {
	c := w.c
	format, err := colKeyFormat(k)
	if err != nil || k[1] > byte(dictMeta) {
		w.layout("value column", k, "is not a value column key")
		return
	}
	d := dictID(k[1])
	start := unsortTime(binary.BigEndian.Uint64(k[2:]))
	index := "value column of " + d.String()
	fail := func() {
		if !c.pass2 {
			c.find(IndexFinding{Kind: "corrupt", Index: index, Detail: fmt.Sprintf("key %x cannot be decoded", k)})
		}
	}
	for pos := 0; pos < len(v); {
		count, w1 := uvarint(v[pos:])
		if w1 <= 0 {
			fail()
			return
		}
		blen, w2 := uvarint(v[pos+w1:])
		if w2 <= 0 || blen > uint64(len(v)-pos-w1-w2) {
			fail()
			return
		}
		body := v[pos+w1+w2 : pos+w1+w2+int(blen)]
		pos += w1 + w2 + int(blen)
		e := colEntry{ns: start}
		var n uint64
		for p := 0; p < len(body); n++ {
			off, w1 := uvarint(body[p:])
			if w1 <= 0 {
				fail()
				return
			}
			seq, w2 := uvarint(body[p+w1:])
			if w2 <= 0 {
				fail()
				return
			}
			p += w1 + w2
			if format != colAbsolute {
				e.ns += int64(off>>1) ^ -int64(off&1)
				e.seq += uint64(int64(seq>>1) ^ -int64(seq&1))
			} else {
				e = colEntry{ns: start + int64(off), seq: seq}
			}
			var ref uint64
			if format == colPrefixed {
				var w int
				if ref, w = uvarint(body[p:]); w <= 0 {
					fail()
					return
				}
				p += w
			}
			l, w3 := uvarint(body[p:])
			if w3 <= 0 || l > uint64(len(body)-p-w3) {
				fail()
				return
			}
			val := body[p+w3 : p+w3+int(l)]
			p += w3 + int(l)
			if ref > 0 {
				if ref > uint64(c.vals[dictColPrefix].len()) || c.erased[dictColPrefix][uint32(ref-1)] {
					if !c.pass2 {
						c.find(IndexFinding{Kind: "dictionary", Index: index, Seq: e.seq, Time: time.Unix(0, e.ns),
							Detail: fmt.Sprintf("an entry refers to prefix %d, which the column's prefix dictionary does not hold", ref-1)})
					}
					continue
				}
				w.val = append(append(w.val[:0], c.vals[dictColPrefix].at(int(ref-1))...), val...)
				val = w.val
			}
			if colBucket(e.ns) != colBucket(start) && !c.pass2 {
				c.find(IndexFinding{Kind: "layout", Index: index, Seq: e.seq, Time: time.Unix(0, e.ns),
					Detail: fmt.Sprintf("an entry is in the bucket of %s, not its own: searches of its time do not read it", fmtNs(start))})
			}
			if e.ns < c.cutoff {
				if !c.pass2 {
					c.beforeCutoff.Add(1)
				}
				continue
			}
			c.emit(false, ixEntry{kind: ixColumn, d: d, list: maphash.Bytes(c.vseed, val), ns: e.ns, seq: e.seq}, val)
		}
		if n != count {
			fail()
			return
		}
	}
}

// dictValue checks a dictionary key: a value held twice makes exact
// searches find the events of one of its ids only.
func (w *checkWorker) dictValue(k, v []byte) {
	c := w.c
	if c.pass2 {
		return
	}
	if len(k) != 6 || int(k[1]) >= numDicts {
		w.layout("dictionaries", k, "is not a dictionary key")
		return
	}
	d, id := dictID(k[1]), binary.BigEndian.Uint32(k[2:])
	if bytes.Equal(v, erasedValue) {
		return
	}
	c.s.dicts.mu.RLock()
	first, ok := c.s.dicts.d[d].vals.lookup(v)
	c.s.dicts.mu.RUnlock()
	if ok && first != id {
		c.find(IndexFinding{Kind: "dictionary", Index: "dictionary of " + d.String(),
			Detail: fmt.Sprintf("value %q is held twice, as ids %d and %d: exact searches read one id's list only", showValue(string(v)), first, id)})
	}
}
