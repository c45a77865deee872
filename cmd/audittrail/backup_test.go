package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
)

// TestBackupRestore takes a backup with "audittrail backup" while a
// producer writes, restores it into a new data directory with the signing
// key, and starts a server on it: every event acknowledged before the
// backup is there, the restored log extends the checkpoint seen before the
// backup, the offline audit of the copy passes, and the backup is recorded
// as a self-audit event. Names in use, bad names and non-admin callers are
// refused.
func TestBackupRestore(t *testing.T) {
	dataDir := t.TempDir()
	m := startDevMain(t, dataDir)
	admin := m.Config.Auth.AdminToken
	producer, err := client.Dial(t.Context(), m.InternalURL, client.WithToken(m.Config.ProducerToken))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	reader, err := client.Dial(t.Context(), m.PublicURL, client.WithToken(m.Config.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	end := time.Now().Add(-time.Hour).Truncate(time.Second)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		g := sample.New(5, sample.Options{Events: 1 << 20, Span: 48 * time.Hour, End: end})
		for ctx.Err() == nil {
			reqs := make([]audittrail.CreateRequest, 100)
			for i := range reqs {
				reqs[i].EventID, reqs[i].Event = g.Next()
			}
			res, err := producer.BatchCreateEvents(ctx, reqs)
			if err != nil || len(res.Failed) > 0 {
				if ctx.Err() == nil {
					t.Errorf("batch: %v %v", err, res)
				}
				return
			}
			mu.Lock()
			for _, r := range reqs {
				acked[r.EventID] = true
			}
			mu.Unlock()
		}
	})
	verifier := mustVerifier(t, filepath.Join(dataDir, logsign.VerificationKeyFile))
	var seen *merkle.Checkpoint // a checkpoint of events, from before the backup
	for seen == nil || seen.Size < 1000 {
		time.Sleep(50 * time.Millisecond)
		if raw, err := reader.Checkpoint(t.Context()); err == nil {
			if seen, err = merkle.OpenCheckpoint(raw, verifier); err != nil {
				t.Fatal(err)
			}
		}
	}
	mu.Lock()
	before := len(acked)
	ackedBefore := make([]string, 0, before)
	for id := range acked {
		ackedBefore = append(ackedBefore, id)
	}
	mu.Unlock()

	out := runOK(t, "backup", "--addr", m.InternalURL, "--token", admin, "--name", "b1")
	stop()
	wg.Wait()
	backup := filepath.Join(dataDir, "backups", "b1")
	if !strings.Contains(out, "backup b1: "+backup+" on the server") {
		t.Fatalf("backup printed %q", out)
	}
	for _, f := range []string{"README", pageTokenKeyFile, logsign.VerificationKeyFile, "pebble/MANIFEST-*"} {
		if m, err := filepath.Glob(filepath.Join(backup, f)); err != nil || len(m) == 0 {
			t.Errorf("the backup lacks %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(backup, logsign.SigningKeyFile)); err == nil {
		t.Error("the backup holds the signing key")
	}
	if fi, err := os.Stat(filepath.Join(backup, pageTokenKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup's page token key: %v %v, want mode 0600", fi, err)
	}

	// Refusals.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--name", "b1"}, 1, `a backup named "b1" exists`},
		{[]string{"--name", "../b2"}, 2, "--name: \"../b2\": use letters, digits"},
		{[]string{"--name", "b3", "--token", m.Config.ReaderToken}, 1, "may not take backups: it needs the admin role"},
		{[]string{"--name", "b4", "--token", ""}, 2, "--token: an administrator's token is required"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"backup", "--addr", m.InternalURL, "--token", admin}, c.args...)
		if code := run(t.Context(), args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
	// The server checks names too, whatever the client.
	conn, err := dialAdmin(m.InternalURL, admin, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewAdminServiceClient(conn).CreateBackup(t.Context(), &pb.CreateBackupRequest{Name: ".."}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateBackup(..): %v, want INVALID_ARGUMENT", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "backups", "b3")); err == nil {
		t.Error("a refused backup left its directory")
	}

	// Every attempt is a self-audit event, refused ones included.
	res, err := reader.SearchEvents(t.Context(), audittrail.SearchEventsRequest{PageSize: 10,
		Filter: audittrail.Filter{Exact: exactAction(audittrail.ActionCreateBackup)}})
	if err != nil {
		t.Fatal(err)
	}
	var ok, refused int
	for _, e := range res.Events {
		switch {
		case e.Resource == audittrail.BackupResourcePrefix+"b1" && e.Status.Code == 0 && e.Principal == "users/admin":
			ok++
		case e.Status.Code != 0:
			refused++
		}
	}
	if ok != 1 || refused != 3 {
		t.Errorf("backup audit events: %d taken, %d refused; want 1 and 3: %+v", ok, refused, res.Events)
	}

	// The offline audit needs no signing key: run on a copy of the backup
	// as it is.
	audited := filepath.Join(t.TempDir(), "audited")
	if err := os.CopyFS(audited, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	runOK(t, "verify", "store", "--data-dir", audited)

	// Restore: the backup, with the signing key, is a data directory.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.CopyFS(restored, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dataDir, logsign.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, logsign.SigningKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := startDevMain(t, restored)
	reader2, err := client.Dial(t.Context(), m2.PublicURL, client.WithToken(m2.Config.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reader2.Close()
	stored := map[string]bool{}
	for e, err := range reader2.Events(t.Context(), audittrail.Filter{EndTime: &end}, 1000) {
		if err != nil {
			t.Fatal(err)
		}
		stored[e.ID] = true
	}
	lost := 0
	for _, id := range ackedBefore {
		if !stored[id] {
			lost++
		}
	}
	if lost > 0 || len(stored) < before {
		t.Fatalf("the restored server holds %d events; %d of the %d acknowledged before the backup are missing", len(stored), lost, before)
	}
	t.Logf("%d events acknowledged before the backup, %d in it", before, len(stored))
	raw, err := reader2.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	now, err := merkle.OpenCheckpoint(raw, verifier)
	if err != nil {
		t.Fatalf("the restored server's checkpoint does not verify with the original key: %v", err)
	}
	proof, err := reader2.ConsistencyProof(t.Context(), seen.Size, now.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(seen, now, proof); err != nil {
		t.Fatalf("the restored log does not extend the checkpoint seen before the backup: %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	runOK(t, "verify", "store", "--data-dir", restored, "--strict")
}

// TestBackupPostgres: the PostgreSQL store's backups are PostgreSQL's.
func TestBackupPostgres(t *testing.T) {
	srv := testserver.Start(t, "--store", pgtest.Start(t), "--admin-token", "admin-token-for-the-backup-test")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"backup", "--addr", srv.InternalURL, "--token", "admin-token-for-the-backup-test"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "with the PostgreSQL store, back up the database with PostgreSQL's tools") {
		t.Errorf("backup of the PostgreSQL store: exit %d, %q", code, stderr.String())
	}
}

// startDevMain runs the server in process in dev mode on dataDir, on free
// ports, until the end of the test.
func startDevMain(t *testing.T, dataDir string) *Main {
	t.Helper()
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", dataDir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
		"--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("%q: exit %d: %s%s", args, code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func mustVerifier(t *testing.T, path string) note.Verifier {
	t.Helper()
	key, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := merkle.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func exactAction(a string) (e [audittrail.NumFields]string) {
	e[audittrail.FieldAction] = a
	return e
}

// TestRestoreRefusesTruncatedBackup: a backup whose copy was cut short (its
// last WAL file truncated, as an interrupted copy leaves it) or lost its
// store is refused by serve and by verify store, instead of being served
// (and its log signed again) with the events it lost, and the refused start
// leaves the copy's files as they were.
func TestRestoreRefusesTruncatedBackup(t *testing.T) {
	dataDir := t.TempDir()
	m := startDevMain(t, dataDir)
	producer, err := client.Dial(t.Context(), m.InternalURL, client.WithToken(m.Config.ProducerToken))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	g := sample.New(7, sample.Options{Events: 1 << 20, Span: 48 * time.Hour, End: time.Now().Add(-time.Hour)})
	for range 20 {
		reqs := make([]audittrail.CreateRequest, 100)
		for i := range reqs {
			reqs[i].EventID, reqs[i].Event = g.Next()
		}
		if res, err := producer.BatchCreateEvents(t.Context(), reqs); err != nil || len(res.Failed) > 0 {
			t.Fatalf("batch: %v %v", err, res)
		}
	}
	runOK(t, "backup", "--addr", m.InternalURL, "--token", m.Config.Auth.AdminToken, "--name", "b1")
	backup := filepath.Join(dataDir, "backups", "b1")
	key, err := os.ReadFile(filepath.Join(dataDir, logsign.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	restore := func(damage func(dir string)) string {
		dir := filepath.Join(t.TempDir(), "restored")
		if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, logsign.SigningKeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		damage(dir)
		return dir
	}
	truncateLastWAL := func(dir string) {
		wals, err := filepath.Glob(filepath.Join(dir, storeDir, "*.log"))
		if err != nil || len(wals) == 0 {
			t.Fatalf("no WAL in the backup: %v", err)
		}
		last := wals[len(wals)-1]
		fi, err := os.Stat(last)
		if err != nil || fi.Size() < 1<<16 {
			t.Fatalf("the backup's last WAL %s: %v %v, want events in it", last, fi, err)
		}
		if err := os.Truncate(last, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	for name, damage := range map[string]func(string){
		"truncated WAL": truncateLastWAL,
		"no store": func(dir string) {
			if err := os.RemoveAll(filepath.Join(dir, storeDir)); err != nil {
				t.Fatal(err)
			}
		},
	} {
		dir := restore(damage)
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"verify", "store", "--data-dir", restore(damage)}, &stdout, &stderr); code == 0 {
			t.Errorf("%s: verify store passes: %s", name, stdout.String())
		}
		before := storeFiles(t, dir)
		m2, _ := newTestMain(nil)
		if err := m2.ParseFlags([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--log-level", "error"}); err != nil {
			t.Fatal(err)
		}
		err := m2.Run(t.Context())
		if err == nil {
			m2.Close()
			t.Errorf("%s: the server starts on the damaged backup", name)
		} else if !strings.Contains(err.Error(), "restored from the backup") {
			t.Errorf("%s: %v, want an error naming the backup", name, err)
		}
		if after := storeFiles(t, dir); after != before {
			t.Errorf("%s: the refused start changed the store's files:\n%s\nwere\n%s", name, after, before)
		}
	}
}

// storeFiles lists the files of the store in dataDir with their sizes
// (Pebble's LOCK file left out).
func storeFiles(t *testing.T, dataDir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, storeDir))
	if errors.Is(err, fs.ErrNotExist) {
		return "(no store)"
	} else if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() != "LOCK" {
			fmt.Fprintf(&b, "%s %d\n", e.Name(), fi.Size())
		}
	}
	return b.String()
}
