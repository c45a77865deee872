package pebblestore

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/audittrail/audittrail"
)

// Reading a page's records in batches, oldest first, on several cores.
//
// A search driven by posting lists spends most of its time on its
// candidates' records: each is a point read (a seek through the levels of
// the LSM, a block from the cache or decompressed from disk) and a decoding.
// The candidates themselves come cheaply and in order from the lists. So
// the stream hands out the next batch of positions, as many as the page can
// still use, and readers, each with its own iterator (opened with the
// stream, so all see the same records), read and check a contiguous part of
// the batch; the page is then assembled in candidate order, as one
// goroutine reading candidate after candidate would have: the same events,
// the same cursor, the same work budget (TestParallelFetch compares both
// page by page).
//
// A reader reads its part oldest first: seeks to increasing keys let
// Pebble leave each level whose iterator is already at or past the next key
// where it is (TrySeekUsingNext), while a seek backwards positions an
// iterator in every level of the LSM again. Measured on 10M events
// (BenchmarkSearchDrain, a workspace of 11,657 events, alternated, last four
// of eight rounds): 2.39-2.98 -> 1.87-2.01 us per event.
//
// A batch never holds more candidates than the page can still use (its
// remaining events and the look-ahead) nor than the budget allows, so no
// record is read that the candidate-by-candidate walk would not have read.
// Below parallelFetchMin candidates a batch is read by one reader, on the
// search's own goroutine: handing a batch to another core and waiting for
// it costs tens of microseconds on a virtual machine. Measured on 10M
// events (BenchmarkSearchDrain, BenchmarkSearchExact, two cores): pages of
// 1000 read 1.4-1.7x faster on two cores (a drain 9.0-11.4 -> 6.3-7.3 us
// per event); first pages of 50 gained nothing, and those whose filters
// reject most candidates (batches of 51, again and again) were up to 20%
// slower with a threshold of 32.
var parallelFetchMin = 256

// For tests: batches off (every candidate read by the walk of run, newest
// first), a reader count other than the cores' (fetchReadersOverride > 0),
// and how often a search used a second core: batches of records read on
// several cores, parallel scans, and value column windows read in halves.
var (
	unbatchedFetch       bool
	fetchReadersOverride int
	parallelBatches      atomic.Int64
	parallelScans        atomic.Int64
	columnHalves         atomic.Int64
)

const (
	// maxFetchBatch bounds the candidates read in one batch (a page holds
	// at most MaxPageSize events, plus the look-ahead).
	maxFetchBatch = 1024
	// maxFetchReaders bounds the goroutines reading one page.
	maxFetchReaders = 4
)

// fetchReaders is the number of record readers for a page read on several
// cores; 1 on a single core.
func fetchReaders() int {
	if fetchReadersOverride > 0 {
		return fetchReadersOverride
	}
	return min(runtime.GOMAXPROCS(0), maxFetchReaders)
}

// fetched is the outcome of one candidate of a batch: its event when it
// matches, or the error that stopped its reader.
type fetched struct {
	ev  *audittrail.Event
	err error
}

// runPostings walks ps until the page is decided, reading records in
// batches (on several cores while the page needs many and ps has more than
// one reader) while the page can use two candidates or more, then
// candidate by candidate. A stream with the value column among its sources
// is walked candidate by candidate: the column reads windows ahead of its
// candidates and ends a request by its own budget (pager.overrun).
func (pg *pager) runPostings(ctx context.Context, ps *postingStream) error {
	if !ps.column && !unbatchedFetch {
		if done, err := pg.fetchBatches(ctx, ps); done || err != nil {
			return err
		}
	}
	_, err := pg.run(ctx, ps)
	return err
}

// fetchBatches reads batches of candidates of ps while the page can use at
// least two of them, on several cores when it can use at least
// parallelFetchMin. done: the page is decided; otherwise run goes on from
// the next candidate.
func (pg *pager) fetchBatches(ctx context.Context, ps *postingStream) (done bool, err error) {
	all := append([]*recordReader{&ps.rr}, ps.more...)
	var pagers []*pager // made with the first parallel batch
	var cands []byte    // (time, seq) suffixes, newest first
	var out []fetched
	for {
		k := min(pg.limit+1-len(pg.res.Events), pg.budget-pg.examined, maxFetchBatch)
		if k < 2 {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return true, err
		}
		readers := all
		if k < parallelFetchMin {
			readers = all[:1]
		}
		if pagers == nil && len(readers) > 1 {
			pagers = []*pager{pg}
			for range readers[1:] {
				// Regex sets extend copy-on-write and dictionary views
				// refresh themselves: each goroutine has its own (as in
				// parallelScan).
				pagers = append(pagers, &pager{p: pg.p.clone(), snap: pg.snap.clone()})
			}
		}
		cands = cands[:0]
		for len(cands) < k*timeSeqLen && ps.next() {
			cands = append(cands, ps.cur...)
		}
		n := len(cands) / timeSeqLen
		if n == 0 {
			return false, nil // run sees the end of the stream, or its error
		}
		if cap(out) < n {
			out = make([]fetched, n)
		}
		out = out[:n]
		clear(out)
		// Contiguous parts, each read oldest first (fetchPart).
		per := (n + len(readers) - 1) / len(readers)
		var wg sync.WaitGroup
		for i := len(readers) - 1; i >= 0; i-- {
			lo, hi := i*per, min((i+1)*per, n)
			if lo >= hi {
				continue
			}
			if i == 0 {
				fetchPart(readers[0], pg, cands[lo*timeSeqLen:hi*timeSeqLen], out[lo:hi])
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				fetchPart(readers[i], pagers[i], cands[lo*timeSeqLen:hi*timeSeqLen], out[lo:hi])
			}()
		}
		wg.Wait()
		if len(readers) > 1 {
			parallelBatches.Add(1)
		}
		// The stream's own reader is no longer at the last candidate it
		// read: its next read seeks.
		ps.rr.primAt = false
		for j, f := range out {
			pg.examined++
			ns, seq := decodeTimeSeq(cands[j*timeSeqLen : (j+1)*timeSeqLen])
			pg.last = audittrail.Cursor{Time: ns, Seq: seq}
			if f.err != nil {
				return true, f.err
			}
			if f.ev == nil {
				continue
			}
			if len(pg.res.Events) == pg.limit {
				pg.lookAheadFound()
				return true, nil
			}
			pg.res.Events = append(pg.res.Events, f.ev)
		}
		if n < k {
			return false, nil // the stream ended: run finds it so
		}
	}
}

// fetchPart reads and checks the candidates cands (suffixes, newest first)
// into out. It reads them oldest first: increasing seeks let Pebble keep
// every level whose iterator is already at or past the next key where it is
// (Iterator.SeekGE's TrySeekUsingNext), where a seek backwards positions an
// iterator in every level again. On an error it stops, and the candidates
// not read yet get the error too: the page is assembled newest first and
// must not take an unread candidate for a rejected one.
func fetchPart(r *recordReader, pg *pager, cands []byte, out []fetched) {
	for j := len(out) - 1; j >= 0; j-- {
		c := cands[j*timeSeqLen : (j+1)*timeSeqLen]
		rec, err := r.readForward(c)
		if err == nil && rec != nil { // nil: expired meanwhile (recordReader.read), a candidate left out
			ns, seq := decodeTimeSeq(c)
			out[j].ev, _, err = pg.check(rec, ns, seq, true)
		}
		if err != nil {
			for k := range out[:j+1] {
				out[k].err = err
			}
			return
		}
	}
}
