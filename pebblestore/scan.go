package pebblestore

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// A scan of the primary range runs in parallel when the range holds many
// events: most of its cost (block decompression, record parsing, regex
// checks) is independent per record. The range is cut into chunks of about
// scanChunkEvents events (estimated from the store's event density), which
// workers scan ahead, newest first, while the search consumes their results
// in order. A worker stops a chunk once it holds limit+1 matches (enough to
// decide the page) or has examined MaxScan records.
//
// The result is exactly that of the sequential scan: a chunk is taken whole
// only when its work fits the remaining budget; when the budget would end
// inside a chunk (or its matches decide the page past the budget), the
// search scans sequentially from that chunk on with the remaining budget,
// which costs less than one chunk.
var scanChunkEvents = 1 << 15

// maxChunks bounds the chunks of one scan (wider chunks beyond).
const maxChunks = 4096

type chunk struct{ lo, hi []byte } // (time, seq) suffixes, [lo, hi)

// chunkResult is what a worker found in one chunk.
type chunkResult struct {
	events   []*audittrail.Event // matches in order, at most limit+1
	ordinals []int               // for each, how many records were examined up to it (1-based)
	examined int
	last     audittrail.Cursor // the last record examined
	ended    bool              // the chunk was scanned to its end
	err      error
}

// scanHeadRecords is how many records a scan examines on its own before it
// goes parallel: the first page of an unselective query (no filter, a
// common action) is decided within them, and the workers' read-ahead of
// whole chunks would be waste (it was a fifth of the server's CPU for
// unfiltered first pages). A scan that runs long loses this head's time on
// one core only: ~1 ms.
var scanHeadRecords = 4096

// scan walks the primary range [lo, hi) for pg, in parallel when it pays
// and cores allows it.
func (s *Store) scan(ctx context.Context, pg *pager, lo, hi []byte, cores bool) error {
	workers := runtime.GOMAXPROCS(0)
	parallel := cores && workers > 1 && s.lastSeq.Load() >= uint64(2*scanChunkEvents)
	if parallel && pg.budget > scanHeadRecords {
		// The head first: it decides most first pages, before the
		// chunks are planned (their planning positions iterators at
		// both ends of the store: ~6 % of the server's CPU for an
		// unfiltered first page).
		st, err := s.newScanStream(lo, hi)
		if err != nil {
			return err
		}
		budget := pg.budget
		pg.budget = scanHeadRecords
		done, err := pg.run(ctx, st)
		st.close()
		pg.budget = budget
		if err != nil || !done {
			return err // an error, or the range ended within the head
		}
		if *pg.res.Next != pg.last {
			return nil // the look-ahead decided the page
		}
		// The head ran out with records left: the rest, older than the
		// last record examined.
		pg.res.Next = nil
		hi = appendTimeSeq(nil, pg.last.Time, pg.last.Seq)
	}
	var chunks []chunk
	if parallel {
		var err error
		if chunks, err = s.chunks(lo, hi); err != nil {
			return err
		}
	}
	if len(chunks) < 2 {
		st, err := s.newScanStream(lo, hi)
		if err != nil {
			return err
		}
		defer st.close()
		_, err = pg.run(ctx, st)
		return err
	}
	return s.parallelScan(ctx, pg, lo, chunks, workers)
}

// chunks cuts [lo, hi) into time slices of about scanChunkEvents events,
// newest first, or returns none when the range holds too few events.
func (s *Store) chunks(lo, hi []byte) ([]chunk, error) {
	n := s.lastSeq.Load()
	if n < uint64(2*scanChunkEvents) {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxEvent}, UpperBound: []byte{pfxEvent + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var gFirst, gLast, first, last int64
	if !it.First() {
		return nil, it.Error()
	}
	gFirst, _ = decodeTimeSeq(it.Key()[1:])
	it.Last()
	gLast, _ = decodeTimeSeq(it.Key()[1:])
	it.SetBounds(append([]byte{pfxEvent}, lo...), append([]byte{pfxEvent}, hi...))
	if !it.First() {
		return nil, it.Error()
	}
	first, _ = decodeTimeSeq(it.Key()[1:])
	it.Last()
	last, _ = decodeTimeSeq(it.Key()[1:])
	// Events per nanosecond over the whole store; the range is assumed to
	// have the same density (an uneven rate only makes chunks uneven).
	density := float64(n) / float64(max(gLast-gFirst, 1))
	span := float64(last-first) + 1
	if density*span < float64(2*scanChunkEvents) {
		return nil, nil
	}
	step := int64(max(float64(scanChunkEvents)/density, span/maxChunks, 1))
	var out []chunk
	upper := hi
	for end := last + 1; ; end -= step {
		start := end - step
		if start <= first || end-step > end { // the last chunk (or underflow)
			out = append(out, chunk{lo, upper})
			return out, nil
		}
		b := appendTimeSeq(nil, start, 0)
		out = append(out, chunk{b, upper})
		upper = b
	}
}

// parallelScan consumes chunk results in order; see scanChunkEvents.
func (s *Store) parallelScan(ctx context.Context, pg *pager, lo []byte, chunks []chunk, workers int) error {
	parallelScans.Add(1)
	results := make([]chan *chunkResult, len(chunks))
	for i := range results {
		results[i] = make(chan *chunkResult, 1)
	}
	// tokens bounds the chunks scanned ahead of the consumer: work past
	// the end of the page is wasted, so only a little is done.
	tokens := make(chan struct{}, workers+1)
	stop := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		p, snap := pg.p.clone(), pg.snap.clone() // here: clone marks pg.p's sets shared
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case tokens <- struct{}{}:
				case <-stop:
					return
				}
				c := int(next.Add(1) - 1)
				if c >= len(chunks) {
					return
				}
				results[c] <- s.scanChunk(ctx, p, snap, chunks[c], pg.limit+1, pg.budget, stop)
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for c := range chunks {
		r := <-results[c]
		<-tokens
		if r.err != nil {
			return r.err
		}
		need := pg.limit + 1 - len(pg.res.Events) // matches that decide the page
		if len(r.events) >= need {
			if pg.examined+r.ordinals[need-1] <= pg.budget {
				pg.res.Events = append(pg.res.Events, r.events[:need-1]...)
				pg.lookAheadFound()
				return nil
			}
		} else if r.ended && pg.examined+r.examined <= pg.budget {
			pg.res.Events = append(pg.res.Events, r.events...)
			pg.examined += r.examined
			if r.examined > 0 {
				pg.last = r.last
			}
			continue
		}
		// The budget ends in this chunk: finish sequentially from here.
		st, err := s.newScanStream(lo, chunks[c].hi)
		if err != nil {
			return err
		}
		defer st.close()
		_, err = pg.run(ctx, st)
		return err
	}
	return nil
}

// scanChunk scans one chunk for up to want matches and budget records.
func (s *Store) scanChunk(ctx context.Context, p *plan, snap *dictSnap, c chunk, want, budget int, stop <-chan struct{}) *chunkResult {
	r := &chunkResult{}
	st, err := s.newScanStream(c.lo, c.hi)
	if err != nil {
		r.err = err
		return r
	}
	defer st.close()
	pg := &pager{p: p, snap: snap}
	for {
		if !st.next() {
			r.ended, r.err = true, st.err()
			return r
		}
		if r.examined == budget {
			return r
		}
		if r.examined&(ctxCheckEvery-1) == ctxCheckEvery-1 {
			select {
			case <-stop:
				return r
			default:
			}
			if r.err = ctx.Err(); r.err != nil {
				return r
			}
		}
		r.examined++
		ns, seq := st.pos()
		r.last = audittrail.Cursor{Time: ns, Seq: seq}
		rec, err := st.record()
		if err != nil {
			r.err = err
			return r
		}
		e, match, err := pg.check(rec, ns, seq, true)
		if err != nil {
			r.err = err
			return r
		}
		if match {
			r.events = append(r.events, e)
			r.ordinals = append(r.ordinals, r.examined)
			if len(r.events) == want {
				return r
			}
		}
	}
}

// clone returns a copy of p for another goroutine: regex sets extend
// copy-on-write (both copies treat the bits as shared), status verdicts
// are cached per copy.
func (p *plan) clone() *plan {
	c := *p
	cp := func(v *valueCond) *valueCond {
		if v == nil {
			return nil
		}
		v.shared = v.shared || v.bits != nil
		x := *v
		return &x
	}
	for i, f := range p.fields {
		c.fields[i] = cp(f)
	}
	c.meta = make([]*valueCond, len(p.meta))
	for i, m := range p.meta {
		c.meta[i] = cp(m)
	}
	if p.status != nil {
		st := *p.status
		st.verdicts = map[int32]bool{}
		c.status = &st
	}
	return &c
}

// clone returns a copy of the view for another goroutine.
func (s *dictSnap) clone() *dictSnap {
	c := *s
	return &c
}
