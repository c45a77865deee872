package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/audittrail/audittrail/client"
)

// TestMirrorCommand mirrors a real server's log with the CLI, follows it
// while events arrive, verifies the directory offline, and checks the
// refusals: bad usage, a producer's token, a tampered copy.
func TestMirrorCommand(t *testing.T) {
	s := createSample(t, 600, 41)
	srv := s.srv
	dir := filepath.Join(t.TempDir(), "mirror")
	key := filepath.Join(srv.DataDir, "log-verification.key")
	mirror := []string{"mirror", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--dir", dir, "--log-key", key}

	// The first checkpoint covering the sample comes within a second or so.
	deadline := time.Now().Add(20 * time.Second)
	for entries := 0; entries < 600; {
		out := runOK(t, mirror...)
		if !strings.HasPrefix(out, dir+": ") || !strings.Contains(out, "verified against the checkpoint of size") {
			t.Fatalf("mirror printed %q", out)
		}
		entries, _ = strconv.Atoi(strings.Fields(strings.TrimPrefix(out, dir+": "))[0])
		if time.Now().After(deadline) {
			t.Fatalf("the mirror has %d entries, want the 600 created", entries)
		}
	}

	// A checkpoint as a client keeps it, to check against the mirror later.
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	saveCheckpoint := func(name string) string {
		text, err := auditor.Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, text, 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	kept := saveCheckpoint("kept")

	// --follow picks up what arrives, and stops cleanly on its context.
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, append(mirror, "--follow", "100ms"), &stdout, &stderr) }()
	if out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken,
		"--sample", "300", "--seed", "42", "--end", s.end.Format(time.RFC3339)); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	for mirrored(t, key, dir) < 900 && time.Now().Before(deadline.Add(20*time.Second)) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("mirror --follow: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if n := mirrored(t, key, dir); n < 900 {
		t.Fatalf("after --follow the mirror verifies with %d entries, want at least the 900 created", n)
	}

	// A search of the mirror answers as the server does, for the events
	// the mirror holds (the sample's, which end before s.end).
	fromServer := []string{"--addr", srv.PublicAddr, "--token", srv.ReaderToken}
	fromMirror := []string{"--mirror", dir, "--log-key", key}
	filter := []string{"--action-regex", "DELETE$", "--until", s.end.Add(time.Second).Format(time.RFC3339)}
	jsonl := slices.Concat(filter, []string{"--all", "-o", "jsonl"})
	serverOut, _, err := runCommand(t, "search", slices.Concat(fromServer, jsonl)...)
	if err != nil {
		t.Fatal(err)
	}
	mirrorOut, stderrMirror, err := runCommand(t, "search", slices.Concat(fromMirror, jsonl)...)
	if err != nil {
		t.Fatal(err)
	}
	want, got := parseJSONL(t, serverOut), parseJSONL(t, mirrorOut)
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("search --mirror found %d events, the server %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID {
			t.Fatalf("event %d: %s from the mirror, %s from the server", i, got[i].ID, want[i].ID)
		}
	}
	if !strings.Contains(stderrMirror, "verified against its checkpoint") {
		t.Errorf("search --mirror printed on stderr %q", stderrMirror)
	}
	// --count-by counts the mirror's matches as the server's.
	counts := slices.Concat(filter, []string{"--count-by", "action,principal", "-o", "csv"})
	countServer, _, err := runCommand(t, "search", slices.Concat(fromServer, counts)...)
	if err != nil {
		t.Fatal(err)
	}
	countMirror, countStderr, err := runCommand(t, "search", slices.Concat(fromMirror, counts)...)
	if err != nil {
		t.Fatal(err)
	}
	if countMirror != countServer || !strings.HasPrefix(countMirror, "action,principal,count\n") || !strings.HasPrefix(countStderr, fmt.Sprintf("%d events counted", len(want))) {
		t.Errorf("search --mirror --count-by:\n%s%s\nthe server's:\n%s", countMirror, countStderr, countServer)
	}
	page, _, err := runCommand(t, "search", "--mirror", dir, "--log-key", key, "--page-size", "3", "-o", "jsonl")
	if err != nil || len(parseJSONL(t, page)) != 3 {
		t.Errorf("search --mirror --page-size 3: %v\n%s", err, page)
	}

	// The kept checkpoint is consistent with the mirror; one signed after
	// the mirror's last update cannot be checked yet.
	if out := verifyMirror(t, key, dir, 0, kept); !strings.Contains(out, "1 of the checkpoints given are consistent with the mirror") {
		t.Errorf("verify mirror with a kept checkpoint: %q", out)
	}
	if _, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", "5", "--seed", "43"); err != nil {
		t.Fatal(err)
	}
	size := uint64(mirrored(t, key, dir))
	later := saveCheckpoint("later")
	for cp, _ := openCheckpointFile(key, "", later); cp == nil || cp.Size <= size; cp, _ = openCheckpointFile(key, "", later) {
		if time.Now().After(deadline.Add(40 * time.Second)) {
			t.Fatal("no checkpoint beyond the mirror")
		}
		time.Sleep(100 * time.Millisecond)
		later = saveCheckpoint("later")
	}
	if out := verifyMirror(t, key, dir, 1, kept, later); !strings.Contains(out, "1 of the checkpoints given are beyond the mirror") {
		t.Errorf("verify mirror with a later checkpoint: %q", out)
	}

	// The events between the two checkpoints, proven complete.
	keptCP, _ := openCheckpointFile(key, "", kept)
	laterCP, _ := openCheckpointFile(key, "", later)
	var wout, werr bytes.Buffer
	if code := run(t.Context(), []string{"window", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, kept, later}, &wout, &werr); code != 0 {
		t.Fatalf("window: exit %d: %s", code, werr.String())
	}
	if got := parseJSONL(t, wout.String()); uint64(len(got)) != laterCP.Size-keptCP.Size || !strings.Contains(werr.String(), "proven complete") {
		t.Errorf("window printed %d events (want %d): %s", len(got), laterCP.Size-keptCP.Size, werr.String())
	}
	windowEvents := parseJSONL(t, wout.String())
	wout.Reset()
	werr.Reset()
	if code := run(t.Context(), []string{"window", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, kept, later, "-o", "csv"}, &wout, &werr); code != 0 {
		t.Fatalf("window -o csv: exit %d: %s", code, werr.String())
	}
	if diff := cmp.Diff(windowEvents, parseCSV(t, wout.String()), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("window -o csv against -o jsonl (-want +got):\n%s", diff)
	}
	// As window -h shows it: the flags after the files (-o jsonl).
	wout.Reset()
	werr.Reset()
	if code := run(t.Context(), []string{"window", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, kept, later, "-o", "table"}, &wout, &werr); code != 0 ||
		!strings.HasPrefix(wout.String(), "TIME ") || strings.Count(wout.String(), "\n") != int(laterCP.Size-keptCP.Size)+1 {
		t.Errorf("window with -o table after the files: exit %d: %s%s", code, wout.String(), werr.String())
	}
	wout.Reset()
	werr.Reset()
	if code := run(t.Context(), []string{"window", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, later, kept}, &wout, &werr); code != 2 || !strings.Contains(werr.String(), "give the older checkpoint first") || wout.Len() != 0 {
		t.Errorf("window with the checkpoints reversed: exit %d: %s", code, werr.String())
	}

	// A copy with one event changed does not verify.
	tampered := t.TempDir()
	for _, name := range []string{"entries.jsonl", "checkpoint"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "entries.jsonl" {
			data = bytes.Replace(data, []byte(`"principal":"`), []byte(`"principal":"x`), 1)
		}
		if err := os.WriteFile(filepath.Join(tampered, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := verifyMirror(t, key, tampered, 1); !strings.Contains(out, "verification failed") || !strings.Contains(out, "do not hash to the checkpoint's root") {
		t.Errorf("verify mirror of a tampered copy: %q", out)
	}
	// A one-shot update interrupted (its context ended) says so.
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	var iout, ierr bytes.Buffer
	if code := run(canceled, []string{"mirror", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--dir", t.TempDir(), "--log-key", key}, &iout, &ierr); code != 1 || !strings.Contains(ierr.String(), "interrupted: the update did not finish") {
		t.Errorf("mirror interrupted: exit %d, stderr %q; want 1 and interrupted", code, ierr.String())
	}
	// Nothing verified is not a success: a directory that is not there,
	// an empty one, entries without any checkpoint.
	if out := verifyMirror(t, key, filepath.Join(t.TempDir(), "nonexistent"), 1); !strings.Contains(out, "no mirror at") {
		t.Errorf("verify mirror of a missing directory: %q", out)
	}
	if out := verifyMirror(t, key, t.TempDir(), 1); !strings.Contains(out, "empty (never updated): nothing to verify") {
		t.Errorf("verify mirror of an empty directory: %q", out)
	}
	noCheckpoint := t.TempDir()
	if err := os.WriteFile(filepath.Join(noCheckpoint, "entries.jsonl"), bytes.SplitAfter(mustRead(t, filepath.Join(dir, "entries.jsonl")), []byte("\n"))[0], 0o600); err != nil {
		t.Fatal(err)
	}
	if out := verifyMirror(t, key, noCheckpoint, 1); !strings.Contains(out, "has no checkpoint") {
		t.Errorf("verify mirror of entries without a checkpoint: %q", out)
	}
	if out, _, err := runCommand(t, "search", "--mirror", tampered, "--log-key", key, "--all"); err == nil || !strings.Contains(err.Error(), "verification failed") || out != "" {
		t.Errorf("search --mirror of a tampered copy: %v, printed %q; want the verification failure and nothing printed", err, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mirror", "--log-key", key}, 2, "--dir"},
		{[]string{"mirror", "--dir", dir}, 2, "--log-key"},
		{[]string{"mirror", "--dir", dir, "--log-key", key, "--follow", "-1s"}, 2, "--follow"},
		{[]string{"mirror", "--addr", srv.PublicAddr, "--token", srv.ProducerToken, "--dir", t.TempDir(), "--log-key", key}, 1, "auditor role"},
		{[]string{"verify", "mirror", dir}, 2, "--key"},
		{[]string{"search", "--mirror", dir}, 2, "--log-key"},
		{[]string{"window", "--log-key", key, kept}, 2, "older and the newer"},
		{[]string{"window", kept, later}, 2, "--log-key"},
		{[]string{"search", "--mirror", dir, "--log-key", key, "--page-token", "x"}, 2, "--page-token"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// verifyMirror runs "verify mirror" (with the checkpoint files to check)
// and returns its output, failing unless it exits with code.
func verifyMirror(t *testing.T, key, dir string, code int, checkpoints ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if got := run(t.Context(), append([]string{"verify", "mirror", "--key", key, dir}, checkpoints...), &stdout, &stderr); got != code {
		t.Fatalf("verify mirror %s: exit %d, want %d: %s%s", dir, got, code, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// mirrored verifies the mirror and returns its number of entries.
func mirrored(t *testing.T, key, dir string) int {
	t.Helper()
	out := verifyMirror(t, key, dir, 0)
	var n int
	if _, err := fmt.Sscanf(out, "mirror OK: %d entries", &n); err != nil {
		t.Fatalf("verify mirror printed %q: %v", out, err)
	}
	return n
}
