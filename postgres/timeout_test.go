package postgres_test

import (
	"context"
	"fmt"
	"regexp"
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

// TestSearchTimeoutCostlyRegex: a regex that costs most of a millisecond per
// row (in Go, after PostgreSQL: it has no literal to push down) is cut at
// the search's deadline within a batch of rows, not after the batch, and
// the pages that follow hold the rest.
func TestSearchTimeoutCostlyRegex(t *testing.T) {
	url := pgtest.Start(t)
	full := mustOpen(t, url)
	defer full.Close()
	const n = 200
	var events []*audittrail.Event
	for k := range n {
		e := numberedEvent(t, k, "actions/x/things/GET")
		e.Resource = fmt.Sprintf("//engine-manager/workspaces/%08x-7b42-4c82-a3ae-5c45baa7b634/daiEngines/engine-%d", k*7919, k)
		events = append(events, e)
	}
	if _, err := full.Append(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	// 503 instructions, past Go's backtracker: its NFA, ~0.8 ms per resource.
	const costly = `(?:.?){250}[0-9]$`
	re := regexp.MustCompile(costly)
	start := time.Now()
	for _, e := range events {
		if !re.MatchString(e.Resource) {
			t.Fatalf("test setup: %s does not match", e.Resource)
		}
	}
	pass := time.Since(start)

	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Logger: testLogger(t), SearchTimeout: pass / 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := audittrail.Filter{StartTime: ptr(time.Unix(0, 0).UTC()), Regex: field(audittrail.FieldResource, costly)}
	q, err := f.Compile(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var after *audittrail.Cursor
	requests := 0
	for {
		requests++
		if requests > 1000 {
			t.Fatal("no end")
		}
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: audittrail.MaxPageSize})
		if err != nil {
			t.Fatalf("request %d: %v", requests, err)
		}
		for _, e := range res.Events {
			if seen[e.ID] {
				t.Fatalf("event %s twice", e.ID)
			}
			seen[e.ID] = true
		}
		if res.Next == nil {
			break
		}
		after = res.Next
	}
	if len(seen) != n {
		t.Errorf("%d events found, want %d", len(seen), n)
	}
	// One batch of rows holds all 200: only the deadline cut it.
	if requests < 2 {
		t.Errorf("the whole result in %d request, which should have run out of time", requests)
	}
}
