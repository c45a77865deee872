package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

// TestExplain prints the plans of the main query shapes of Search on sample
// data, for docs/design/postgres.md. It runs only when AUDITTRAIL_EXPLAIN
// names the number of events to load (e.g. AUDITTRAIL_EXPLAIN=1000000).
func TestExplain(t *testing.T) {
	n := 0
	if v := os.Getenv("AUDITTRAIL_EXPLAIN"); v == "" {
		t.Skip("set AUDITTRAIL_EXPLAIN=<events> to print the plans of the search shapes")
	} else if _, err := fmt.Sscan(v, &n); err != nil {
		t.Fatal(err)
	}
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	end := time.Now().UTC().Truncate(time.Hour)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Partitions for the whole span of the sample (90 days), as a store
	// running for that long has.
	for m := end.AddDate(0, -4, 0); m.Before(end); m = m.AddDate(0, 1, 0) {
		if _, err := conn.Exec(ctx, "SELECT audittrail_ensure_partition($1::date)", m.Format(time.DateOnly)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	loadSample(t, s, n, end)
	loadTime := time.Since(start)
	// Measure a settled database: statistics, visibility map and hint bits
	// up to date, the load's dirty pages written.
	for _, sql := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var principal, workspace string
	if err := conn.QueryRow(ctx, `SELECT principal FROM events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1`).Scan(&principal); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT workspace FROM events WHERE workspace <> '' GROUP BY 1 ORDER BY count(*) LIMIT 1`).Scan(&workspace); err != nil {
		t.Fatal(err)
	}
	var action string
	if err := conn.QueryRow(ctx, `SELECT action FROM events WHERE principal = $1 GROUP BY 1 ORDER BY count(*) LIMIT 1`, principal).Scan(&action); err != nil {
		t.Fatal(err)
	}
	var sizes strings.Builder
	rows, err := conn.Query(ctx, `SELECT 'events (heap)', sum(pg_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass
		UNION ALL SELECT 'events (indexes)', sum(pg_indexes_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass
		UNION ALL SELECT 'event_ids (with indexes)', pg_total_relation_size('event_ids')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var b int64
		if err := rows.Scan(&name, &b); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sizes, "%s: %d MiB, %d bytes per event\n", name, b>>20, b/int64(n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	day := end.Add(-24 * time.Hour)
	shapes := []struct {
		name   string
		filter audittrail.Filter
		after  bool
		full   bool // explain the whole statement, not the first page
	}{
		{"default range, no filter (first page)", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0))}, false, false},
		{"one day, no filter, next page", audittrail.Filter{StartTime: &day}, true, false},
		{"principal_exact (the most frequent principal)", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), Exact: field(audittrail.FieldPrincipal, principal)}, false, false},
		{"workspace_exact (a rare workspace)", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), Exact: field(audittrail.FieldWorkspace, workspace)}, false, false},
		{"action_regex with a literal suffix", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), Regex: field(audittrail.FieldAction, "DELETE$")}, false, false},
		{"principal_exact and action_exact", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), Exact: two(audittrail.FieldPrincipal, principal, audittrail.FieldAction, action)}, false, false},
		{"metadata_exact and read_only", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), MetadataExact: map[string]string{"region": "eu-west-1"}, ReadOnly: ptr(false)}, false, false},
		{"principal_regex matching nothing: MaxScan candidates examined on the server", audittrail.Filter{StartTime: ptr(end.AddDate(0, -3, 0)), Regex: field(audittrail.FieldPrincipal, "^nobody$")}, false, true},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%d sample events over 90 days, loaded in %v\n\n%s\n", n, loadTime.Round(time.Second), sizes.String())
	for _, sh := range shapes {
		q, err := sh.filter.Compile(end)
		if err != nil {
			t.Fatal(err)
		}
		var after *audittrail.Cursor
		if sh.after {
			res, err := s.Search(ctx, audittrail.SearchRequest{Query: q, Limit: 50})
			if err != nil || res.Next == nil {
				t.Fatalf("%s: first page: %v", sh.name, err)
			}
			after = res.Next
		}
		sql, args, ok := postgres.SearchSQL(q, after, audittrail.DefaultMaxScan)
		if !ok {
			t.Fatalf("%s: empty", sh.name)
		}
		plan := explain(t, conn, sql, args, sh.full)
		// The latency of Search itself, as a caller sees it.
		var times []time.Duration
		for range 21 {
			st := time.Now()
			if _, err := s.Search(ctx, audittrail.SearchRequest{Query: q, After: after, Limit: 50}); err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(st))
		}
		slices.Sort(times)
		fmt.Fprintf(&out, "### %s\n\nSearch, page of 50: median %v, fastest %v (21 runs)\n\n```\n%s```\n\n", sh.name,
			times[10].Round(10*time.Microsecond), times[0].Round(10*time.Microsecond), plan)
	}
	// Appending: batches of 100 and of 1000 events, as BatchCreateEvents
	// sends them.
	for _, size := range []int{1, 10, 100, 1000} {
		var batch []*audittrail.Event
		for i := range size {
			batch = append(batch, newEvent(t, uint64(10_000_000+size*10+i), end.Add(-time.Duration(i)*time.Second)))
		}
		st := time.Now()
		if _, err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "Append of %d events: %v\n", size, time.Since(st).Round(10*time.Microsecond))
	}
	if f := os.Getenv("AUDITTRAIL_EXPLAIN_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Log("\n" + out.String())
}

// explain runs sql as a search does (in a read-only transaction, sorts
// disabled), fetching the first 53 rows (a page of 50 and the look-ahead)
// or all of them, and returns the plan.
func explain(t *testing.T, conn *pgx.Conn, sql string, args []any, full bool) string {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; SET LOCAL enable_sort = off; SET LOCAL jit = off"})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// The plan of a cursor: the planner optimises for the first rows.
	limit := " LIMIT 53"
	if full {
		limit = ""
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql+limit, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}

func ptr[T any](v T) *T { return &v }

func field(f audittrail.Field, v string) (a [audittrail.NumFields]string) {
	a[f] = v
	return a
}

func two(f1 audittrail.Field, v1 string, f2 audittrail.Field, v2 string) (a [audittrail.NumFields]string) {
	a[f1], a[f2] = v1, v2
	return a
}

// TestLookupPlan: the idempotency lookup of a batch's ids (each Append's
// first statement) reads event_ids through its primary key, one probe per
// id, on a large table with fresh statistics, where the planner had chosen
// a sequential scan of the whole table for every batch.
func TestLookupPlan(t *testing.T) {
	conn, ids := lookupDatabase(t, 200_000)
	ctx := t.Context()
	var plan []map[string]any
	if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+postgres.LookupSQL, ids).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var scans []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if rel, _ := n["Relation Name"].(string); rel == "event_ids" {
			idx, _ := n["Index Name"].(string)
			scans = append(scans, fmt.Sprintf("%s %s", n["Node Type"], idx))
		}
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			walk(k.(map[string]any))
		}
	}
	walk(plan[0]["Plan"].(map[string]any))
	if !slices.Equal(scans, []string{"Index Scan event_ids_pkey"}) {
		t.Errorf("event_ids read by %q, want one index scan of its primary key", scans)
	}
}

// lookupDatabase returns a connection to a new migrated database holding n
// events with their ids, written in SQL (seconds, where appending them
// takes half a minute), analyzed, and 1000 ids to look up (none stored, as
// in a batch of new events). The lookup's old statement was planned as a
// sequential scan from 100,000 events on.
func lookupDatabase(tb testing.TB, n int) (*pgx.Conn, []string) {
	tb.Helper()
	url := pgtest.Start(tb)
	mustOpen(tb, url).Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(ctx) })
	for _, sql := range []string{
		fmt.Sprintf(`WITH ids AS (
		    INSERT INTO event_ids (id, seq, event_time_ns)
		    SELECT gen_random_uuid(), g, 1700000000000000000 + g::bigint * 1000000 FROM generate_series(1, %d) g
		    RETURNING *)
		INSERT INTO events (event_time_ns, seq, id, type, read_only, event_source, action, principal, source_ip, resource, workspace, user_agent)
		SELECT event_time_ns, seq, id, 1, false, 'source', 'actions/a/b/GET', 'users/' || (seq %% 5000), '10.0.0.1',
		       'workspaces/w/things/' || seq, 'workspaces/w', 'agent' FROM ids`, n),
		"ANALYZE",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			tb.Fatal(err)
		}
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	return conn, ids
}

// oldLookupSQL is the lookup statement before it probed each id (kept for
// BenchmarkLookup's comparison).
const oldLookupSQL = `SELECT i.id::text FROM event_ids i LEFT JOIN events e ON e.event_time_ns = i.event_time_ns AND e.seq = i.seq
WHERE i.id = ANY($1::text[]::uuid[])`

// BenchmarkLookup times the lookup of a batch's 1000 ids in a database of
// 300,000 events (lookupDatabase): the statement as it is, and the one
// before it, whose plan scanned event_ids.
//
//	go test -run '^$' -bench '^BenchmarkLookup$' ./postgres/
func BenchmarkLookup(b *testing.B) {
	conn, ids := lookupDatabase(b, 300_000)
	for _, c := range []struct{ name, sql string }{{"probes", postgres.LookupSQL}, {"old", oldLookupSQL}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := conn.Query(context.Background(), c.sql, pgx.QueryExecModeCacheDescribe, ids)
				if err != nil {
					b.Fatal(err)
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
