package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// QueryResult is the outcome of one query on one system.
type QueryResult struct {
	Key      string
	System   string
	First    time.Duration // the first run (nothing of this query cached yet)
	Lat      Latencies     // the timed runs after it
	Requests int           // round trips of one run
	Got      []string      // ids of the timed page (drain: none)
	Count    int           // drain: events of all pages
	Sum      uint64        // drain: XOR of the id hashes
	Err      error         `json:"-"`
	ErrMsg   string        // Err's message (kept in JSON)
	Mismatch string        // "" when the answer equals the oracle's
	Profile  string        // top symbols of the server profile during the runs
	// Store is what the server's store did during the timed runs (from
	// its metrics): searches, and appends (the self-audit event each
	// search writes). Zero for PostgreSQL.
	Store StoreTimes
	// CPU time per timed run: of the server process (and children: the
	// PostgreSQL backends), and of the benchmark client (request
	// encoding, response decoding).
	ServerCPU, ClientCPU time.Duration
}

// RunOptions are the optional parts of RunQuery.
type RunOptions struct {
	Profiler *Profiler
	ProfName string
	PID      int // the server process to profile
	// DBPID is the database the server stores in (the PostgreSQL
	// store), whose CPU RunConcurrent reports; 0: none.
	DBPID int
	// Probe reads the server's store metrics, before and after the timed
	// runs; nil: none.
	Probe func() (StoreTimes, error)
	// Budget bounds the time of the timed runs: when the first run says
	// that runs of them would take longer, fewer are made (at least
	// MinRuns). Zero: no bound.
	Budget time.Duration
}

// MinRuns is the fewest timed runs a query gets under a time budget.
const MinRuns = 5

// RunQuery times runs runs of q on s (after one untimed first run, reported
// separately) and checks the answer against the oracle.
func RunQuery(ctx context.Context, s Searcher, q *Query, runs int, opt RunOptions) QueryResult {
	r := QueryResult{Key: q.Key, System: s.Name()}
	// Position for a later page: walk the pages before it once, untimed.
	var cursor any
	for i := 1; i < q.Page; i++ {
		p, err := s.Page(ctx, q, q.PageSize, cursor)
		if err != nil {
			r.Err = fmt.Errorf("walking to page %d: %w", q.Page, err)
			r.ErrMsg = r.Err.Error()
			return r
		}
		cursor = p.Cursor
		if cursor == nil {
			break
		}
	}
	once := func() (time.Duration, error) {
		t := time.Now()
		if q.Drain {
			n, sum := 0, uint64(0)
			each := func(id string) {
				n++
				sum ^= idHash(id)
			}
			var reqs int
			var err error
			if dr, ok := s.(Drainer); ok {
				reqs, err = dr.Drain(ctx, q, q.PageSize, each)
			} else {
				reqs, err = drainByPages(ctx, s, q, each)
			}
			if err != nil {
				return 0, err
			}
			d := time.Since(t)
			r.Count, r.Sum, r.Requests = n, sum, reqs
			return d, nil
		}
		if q.Page > 1 && cursor == nil {
			r.Got, r.Requests = nil, 0 // fewer pages than asked for
			return time.Since(t), nil
		}
		p, err := s.Page(ctx, q, q.PageSize, cursor)
		d := time.Since(t)
		if err != nil {
			return 0, err
		}
		r.Got, r.Requests = p.IDs, p.Requests
		return d, nil
	}
	d, err := once()
	if err != nil {
		r.Err, r.ErrMsg = err, err.Error()
		return r
	}
	r.First = d
	if opt.Budget > 0 && d > 0 && time.Duration(runs)*d > opt.Budget {
		runs = max(MinRuns, int(opt.Budget/d))
	}
	var before StoreTimes
	if opt.Probe != nil {
		before, _ = opt.Probe()
	}
	srv0, cli0 := procTreeCPU(opt.PID), SelfCPU()
	for range runs {
		d, err := once()
		if err != nil {
			r.Err = err
			break
		}
		r.Lat = append(r.Lat, d)
	}
	if n := len(r.Lat); n > 0 {
		r.ServerCPU = (procTreeCPU(opt.PID) - srv0) / time.Duration(n)
		r.ClientCPU = (SelfCPU() - cli0) / time.Duration(n)
	}
	if opt.Probe != nil {
		if after, err := opt.Probe(); err == nil {
			r.Store = after.Sub(before)
		}
	}
	// The profile is recorded over extra runs, so that the profiler's
	// overhead stays out of the timed ones: at least 3 runs, and more
	// until 2 seconds have passed, for enough samples.
	if opt.ProfName != "" && r.Err == nil {
		rec := opt.Profiler.Start(opt.ProfName, opt.PID)
		t := time.Now()
		for i := 0; i < 3 || time.Since(t) < 2*time.Second; i++ {
			if _, err := once(); err != nil {
				break
			}
		}
		r.Profile = rec.Stop()
	}
	if r.Err != nil {
		r.ErrMsg = r.Err.Error()
	}
	r.Mismatch = check(q, &r)
	return r
}

// check compares an answer with the oracle's.
func check(q *Query, r *QueryResult) string {
	if q.Drain {
		if r.Count != q.Matches || r.Sum != q.DrainSum {
			return fmt.Sprintf("drained %d events (id hash %016x), the oracle has %d (%016x)", r.Count, r.Sum, q.Matches, q.DrainSum)
		}
		return ""
	}
	if slices.Equal(r.Got, q.Expected) {
		return ""
	}
	if len(r.Got) != len(q.Expected) {
		return fmt.Sprintf("page has %d events, the oracle's %d", len(r.Got), len(q.Expected))
	}
	for i := range r.Got {
		if r.Got[i] != q.Expected[i] {
			return fmt.Sprintf("event %d of the page is %s, the oracle's is %s", i+1, r.Got[i], q.Expected[i])
		}
	}
	return "differs"
}

// perRun returns the store's search and append time per timed run.
func (r *QueryResult) perRun() (search, appendT time.Duration, ok bool) {
	if r == nil || len(r.Lat) == 0 || r.Store.Searches == 0 {
		return 0, 0, false
	}
	n := float64(len(r.Lat))
	return time.Duration(r.Store.SearchSeconds / n * 1e9), time.Duration(r.Store.AppendSeconds / n * 1e9), true
}

func (r *QueryResult) storeNote() string {
	s, a, ok := r.perRun()
	if !ok {
		return ""
	}
	gc := float64(r.Store.GCs) / float64(len(r.Lat))
	if r.Store.Appends == 0 {
		return fmt.Sprintf("  store search %s ms, %.2f GCs per run", ms(s), gc)
	}
	return fmt.Sprintf("  store search %s ms, store appends %s ms, %.2f GCs per run", ms(s), ms(a), gc)
}

// drainByPages reads every page of q through s.Page, one after the other.
func drainByPages(ctx context.Context, s Searcher, q *Query, each func(id string)) (requests int, err error) {
	var cur any
	for {
		p, err := s.Page(ctx, q, q.PageSize, cur)
		if err != nil {
			return requests, err
		}
		requests += p.Requests
		for _, id := range p.IDs {
			each(id)
		}
		if cur = p.Cursor; cur == nil {
			return requests, nil
		}
	}
}
