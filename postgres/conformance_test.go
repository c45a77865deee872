package postgres_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
	"github.com/audittrail/audittrail/storetest"
)

// TestConformance runs the conformance suite of audittrail.Store on the
// PostgreSQL store, each subtest on a fresh database of a throwaway cluster.
// The suite's directory stands for the database: the first Open in a
// directory creates a database and notes its URL there, a reopen (the
// durability tests) finds it. Replay a random failure with
// STORETEST_SEED=<logged seed>.
func TestConformance(t *testing.T) {
	storetest.RunHarness(t, storetest.Harness{
		Open: func(t *testing.T, dir string) audittrail.Store {
			return mustOpen(t, databaseOf(t, dir))
		},
	})
}

// databaseOf returns the URL of the database that stands for dir, creating
// the database on first use.
func databaseOf(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "database-url")
	if b, err := os.ReadFile(file); err == nil {
		return string(b)
	}
	url := pgtest.Start(t)
	if err := os.WriteFile(file, []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	return url
}

// mustOpen opens a store on url; the caller closes it.
func mustOpen(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	return s
}
