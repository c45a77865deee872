package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

// TestExpireDropsMonths: a pass drops each monthly partition wholly before
// the cutoff whose events the log has integrated, deletes the default
// partition's integrated rows before it, and the ids of both; a month with
// an event not yet integrated waits for the next pass, the month holding
// the cutoff stays (hidden); a replica that opened the database before
// learns the cutoff by itself; a dropped event's id may be used again.
func TestExpireDropsMonths(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	other := mustOpen(t, url) // a second replica
	defer other.Close()
	conn, exec := pgtest.Connect(t, url)
	for _, m := range []string{"2025-03-01", "2025-04-01", "2025-05-01"} {
		exec("SELECT audittrail_ensure_partition($1::date)", m)
	}
	k := 0
	add := func(at time.Time, n int) []*audittrail.Event {
		t.Helper()
		var evs []*audittrail.Event
		for range n {
			k++
			e, err := audittrail.PrepareNewEvent(fmt.Sprintf("00000000-0000-4000-8000-%012x", k), audittrail.NewEvent{Event: audittrail.Event{
				EventTime: at.Add(time.Duration(k) * time.Minute), EventSource: "src", Action: "actions/a/b/CREATE", Principal: "users/p", SourceIP: "1.1.1.1",
			}}, at.Add(time.Hour), false)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		res, err := s.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]*audittrail.Event, len(res))
		for i, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			out[i] = r.Event
		}
		return out
	}
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	add(date(2024, 1, 5), 10)                // seqs 1-10: the default partition
	march := add(date(2025, 3, 5), 10)       // 11-20
	add(date(2025, 4, 5), 10)                // 21-30
	add(date(2025, 5, 2), 5)                 // 31-35: May, before the cutoff
	add(date(2025, 5, 20), 5)                // 36-40: after it
	add(date(2025, 4, 25), 1)                // 41: not integrated
	add(time.Now().UTC().Add(-time.Hour), 1) // 42
	exec("UPDATE log_tree SET size = 40")
	// A leader holds the log's lock meanwhile, as in a running service.
	exec("SELECT pg_advisory_lock($1)", postgres.LogLockKey)
	count := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	partitions := func() string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events_2025_0%' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(names)
	}

	cutoff := date(2025, 5, 15)
	// While another replica deletes, a pass only moves the cutoff.
	exec("SELECT pg_advisory_lock($1)", postgres.RetentionLockKey)
	res, err := s.Expire(ctx, cutoff)
	if err != nil || !res.Cutoff.Equal(cutoff) || res.Deleted != 0 || res.Kept != 0 || !s.Cutoff().Equal(cutoff) {
		t.Fatalf("a pass while another replica deletes: %+v, %v", res, err)
	}
	if got := partitions(); got != "[events_2025_03 events_2025_04 events_2025_05]" {
		t.Fatalf("partitions after a pass that did not delete: %s", got)
	}
	exec("SELECT pg_advisory_unlock($1)", postgres.RetentionLockKey)
	res, err = s.Expire(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	// March dropped (10) and January's default rows (10); April holds seq
	// 41, not integrated; May holds the cutoff.
	if !res.Cutoff.Equal(cutoff) || res.Deleted != 20 || res.Kept != 16 {
		t.Fatalf("first pass: %+v; want 20 deleted, 16 kept", res)
	}
	if got := partitions(); got != "[events_2025_04 events_2025_05]" {
		t.Fatalf("partitions after the first pass: %s", got)
	}
	if n := count("SELECT count(*) FROM event_ids"); n != 22 {
		t.Fatalf("%d ids left, want 22", n)
	}
	if n := count("SELECT count(*) FROM events_default"); n != 0 {
		t.Fatalf("%d rows left in the default partition", n)
	}

	// The other replica learns the cutoff within cutoffRefresh.
	start := date(2020, 1, 1)
	flt := audittrail.Filter{StartTime: &start}
	q, err := flt.Compile(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !other.Cutoff().Equal(cutoff) {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica's cutoff is still %v", other.Cutoff())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, st := range []*struct {
		name string
		s    interface {
			Search(context.Context, audittrail.SearchRequest) (*audittrail.SearchResult, error)
		}
	}{{"this replica", s}, {"the other replica", other}} {
		r, err := st.s.Search(ctx, audittrail.SearchRequest{Query: q, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Events) != 6 { // 36-40 and 42
			t.Fatalf("%s: %d events, want the 6 after the cutoff", st.name, len(r.Events))
		}
		for _, e := range r.Events {
			if e.EventTime.Before(cutoff) {
				t.Fatalf("%s shows an event before the cutoff: %+v", st.name, e)
			}
		}
	}

	// Once the log has integrated seq 41, April goes too.
	exec("UPDATE log_tree SET size = 42")
	res, err = other.Expire(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 11 || res.Kept != 5 || res.Resumed {
		t.Fatalf("second pass: %+v; want 11 deleted, 5 kept, not resumed", res)
	}
	if n := count("SELECT count(*) FROM retention WHERE passing"); n != 0 {
		t.Fatal("a finished pass left its mark")
	}
	// A pass that ended with its process (after deleting, before its
	// deletion was recorded) leaves its mark: the next pass, on any
	// replica, says it resumed one, and clears the mark.
	exec("UPDATE retention SET passing = true")
	if res, err = s.Expire(ctx, cutoff); err != nil || !res.Resumed || res.Deleted != 0 {
		t.Fatalf("the pass after an interrupted one: %+v, %v; want resumed, nothing deleted", res, err)
	}
	if res, err = other.Expire(ctx, cutoff); err != nil || res.Resumed {
		t.Fatalf("the pass after that: %+v, %v; want not resumed", res, err)
	}
	if got := partitions(); got != "[events_2025_05]" {
		t.Fatalf("partitions after the second pass: %s", got)
	}
	if n := count("SELECT count(*) FROM event_ids WHERE event_time_ns < " + fmt.Sprint(cutoff.UnixNano())); n != 5 {
		t.Fatalf("%d ids of events before the cutoff left, want May's 5", n)
	}

	// A dropped event's id names a new event.
	reused := march[0].Clone()
	reused.EventTime, reused.Seq = date(2025, 6, 1), 0
	ar, err := s.Append(ctx, []*audittrail.Event{reused})
	if err != nil || ar[0].Err != nil || ar[0].Event.Seq != 43 {
		t.Fatalf("reusing a dropped event's id: %v %+v", err, ar)
	}
}

// TestAppendRacesExpire: once Expire has returned, no append of an event
// before its cutoff is acknowledged, by any replica: not by one whose
// statement was waiting for log_head while the cutoff moved, alone or in a
// group, nor by a replica that has not read the cutoff yet. The other
// events of those calls are stored, numbered without a gap.
func TestAppendRacesExpire(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	stale := mustOpen(t, url) // a replica that learns the cutoff only within cutoffRefresh
	defer stale.Close()
	holder, watcher := connect(t, url), connect(t, url)
	// Another replica deletes meanwhile, so that Expire only moves the
	// cutoff (dropping a month would wait for the appends in flight).
	if _, err := watcher.Exec(ctx, "SELECT pg_advisory_lock($1)", postgres.RetentionLockKey); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT seq FROM log_head FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	// numberedEvent k is at 12:00 + k seconds: before the cutoff below
	// for k < 3600.
	cutoff := time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)
	old := func(k int) *audittrail.Event { return numberedEvent(t, k, "create") }
	young := func(k int) *audittrail.Event { return numberedEvent(t, 4000+k, "create") }
	type outcome struct {
		res []audittrail.AppendResult
		err error
	}
	appendAsync := func(events ...*audittrail.Event) <-chan outcome {
		done := make(chan outcome, 1)
		go func() {
			res, err := s.Append(ctx, events)
			done <- outcome{res, err}
		}()
		return done
	}
	// Two lone calls in flight, their statements waiting for log_head, and
	// two calls queued for one group.
	calls := [][]*audittrail.Event{{old(1), young(1)}, {young(2)}, {old(2)}, {young(3)}}
	var dones []<-chan outcome
	for i, c := range calls {
		dones = append(dones, appendAsync(c...))
		if i < 2 {
			waitForLockWaits(t, watcher, i+1)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, _, waiting := s.InsertGroupsForTest(); waiting < 2; _, _, waiting = s.InsertGroupsForTest() {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued after 30s, want 2", waiting)
		}
		time.Sleep(time.Millisecond)
	}
	// The appends in flight lock retention's row only once they hold
	// log_head's: Expire does not wait for them.
	expireCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Expire(expireCtx, cutoff); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	var seqs []uint64
	for i, done := range dones {
		o := <-done
		if o.err != nil {
			t.Fatalf("call %d: %v", i, o.err)
		}
		for j, r := range o.res {
			e := calls[i][j]
			switch {
			case e.EventTime.Before(cutoff) && !beforeCutoff(r.Err):
				t.Errorf("call %d, event %d (before the cutoff): %+v, want refused", i, j, r)
			case !e.EventTime.Before(cutoff) && (r.Err != nil || r.Event.ID != e.ID):
				t.Errorf("call %d, event %d: %+v, want stored", i, j, r)
			case r.Err == nil:
				seqs = append(seqs, r.Event.Seq)
			}
		}
	}
	if groups, taken, _ := s.InsertGroupsForTest(); groups != 3 || taken != 4 {
		t.Errorf("%d groups of %d calls inserted, want 3 of 4 (two lone calls, one group of two)", groups, taken)
	}
	// The other replica has not read the new cutoff yet (it reads it
	// every cutoffRefresh).
	late := old(3)
	if res, err := stale.Append(ctx, []*audittrail.Event{late}); err != nil {
		t.Fatalf("append to the replica that did not know the cutoff: %v", err)
	} else if !beforeCutoff(res[0].Err) {
		t.Errorf("an event before the cutoff appended to a replica that did not know it: %+v, want refused", res[0])
	}
	if !stale.Cutoff().Equal(cutoff) {
		t.Errorf("the replica's cutoff after its refused append: %v, want %v", stale.Cutoff(), cutoff)
	}
	slices.Sort(seqs)
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("seqs of the stored events %v, want 1, 2, 3", seqs)
	}
	var before int
	if err := watcher.QueryRow(ctx, "SELECT (SELECT count(*) FROM events WHERE event_time_ns < $1) + (SELECT count(*) FROM event_ids WHERE event_time_ns < $1)",
		cutoff.UnixNano()).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if before != 0 {
		t.Errorf("%d rows of events before the cutoff stored", before)
	}
	if got := s.LastSeq(); got != 3 {
		t.Errorf("LastSeq %d, want 3", got)
	}
}

// beforeCutoff reports the refusal of an event before the retention cutoff.
func beforeCutoff(err error) bool {
	return audittrail.ErrorCode(err) == audittrail.EInvalid && strings.Contains(err.Error(), "before the retention cutoff")
}

// TestReadAheadAfterAnotherReplicaExpires: a replica hides the events
// before a cutoff another replica moved once it has read the cutoff
// (within cutoffRefresh), also in the next page of a search that it read
// ahead before the cutoff moved (audittrail.Service.PrefetchMinPage). Only
// the replica that ran the retention pass forgets its pages read ahead
// (Service.ForgetReadAhead); the others served them, events before the
// cutoff included, until prefetchTTL.
func TestReadAheadAfterAnotherReplicaExpires(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	a := mustOpen(t, url) // runs the retention pass
	defer a.Close()
	b := mustOpen(t, url) // serves the search
	defer b.Close()
	var events []*audittrail.Event
	for k := range 6 {
		events = append(events, numberedEvent(t, k, "create"))
	}
	if _, err := a.Append(ctx, events); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	svc := &audittrail.Service{Store: b, PageTokenKey: key, PrefetchMinPage: 2, Now: func() time.Time { return now }}
	pctx := audittrail.NewContextWithPrincipal(ctx, &audittrail.Principal{Name: "users/auditor", Roles: []audittrail.Role{audittrail.RoleAuditor}})
	filter := audittrail.Filter{StartTime: ptr(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))}
	first, err := svc.SearchEvents(pctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: 2})
	if err != nil || len(first.Events) != 2 || first.NextPageToken == "" {
		t.Fatalf("first page: %v, %+v", err, first)
	}
	for svc.PrefetchStats().Started == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the read ahead done

	// Every event is before the cutoff.
	if _, err := a.Expire(ctx, time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); b.Cutoff().IsZero(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("replica b did not learn the cutoff")
		}
	}
	next, err := svc.SearchEvents(pctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: 2, PageToken: first.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range next.Events {
		t.Errorf("replica b knows the cutoff %s and shows event %s of %s", b.Cutoff(), e.ID, e.EventTime)
	}
}
