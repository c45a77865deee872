package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// testMaxScan covers the work bound of one search request.
func (s *suite) testMaxScan(t *testing.T) {
	const n = 300
	// setup stores n common events and, older than all of them, one rare
	// event that only the filters of rareFilters select.
	setup := func(t *testing.T) (*fixture, []*audittrail.Event, *audittrail.Event) {
		f := s.open(t)
		var g ids
		rare := f.append(mkEvent(t, g.next(), base.Add(-time.Hour), func(n *audittrail.NewEvent) {
			n.Event.Action = "rare"
			n.Event.Metadata = map[string]string{"needle": "yes"}
			n.Event.Status = &audittrail.Status{Code: 9}
		}))[0]
		var in []*audittrail.Event
		for i := range n {
			in = append(in, mkEvent(t, g.next(), base.Add(time.Duration(i/3)*time.Second)))
		}
		return f, newestFirst(f.append(in...)), rare
	}
	rareFilters := map[string]audittrail.Filter{
		"action_exact":      {Exact: exact(audittrail.FieldAction, "rare")},
		"action_regex":      {Regex: regex(audittrail.FieldAction, "^ra")},
		"metadata_regex":    {MetadataRegex: map[string]string{"needle": "."}},
		"status_code_regex": {StatusCodeRegex: "^9$"},
	}

	t.Run("BoundsThePage", func(t *testing.T) {
		// With no filter every examined event matches, so a page holds at
		// most MaxScan events.
		f, all, rare := setup(t)
		all = append(all, rare)
		q := compile(t, audittrail.Filter{})
		for _, maxScan := range []int{1, 5, 64} {
			res, err := f.store.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 100, MaxScan: maxScan})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) > maxScan || len(res.Events) == 0 {
				t.Errorf("MaxScan %d, no filter: a page of %d events, want 1 to %d", maxScan, len(res.Events), maxScan)
			}
			if res.Next == nil {
				t.Errorf("MaxScan %d: Next is nil though events remain", maxScan)
			}
			if d := diffEvents(all, searchAll(t, f.store, q, 100, maxScan)); d != "" {
				t.Errorf("MaxScan %d, drained: %s", maxScan, d)
			}
		}
	})

	t.Run("RareMatchFarBack", func(t *testing.T) {
		f, _, rare := setup(t)
		for name, filter := range rareFilters {
			q := compile(t, filter)
			const maxScan = 7
			var after *audittrail.Cursor
			var found []*audittrail.Event
			for page := 0; ; page++ {
				if page > n+2 {
					t.Fatalf("%s: no end after %d pages of MaxScan %d over %d events", name, page, maxScan, n+1)
				}
				res, err := f.store.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: 10, MaxScan: maxScan})
				if err != nil {
					t.Fatal(err)
				}
				found = append(found, res.Events...)
				if res.Next == nil {
					break
				}
				if after != nil && comparePos(cursorPos(after), cursorPos(res.Next)) >= 0 {
					t.Fatalf("%s, page %d: the cursor does not move: %+v then %+v", name, page, *after, *res.Next)
				}
				after = res.Next
			}
			if d := diffEvents([]*audittrail.Event{rare}, found); d != "" {
				t.Errorf("%s: %s", name, d)
			}
		}
	})

	t.Run("ThroughTheService", func(t *testing.T) {
		// Partial pages carry tokens; searched_until moves backwards and ends
		// at the start; the rare event is found exactly once.
		f, _, rare := setup(t)
		svc := newService(f.store, key1)
		svc.MaxScan = 5
		for name, filter := range rareFilters {
			got, pages := drainPages(t, as("users/auditor"), svc, filter, 0)
			if d := diffEvents([]*audittrail.Event{rare}, got); d != "" {
				t.Errorf("%s: %s", name, d)
			}
			t.Logf("%s: %d pages", name, len(pages))
		}
		// No filter: pages hold at most MaxScan events, and every token
		// makes progress.
		got, pages := drainPages(t, as("users/auditor"), svc, audittrail.Filter{}, 50)
		if len(got) != n+1 {
			t.Errorf("no filter: %d events, want %d", len(got), n+1)
		}
		for i, p := range pages {
			if len(p.Events) > svc.MaxScan {
				t.Errorf("page %d: %d events, more than MaxScan %d", i, len(p.Events), svc.MaxScan)
			}
		}
		if min := (n + 1 + svc.MaxScan - 1) / svc.MaxScan; len(pages) < min {
			t.Errorf("no filter: %d pages, at least %d expected with MaxScan %d", len(pages), min, svc.MaxScan)
		}
	})
}
