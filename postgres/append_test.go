package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestAppendLooksUpAfterAConflict: an append of new ids stores them without
// looking them up first; one with a stored id (a retry, a conflict) fails
// its first insert without storing anything, looks the ids up and resolves
// them as the contract says, the new events numbered without a gap. The
// conformance suite holds every outcome to the contract; this test holds
// the number of lookups.
func TestAppendLooksUpAfterAConflict(t *testing.T) {
	st := mustOpen(t, pgtest.Start(t))
	defer st.Close()
	ctx := context.Background()
	event := func(k int, action string) *audittrail.Event { return numberedEvent(t, k, action) }
	appendAll := func(events ...*audittrail.Event) []audittrail.AppendResult {
		t.Helper()
		res, err := st.Append(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	var first []*audittrail.Event
	for k := range 10 {
		first = append(first, event(k, "create"))
	}
	// A repeated new id within the call is resolved in the call: no lookup.
	res := appendAll(append(first, event(3, "create"))...)
	if n := st.LookupsForTest(); n != 0 {
		t.Fatalf("%d lookups for new ids, want 0", n)
	}
	for i, r := range res {
		want := uint64(i + 1)
		if i == 10 {
			want = 4
		}
		if r.Err != nil || r.Event.Seq != want {
			t.Fatalf("result %d: %+v, want seq %d", i, r, want)
		}
	}
	// A retry, a new id, a conflicting content, a new id.
	res = appendAll(event(3, "create"), event(100, "create"), event(5, "delete"), event(101, "create"))
	if n := st.LookupsForTest(); n != 1 {
		t.Fatalf("%d lookups after a batch with stored ids, want 1", n)
	}
	if r := res[0]; r.Err != nil || r.Event.Seq != 4 {
		t.Errorf("retry: %+v, want the stored event of seq 4", r)
	}
	if r := res[2]; r.Err == nil || audittrail.ErrorCode(r.Err) != audittrail.EConflict {
		t.Errorf("conflicting content: %+v, want a conflict", r)
	}
	if res[1].Err != nil || res[3].Err != nil || res[1].Event.Seq != 11 || res[3].Event.Seq != 12 {
		t.Errorf("new ids after the failed first insert: %+v, %+v; want seqs 11 and 12", res[1], res[3])
	}
	if got := st.LastSeq(); got != 12 {
		t.Errorf("LastSeq %d, want 12", got)
	}
}

// TestInsertAfterLookupOutlivesContext: the insert of a run that looked its
// ids up runs under none of the caller's contexts, as a group's does, so
// that a caller whose context ends while the statement is in flight learns
// its outcome (here: stored) rather than an error that may come after the
// commit. The insert is held up by an uncommitted row of its new id.
func TestInsertAfterLookupOutlivesContext(t *testing.T) {
	url := pgtest.Start(t)
	st := mustOpen(t, url)
	defer st.Close()
	ctx := context.Background()
	stored := numberedEvent(t, 1, "create")
	if _, err := st.Append(ctx, []*audittrail.Event{stored}); err != nil {
		t.Fatal(err)
	}
	holder, watcher := connect(t, url), connect(t, url)
	fresh := numberedEvent(t, 2, "create")
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "INSERT INTO event_ids (id, seq, event_time_ns) VALUES ($1, -1, 0)", fresh.ID); err != nil {
		t.Fatal(err)
	}

	// The first run fails on the stored id at once; the second looks the
	// ids up and its insert waits for the uncommitted one.
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	type outcome struct {
		res []audittrail.AppendResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := st.Append(actx, []*audittrail.Event{stored.Clone(), fresh})
		done <- outcome{res, err}
	}()
	waitForLockWaits(t, watcher, 1)
	<-actx.Done()
	time.Sleep(100 * time.Millisecond) // for a statement cancelled with its caller
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	o := <-done
	got, err := st.EventByID(ctx, fresh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.err != nil {
		t.Fatalf("Append: %v (new event stored: %v), want the insert's outcome", o.err, got != nil)
	}
	if r := o.res[0]; r.Err != nil || r.Event.Seq != 1 {
		t.Errorf("retry of the stored event: %+v, want seq 1", r)
	}
	if r := o.res[1]; r.Err != nil || got == nil || r.Event.Seq != 2 || got.Seq != 2 {
		t.Errorf("new event: %+v, stored: %+v; want seq 2", r, got)
	}
	if n := st.LookupsForTest(); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
}
