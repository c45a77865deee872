package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/pgcluster"
	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestRun runs a command that hands the test the URL it got and waits: the
// database answers there while the command runs, the command's exit status
// comes back, and the cluster is gone afterwards.
func TestRun(t *testing.T) {
	if _, err := pgcluster.FindBin(); errors.Is(err, pgcluster.ErrNotInstalled) {
		if os.Getenv(pgtest.RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	urlFile, done := filepath.Join(dir, "url"), filepath.Join(dir, "done")
	// The command gets the URL, and the directory of PostgreSQL's programs.
	script := `"$WITHPOSTGRES_BIN/createdb" --maintenance-db="$WITHPG_TEST_URL" second || exit 9
printf %s "$WITHPG_TEST_URL" > "$1.tmp" && mv "$1.tmp" "$1"
while [ ! -e "$2" ]; do sleep 0.05; done
exit 3`

	checked := make(chan error, 1)
	go func() {
		checked <- func() error {
			defer os.WriteFile(done, nil, 0o600) //nolint:errcheck // the command waits for it
			url, err := waitForFile(urlFile, time.Minute)
			if err != nil {
				return err
			}
			return query(url)
		}()
	}()
	code, err := run("WITHPG_TEST_URL", "checked", []string{"sh", "-c", script, "sh", urlFile, done})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-checked; err != nil {
		t.Fatalf("while the command ran: %v", err)
	}
	if code == 9 {
		t.Fatalf("createdb from %s=<dir> failed", BinEnv)
	}
	if code != 3 {
		t.Errorf("exit status %d, want the command's 3", code)
	}
	url, _ := os.ReadFile(urlFile)
	if err := query(string(url)); err == nil {
		t.Errorf("%s still answers after run returned", url)
	}
}

func waitForFile(path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return string(b), nil
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// query connects to url and asks for the database's name.
func query(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		return err
	}
	if name != "checked" {
		return errors.New("connected to database " + name + ", want checked")
	}
	return nil
}
