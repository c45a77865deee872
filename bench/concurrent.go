package bench

import (
	"context"
	"slices"
	"sync"
	"time"
)

// ConcurrentResult is one system's concurrent searches: Workers clients,
// each asking for the first pages of the suite's index-bound queries in
// turn, one request after the other, for a fixed time. It says how many
// interactive searches a system answers per second when people search at
// once, and at what latency; on our servers each search also writes its
// self-audit event durably, so it also measures how the store's group
// commit shares flushes between concurrent searches.
type ConcurrentResult struct {
	Protocol string
	Workers  int
	Queries  int           // distinct queries the workers cycle through
	Wall     time.Duration // of the timed phase
	Lat      Latencies     // every request's latency
	// CPU time per request of the server process (PostgreSQL: the
	// postmaster and its backends), of the database our server stores in
	// (the PostgreSQL store; zero otherwise) and of the benchmark client.
	ServerCPU, DBCPU, ClientCPU time.Duration
	// Store is what the server's store did during the phase (zero for
	// PostgreSQL): its searches and its appends, the self-audit writes.
	Store   StoreTimes
	Errors  int    // requests that failed
	ErrMsg  string // the first failure
	Wrong   int    // answers that differ from the oracle's
	Profile string // top symbols of the server profile (-profile)
}

// Rate is the requests answered per second.
func (r *ConcurrentResult) Rate() float64 {
	if r == nil || r.Wall <= 0 {
		return 0
	}
	return float64(len(r.Lat)) / r.Wall.Seconds()
}

// concurrentQueries are the queries of the concurrent phase: the first
// pages of the index-bound queries.
func concurrentQueries(qs []*Query) []*Query {
	var out []*Query
	for _, q := range qs {
		if indexBound(q) && q.Page <= 1 && !q.Drain {
			out = append(out, q)
		}
	}
	return out
}

// RunConcurrent runs the concurrent phase on s: workers clients for d
// (after an untimed second of the same), each starting at another query of
// qs. Every answer is checked against the oracle. With opt's profiler, the
// server is profiled over two more seconds of the same, untimed. opt's
// budget is not used.
func RunConcurrent(ctx context.Context, s Searcher, qs []*Query, workers int, d time.Duration, opt RunOptions) ConcurrentResult {
	r := ConcurrentResult{Protocol: s.Name(), Workers: workers, Queries: len(qs)}
	if len(qs) == 0 || workers < 1 {
		return r
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	phase := func(until time.Time, timed bool) {
		for w := range workers {
			wg.Go(func() {
				var lat Latencies
				var errs, wrong int
				var first string
				for i := w; time.Now().Before(until) && ctx.Err() == nil; i++ {
					q := qs[i%len(qs)]
					t := time.Now()
					p, err := s.Page(ctx, q, q.PageSize, nil)
					took := time.Since(t)
					switch {
					case err != nil:
						errs++
						if first == "" {
							first = err.Error()
						}
					case !slices.Equal(p.IDs, q.Expected):
						wrong++
					}
					lat = append(lat, took)
				}
				if !timed {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				r.Lat = append(r.Lat, lat...)
				r.Errors += errs
				r.Wrong += wrong
				if r.ErrMsg == "" {
					r.ErrMsg = first
				}
			})
		}
		wg.Wait()
	}
	phase(time.Now().Add(time.Second), false)
	var before StoreTimes
	if opt.Probe != nil {
		before, _ = opt.Probe()
	}
	srv0, db0, cli0 := procTreeCPU(opt.PID), procTreeCPU(opt.DBPID), SelfCPU()
	start := time.Now()
	phase(start.Add(d), true)
	r.Wall = time.Since(start)
	if n := len(r.Lat); n > 0 {
		r.ServerCPU = (procTreeCPU(opt.PID) - srv0) / time.Duration(n)
		if opt.DBPID != 0 {
			r.DBCPU = (procTreeCPU(opt.DBPID) - db0) / time.Duration(n)
		}
		r.ClientCPU = (SelfCPU() - cli0) / time.Duration(n)
	}
	if opt.Probe != nil {
		if after, err := opt.Probe(); err == nil {
			r.Store = after.Sub(before)
		}
	}
	if opt.ProfName != "" {
		rec := opt.Profiler.Start(opt.ProfName, opt.PID)
		phase(time.Now().Add(2*time.Second), false)
		r.Profile = rec.Stop()
	}
	return r
}
