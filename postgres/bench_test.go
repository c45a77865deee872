package postgres_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/storetest"
)

// loadSample stores n sample events (ending at end) in batches of 1000.
func loadSample(tb testing.TB, s audittrail.Store, n int, end time.Time) {
	tb.Helper()
	g := sample.New(1, sample.Options{Events: n, End: end, Span: 90 * 24 * time.Hour})
	batches, err := g.Batches(n, 1000, end, false)
	if err != nil {
		tb.Fatal(err)
	}
	for _, batch := range batches {
		if _, err := s.Append(context.Background(), batch); err != nil {
			tb.Fatal(err)
		}
	}
}

func BenchmarkSearch(b *testing.B) {
	s := mustOpen(b, pgtest.Start(b))
	defer s.Close()
	end := time.Now().UTC()
	loadSample(b, s, 20000, end)
	filters := map[string]audittrail.Filter{
		"range":     {},
		"principal": {Exact: [audittrail.NumFields]string{audittrail.FieldAction: "actions/enginemanager/daiEngines/GET"}},
		"regex":     {Regex: [audittrail.NumFields]string{audittrail.FieldPrincipal: "^users/a"}},
	}
	for name, f := range filters {
		b.Run(name, func(b *testing.B) {
			q, err := f.Compile(end)
			if err != nil {
				b.Fatal(err)
			}
			q.Start = end.Add(-100 * 24 * time.Hour)
			for b.Loop() {
				if _, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEvents is the number of events BenchmarkIngest and BenchmarkIngestLog
// append per iteration: AUDITTRAIL_PG_BENCH_EVENTS, default 100,000.
func benchEvents(b *testing.B) int {
	v := os.Getenv("AUDITTRAIL_PG_BENCH_EVENTS")
	if v == "" {
		return 100_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		b.Fatalf("AUDITTRAIL_PG_BENCH_EVENTS=%q: want a number of events, at least 1000", v)
	}
	return n
}

// BenchmarkIngest measures appends alone: each iteration appends sample
// events (benchEvents) in batches of 1000 from four goroutines to a fresh
// database. The events are generated before the timer starts.
//
//	AUDITTRAIL_PG_BENCH_EVENTS=1000000 go test -run '^$' -bench '^BenchmarkIngest$' -benchtime 1x ./postgres/
func BenchmarkIngest(b *testing.B) {
	events := benchEvents(b)
	var total time.Duration
	for range b.N {
		b.StopTimer()
		s := mustOpen(b, pgtest.Start(b))
		total += ingestSample(b, s, events)
		s.Close()
	}
	b.ReportMetric(float64(b.N*events)/total.Seconds(), "events/s")
}

// ingestSample appends events sample events to s in batches of 1000 from
// four goroutines, the benchmark's timer running (from stopped) only around
// the appends, and returns their time.
func ingestSample(b *testing.B, s audittrail.Store, events int) time.Duration {
	end := time.Now().UTC()
	g := sample.New(1, sample.Options{Events: events, End: end, Span: 10 * 24 * time.Hour})
	batches, err := g.Batches(events, 1000, end, false)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	if err := sample.AppendConcurrently(context.Background(), s, batches, 4); err != nil {
		b.Error(err)
	}
	d := time.Since(start)
	b.StopTimer()
	return d
}

// BenchmarkIngestLog measures appends with the verifiable log running in the
// same process, as `audittrail serve --store postgres://…` runs them: each
// iteration appends sample events (benchEvents) in batches of 1000 from four
// goroutines to a fresh database, with the integrator and signer at their
// production intervals. flush-ms is how long integrating and signing the
// rest took after the last append returned.
//
//	go test -run '^$' -bench IngestLog -benchtime 3x ./postgres/
func BenchmarkIngestLog(b *testing.B) {
	events := benchEvents(b)
	var total, flush time.Duration
	for range b.N {
		b.StopTimer()
		s := mustOpen(b, pgtest.Start(b))
		ctx, cancel := context.WithCancel(context.Background())
		signer, vkey, err := logsign.LoadOrCreateKey(b.TempDir(), "")
		if err != nil {
			b.Fatal(err)
		}
		l, err := logsign.New(ctx, logsign.Config{Store: s, Signer: signer, VerifierKey: vkey})
		if err != nil {
			b.Fatal(err)
		}
		var running sync.WaitGroup
		running.Add(1)
		go func() { defer running.Done(); l.Run(ctx) }()
		total += ingestSample(b, s, events)
		fstart := time.Now()
		if err := l.Flush(ctx); err != nil {
			b.Error(err)
		}
		flush += time.Since(fstart)
		cancel()
		running.Wait()
		s.Close()
	}
	b.ReportMetric(float64(b.N*events)/total.Seconds(), "events/s")
	b.ReportMetric(float64(flush.Milliseconds())/float64(b.N), "flush-ms")
}

// BenchmarkTree measures the tree's storage in the two layouts: every level,
// a row per hash (as before migration 0003), and tiles (levels 0, 8, 16, ...,
// leaves by tiles of 256). Each appends 200,000 leaves, 1000 per AppendTree,
// to a fresh database, vacuums it and reports the tables' size per leaf
// (bytes/leaf); the timed part is an inclusion proof of an old leaf read
// from the store (ns/op: tlog.ProveRecord over ReadTreeHashes, uncached).
//
//	go test -run '^$' -bench '^BenchmarkTree$' ./postgres/
func BenchmarkTree(b *testing.B) {
	const size = 200_000
	var ref storetest.RefTree
	type step struct {
		idx []int64
		hs  [][32]byte
	}
	var steps []step
	for n := int64(0); n < size; n += 1000 {
		idx, hs := ref.Grow(b, n, 1000)
		steps = append(steps, step{idx, hs})
	}
	for _, layout := range []string{"every-level", "tiles"} {
		b.Run("layout="+layout, func(b *testing.B) {
			url := pgtest.Start(b)
			s := mustOpen(b, url)
			defer s.Close()
			s.WriteEveryTreeLevelForTest(layout == "every-level")
			for i, st := range steps {
				if err := s.AppendTree(uint64(i+1)*1000, st.idx, st.hs, nil); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			var bytes int64
			if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
				b.Fatal(err)
			}
			if err := conn.QueryRow(ctx, "SELECT pg_total_relation_size('log_tree_hashes') + pg_total_relation_size('log_tree_tiles')").Scan(&bytes); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				leaf := r.Int64N(size - 10_000)
				if _, err := tlog.ProveRecord(size, leaf, storetest.TreeReader{S: s}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytes)/size, "bytes/leaf")
		})
	}
}

// BenchmarkAppendOne appends one sample event per call, one call after the
// other, to a store of 20,000 events: the latency of a single durable write
// (a producer's CreateEvent, every search's self-audit event), a
// transaction each, with the database on the same machine.
func BenchmarkAppendOne(b *testing.B) {
	s := mustOpen(b, pgtest.Start(b))
	defer s.Close()
	end := time.Now().UTC()
	loadSample(b, s, 20000, end)
	g := sample.New(2, sample.Options{Events: 1 << 20, End: end, Span: time.Hour})
	events, err := g.Batches(1<<16, 1, end, false)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if i == len(events) {
			b.Fatal("out of generated events")
		}
		if _, err := s.Append(context.Background(), events[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
