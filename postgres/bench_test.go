package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
)

// loadSample stores n sample events (ending at end) in batches of 1000.
func loadSample(tb testing.TB, s audittrail.Store, n int, end time.Time) {
	tb.Helper()
	g := sample.New(1, sample.Options{Events: n, End: end, Span: 90 * 24 * time.Hour})
	for done := 0; done < n; {
		var batch []*audittrail.Event
		for range min(1000, n-done) {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, end, false)
			if err != nil {
				tb.Fatal(err)
			}
			batch = append(batch, e)
		}
		if _, err := s.Append(context.Background(), batch); err != nil {
			tb.Fatal(err)
		}
		done += len(batch)
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
