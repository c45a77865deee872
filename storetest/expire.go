package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// testExpire checks what every audittrail.Expirer shows of a retention
// cutoff, whatever it deletes underneath: the store's log has integrated
// nothing here (the suite runs no integrator), so every event before the
// cutoff is kept, hidden; each engine's own tests prove the deletion.
//
// Once RaiseCutoff or Expire returns, no search shows an event before the cutoff (even
// one asking for that time), a lookup by id does not find one, the log's
// sparse read reports it deleted, an append of one is refused with
// EInvalid while the rest of its batch is stored, an earlier cutoff does
// not move it back, and it survives a reopen.
func (s *suite) testExpire(t *testing.T) {
	f := s.open(t)
	if _, ok := f.store.(audittrail.Expirer); !ok {
		t.Skip("the store does not implement audittrail.Expirer")
	}
	ctx := context.Background()
	var g ids
	// Events in three months (a store may keep a month as a unit) and
	// around the cutoff, which falls inside the second month.
	cutoff := time.Date(2025, 7, 10, 12, 0, 0, 0, time.UTC)
	var events []*audittrail.Event
	for _, at := range []time.Time{
		time.Date(2025, 5, 20, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 6, 30, 23, 59, 59, 999999999, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		cutoff.Add(-time.Nanosecond), cutoff, cutoff.Add(time.Nanosecond), time.Date(2025, 8, 2, 0, 0, 0, 0, time.UTC),
	} {
		events = append(events, mkEvent(t, g.next(), at), mkEvent(t, g.next(), at, withAction("actions/test/things/DELETE")))
	}
	stored := f.append(events...)
	var before, kept []*audittrail.Event
	for _, e := range stored {
		if e.EventTime.Before(cutoff) {
			before = append(before, e)
		} else {
			kept = append(kept, e)
		}
	}
	exp := func() audittrail.Expirer { return f.store.(audittrail.Expirer) }

	check := func(label string, want []*audittrail.Event) {
		t.Helper()
		for _, flt := range []audittrail.Filter{everything, {StartTime: ptr(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)), EndTime: ptr(cutoff.Add(time.Second))}} {
			q, err := flt.Compile(now)
			if err != nil {
				t.Fatal(err)
			}
			var got []*audittrail.Event
			for _, lim := range []int{1, 1000} {
				got = drainStore(t, f.store, q, lim)
				w := newestFirst(filterEvents(want, q))
				if d := diffEvents(w, got); d != "" {
					t.Fatalf("%s: search %+v, pages of %d: %s", label, flt, lim, d)
				}
			}
		}
		ls, isLog := f.store.(audittrail.LogStore)
		for _, e := range stored {
			if !isLog {
				break
			}
			got, err := ls.EventByID(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if e.EventTime.Before(cutoff) != (got == nil) {
				t.Fatalf("%s: EventByID of the event at %v: %v", label, e.EventTime, got)
			}
		}
		type sparse interface {
			EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error)
		}
		if sp, ok := f.store.(sparse); ok {
			got, err := sp.EventsBySeqSparse(ctx, 1, uint64(len(stored)))
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range stored {
				if e.EventTime.Before(cutoff) != (got[i] == nil) {
					t.Fatalf("%s: EventsBySeqSparse, seq %d at %v: %v", label, e.Seq, e.EventTime, got[i])
				}
			}
		}
	}
	// RaiseCutoff hides what Expire would, at once; Expire then finds
	// the cutoff where it asks for it.
	if got, err := exp().RaiseCutoff(ctx, cutoff); err != nil || !got.Equal(cutoff) {
		t.Fatalf("RaiseCutoff: %v, %v; want the cutoff %v", got, err, cutoff)
	}
	check("after RaiseCutoff", kept)
	if got, err := exp().RaiseCutoff(ctx, cutoff.Add(-time.Hour)); err != nil || !got.Equal(cutoff) {
		t.Fatalf("RaiseCutoff to an earlier time: %v, %v; want the cutoff unmoved, %v", got, err, cutoff)
	}
	res, err := exp().Expire(ctx, cutoff)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if !res.Cutoff.Equal(cutoff) || res.Deleted != 0 || res.Kept != int64(len(before)) || res.Resumed {
		t.Fatalf("Expire with nothing integrated: %+v; want cutoff %v, none deleted, %d kept, nothing resumed", res, cutoff, len(before))
	}
	check("after Expire", kept)

	// Appends: before the cutoff refused, the rest of the batch stored.
	late := mkEvent(t, g.next(), cutoff.Add(-time.Hour))
	fresh := mkEvent(t, g.next(), cutoff.Add(time.Hour))
	ar, err := f.store.Append(ctx, []*audittrail.Event{late, fresh})
	if err != nil {
		t.Fatal(err)
	}
	if audittrail.ErrorCode(ar[0].Err) != audittrail.EInvalid || ar[1].Err != nil {
		t.Fatalf("append before and after the cutoff: %v, %v; want invalid, stored", ar[0].Err, ar[1].Err)
	}
	kept = append(kept, ar[1].Event)
	stored = append(stored, ar[1].Event)
	check("after appends", kept)

	// A producer's retry of an event before the cutoff (deleted by the pass,
	// or hidden until the log lets it go) is refused as before the cutoff,
	// whether or not its content still matches the stored one: neither a
	// new copy nor the hidden one may come back. A retry of a kept event
	// is the stored one, as before the pass.
	changed := *events[1]
	changed.Action += "X"
	retry, err := f.store.Append(ctx, []*audittrail.Event{events[0], &changed, events[len(events)-1]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if audittrail.ErrorCode(retry[i].Err) != audittrail.EInvalid || !strings.Contains(retry[i].Err.Error(), "retention cutoff") {
			t.Errorf("retry %d of an expired event: %v, want refused as before the retention cutoff", i, retry[i].Err)
		}
	}
	if last := stored[len(events)-1]; retry[2].Err != nil || retry[2].Event == nil || retry[2].Event.Seq != last.Seq {
		t.Errorf("retry of a kept event: %+v, want the stored one (seq %d)", retry[2], last.Seq)
	}
	check("after retries", kept)

	if res, err := exp().Expire(ctx, cutoff.Add(-24*time.Hour)); err != nil || !res.Cutoff.Equal(cutoff) {
		t.Fatalf("Expire with an earlier cutoff: %+v, %v; want the cutoff unchanged", res, err)
	}
	if _, err := exp().Expire(ctx, time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Fatalf("Expire before 1970: %v, want invalid", err)
	}
	if !s.reopen {
		return
	}
	f.reopenStore()
	check("after reopen", kept)
}

// drainStore reads every page of q from st, newest first.
func drainStore(t *testing.T, st audittrail.Store, q *audittrail.Query, limit int) []*audittrail.Event {
	t.Helper()
	var out []*audittrail.Event
	var after *audittrail.Cursor
	for range 10000 {
		res, err := st.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Events...)
		if res.Next == nil {
			return out
		}
		after = res.Next
	}
	t.Fatal("search does not end")
	return nil
}

// filterEvents returns the events q matches.
func filterEvents(events []*audittrail.Event, q *audittrail.Query) []*audittrail.Event {
	var out []*audittrail.Event
	for _, e := range events {
		if q.Match(e) {
			out = append(out, e)
		}
	}
	return out
}
