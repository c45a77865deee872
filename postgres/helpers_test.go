package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
)

// testLogger sends the store's log to the test log (warnings and errors
// only, to keep failures readable).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// numberedEvent is event number k of a stream of small events with known
// ids (00000000-0000-4000-8000-<k>), one second apart from 2026-11-01 12:00
// UTC, with the given action.
func numberedEvent(t testing.TB, k int, action string) *audittrail.Event {
	t.Helper()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	e, err := audittrail.PrepareNewEvent(fmt.Sprintf("00000000-0000-4000-8000-%012x", k), audittrail.NewEvent{Event: audittrail.Event{
		EventTime: at.Add(time.Duration(k) * time.Second), EventSource: "src", Action: action, Principal: "users/p", SourceIP: "1.1.1.1",
	}}, at.Add(time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitForLockWaits returns once n statements of conn's database wait for a
// lock (a row of log_head, an uncommitted id): the appends the test holds
// up have reached their insert. conn must not be in a transaction, whose
// view of pg_stat_activity would not change.
func waitForLockWaits(t testing.TB, conn *pgx.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waits int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements wait for a lock after 30s, want %d", waits, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// connect opens a connection of the test's own to url (to hold a lock, or
// to watch pg_stat_activity), closed at the end of the test.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
