package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/postgres"
)

// TestVerifiableLogPostgres runs the verifiable log on PostgreSQL with
// replicas in process, as "audittrail serve --store postgres://..." does:
// two replicas given one --log-key and a third without any key. Events are
// created through the first two; exactly one replica signs; every replica
// serves the same checkpoints and proofs over REST, which "audittrail
// verify" accepts with the public key any replica wrote. The leader stops
// and another takes over. With the replicas stopped, "verify store
// --store" audits the database, then names the leaf of a row changed by
// SQL.
func TestVerifiableLogPostgres(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	logKey := filepath.Join(t.TempDir(), "log.key") // created by the first replica

	start := func(args ...string) (*Main, string) {
		t.Helper()
		dir := t.TempDir()
		m, _ := newTestMain(nil)
		args = append([]string{"--dev", "--store", url, "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--reader-token", "reader", "--producer-token", "producer"}, args...)
		if err := m.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if m.Log == nil {
			t.Fatal("no verifiable log on PostgreSQL")
		}
		return m, dir
	}
	a, dirA := start("--log-key", logKey)
	b, dirB := start("--log-key", logKey)
	c, dirC := start() // no key: serves only
	replicas := []*Main{a, b, c}
	keyFile := filepath.Join(dirC, logsign.VerificationKeyFile)
	for _, dir := range []string{dirA, dirB} {
		if k, err := os.ReadFile(filepath.Join(dir, logsign.VerificationKeyFile)); err != nil || !bytes.Equal(k, mustRead(t, keyFile)) {
			t.Fatalf("public key of %s: %q, %v; want the log's, as replica C wrote it", dir, k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dirC, logsign.SigningKeyFile)); err == nil {
		t.Fatal("replica C created a signing key of its own")
	}
	verifier, err := merkle.NewVerifier(mustRead(t, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	leader := func() *Main {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			var leading []*Main
			for _, m := range replicas {
				if m.Log != nil && m.store != nil && m.Log.Leading() {
					leading = append(leading, m)
				}
			}
			if len(leading) > 1 {
				t.Fatalf("%d replicas lead", len(leading))
			}
			if len(leading) == 1 {
				return leading[0]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no replica leads")
		return nil
	}
	if leader() == c {
		t.Fatal("the replica without a key leads")
	}

	create := func(m *Main, from, n int) {
		t.Helper()
		var items []string
		for i := from; i < from+n; i++ {
			items = append(items, fmt.Sprintf(`{"eventTime":"2026-01-02T03:04:%02dZ","eventSource":"verify-test","action":"create","principal":"alice","sourceIpAddress":"203.0.113.7","userAgent":"ua","resource":"res-unique-%04d"}`, i%60, i))
		}
		in := filepath.Join(t.TempDir(), "events.json")
		if err := os.WriteFile(in, []byte("["+strings.Join(items, ",")+"]"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errs, err := runCommand(t, "create", "--addr", m.InternalURL, "--token", "producer", in)
		if err != nil {
			t.Fatalf("create: %v\n%s%s", err, out, errs)
		}
	}
	get := func(base, path string, wantCode int, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer reader")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if wantCode == 0 && resp.StatusCode == http.StatusServiceUnavailable {
			return // no checkpoint yet
		}
		if resp.StatusCode != wantCode && !(wantCode == 0 && resp.StatusCode == http.StatusOK) {
			t.Fatalf("GET %s%s: %d, want %d: %s", base, path, resp.StatusCode, wantCode, body)
		}
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, body)
			}
		}
	}
	// waitCheckpoint waits until every replica serves a checkpoint of
	// every committed event (the same one: no event comes in meanwhile),
	// and returns it.
	waitCheckpoint := func(live ...*Main) ([]byte, *merkle.Checkpoint) {
		t.Helper()
		want := live[0].store.(audittrail.LogStore).LastSeq()
		deadline := time.Now().Add(10 * time.Second)
		var note string
		for _, m := range live {
			for {
				var got struct{ Checkpoint, TreeSize string }
				get(m.PublicURL, "/v1/log/checkpoint", 0, &got) // 200, or 503 before the first checkpoint
				var cp *merkle.Checkpoint
				if got.Checkpoint != "" {
					if cp, err = merkle.OpenCheckpoint([]byte(got.Checkpoint), verifier); err != nil {
						t.Fatalf("checkpoint served by %s: %v", m.PublicURL, err)
					}
				}
				if cp != nil && cp.Size >= want {
					if note != "" && got.Checkpoint != note {
						t.Fatalf("replicas serve different checkpoints:\n%s\n%s", note, got.Checkpoint)
					}
					note = got.Checkpoint
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %s serves no checkpoint of size %d within 10s", m.PublicURL, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		cp, _ := merkle.OpenCheckpoint([]byte(note), verifier)
		return []byte(note), cp
	}

	create(a, 0, 10)
	note0, cp0 := waitCheckpoint(a, b, c) // before res-unique-0017, for a window across it below
	create(b, 10, 15)
	note1, cp1 := waitCheckpoint(a, b, c)
	if cp1.Size != 25 {
		t.Fatalf("checkpoint of %d events, want 25", cp1.Size)
	}

	files := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	verify := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		code := run(ctx, append([]string{"verify"}, args...), &out, &errs)
		if code != wantCode {
			t.Fatalf("verify %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out.String(), errs.String())
		}
		return out.String() + errs.String()
	}
	cp1File := write("cp1", note1)
	cp0File := write("cp0", note0)
	verify(0, "checkpoint", "--key", keyFile, cp1File)

	// Every searched event is proven, by every replica, and verified.
	out, errs, err := runCommand(t, "search", "--addr", c.PublicURL, "--token", "reader", "--all", "-o", "jsonl",
		"--start", "2026-01-01T00:00:00Z", "--until", "2026-01-03T00:00:00Z")
	if err != nil {
		t.Fatalf("search: %v\n%s", err, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 25 {
		t.Fatalf("search returned %d events, want 25:\n%s", len(lines), out)
	}
	var target struct{ ID, Seq string }
	for i, line := range lines {
		var ev struct{ Name, Resource string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		m := replicas[i%3]
		var incl struct{ Seq, Proof string }
		get(m.PublicURL, fmt.Sprintf("/v1/log/inclusion?%s&treeSize=%d", "name="+ev.Name, cp1.Size), http.StatusOK, &incl)
		verify(0, "inclusion", "--key", keyFile, "--checkpoint", cp1File, "--event", write("ev.json", []byte(line)), "--proof", write("p.json", []byte(incl.Proof)))
		forged := strings.Replace(line, `"action":"create"`, `"action":"delete"`, 1)
		verify(1, "inclusion", "--key", keyFile, "--checkpoint", cp1File, "--event", write("ev.json", []byte(forged)), "--proof", write("p.json", []byte(incl.Proof)))
		if ev.Resource == "res-unique-0017" {
			target.ID, target.Seq = strings.TrimPrefix(ev.Name, "events/"), incl.Seq
		}
	}
	if target.ID == "" {
		t.Fatal("event res-unique-0017 not found")
	}

	// The leader stops; another replica with the key takes over.
	first := leader()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	live := []*Main{a, b}
	if first == b {
		live = []*Main{b, a}
	}
	survivor := live[1]
	if leader() != survivor {
		t.Fatal("the replica with the key did not take over")
	}
	create(survivor, 25, 5)
	note2, cp2 := waitCheckpoint(survivor, c)
	if cp2.Size < 30 { // 30 created, and the searches' self-audit events
		t.Fatalf("checkpoint after the takeover of %d events, want at least 30", cp2.Size)
	}
	var cons struct{ Proof string }
	get(c.PublicURL, fmt.Sprintf("/v1/log/consistency?first=%d&second=%d", cp1.Size, cp2.Size), http.StatusOK, &cons)
	verify(0, "consistency", "--key", keyFile, cp1File, write("cp2", note2), write("cons.json", []byte(cons.Proof)))

	// The replicas stop; the database is audited, then tampered with.
	for _, m := range replicas {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	verify(2, "store", "--store", url) // no --key: the database's key is no evidence
	// --strict: every event is signed (the leader signed at its stop).
	if out := verify(0, "store", "--store", url, "--key", keyFile, "--strict"); !strings.Contains(out, "store OK") {
		t.Errorf("verify store printed %q", out)
	}
	// An auditor's role that may only read audits the same: verify store
	// opens the database read-only (it neither migrates nor writes).
	if err := pgtest.Shared(t).Exec(ctx, "CREATE ROLE verify_auditor LOGIN; GRANT pg_read_all_data TO verify_auditor"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgtest.Shared(t).Exec(context.Background(), "DROP ROLE IF EXISTS verify_auditor") })
	auditorURL := strings.Replace(url, "postgres://postgres@", "postgres://verify_auditor@", 1)
	if auditorURL == url {
		t.Fatalf("cannot make the auditor's URL from %s", url)
	}
	if out := verify(0, "store", "--store", auditorURL, "--key", keyFile, "--strict"); !strings.Contains(out, "store OK") {
		t.Errorf("verify store with a read-only role printed %q", out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Events before a retention cutoff are hidden until retention deletes
	// them (their month's partition): searches do not show them, and the
	// audit says why, and what to give.
	if _, err := conn.Exec(ctx, "UPDATE retention SET cutoff_ns = (SELECT min(event_time_ns) + 1 FROM events)"); err != nil {
		t.Fatal(err)
	}
	if out := verify(1, "store", "--store", url, "--key", keyFile); !strings.Contains(out, "NOT SEARCHABLE") || !strings.Contains(out, "audit with --allow-deleted") {
		t.Errorf("verify store with events hidden by a retention cutoff printed:\n%s", out)
	}
	if _, err := conn.Exec(ctx, "UPDATE retention SET cutoff_ns = NULL"); err != nil {
		t.Fatal(err)
	}
	if tag, err := conn.Exec(ctx, "UPDATE events SET resource = 'res-unique-9999' WHERE resource = 'res-unique-0017'"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("tampering: %v %v", tag, err)
	}
	out = verify(1, "store", "--store", url, "--key", keyFile)
	t.Logf("verify store after an UPDATE:\n%s", out)
	var seq uint64
	fmt.Sscan(target.Seq, &seq)
	if want := fmt.Sprintf("first divergent leaf: %d (seq %d, event %s)", seq-1, seq, target.ID); !strings.Contains(out, want) {
		t.Errorf("verify store after tampering printed:\n%s\nwant %q", out, want)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM events WHERE resource = 'res-unique-9999'"); err != nil {
		t.Fatal(err)
	}
	out = verify(1, "store", "--store", url, "--key", keyFile)
	t.Logf("verify store after a DELETE:\n%s", out)
	if want := fmt.Sprintf("MISSING: leaf %d (seq %d)", seq-1, seq); !strings.Contains(out, want) {
		t.Errorf("verify store after a deletion printed:\n%s\nwant %q", out, want)
	}
	// A deletion on purpose (retention): --allow-deleted audits what is
	// left and names the deleted seq, whose leaf must still fit the signed
	// checkpoints.
	out = verify(0, "store", "--store", url, "--key", keyFile, "--allow-deleted")
	if want := fmt.Sprintf("deleted: 1 events are gone (seqs %d)", seq); !strings.Contains(out, want) || !strings.Contains(out, "store OK") {
		t.Errorf("verify store --allow-deleted printed:\n%s\nwant %q and store OK", out, want)
	}
	// A mirror started after the deletion: refused there without
	// --allow-deleted; with it, the deleted event's leaf hash takes its
	// place, the mirror verifies offline and a search of it has every
	// other event.
	mirrorDir := filepath.Join(t.TempDir(), "mirror")
	mirror := func(m *Main, dir string, args ...string) (string, error) {
		t.Helper()
		out, errs, err := runCommand(t, "mirror", append([]string{"--addr", m.PublicURL, "--token", "reader", "--dir", dir, "--log-key", keyFile}, args...)...)
		return out + errs, err
	}
	d, _ := start()
	waitCheckpoint(d)
	if out, err := mirror(d, mirrorDir); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the events from leaf %d on", seq-1)) || !strings.Contains(err.Error(), "--allow-deleted") {
		t.Fatalf("mirror across a deleted event: %v\n%s\nwant it refused, naming leaf %d and --allow-deleted", err, out, seq-1)
	}
	out, err = mirror(d, mirrorDir, "--allow-deleted")
	if err != nil || !strings.Contains(out, "(1 of them deleted by the server: leaf hashes only)") {
		t.Fatalf("mirror --allow-deleted: %v\n%s", err, out)
	}
	if out := verify(0, "mirror", "--key", keyFile, mirrorDir); !strings.Contains(out, "mirror OK") || !strings.Contains(out, "1 of them are leaf hashes only") {
		t.Errorf("verify mirror printed:\n%s", out)
	}
	mirrored, errs, err := runCommand(t, "search", "--mirror", mirrorDir, "--log-key", keyFile, "--all", "-o", "jsonl", "--resource-regex", "^res-unique-")
	if err != nil {
		t.Fatalf("search --mirror: %v\n%s", err, errs)
	}
	if n := len(strings.Split(strings.TrimSpace(mirrored), "\n")); n != 29 || strings.Contains(mirrored, target.ID) {
		t.Errorf("search --mirror found %d of the 30 created events (want 29, without %s):\n%s", n, target.ID, mirrored)
	}
	// A tail from the log's start stops at the deleted event, saying why,
	// instead of retrying forever; with --allow-deleted it proves the
	// deleted leaf's hash in its place and prints every other event.
	tail := func(m *Main, args ...string) (string, string, error) {
		return runCommand(t, "tail", append([]string{"--addr", m.PublicURL, "--token", "reader", "--log-key", keyFile,
			"--state", filepath.Join(t.TempDir(), "tail.state"), "--from-start", "--interval", "50ms"}, args...)...)
	}
	tailOut, tailErrs, err := tail(d)
	if err == nil || !strings.Contains(err.Error(), "give --allow-deleted") || strings.Contains(tailOut, target.ID) {
		t.Errorf("tail --from-start across a deleted event: %v\n%s%s", err, tailOut, tailErrs)
	}
	// So does a window across it.
	winOut, winErrs, err := runCommand(t, "window", "--addr", d.PublicURL, "--token", "reader", "--log-key", keyFile, cp0File, cp1File)
	if err == nil || !strings.Contains(err.Error(), "deleted by the server's retention") {
		t.Errorf("window across a deleted event: %v\n%s%s", err, winOut, winErrs)
	}
	winOut, winErrs, err = runCommand(t, "window", "--addr", d.PublicURL, "--token", "reader", "--log-key", keyFile, "--allow-deleted", cp0File, cp1File)
	if want := fmt.Sprintf("(leaves %d-%d)", seq-1, seq-1); err != nil || !strings.Contains(winErrs, want) ||
		strings.Contains(winOut, target.ID) || uint64(strings.Count(winOut, "\n")) != cp1.Size-cp0.Size-1 {
		t.Errorf("window --allow-deleted across a deleted event: %v\n%s%s\nwant %d events and %q", err, winOut, winErrs, cp1.Size-cp0.Size-1, want)
	}
	tailOut, tailErrs, err = tail(d, "--allow-deleted", "--once")
	if want := fmt.Sprintf("1 leaves whose events the server's retention deleted (leaves %d-%d)", seq-1, seq-1); err != nil ||
		!strings.Contains(tailErrs, want) || strings.Contains(tailOut, target.ID) || strings.Count(tailOut, "res-unique-") != 29 {
		t.Errorf("tail --from-start --allow-deleted: %v\n%s%s\nwant the 29 events left and %q", err, tailOut, tailErrs, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	if tag, err := conn.Exec(ctx, "UPDATE log_tree_hashes SET hash = sha256(hash) WHERE idx = $1", tlog.StoredHashIndex(0, int64(seq-1))); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("changing the deleted event's leaf hash: %v %v", tag, err)
	}
	out = verify(1, "store", "--store", url, "--key", keyFile, "--allow-deleted")
	if !strings.Contains(out, "DIVERGENCE") {
		t.Errorf("verify store --allow-deleted after the deleted event's leaf hash changed printed:\n%s", out)
	}
	// A server serving a changed leaf hash in place of a deleted event
	// fails a new mirror.
	e, _ := start()
	if out, err := mirror(e, filepath.Join(t.TempDir(), "mirror2"), "--allow-deleted"); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("mirror --allow-deleted of a changed leaf hash: %v\n%s\nwant it not verified", err, out)
	}
	// Nor a tail: the server finds its stored tree no longer has the signed
	// root and refuses to prove (or, had it answered, the client would
	// have refused the proof).
	if out, errs, err := tail(e, "--allow-deleted", "--once"); err == nil ||
		!strings.Contains(err.Error(), "verification failed") && !strings.Contains(err.Error(), "does not have the root of the latest signed checkpoint") {
		t.Errorf("tail --allow-deleted over a changed leaf hash: %v\n%s%s\nwant it not proven", err, out, errs)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPostgresSchemaVersions: what "serve --store" and "verify store
// --store" do with a database of another schema version. A minimum build
// version above this build's (a future migration that breaks it) makes both
// refuse, naming the versions; the database of an older release, which
// lacks migrations the audit does not read (0005 and 0006), is audited as
// it is, and one that lacks a migration the audit reads is refused, naming
// it and serve, which applies it.
func TestPostgresSchemaVersions(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	logKey := filepath.Join(t.TempDir(), "log.key")
	dir := t.TempDir()
	serve := func() (*Main, error) {
		t.Helper()
		m, _ := newTestMain(nil)
		if err := m.ParseFlags([]string{"--dev", "--store", url, "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--producer-token", "producer", "--log-key", logKey}); err != nil {
			t.Fatal(err)
		}
		err := m.Run(ctx)
		return m, err
	}
	m, err := serve()
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for i := range 20 {
		items = append(items, fmt.Sprintf(`{"eventTime":"2026-01-02T03:04:%02dZ","eventSource":"schema-test","action":"create","principal":"alice","sourceIpAddress":"203.0.113.7","userAgent":"ua","resource":"r-%d"}`, i, i))
	}
	in := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(in, []byte("["+strings.Join(items, ",")+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, err := runCommand(t, "create", "--addr", m.InternalURL, "--token", "producer", in); err != nil {
		t.Fatalf("create: %v\n%s%s", err, out, errs)
	}
	if err := m.Close(); err != nil { // signs the last events
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, logsign.VerificationKeyFile)
	verify := func(wantCode int) string {
		t.Helper()
		var out, errs bytes.Buffer
		if code := run(ctx, []string{"verify", "store", "--store", url, "--key", keyFile, "--strict"}, &out, &errs); code != wantCode {
			t.Fatalf("verify store: exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, out.String(), errs.String())
		}
		return out.String() + errs.String()
	}
	if out := verify(0); !strings.Contains(out, "store OK") {
		t.Fatalf("verify store printed:\n%s", out)
	}
	conn, exec := pgtest.Connect(t, url)
	build := postgres.SchemaVersion()

	// A future migration, compatible: both go on, verify store says so.
	exec("INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", build+1)
	if out := verify(0); !strings.Contains(out, "store OK") || !strings.Contains(out, "the database schema is newer than this build") {
		t.Errorf("verify store of a newer, compatible schema printed:\n%s", out)
	}
	// One that breaks this build: both refuse.
	exec("UPDATE schema_compat SET min_build_version = $1", build+1)
	want := fmt.Sprintf("may only be used by builds whose newest migration is %04d or later, and this build's is %04d: upgrade audittrail", build+1, build)
	if out := verify(1); !strings.Contains(out, want) {
		t.Errorf("verify store with the minimum above this build printed:\n%s\nwant %q", out, want)
	}
	if m, err := serve(); err == nil || !strings.Contains(err.Error(), want) {
		m.Close()
		t.Errorf("serve with the minimum above this build: %v\nwant %q", err, want)
	}
	exec("DELETE FROM schema_migrations WHERE version > $1", build)

	// The database of the release before 0005 (undone by hand): audited as
	// it is, and left so.
	exec("DROP TABLE schema_compat; ALTER TABLE retention DROP COLUMN passing; DELETE FROM schema_migrations WHERE version >= 5")
	if out := verify(0); !strings.Contains(out, "store OK") {
		t.Errorf("verify store of a database of migration 0004 printed:\n%s", out)
	}
	var newest int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil || newest != 4 {
		t.Fatalf("after verify store the schema is at %d (%v), want 4", newest, err)
	}
	// Before 0004, which the audit reads (the retention cutoff): refused.
	exec("DROP TABLE retention; DELETE FROM schema_migrations WHERE version = 4")
	want = `the database lacks migration 0004_retention (it has up to 0003), which a read-only store reads and does not apply: start "audittrail serve --store" of this build on it once`
	if out := verify(1); !strings.Contains(out, want) {
		t.Errorf("verify store of a database of migration 0003 printed:\n%s\nwant %q", out, want)
	}
	// serve applies it (and the later ones); the audit passes.
	m, err = serve()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if out := verify(0); !strings.Contains(out, "store OK") {
		t.Errorf("verify store after serve migrated printed:\n%s", out)
	}
}
