package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

// TestSearchTimeout: a search that runs out of time after examining events
// returns the page so far with Next where it stopped (as with MaxScan), and
// paging on finishes the search; one that cannot start in time fails with
// EUnavailable.
func TestSearchTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 60,000 events")
	}
	url := pgtest.Start(t)
	full := mustOpen(t, url)
	defer full.Close()
	end := time.Now().UTC()
	loadSample(t, full, 60_000, end)

	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Logger: testLogger(t), SearchTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Nothing is pushed down for a case-insensitive regex but "contains a
	// /": every event travels to Go, which rejects it.
	f := audittrail.Filter{StartTime: ptr(end.AddDate(0, 0, -100)), Regex: field(audittrail.FieldPrincipal, "(?i)^USERS/NOBODY")}
	q, err := f.Compile(end)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50})
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	if len(res.Events) != 0 || res.Next == nil {
		t.Fatalf("first page: %d events, Next %v; want none and a cursor (the search cannot ship and reject 60,000 events in 150ms)", len(res.Events), res.Next)
	}
	pages := 1
	for after := res.Next; after != nil; pages++ {
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: 50})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(res.Events) != 0 {
			t.Fatalf("page %d: %d events, want none", pages, len(res.Events))
		}
		if res.Next != nil && !after.Before(res.Next.Time, res.Next.Seq) {
			t.Fatalf("page %d: the cursor does not move: %+v then %+v", pages, *after, *res.Next)
		}
		after = res.Next
		if pages > 10_000 {
			t.Fatal("no end")
		}
	}
	t.Logf("%d pages of 150ms", pages)

	// A search that cannot even start in time.
	tiny, err := postgres.Open(t.Context(), postgres.Config{URL: url, Logger: testLogger(t), SearchTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	_, err = tiny.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50})
	if audittrail.ErrorCode(err) != audittrail.EUnavailable || !strings.Contains(audittrail.ErrorMessage(err), "too long") {
		t.Errorf("search with a timeout of 1ns: %v, want EUnavailable saying it took too long", err)
	}
}
