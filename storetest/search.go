package storetest

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func (s *suite) testSearch(t *testing.T) {
	t.Run("NewestFirstWithTies", func(t *testing.T) {
		// Events share a few times and arrive in batches whose order is not
		// the time order: ties are broken by seq, newest first.
		f := s.open(t)
		times := []time.Time{base, base.Add(1), base.Add(time.Hour), base.Add(-time.Minute)}
		rng := rand.New(rand.NewPCG(7, 7))
		var g ids
		var stored []*audittrail.Event
		for range 4 {
			var batch []*audittrail.Event
			for range 6 {
				batch = append(batch, mkEvent(t, g.next(), times[rng.IntN(len(times))]))
			}
			stored = append(stored, f.append(batch...)...)
		}
		want := newestFirst(stored)
		for _, limit := range []int{1, 2, 3, 5, 23, 24, 25, 1000} {
			if d := diffEvents(want, searchAll(t, f.store, compile(t, everything), limit, 0)); d != "" {
				t.Fatalf("limit %d: %s", limit, d)
			}
		}
	})

	t.Run("After", func(t *testing.T) {
		f := s.open(t)
		var g ids
		var stored []*audittrail.Event
		for i := range 12 {
			stored = append(stored, f.append(mkEvent(t, g.next(), base.Add(time.Duration(i%4)*time.Second)))...)
		}
		all := newestFirst(stored)
		q := compile(t, everything)
		search := func(after audittrail.Cursor) []*audittrail.Event {
			t.Helper()
			res, err := f.store.Search(context.Background(), audittrail.SearchRequest{Query: q, After: &after, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if res.Next != nil {
				t.Errorf("Search after %+v: Next %+v though the page is not full", after, *res.Next)
			}
			return res.Events
		}
		for i, e := range all {
			// Strictly after the event's own position.
			c := audittrail.Cursor{Time: e.EventTime.UnixNano(), Seq: e.Seq}
			if d := diffEvents(all[i+1:], search(c)); d != "" {
				t.Errorf("after event %d (%+v): %s", i, c, d)
			}
		}
		// Cursors need not be positions of stored events.
		tm := base.Add(2 * time.Second).UnixNano()
		var atOrBefore, before []*audittrail.Event
		for _, e := range all {
			if e.EventTime.UnixNano() <= tm {
				atOrBefore = append(atOrBefore, e)
			}
			if e.EventTime.UnixNano() < tm {
				before = append(before, e)
			}
		}
		if d := diffEvents(atOrBefore, search(audittrail.Cursor{Time: tm, Seq: math.MaxUint64})); d != "" {
			t.Errorf("after (t, MaxUint64): %s", d)
		}
		if d := diffEvents(before, search(audittrail.Cursor{Time: tm, Seq: 0})); d != "" {
			t.Errorf("after (t, 0): %s", d)
		}
		// A cursor beyond the end of the range still keeps to the range.
		q = compile(t, audittrail.Filter{StartTime: ptr(base.Add(time.Second)), EndTime: ptr(base.Add(3 * time.Second))})
		var inRange []*audittrail.Event
		for _, e := range all {
			if !e.EventTime.Before(base.Add(time.Second)) && e.EventTime.Before(base.Add(3*time.Second)) {
				inRange = append(inRange, e)
			}
		}
		if d := diffEvents(inRange, search(audittrail.Cursor{Time: math.MaxInt64, Seq: math.MaxUint64})); d != "" {
			t.Errorf("cursor after the range end: %s", d)
		}
	})

	t.Run("TimeRange", func(t *testing.T) {
		// Start inclusive, end exclusive, to the nanosecond.
		f := s.open(t)
		start, end := base.Add(500), base.Add(time.Hour+700)
		var g ids
		in := map[string]time.Time{}
		var events []*audittrail.Event
		for _, at := range []time.Time{start.Add(-1), start, start.Add(1), end.Add(-1), end, end.Add(1), base.Add(-24 * time.Hour), now} {
			id := g.next()
			in[id] = at
			events = append(events, mkEvent(t, id, at))
		}
		stored := f.append(events...)
		var want []*audittrail.Event
		for _, e := range stored {
			if !e.EventTime.Before(start) && e.EventTime.Before(end) {
				want = append(want, e)
			}
		}
		if len(want) != 3 {
			t.Fatalf("test setup: %d events in range, want 3", len(want))
		}
		q := compile(t, audittrail.Filter{StartTime: &start, EndTime: &end})
		if d := diffEvents(newestFirst(want), searchAll(t, f.store, q, 2, 0)); d != "" {
			t.Error(d)
		}
		// A range of one nanosecond.
		q = compile(t, audittrail.Filter{StartTime: &start, EndTime: ptr(start.Add(1))})
		if got := searchAll(t, f.store, q, 10, 0); len(got) != 1 || !got[0].EventTime.Equal(start) {
			t.Errorf("range [start, start+1ns): got %v, want the event at start", idsOf(got))
		}
	})

	t.Run("ExtremeTimes", func(t *testing.T) {
		f := s.open(t)
		var g ids
		stored := f.append(
			mkEvent(t, g.next(), audittrail.MaxEventTime.Add(-1)),
			mkEvent(t, g.next(), audittrail.MinEventTime),
			mkEvent(t, g.next(), audittrail.MinEventTime.Add(1)),
			mkEvent(t, g.next(), time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC)),
			mkEvent(t, g.next(), time.Date(2200, 1, 1, 0, 0, 0, 1, time.UTC)),
		)
		if d := diffEvents(newestFirst(stored), searchAll(t, f.store, compile(t, everything), 2, 0)); d != "" {
			t.Fatal(d)
		}
		q := compile(t, audittrail.Filter{StartTime: ptr(audittrail.MinEventTime), EndTime: ptr(audittrail.MinEventTime.Add(1))})
		if d := diffEvents(stored[1:2], searchAll(t, f.store, q, 2, 0)); d != "" {
			t.Errorf("first nanosecond: %s", d)
		}
		q = compile(t, audittrail.Filter{StartTime: ptr(audittrail.MaxEventTime.Add(-1)), EndTime: ptr(audittrail.MaxEventTime)})
		if d := diffEvents(stored[0:1], searchAll(t, f.store, q, 2, 0)); d != "" {
			t.Errorf("last nanosecond: %s", d)
		}
	})

	t.Run("LookAhead", func(t *testing.T) {
		// Next is nil exactly when no match remains: a full page is followed
		// by a look-ahead over the non-matching older events.
		f := s.open(t)
		var g ids
		var matching []*audittrail.Event
		for i := range 3 {
			matching = append(matching, f.append(mkEvent(t, g.next(), base.Add(time.Duration(10-i)*time.Minute), withAction("m")))...)
		}
		for i := range 20 {
			f.append(mkEvent(t, g.next(), base.Add(time.Duration(-i)*time.Minute), withAction("other")))
		}
		q := compile(t, audittrail.Filter{Exact: exact(audittrail.FieldAction, "m")})
		page := func(limit int, after *audittrail.Cursor) *audittrail.SearchResult {
			t.Helper()
			res, err := f.store.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		for _, limit := range []int{3, 4, 1000} {
			res := page(limit, nil)
			if d := diffEvents(matching, res.Events); d != "" {
				t.Errorf("limit %d: %s", limit, d)
			}
			if res.Next != nil {
				t.Errorf("limit %d: all 3 matches returned but Next is %+v, want nil", limit, *res.Next)
			}
		}
		res := page(2, nil)
		if d := diffEvents(matching[:2], res.Events); d != "" {
			t.Fatalf("limit 2: %s", d)
		}
		if res.Next == nil {
			t.Fatal("limit 2: Next is nil though a match remains")
		}
		res = page(2, res.Next)
		if d := diffEvents(matching[2:], res.Events); d != "" {
			t.Errorf("limit 2, second page: %s", d)
		}
		if res.Next != nil {
			t.Errorf("limit 2, second page: Next %+v, want nil", *res.Next)
		}
		q = compile(t, audittrail.Filter{Exact: exact(audittrail.FieldAction, "none")})
		if res := page(10, nil); len(res.Events) != 0 || res.Next != nil {
			t.Errorf("no match: %d events, Next %v; want none and nil", len(res.Events), res.Next)
		}
		// An empty store.
		f2 := s.open(t)
		res, err := f2.store.Search(context.Background(), audittrail.SearchRequest{Query: compile(t, everything), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 0 || res.Next != nil {
			t.Errorf("empty store: %d events, Next %v; want none and nil", len(res.Events), res.Next)
		}
	})
}
