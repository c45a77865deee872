package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/server"
)

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
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g := sample.New(1, sample.Options{Events: events, Span: 240 * time.Hour, End: time.Now().Add(-time.Hour)})
	now := time.Now()
	for done := 0; done < events; done += audittrail.MaxBatch {
		batch := make([]*audittrail.Event, 0, audittrail.MaxBatch)
		for range audittrail.MaxBatch {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, now, true)
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, e)
		}
		if _, err := st.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
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
	for _, bc := range []struct{ name, body string }{
		{"without", `{"pageSize": 50}`},
		{"with", `{"pageSize": 50, "includeProofs": true}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/events:search", strings.NewReader(bc.body))
				req.Header.Set("Authorization", "Bearer r")
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "resp-bytes")
		})
	}
	// What "with" adds, alone: the 50 inclusion proofs of the page (the
	// newest events) read from the store.
	b.Run("proofs-only", func(b *testing.B) {
		for b.Loop() {
			for seq := uint64(events - 49); seq <= events; seq++ {
				if _, err := l.InclusionProof(seq, events); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
