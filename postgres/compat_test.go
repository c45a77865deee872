package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/postgres"
)

// warnLogger sends a store's log (warnings and up) to w, for tests that
// read it.
func warnLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// TestSchemaCompat: the database says which builds may use it
// (schema_compat, migration 0006). After this build migrates, the minimum
// is 1, so no build is refused; a schema newer than the build (a future
// migration's row) opens with a warning, read-write and read-only; a
// minimum above the build's schema version makes both Opens refuse, naming
// both versions and saying to upgrade, and leaves the database as it was.
func TestSchemaCompat(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	st := mustOpen(t, url)
	if _, err := st.Append(ctx, []*audittrail.Event{newEvent(t, 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn := connect(t, url)
	build := postgres.SchemaVersion()
	var minBuild int
	if err := conn.QueryRow(ctx, "SELECT min_build_version FROM schema_compat").Scan(&minBuild); err != nil || minBuild != 1 {
		t.Fatalf("schema_compat after migrating: %d, %v; want 1 (no migration breaks an older build)", minBuild, err)
	}

	open := func(readOnly bool) (string, error) {
		t.Helper()
		var log syncbuf.Buffer
		s, err := postgres.Open(ctx, postgres.Config{URL: url, Logger: warnLogger(&log), ReadOnly: readOnly})
		if err == nil {
			if got := searchAll(t, s, everything, 10); len(got) != 1 {
				t.Errorf("ReadOnly %v: search found %d events, want 1", readOnly, len(got))
			}
			s.Close()
		}
		return log.String(), err
	}

	// A future build's compatible migration: this build opens the
	// database and warns.
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", build+1); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		log, err := open(readOnly)
		if err != nil {
			t.Fatalf("ReadOnly %v: Open of a newer, compatible schema: %v", readOnly, err)
		}
		want := fmt.Sprintf("the database schema is newer than this build\" schema_version=%d build_version=%d min_build_version=1", build+1, build)
		if !strings.Contains(log, want) {
			t.Errorf("ReadOnly %v: Open of a newer schema logged:\n%s\nwant %q", readOnly, log, want)
		}
	}

	// The future build's migration breaks this one.
	if _, err := conn.Exec(ctx, "UPDATE schema_compat SET min_build_version = $1", build+1); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		_, err := open(readOnly)
		want := fmt.Sprintf("postgres: this build is too old for the database's schema: the database (schema version %d) may only be used "+
			"by builds whose newest migration is %04d or later, and this build's is %04d: upgrade audittrail to a release with migration %04d or later",
			build+1, build+1, build, build+1)
		if !errors.Is(err, postgres.ErrBuildTooOld) || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadOnly %v: Open with the minimum above this build: %v\nwant %q", readOnly, err, want)
		}
	}
	// At the minimum, a build opens. (Closed: a store left open went on
	// refreshing its retention cutoff every 5 s, and once the test's
	// database was dropped it logged the failure through the finished
	// test's logger, which panics; seen under make race.)
	s, err := postgres.Open(ctx, postgres.AsBuildForTest(postgres.Config{URL: url, Logger: testLogger(t)}, build+1))
	if err != nil {
		t.Fatalf("a build of the minimum's version: %v", err)
	}
	s.Close()
}

// TestRollingUpgrade: replicas of the previous build (simulated:
// AsBuildForTest) go on while this build migrates the database, and one
// started afterwards opens it (with the warning): the guard's minimum
// stays below them.
func TestRollingUpgrade(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	build := postgres.SchemaVersion()
	old := func() *postgres.Store {
		t.Helper()
		s, err := postgres.Open(ctx, postgres.AsBuildForTest(postgres.Config{URL: url, Logger: testLogger(t)}, build-1))
		if err != nil {
			t.Fatalf("Open as build %d: %v", build-1, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := old()
	if _, err := a.Append(ctx, []*audittrail.Event{newEvent(t, 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	var newest int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil || newest != build-1 {
		t.Fatalf("the old build migrated to %d (%v), want %d", newest, err, build-1)
	}
	b := mustOpen(t, url) // this build: migrates
	defer b.Close()
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil || newest != build {
		t.Fatalf("this build migrated to %d (%v), want %d", newest, err, build)
	}
	c := old() // an old replica restarted during the upgrade
	for i, s := range []*postgres.Store{a, b, c} {
		if _, err := s.Append(ctx, []*audittrail.Event{newEvent(t, uint64(i+2), time.Now())}); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	for i, s := range []*postgres.Store{a, b, c} {
		if got := searchAll(t, s, everything, 10); len(got) != 4 {
			t.Errorf("replica %d found %d events, want 4", i, len(got))
		}
	}
}

// TestReadOnlyOldSchema: a read-only store opens a database that has the
// migrations it reads (1 to ReadOnlyNeeds) and lacks later ones, written by
// an older build, and reads it all: searches, the events by seq, the tree,
// the retention cutoff. One migration fewer is refused, naming the missing
// migration and what applies it.
func TestReadOnlyOldSchema(t *testing.T) {
	ctx := t.Context()
	if postgres.ReadOnlyNeeds >= postgres.SchemaVersion() {
		t.Fatalf("ReadOnlyNeeds %d: no migration for this test to leave out", postgres.ReadOnlyNeeds)
	}
	oldDB := func(version int) string {
		t.Helper()
		url := pgtest.Start(t)
		s, err := postgres.Open(ctx, postgres.AsBuildForTest(postgres.Config{URL: url, Logger: testLogger(t)}, version))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var events []*audittrail.Event
		for i := range 5 {
			events = append(events, newEvent(t, uint64(i+1), time.Now().Add(-time.Duration(5-i)*time.Minute)))
		}
		if _, err := s.Append(ctx, events); err != nil {
			t.Fatal(err)
		}
		return url
	}
	readOnly := func(url string) (*postgres.Store, error) {
		return postgres.Open(ctx, postgres.Config{URL: url, Logger: testLogger(t), ReadOnly: true})
	}

	url := oldDB(postgres.ReadOnlyNeeds)
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "UPDATE retention SET cutoff_ns = (SELECT min(event_time_ns) + 1 FROM events)"); err != nil {
		t.Fatal(err)
	}
	ro, err := readOnly(url)
	if err != nil {
		t.Fatalf("read-only Open of a database of migration %04d: %v", postgres.ReadOnlyNeeds, err)
	}
	defer ro.Close()
	if got := searchAll(t, ro, everything, 2); len(got) != 4 {
		t.Errorf("read-only search found %d events, want 4 (the oldest is before the cutoff)", len(got))
	}
	if evs, err := ro.EventsBySeq(ctx, 1, 5); err != nil || len(evs) != 5 {
		t.Errorf("EventsBySeq: %d events, %v", len(evs), err)
	}
	if size, err := ro.TreeSize(); size != 0 || err != nil {
		t.Errorf("TreeSize = %d, %v; want 0", size, err)
	}
	if _, err := ro.Checkpoints(ctx); err != nil {
		t.Errorf("Checkpoints: %v", err)
	}
	var newest int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil || newest != postgres.ReadOnlyNeeds {
		t.Fatalf("after the read-only store the schema is at %d (%v), want %d", newest, err, postgres.ReadOnlyNeeds)
	}

	// The database of migration 0003 (this build's code reads the cutoff
	// at Open: made from one of 0004 by undoing 0004).
	url = oldDB(postgres.ReadOnlyNeeds)
	if _, err := connect(t, url).Exec(ctx, "DROP TABLE retention; DELETE FROM schema_migrations WHERE version = 4"); err != nil {
		t.Fatal(err)
	}
	_, err = readOnly(url)
	want := fmt.Sprintf("lacks migration %04d_retention (it has up to %04d), which a read-only store reads and does not apply: "+
		"start \"audittrail serve --store\" of this build on it once", postgres.ReadOnlyNeeds, postgres.ReadOnlyNeeds-1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("read-only Open of a database of migration %04d: %v\nwant %q", postgres.ReadOnlyNeeds-1, err, want)
	}
}

// TestSchemaGuardRunning: a replica opened before a newer build raised
// schema_compat's minimum above its schema version stops at once: its next
// append stores nothing and fails EUnavailable naming both versions, and so
// does every operation after it; a replica that does not append finds out
// at its next readiness check (Ping). An append in flight when the raising
// migration runs is serialised with it: waiting for the migration's
// uncommitted UPDATE, it then reads the new minimum and stores nothing.
func TestSchemaGuardRunning(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	writer, reader := mustOpen(t, url), mustOpen(t, url)
	defer writer.Close()
	defer reader.Close()
	if _, err := writer.Append(ctx, []*audittrail.Event{newEvent(t, 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	if err := reader.Ping(ctx); err != nil {
		t.Fatalf("Ping before the raise: %v", err)
	}

	build := postgres.SchemaVersion()
	migration := connect(t, url)
	tx, err := migration.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "UPDATE schema_compat SET min_build_version = $1", build+1); err != nil {
		t.Fatal(err)
	}
	appended := make(chan error, 1)
	go func() {
		_, err := writer.Append(ctx, []*audittrail.Event{newEvent(t, 2, time.Now())})
		appended <- err
	}()
	waitForLockWaits(t, connect(t, url), 1)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	want := fmt.Sprintf("this replica's build is too old for the database: a newer release's migration requires builds of schema version %d or later, "+
		"and this build's is %d; upgrade it", build+1, build)
	check := func(what string, err error) {
		t.Helper()
		if audittrail.ErrorCode(err) != audittrail.EUnavailable || !strings.Contains(err.Error(), want) {
			t.Errorf("%s after the raise: %v\nwant EUnavailable %q", what, err, want)
		}
	}
	check("the append waiting for the migration", <-appended)
	_, err = writer.Append(ctx, []*audittrail.Event{newEvent(t, 3, time.Now())})
	check("an append", err)
	_, err = writer.Search(ctx, audittrail.SearchRequest{Query: everything, Limit: 10})
	check("the writer's search", err)
	check("the writer's Ping", writer.Ping(ctx))

	// The reader has not written: its searches go on until its readiness
	// check reads the minimum.
	check("the reader's Ping", reader.Ping(ctx))
	_, err = reader.Search(ctx, audittrail.SearchRequest{Query: everything, Limit: 10})
	check("the reader's search", err)

	var stored int
	if err := migration.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&stored); err != nil || stored != 1 {
		t.Errorf("events stored: %d, %v; want the 1 from before the raise", stored, err)
	}
}

// TestExcludedReplicaResigns: a replica that leads the verifiable log when
// a newer build's migration excludes it gives the integrator lock up, so
// that an upgraded replica integrates and signs; it held the lock (its
// session) for as long as its process ran, every call of its own refused.
func TestExcludedReplicaResigns(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	build := postgres.SchemaVersion()
	old := mustOpen(t, url)
	defer old.Close()
	if lead, err := old.LeadLog(ctx); err != nil || !lead {
		t.Fatalf("the only replica's LeadLog: %v, %v; want it to lead", lead, err)
	}
	upgraded, err := postgres.Open(ctx, postgres.AsBuildForTest(postgres.Config{URL: url, Logger: testLogger(t)}, build+1))
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	if lead, err := upgraded.LeadLog(ctx); err != nil || lead {
		t.Fatalf("LeadLog while another replica leads: %v, %v; want false", lead, err)
	}

	if _, err := connect(t, url).Exec(ctx, "UPDATE schema_compat SET min_build_version = $1", build+1); err != nil {
		t.Fatal(err)
	}
	if err := old.Ping(ctx); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Fatalf("the old replica's Ping after the raise: %v; want EUnavailable", err)
	}
	if old.LeadPIDForTest() != 0 {
		t.Fatal("the excluded replica kept the session holding the integrator lock")
	}
	// The lock goes with its session, which the server ends a moment after
	// the connection closes.
	waitFor(t, "the upgraded replica to lead once the old one is excluded", func() bool {
		lead, err := upgraded.LeadLog(ctx)
		return lead && err == nil
	})
	if lead, err := old.LeadLog(ctx); audittrail.ErrorCode(err) != audittrail.EUnavailable || lead {
		t.Errorf("the excluded replica's LeadLog: %v, %v; want EUnavailable", lead, err)
	}

	// Nor does its maintenance loop write: the partitions ahead are the
	// newer build's to create.
	now := time.Now().UTC()
	ahead := "events_" + time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 2, 0).Format("2006_01")
	conn := connect(t, url)
	exists := func() bool {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", ahead).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !exists() {
		t.Fatalf("partition %s missing after Open", ahead)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE "+ahead); err != nil {
		t.Fatal(err)
	}
	old.PartitionTurnForTest()
	if exists() {
		t.Errorf("the excluded replica's partition check created %s", ahead)
	}
	upgraded.PartitionTurnForTest()
	if !exists() {
		t.Errorf("the upgraded replica's partition check did not create %s", ahead)
	}
}
