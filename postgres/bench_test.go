package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/logsign"
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

// BenchmarkIngestLog measures appends with the verifiable log running in the
// same process, as `audittrail serve --store postgres://…` runs them: each
// iteration appends 100,000 sample events in batches of 1000 from four
// goroutines to a fresh database, with the integrator and signer at their
// production intervals. flush-ms is how long integrating and signing the
// rest took after the last append returned.
//
//	go test -run '^$' -bench IngestLog -benchtime 3x ./postgres/
func BenchmarkIngestLog(b *testing.B) {
	const events, batch, callers = 100_000, 1000, 4
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
		end := time.Now().UTC()
		g := sample.New(1, sample.Options{Events: events, End: end, Span: 10 * 24 * time.Hour})
		batches, err := g.Batches(events, batch, end, false)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := sample.AppendConcurrently(context.Background(), s, batches, callers); err != nil {
			b.Error(err)
		}
		total += time.Since(start)
		b.StopTimer()
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
