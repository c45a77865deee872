package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/pgtest"
)

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStart(t *testing.T) {
	a, b := pgtest.Start(t), pgtest.Start(t)
	if a == b {
		t.Fatalf("two databases with one URL %s", a)
	}
	if got := query(t, a, "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %s, want on", got)
	}
	query(t, a, "SELECT current_database()")
	if first, second := pgtest.Shared(t), pgtest.Shared(t); first != second {
		t.Error("Shared returned two clusters")
	}
}

func TestRestart(t *testing.T) {
	c := pgtest.New(t)
	url := c.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	c.Stop(t)
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	c.Start(t)
	if got := query(t, url, "SELECT v::text FROM x"); got != "42" {
		t.Errorf("after restart: %s, want 42", got)
	}
	c.Crash(t)
	c.Start(t)
	if got := query(t, url, "SELECT v::text FROM x"); got != "42" {
		t.Errorf("after a crash: %s, want 42", got)
	}
}
