package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

var roleCounter atomic.Int64

// TestReadOnly: a read-only store opens with a role that may only read
// (pg_read_all_data), serves searches and the log's reads, and every write
// fails, refused by the database; it refuses a database whose schema lacks
// a migration, and changes nothing in it.
func TestReadOnly(t *testing.T) {
	ctx := t.Context()
	cluster := pgtest.Shared(t)
	dbURL := cluster.NewDatabase(t)
	readOnly := func(u string) (*postgres.Store, error) {
		return postgres.Open(ctx, postgres.Config{URL: u, Logger: testLogger(t), ReadOnly: true})
	}

	// A database nothing migrated yet: refused, and left as it was.
	if _, err := readOnly(dbURL); err == nil || !strings.Contains(err.Error(), "lacks migration 0001") {
		t.Fatalf("read-only Open of an empty database: %v", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("the read-only Open created %d tables (%v)", tables, err)
	}

	// The service migrates and writes.
	st := mustOpen(t, dbURL)
	var events []*audittrail.Event
	for i := range 5 {
		events = append(events, newEvent(t, uint64(i+1), time.Now().Add(-time.Duration(5-i)*time.Minute)))
	}
	if _, err := st.Append(ctx, events); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// An auditor's role that may only read.
	role := fmt.Sprintf("auditor_%d", roleCounter.Add(1))
	if err := cluster.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN; GRANT pg_read_all_data TO %s", role, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	if _, err := postgres.Open(ctx, postgres.Config{URL: u.String(), Logger: testLogger(t)}); err == nil {
		t.Fatal("the auditor's role opened the store read-write: it should not be able to migrate")
	}
	for _, who := range []struct{ name, url string }{{"the auditor's role", u.String()}, {"the owner's role", dbURL}} {
		ro, err := readOnly(who.url)
		if err != nil {
			t.Fatalf("%s: read-only Open: %v", who.name, err)
		}
		if got := searchAll(t, ro, everything, 2); len(got) != 5 {
			t.Errorf("%s: read-only search found %d events, want 5", who.name, len(got))
		}
		if evs, err := ro.EventsBySeq(ctx, 1, 5); err != nil || len(evs) != 5 {
			t.Errorf("%s: EventsBySeq: %d events, %v", who.name, len(evs), err)
		}
		if _, err := ro.Append(ctx, []*audittrail.Event{newEvent(t, 99, time.Now())}); err == nil {
			t.Errorf("%s: a read-only store appended", who.name)
		}
		if err := ro.AppendTree(1, []int64{0}, [][32]byte{{1}}, nil); err == nil {
			t.Errorf("%s: a read-only store wrote the tree", who.name)
		}
		if err := ro.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d events after the read-only stores (%v), want 5", n, err)
	}
}
