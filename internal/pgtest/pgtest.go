// Package pgtest runs throwaway PostgreSQL clusters for tests.
//
// A test asks for a fresh database with Start, which returns its URL:
//
//	url := pgtest.Start(t)
//
// All the databases of one test binary live in one shared cluster, started on
// first use (initdb in a temporary directory, pg_ctl on a free port of
// 127.0.0.1 and a unix socket in that directory) and removed when the test
// binary exits. Tests that stop or restart the server (outage tests) take a
// cluster of their own with New, which is removed at the end of the test.
//
// When PostgreSQL is not installed the test is skipped, with the reason,
// unless the environment sets AUDITTRAIL_REQUIRE_POSTGRES=1 (as `make test`
// does): then it fails. The binaries are looked up in $AUDITTRAIL_PG_BIN
// when it is set, else on PATH, then in /usr/lib/postgresql/*/bin (newest
// version first), /usr/pgsql-*/bin and /usr/local/pgsql/bin. As root, the
// cluster runs as the OS user "postgres" (initdb refuses to run as root).
//
// The clusters are internal/pgcluster's, run with fsync on: tests of
// durability rely on it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/pgcluster"
)

// Environment variables.
const (
	// RequireEnv=1 turns a missing PostgreSQL installation from a skip
	// into a failure.
	RequireEnv = "AUDITTRAIL_REQUIRE_POSTGRES"
	// BinEnv names the directory of initdb and pg_ctl, instead of looking
	// for them.
	BinEnv = pgcluster.BinEnv
)

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	c *pgcluster.Cluster
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
	dbCounter atomic.Int64
)

// Start returns the URL of a new, empty database on the shared cluster of
// the test binary, starting the cluster on first use. The database is
// dropped at the end of the test.
func Start(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Shared returns the cluster shared by the tests of this binary, starting it
// on first use. It lives until the binary exits. Do not stop it: tests that
// need an outage take their own cluster with New.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	bin := findBin(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(bin)
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: starting the shared cluster: %v", sharedErr)
	}
	return shared
}

// New starts a cluster of the test's own, removed at the end of the test.
func New(t testing.TB) *Cluster {
	t.Helper()
	bin := findBin(t)
	c, err := start(bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.c.Remove)
	return c
}

// findBin returns the directory of the PostgreSQL binaries, or skips (or
// fails, when RequireEnv is set) the test.
func findBin(t testing.TB) string {
	t.Helper()
	bin, err := pgcluster.FindBin()
	if errors.Is(err, pgcluster.ErrNotInstalled) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1 requires it)", err, RequireEnv)
		}
		t.Skip(err.Error() + " to run these tests")
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// start creates and starts a cluster in a new temporary directory. The
// watchdog removes it when this process exits, whatever way it does (a
// test binary has no hook at exit without TestMain).
func start(bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c, err := pgcluster.Create(bin, dir, pgcluster.TestSettings, true)
	if err != nil {
		return nil, err
	}
	return &Cluster{c: c}, nil
}

// URL returns the connection URL of database db on the cluster (TCP on
// 127.0.0.1, user postgres, no password).
func (c *Cluster) URL(db string) string { return c.c.URL(db) }

// Port returns the TCP port of the cluster.
func (c *Cluster) Port() int { return c.c.Port }

// NewDatabase creates a new, empty database and returns its URL. It is
// dropped at the end of the test.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.c.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if c.c.Running() {
			// It ends the sessions a test left behind.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = c.c.DropDatabase(ctx, name)
		}
	})
	return c.URL(name)
}

// Exec runs sql on the maintenance database "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return c.c.Exec(ctx, sql)
}

// Stop stops the server (fast shutdown: sessions are ended, transactions
// in flight roll back, committed ones are kept).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.c.Stop("fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Crash stops the server the hard way (immediate shutdown: no checkpoint,
// recovery from the WAL at the next start), like a power cut for the data
// PostgreSQL had acknowledged.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.c.Stop("immediate"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server again, on the same port.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.c.StartServer(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server and starts it again.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// Connect opens a connection to the database at url, closed at the end of
// the test, and returns it with a function that runs a statement on it and
// fails the test when the statement fails.
func Connect(t testing.TB, url string) (*pgx.Conn, func(sql string, args ...any)) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}
