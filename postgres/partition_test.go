package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

func partitions(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestPartitions covers the partition life cycle: Open creates the months
// around now; events of other months wait in the default partition until
// their month gets a partition; retention drops a month.
func TestPartitions(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	want := []string{"events_default"}
	for i := -1; i <= postgres.PartitionsAhead; i++ {
		want = append(want, "events_"+month.AddDate(0, i, 0).Format("2006_01"))
	}
	slices.Sort(want)
	if got := partitions(t, conn); !slices.Equal(got, want) {
		t.Errorf("partitions after Open: %v, want %v", got, want)
	}
	// Reopening (another replica) creates nothing new and fails nothing.
	s2 := mustOpen(t, url)
	s2.Close()

	// An old event goes to the default partition.
	old := newEvent(t, 1, time.Date(2024, 3, 15, 12, 0, 0, 123456789, time.UTC))
	other := newEvent(t, 2, time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC))
	if _, err := s.Append(ctx, []*audittrail.Event{old, other}); err != nil {
		t.Fatal(err)
	}
	where := func(id string) string {
		t.Helper()
		var table string
		if err := conn.QueryRow(ctx, "SELECT tableoid::regclass::text FROM events WHERE id = $1", id).Scan(&table); err != nil {
			t.Fatal(err)
		}
		return table
	}
	if got := where(old.ID); got != "events_default" {
		t.Errorf("an event of March 2024 is in %s, want events_default", got)
	}
	// Its month gets a partition: the event moves there.
	var created bool
	if err := conn.QueryRow(ctx, "SELECT audittrail_ensure_partition('2024-03-20')").Scan(&created); err != nil || !created {
		t.Fatalf("audittrail_ensure_partition: %v, created %v", err, created)
	}
	if err := conn.QueryRow(ctx, "SELECT audittrail_ensure_partition('2024-03-01')").Scan(&created); err != nil || created {
		t.Fatalf("audittrail_ensure_partition again: %v, created %v", err, created)
	}
	if got := where(old.ID); got != "events_2024_03" {
		t.Errorf("after creating its partition, the event is in %s, want events_2024_03", got)
	}
	if got := where(other.ID); got != "events_default" {
		t.Errorf("an event of April 2024 is in %s, want events_default", got)
	}
	got := searchAll(t, s, everything, 10)
	if len(got) != 2 || got[1].ID != old.ID || !got[1].EventTime.Equal(old.EventTime) {
		t.Errorf("search after the move: %v", got)
	}
	if res, err := s.Append(ctx, []*audittrail.Event{old}); err != nil || res[0].Err != nil || res[0].Event.Seq != 1 {
		t.Errorf("retry after the move: %v, %+v", err, res)
	}

	// Retention: drop the month. Its ids stay used (a retry of a dropped
	// event is a conflict) until they are deleted too.
	if _, err := conn.Exec(ctx, "DROP TABLE events_2024_03"); err != nil {
		t.Fatal(err)
	}
	if got := searchAll(t, s, everything, 10); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("search after dropping March 2024: %v", got)
	}
	res, err := s.Append(ctx, []*audittrail.Event{old})
	if err != nil || audittrail.ErrorCode(res[0].Err) != audittrail.EConflict {
		t.Errorf("append of a dropped event's id: %v, %+v; want EConflict", err, res)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM event_ids i WHERE NOT EXISTS
		(SELECT 1 FROM events e WHERE e.event_time_ns = i.event_time_ns AND e.seq = i.seq)`); err != nil {
		t.Fatal(err)
	}
	res, err = s.Append(ctx, []*audittrail.Event{old})
	if err != nil || res[0].Err != nil || res[0].Event.Seq != 3 {
		t.Errorf("append of a dropped event after deleting its id: %v, %+v; want a new event with seq 3", err, res)
	}
}
