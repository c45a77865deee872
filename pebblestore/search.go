package pebblestore

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// Search implements audittrail.Store. It compiles the query against the
// dictionaries (see plan.go), then walks the chosen candidate stream newest
// first: the primary key range, one posting list, or a merge of several.
// Every candidate counts against MaxScan; its record header is tested by
// dictionary ids, and only matches are decoded.
func (s *Store) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	q := req.Query
	maxScan, err := req.Check()
	if err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	res := &audittrail.SearchResult{}
	lo, hi, ok := timeBounds(q, req.After, s.cutoff.Load())
	if !ok {
		return res, nil
	}
	// The time bound (Config.SearchTimeout): tctx runs out first, ctx is
	// the caller's.
	tctx, cancel := context.WithTimeout(ctx, s.searchTimeout)
	defer cancel()
	snap := s.dicts.snapshot()
	p, err := s.compile(tctx, q, req.Limit, snap)
	if err != nil {
		return nil, s.timedOut(ctx, tctx, nil, err)
	}
	if p.empty {
		return res, nil
	}
	pg := &pager{p: p, snap: snap, limit: req.Limit, budget: maxScan, res: res}
	if err := s.walk(tctx, pg, lo, hi, req); err != nil {
		if err := s.timedOut(ctx, tctx, pg, err); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// walk runs the plan of pg over [lo, hi).
func (s *Store) walk(ctx context.Context, pg *pager, lo, hi []byte, req audittrail.SearchRequest) error {
	p := pg.p
	if p.column != nil {
		pg.resumeAtCandidate = true
		pg.overrun = min(pg.budget/colOverrunDivisor, colOverrunMax)
	}
	if len(p.lists) == 0 && p.column == nil {
		return s.scan(ctx, pg, lo, hi, !req.ReadAhead)
	}
	var col *columnSource
	if p.column != nil {
		var err error
		if col, err = s.newColumnSource(ctx, p.column, lo, hi, pg, !req.ReadAhead); err != nil {
			return err
		}
	}
	readers := 1
	if col == nil && req.Limit+1 >= parallelFetchMin && !req.ReadAhead {
		readers = fetchReaders()
	}
	st, err := s.newPostingStream(p.lists, col, lo, hi, readers)
	if err != nil {
		return err
	}
	defer st.close()
	return pg.runPostings(ctx, st)
}

// errSearchTimeout: the search ran out of time before it examined an event.
var errSearchTimeout = audittrail.Errorf(audittrail.EUnavailable,
	"the search ran out of time before it examined any event: its regular expressions are costly to evaluate, or the server is overloaded; simplify them, narrow the filter, or try again shortly")

// timedOut turns err, met after the search's own deadline (tctx) while the
// caller's context is live, into the page so far with Next at the last
// candidate examined (as when MaxScan runs out), or errSearchTimeout when
// nothing was examined. Other errors pass.
func (s *Store) timedOut(ctx, tctx context.Context, pg *pager, err error) error {
	if ctx.Err() != nil || tctx.Err() == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if pg != nil && pg.examined > 0 {
		last := pg.last
		pg.res.Next = &last
		s.log.Info("pebblestore: search ran out of time; returning a partial page", "timeout", s.searchTimeout, "events", len(pg.res.Events), "examined", pg.examined)
		return nil
	}
	s.log.Warn("pebblestore: search timed out before it examined any event", "timeout", s.searchTimeout, "err", err)
	return errSearchTimeout
}

// pager walks candidate streams for one page, in newest-first order,
// keeping the page so far, the work done and the last candidate examined.
type pager struct {
	p        *plan
	snap     *dictSnap
	limit    int
	budget   int // MaxScan
	res      *audittrail.SearchResult
	examined int
	indexed  int               // value column entries read (column.go)
	last     audittrail.Cursor // the last candidate examined
	v        recView

	// With the value column (column.go), which reads windows of up to
	// colWindowEntries entries ahead of the candidates it yields, the
	// budget typically runs out right after a window is read, with that
	// window's matches yet to examine. Resuming at the last candidate
	// examined would make the next request read again every window since
	// (on 10M generated events, a pass of a rare regex read 10.3M entries
	// in 10 requests where a regex without matches read 9.4M in 9; its CPU
	// did not drop measurably with the fix, though: with the default block
	// cache, smaller than the column, the blocks read twice had stayed in
	// the cache as hot and hit in the next pass, 20% of the blocks on the
	// end-to-end benchmark's data, against 4% since). So:
	//
	// overrun is how many more candidates may be examined past the budget.
	// The column yields no window past the budget (it yields its marker),
	// so these are the matches of the window read last, and postings
	// above its start.
	overrun int
	// resumeAtCandidate: when the budget and the overrun have run out,
	// Next is just above the candidate at hand rather than at the last
	// one examined (no candidate lies in between: the same pages follow),
	// so that the next request reads again only part of the last window.
	resumeAtCandidate bool
}

// run walks st until the page is decided (done: Next is set, or the page is
// final), or st ends (done false: the page so far stands and, if nothing
// follows, Next stays nil).
func (pg *pager) run(ctx context.Context, st stream) (done bool, err error) {
	for st.next() {
		// The first candidate is always examined, so that every request
		// makes progress even when the value column spent the budget.
		if pg.examined > 0 && pg.examined+pg.indexed >= pg.budget {
			if pg.overrun > 0 {
				pg.overrun-- // examined past the budget: see overrun
			} else {
				// Out of budget with candidates left: resume after
				// the last one examined.
				last := pg.last
				if pg.resumeAtCandidate {
					// Or just above the candidate at hand: no
					// candidate lies in between, and the value
					// column restarts there, not in a window it
					// has read since the last one examined.
					if ns, seq := st.pos(); seq < math.MaxUint64 && last.Before(ns, seq+1) {
						last = audittrail.Cursor{Time: ns, Seq: seq + 1}
					}
				}
				pg.res.Next = &last
				return true, nil
			}
		}
		if pg.examined&(ctxCheckEvery-1) == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return true, err
			}
		}
		pg.examined++
		ns, seq := st.pos()
		pg.last = audittrail.Cursor{Time: ns, Seq: seq}
		rec, err := st.record()
		if err != nil {
			return true, err
		}
		if rec == nil {
			continue // expired meanwhile
		}
		e, match, err := pg.check(rec, ns, seq, len(pg.res.Events) < pg.limit)
		if err != nil || !match {
			if err != nil {
				return true, err
			}
			continue
		}
		if e == nil {
			// The look-ahead found one more match: there is a next page,
			// resuming after the last event returned.
			pg.lookAheadFound()
			return true, nil
		}
		pg.res.Events = append(pg.res.Events, e)
	}
	if c := st.stoppedAt(); c != nil {
		pg.res.Next = c
		return true, nil
	}
	return false, st.err()
}

// lookAheadFound sets Next after a full page followed by one more match.
func (pg *pager) lookAheadFound() {
	l := pg.res.Events[len(pg.res.Events)-1]
	pg.res.Next = &audittrail.Cursor{Time: l.EventTime.UnixNano(), Seq: l.Seq}
}

// check tests record rec against the plan and, when it matches and decode
// is set, decodes it.
func (pg *pager) check(rec []byte, ns int64, seq uint64, decode bool) (*audittrail.Event, bool, error) {
	v := &pg.v
	if err := v.parseHeader(rec, len(pg.p.meta) > 0); err != nil {
		return nil, false, fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
	}
	if !pg.p.matches(v, pg.snap) {
		return nil, false, nil
	}
	if !decode {
		return nil, true, nil
	}
	if v.tail == nil {
		if err := v.parse(rec); err != nil {
			return nil, false, fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
		}
	}
	e, err := v.event(pg.snap, ns, seq)
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
	}
	return e, true, nil
}

// timeBounds returns the (time, seq) key suffixes [lo, hi) of q's time range,
// cut at the cursor and at the retention cutoff (expire.go), and false when
// the range is empty. Every source of candidates (the primary range, the
// posting lists, the value column) is bounded by them, so no event before
// the cutoff is ever a candidate.
func timeBounds(q *audittrail.Query, after *audittrail.Cursor, cutoff int64) (lo, hi []byte, ok bool) {
	lo = appendTimeSeq(nil, max(q.Start.UnixNano(), cutoff), 0)
	hi = appendTimeSeq(nil, q.End.UnixNano(), 0)
	if after != nil {
		if c := appendTimeSeq(nil, after.Time, after.Seq); bytes.Compare(c, hi) < 0 {
			hi = c
		}
	}
	return lo, hi, bytes.Compare(lo, hi) < 0
}

// stream is a sequence of candidate events, newest first.
type stream interface {
	next() bool
	pos() (int64, uint64)
	record() ([]byte, error) // the current candidate's record, valid until next; nil (posting streams only): expired meanwhile
	err() error
	// stoppedAt is, after next returned false, where the search may
	// resume when the stream stopped early on the budget (nil: it ended).
	stoppedAt() *audittrail.Cursor
	close()
}

// postingStream merges posting lists (and the value column's matches)
// newest first and reads each candidate's record with a point lookup.
type postingStream struct {
	lists listHeap
	stop  *audittrail.Cursor // the column's budget marker was reached
	cur   []byte             // suffix (time, seq) of the current candidate
	rr    recordReader
	// more are further record readers for reading a page's records on
	// several cores (fetch.go); nil when the page is read on one.
	more []*recordReader
	// column: the value column is one of the sources (its candidates are
	// read one by one, fetch.go).
	column  bool
	started bool
	e       error
}

// recordReader reads the records of candidates given newest first, with
// one iterator over the primary range.
type recordReader struct {
	prim   *pebble.Iterator
	primAt bool // prim is positioned at the previous candidate's record
	key    []byte
	// cutoff is the store's retention cutoff: a posting whose record is
	// missing and before it belongs to an event that a retention pass
	// deleted after the lists were opened (its postings go after its
	// record), so the candidate is left out instead of failing the search
	// (TestRetentionBetweenListsAndRecords).
	cutoff *atomic.Int64
	// step > 0 is how many records read may step back from the previous
	// candidate before it seeks instead; step <= 0 counts seeks until it
	// tries stepping again. It adapts to the list's density.
	step int
}

// Stepping back is ~20× cheaper per record than a seek (which descends
// every level of the LSM), so in a dense list (a popular value, candidates
// a few records apart) records are reached with Prev; sparse lists seek.
const (
	maxStep  = 16
	stepBack = 4 // after a miss, try stepping again after this many seeks
)

// listIter is one source of candidates: a packed posting list, a list of
// format 4 (a key per posting), or the value column.
type listIter struct {
	packed *packedList
	it     *pebble.Iterator // a list of format 4
	col    *columnSource
	plen   int    // length of the format 4 list's key prefix (it)
	suffix []byte // (time, seq) of the current posting
}

// prev moves l to its next posting.
func (l *listIter) prev() (bool, error) {
	switch {
	case l.packed != nil:
		ok, err := l.packed.next()
		if ok {
			l.suffix = l.packed.suffix(l.suffix)
		}
		return ok, err
	case l.col != nil:
		if !l.col.prev() {
			return false, l.col.err
		}
		l.suffix = l.col.suffix(l.suffix)
		return true, nil
	}
	if !l.it.Prev() {
		return false, l.it.Error()
	}
	l.suffix = l.it.Key()[l.plen:]
	return true, nil
}

func (l *listIter) close() {
	switch {
	case l.packed != nil:
		l.packed.close()
	case l.col != nil:
		l.col.close()
	default:
		l.it.Close()
	}
}

// listHeap is a max-heap of lists by their current posting.
type listHeap []*listIter

func (h listHeap) Len() int           { return len(h) }
func (h listHeap) Less(i, j int) bool { return bytes.Compare(h[i].suffix, h[j].suffix) > 0 }
func (h listHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *listHeap) Push(x any)        { *h = append(*h, x.(*listIter)) }
func (h *listHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// newPostingStream opens the lists, then readers record readers (at least
// one; the first is the stream's own).
func (s *Store) newPostingStream(lists [][]byte, col *columnSource, lo, hi []byte, readers int) (*postingStream, error) {
	ps := &postingStream{column: col != nil}
	if col != nil {
		li := &listIter{col: col}
		if ok, err := li.prev(); err != nil {
			col.close()
			return nil, err
		} else if ok {
			ps.lists = append(ps.lists, li)
		} else {
			col.close()
		}
	}
	for _, pfx := range lists {
		// The list's epochs (format 8), then its lists of earlier
		// formats where the store holds some; nil: no epoch in [lo, hi).
		p := packedPrefix(pfx)
		pl, err := s.newEpochList(p, lo, hi)
		packed := []*packedList{pl}
		if err == nil && s.legacyPostings.unpartitioned {
			pl, err = s.newPackedList(p, lo, hi)
			packed = append(packed, pl)
		}
		if err == nil && pfx[0] == pfxHash && s.legacyPostings.hash64 {
			pl, err = s.newPackedList(packedPrefix64(pfx), lo, hi)
			packed = append(packed, pl)
		}
		for _, pl := range packed {
			if pl == nil {
				continue
			}
			li := &listIter{packed: pl}
			if ok, perr := li.prev(); ok {
				ps.lists = append(ps.lists, li)
			} else {
				li.close()
				err = cmp.Or(err, perr)
			}
		}
		if err != nil {
			ps.close()
			return nil, err
		}
		if !s.legacyPostings.read {
			continue
		}
		it, err := s.db.NewIter(&pebble.IterOptions{
			LowerBound: append(pfx[:len(pfx):len(pfx)], lo...),
			UpperBound: append(pfx[:len(pfx):len(pfx)], hi...),
		})
		if err != nil {
			ps.close()
			return nil, err
		}
		li := &listIter{it: it, plen: len(pfx)}
		if it.Last() {
			li.suffix = it.Key()[li.plen:]
			ps.lists = append(ps.lists, li)
		} else {
			err := it.Error()
			it.Close()
			if err != nil {
				ps.close()
				return nil, err
			}
		}
	}
	heap.Init(&ps.lists)
	if listsOpenedHook != nil {
		listsOpenedHook()
	}
	// Opened after the lists, so they see every record the lists point to
	// (a record and its postings commit in one batch).
	for i := range max(readers, 1) {
		prim, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxEvent}, UpperBound: []byte{pfxEvent + 1}})
		if err != nil {
			ps.close()
			return nil, err
		}
		rr := &recordReader{prim: prim, step: maxStep, cutoff: &s.cutoff}
		if i == 0 {
			ps.rr = *rr
		} else {
			ps.more = append(ps.more, rr)
		}
	}
	return ps, nil
}

// listsOpenedHook, set by tests, runs between the opening of a stream's
// lists and of its record readers: what is committed then must not break
// the stream (TestRecordReadersOpenAfterLists).
var listsOpenedHook func()

func (ps *postingStream) next() bool {
	if ps.e != nil || len(ps.lists) == 0 {
		return false
	}
	if ps.started {
		// Advance the list that produced the current candidate.
		top := ps.lists[0]
		if ok, err := top.prev(); ok {
			heap.Fix(&ps.lists, 0)
		} else {
			if err != nil {
				ps.e = err
				return false
			}
			top.close()
			heap.Pop(&ps.lists)
			if len(ps.lists) == 0 {
				return false
			}
		}
	}
	ps.started = true
	if top := ps.lists[0]; top.col != nil && top.col.marker {
		ps.stop = &audittrail.Cursor{Time: top.col.cur.ns, Seq: top.col.cur.seq}
		return false
	}
	ps.cur = ps.lists[0].suffix
	return true
}

func (ps *postingStream) stoppedAt() *audittrail.Cursor { return ps.stop }

func (ps *postingStream) pos() (int64, uint64) { return decodeTimeSeq(ps.cur) }

func (ps *postingStream) record() ([]byte, error) { return ps.rr.read(ps.cur) }

// read returns the record at (time, seq) suffix cur, valid until the next
// read; nil when a retention pass deleted it after the lists were opened.
// Candidates come newest first.
func (r *recordReader) read(cur []byte) ([]byte, error) {
	r.key = append(append(r.key[:0], pfxEvent), cur...)
	if r.primAt && r.step > 0 {
		for range r.step {
			if !r.prim.Prev() {
				break
			}
			switch c := bytes.Compare(r.prim.Key(), r.key); {
			case c == 0:
				return r.prim.ValueAndErr()
			case c < 0:
				goto seek // passed it: a retention pass deleted it after the lists were opened (seek says)
			}
		}
	seek:
		r.step = -stepBack // a sparse stretch: seek for a while
	} else if r.step <= 0 {
		if r.step++; r.step == 1 {
			r.step = maxStep // try stepping again
		}
	}
	return r.seek(cur)
}

// readForward returns the record at (time, seq) suffix cur, valid until the
// next read, for candidates read oldest first (fetchPart). It leaves r to
// seek on its next read.
func (r *recordReader) readForward(cur []byte) ([]byte, error) {
	r.key = append(append(r.key[:0], pfxEvent), cur...)
	rec, err := r.seek(cur)
	r.primAt = false
	return rec, err
}

// seek positions r at the record of r.key, the key of suffix cur, and
// returns it.
func (r *recordReader) seek(cur []byte) ([]byte, error) {
	r.primAt = false
	if !r.prim.SeekGE(r.key) || !bytes.Equal(r.prim.Key(), r.key) {
		if err := r.prim.Error(); err != nil {
			return nil, err
		}
		ns, seq := decodeTimeSeq(cur)
		if ns < r.cutoff.Load() {
			return nil, nil // expired meanwhile
		}
		return nil, fmt.Errorf("pebblestore: posting of (%d, %d) has no record", ns, seq)
	}
	r.primAt = true
	return r.prim.ValueAndErr()
}

func (r *recordReader) close() {
	if r.prim != nil {
		r.prim.Close()
	}
}

func (ps *postingStream) err() error { return ps.e }

func (ps *postingStream) close() {
	for _, l := range ps.lists {
		l.close()
	}
	ps.lists = nil
	ps.rr.close()
	for _, r := range ps.more {
		r.close()
	}
}
