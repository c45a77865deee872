package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/server"
)

// cpuTime is the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardStore takes the self-audit records of the benchmark (they would
// add the same synced write to both variants) and keeps nothing.
type discardStore struct{}

func (discardStore) Append(_ context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	res := make([]audittrail.AppendResult, len(events))
	for i, e := range events {
		res[i].Event = e
	}
	return res, nil
}

func (discardStore) Search(context.Context, audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	return &audittrail.SearchResult{}, nil
}

func (discardStore) Close() error { return nil }

// BenchmarkSearchProofs measures a REST search of a page of 50 events, with
// and without includeProofs, in process (the public listener's handler, no
// socket), on an embedded store of 100,000 events all integrated and signed
// (inclusion proofs of 16-17 hashes), and, alone, the 50 inclusion proofs
// that includeProofs adds.
//
//	go test ./server -run '^$' -bench SearchProofs -benchtime 2000x
func BenchmarkSearchProofs(b *testing.B) {
	const events = 100_000
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, _ := benchStore(b, quiet, sample.Options{Events: events})
	defer st.Close()
	skey, vkey, err := merkle.GenerateKey(rand.Reader, "bench.example/log")
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := merkle.NewSigner([]byte(skey))
	l, err := logsign.New(ctx, logsign.Config{Store: st, Signer: signer, VerifierKey: vkey, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if _, cp := l.Checkpoint(); cp == nil || cp.Size != events {
		b.Fatalf("checkpoint %v", cp)
	}
	// The first proof against a checkpoint fills the log's proof cache
	// from the store (once per process, then only the new hashes of each
	// new checkpoint): keep it out of the measured loops, and log it.
	start := time.Now()
	if _, err := l.CachedInclusionProofs([]uint64{events}, 0); err != nil {
		b.Fatal(err)
	}
	b.Logf("proof cache: first fill %v", time.Since(start))
	srv, err := server.New(server.Config{
		Service:       &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        quiet,
		Log:           l,
		SelfAudit:     &audittrail.SelfAuditor{Store: discardStore{}},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.PublicHandler()
	const without, with = `{"pageSize": 50}`, `{"pageSize": 50, "includeProofs": true}`
	search := func(b *testing.B, body string) int { return restSearch(b, h, body) }
	for _, bc := range []struct{ name, body string }{
		{"without", without},
		{"with", with},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				size = search(b, bc.body)
			}
			b.ReportMetric(float64(size), "resp-bytes")
		})
	}
	// Both, alternating request by request, so that the noise of a shared
	// machine falls on both alike: the cost of proofs is with-ns/without-ns.
	// Every other pair runs "with" first, so that what a request leaves to
	// the next (garbage, a scheduler wake-up) falls on both alike too. The
	// process CPU time of each request is summed as well: other processes
	// on the machine stretch the wall time, hardly the CPU time (the
	// garbage collector's background work lands on whichever request is
	// running, in proportion to the time each takes).
	b.Run("side-by-side", func(b *testing.B) {
		var tw, tp, cw, cp time.Duration
		timed := func(body string, t, c *time.Duration) {
			c0, t0 := cpuTime(), time.Now()
			search(b, body)
			*t += time.Since(t0)
			*c += cpuTime() - c0
		}
		i := 0
		for b.Loop() {
			if i++; i%2 == 0 {
				timed(without, &tw, &cw)
				timed(with, &tp, &cp)
			} else {
				timed(with, &tp, &cp)
				timed(without, &tw, &cw)
			}
		}
		b.ReportMetric(float64(tw.Nanoseconds())/float64(b.N), "without-ns")
		b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N), "with-ns")
		b.ReportMetric(100*(float64(tp)/float64(tw)-1), "proofs-%")
		b.ReportMetric(100*(float64(cp)/float64(cw)-1), "proofs-cpu-%")
	})
	// What "with" adds, alone: the 50 inclusion proofs of the page (the
	// newest events), from the store in one call (uncached) and from the
	// log's proof cache (cached, what the search uses), and those of a page
	// of old events, whose lowest levels the cache reads from the store.
	page := func(first uint64) []uint64 {
		seqs := make([]uint64, 50)
		for i := range seqs {
			seqs[i] = first + 49 - uint64(i)
		}
		return seqs
	}
	for _, bc := range []struct {
		name  string
		prove func([]uint64, uint64) ([]*merkle.Inclusion, error)
		seqs  []uint64
	}{
		{"proofs-only/uncached", l.InclusionProofs, page(events - 49)},
		{"proofs-only/cached", l.CachedInclusionProofs, page(events - 49)},
		{"proofs-only/uncached-old", l.InclusionProofs, page(1001)},
		{"proofs-only/cached-old", l.CachedInclusionProofs, page(1001)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.prove(bc.seqs, events); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
