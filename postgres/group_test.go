package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestGroupCommit: concurrent appends that queue while a transaction is in
// flight are inserted together, one transaction for all of them, each
// call's events consecutive and in its order; and a group that fails for
// one call's stored id leaves the others' outcomes as if each had run
// alone. Queues are made by holding log_head's row lock from a transaction
// of the test's own: every insert waits for it.
func TestGroupCommit(t *testing.T) {
	url := pgtest.Start(t)
	st := mustOpen(t, url)
	defer st.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	event := func(k int, action string) *audittrail.Event { return numberedEvent(t, k, action) }
	// appendHeld runs calls concurrently while log_head is locked, releases
	// the lock once every call is in a group (at most two are in flight,
	// their statements waiting for the lock) or waiting for one, and
	// returns the results.
	appendHeld := func(calls [][]*audittrail.Event) [][]audittrail.AppendResult {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT seq FROM log_head FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		_, taken0, _ := st.InsertGroupsForTest()
		res := make([][]audittrail.AppendResult, len(calls))
		var wg sync.WaitGroup
		for i, c := range calls {
			wg.Go(func() {
				r, err := st.Append(ctx, c)
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
				res[i] = r
			})
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, taken, waiting := st.InsertGroupsForTest()
			if int(taken-taken0)+waiting == len(calls) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("calls not queued after 30s: %d of %d calls taken, %d waiting", taken-taken0, len(calls), waiting)
			}
			time.Sleep(time.Millisecond)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return res
	}

	// 1. Forty calls of one new event and one of three: at most three
	// transactions, the groups in flight when the lock is released (one
	// or two, as the inserters' goroutines happened to take the calls)
	// and one for all the others. Without grouping, one per call.
	var calls [][]*audittrail.Event
	for k := range 40 {
		calls = append(calls, []*audittrail.Event{event(k, "create")})
	}
	calls = append(calls, []*audittrail.Event{event(100, "create"), event(101, "create"), event(102, "create")})
	groups0, _, _ := st.InsertGroupsForTest()
	res := appendHeld(calls)
	if groups, _, _ := st.InsertGroupsForTest(); groups-groups0 > 3 {
		t.Errorf("%d groups inserted for %d queued calls, want at most 3 (at most two in flight, one for the rest)", groups-groups0, len(calls))
	}
	var seqs []uint64
	for i, r := range res {
		for j, rr := range r {
			if rr.Err != nil || rr.Event == nil || rr.Event.ID != calls[i][j].ID {
				t.Fatalf("call %d, event %d: %+v", i, j, rr)
			}
			seqs = append(seqs, rr.Event.Seq)
		}
	}
	if last := res[40]; last[1].Event.Seq != last[0].Event.Seq+1 || last[2].Event.Seq != last[1].Event.Seq+1 {
		t.Errorf("the three events of one call got seqs %d, %d, %d: not consecutive in the call's order",
			last[0].Event.Seq, last[1].Event.Seq, last[2].Event.Seq)
	}
	if n := st.LookupsForTest(); n != 0 {
		t.Errorf("%d id lookups for new ids, want 0", n)
	}

	// 2. A group with a stored id: a conflict (another content), a retry
	// (the same content), two calls with one new id (the second sees the
	// first's event), and calls of new events.
	stored := res[5][0].Event
	calls = [][]*audittrail.Event{
		{event(200, "create")},
		{event(5, "delete"), event(201, "create")}, // event 5 was stored with "create"
		{event(202, "create")},
		{event(5, "create")},
		{event(203, "create")},
		{event(203, "create")},
		{event(204, "create")},
	}
	res = appendHeld(calls)
	for _, i := range []int{0, 2, 4, 6} {
		if r := res[i][0]; r.Err != nil || r.Event.ID != calls[i][0].ID {
			t.Errorf("call %d of a new event: %+v", i, r)
		} else {
			seqs = append(seqs, r.Event.Seq)
		}
	}
	if r := res[1][0]; audittrail.ErrorCode(r.Err) != audittrail.EConflict {
		t.Errorf("stored id with another content: %+v, want a conflict", r)
	}
	if r := res[1][1]; r.Err != nil || r.Event.ID != calls[1][1].ID {
		t.Errorf("new event beside a conflict: %+v", r)
	} else {
		seqs = append(seqs, r.Event.Seq)
	}
	if r := res[3][0]; r.Err != nil || r.Event.Seq != stored.Seq || !r.Event.ReceiveTime.Equal(stored.ReceiveTime) {
		t.Errorf("retry of a stored event: %+v, want seq %d received at %v", r, stored.Seq, stored.ReceiveTime)
	}
	if r := res[5][0]; r.Err != nil || r.Event.Seq != res[4][0].Event.Seq {
		t.Errorf("second call with one new id: %+v, want the first's event (seq %d)", r, res[4][0].Event.Seq)
	}
	if n := st.LookupsForTest(); n == 0 {
		t.Error("no id lookups after a group with stored ids")
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs of %d new events are not 1..%d: position %d holds %d (%v)", len(seqs), len(seqs), i, s, seqs)
		}
	}
	if got := st.LastSeq(); got != uint64(len(seqs)) {
		t.Errorf("LastSeq %d, want %d", got, len(seqs))
	}
}

// TestAppendContextEnds: an Append whose context ends after its events
// were taken into a group waits for the group's insert and reports its
// outcome (here: stored), and one whose context ends while it waits in the
// queue leaves the queue and stores nothing. Either way an error means that
// nothing was stored (the Store contract); a call that returned at once
// instead saw its events committed after its error.
func TestAppendContextEnds(t *testing.T) {
	url := pgtest.Start(t)
	st := mustOpen(t, url)
	defer st.Close()
	ctx := context.Background()
	holder, watcher := connect(t, url), connect(t, url)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT seq FROM log_head FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res []audittrail.AppendResult
		err error
	}
	appendAsync := func(ctx context.Context, e *audittrail.Event) <-chan outcome {
		done := make(chan outcome, 1)
		go func() {
			res, err := st.Append(ctx, []*audittrail.Event{e})
			done <- outcome{res, err}
		}()
		return done
	}

	// Two groups in flight (a lone call is inserted at once), their
	// statements waiting for log_head: the first call's context ends
	// meanwhile.
	taken := numberedEvent(t, 1, "create")
	takenCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	takenDone := appendAsync(takenCtx, taken)
	waitForLockWaits(t, watcher, 1)
	other := numberedEvent(t, 2, "create")
	otherDone := appendAsync(ctx, other)
	waitForLockWaits(t, watcher, 2)

	// The next call waits in the queue until its context ends.
	queued := numberedEvent(t, 3, "create")
	queuedCtx, cancelQueued := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelQueued()
	if _, err := st.Append(queuedCtx, []*audittrail.Event{queued}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call whose context ended in the queue: %v, want %v", err, context.DeadlineExceeded)
	}
	if _, _, waiting := st.InsertGroupsForTest(); waiting != 0 {
		t.Errorf("%d calls still queued after their context ended, want 0", waiting)
	}
	<-takenCtx.Done()
	time.Sleep(100 * time.Millisecond) // for a call that would return at its context's end
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		e    *audittrail.Event
		done <-chan outcome
	}{{"the call whose context ended in a group", taken, takenDone}, {"the other group's call", other, otherDone}} {
		o := <-c.done
		stored, err := st.EventByID(ctx, c.e.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case o.err != nil && stored != nil:
			t.Errorf("%s failed (%v), yet its event is stored with seq %d", c.name, o.err, stored.Seq)
		case o.err != nil:
			t.Errorf("%s: %v, want its group's outcome (stored)", c.name, o.err)
		case o.res[0].Err != nil || stored == nil || o.res[0].Event.Seq != stored.Seq:
			t.Errorf("%s: %+v, stored: %+v", c.name, o.res[0], stored)
		}
	}
	if stored, err := st.EventByID(ctx, queued.ID); err != nil || stored != nil {
		t.Errorf("the event of the call that left the queue: %+v, %v; want none stored", stored, err)
	}
}
