package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/flock"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/merkle"
)

// TestTailCommand follows a real server's log with the CLI: from the first
// event, round after round (each printing exactly the leaves between the
// state's checkpoint and the next, none twice), from the latest checkpoint
// without a state, following while events arrive until stopped, and the
// refusals (a state signed by another key, bad usage).
func TestTailCommand(t *testing.T) {
	srv := testserver.Start(t)
	key := filepath.Join(srv.DataDir, "log-verification.key")
	verifier := mustVerifier(t, key)
	producer, err := client.Dial(t.Context(), srv.InternalAddr, client.WithToken(srv.ProducerToken))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	create := func(n int, tag string) []string {
		t.Helper()
		reqs := make([]audittrail.CreateRequest, n)
		var names []string
		for i := range reqs {
			reqs[i] = audittrail.CreateRequest{EventID: uuid.NewString(), Event: audittrail.NewEvent{Event: audittrail.Event{
				EventTime: time.Now(), EventSource: "tail-test", Action: "actions/tail/" + tag, Principal: "users/tail",
				SourceIP: "203.0.113.9", UserAgent: "ua", Resource: fmt.Sprintf("//tail/%s/%d", tag, i),
			}}}
			names = append(names, "events/"+reqs[i].EventID)
		}
		if res, err := producer.BatchCreateEvents(t.Context(), reqs); err != nil || len(res.Failed) > 0 {
			t.Fatalf("creating events: %v %v", err, res)
		}
		return names
	}
	// waitSigned waits until the latest checkpoint covers every committed
	// event and returns its size.
	waitSigned := func() uint64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			page, err := auditor.LogPage(t.Context(), 1<<40, 1)
			if err != nil {
				t.Fatal(err)
			}
			text, err := auditor.Checkpoint(t.Context())
			if err == nil {
				cp, err := merkle.OpenCheckpoint(text, verifier)
				if err != nil {
					t.Fatal(err)
				}
				if cp.Size >= page.CommittedSize {
					return cp.Size
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint covers the %d committed events", page.CommittedSize)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	state := filepath.Join(t.TempDir(), "state")
	stateSize := func() uint64 {
		t.Helper()
		text, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := merkle.OpenCheckpoint(text, verifier)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Size
	}
	tailArgs := []string{"tail", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, "--state", state}
	names := func(out string) []string {
		t.Helper()
		var got []string
		for line := range strings.Lines(out) {
			var e struct{ Name string }
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Name == "" {
				t.Fatalf("tail printed %q: %v", line, err)
			}
			got = append(got, e.Name)
		}
		return got
	}
	seen := map[string]bool{}
	// round runs one round and checks that it printed the leaves between
	// the state's checkpoints before and after it, each for the first time.
	round := func(args ...string) []string {
		t.Helper()
		before := uint64(0)
		if _, err := os.Stat(state); err == nil {
			before = stateSize()
		}
		got := names(runOK(t, append(append(tailArgs, "--once"), args...)...))
		after := stateSize()
		if uint64(len(got)) != after-before {
			t.Fatalf("a round from size %d to %d printed %d events", before, after, len(got))
		}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("%s printed twice", n)
			}
			seen[n] = true
		}
		return got
	}

	first := create(40, "first")
	size := waitSigned()
	if got := round("--from-start"); uint64(len(got)) < size || got[0] != first[0] {
		t.Fatalf("the first round printed %d events from %v, want the %d signed from the first created", len(got), got[:min(len(got), 1)], size)
	}
	for _, n := range first {
		if !seen[n] {
			t.Fatalf("%s not printed", n)
		}
	}
	second := create(25, "second")
	waitSigned()
	round()
	for _, n := range second {
		if !seen[n] {
			t.Fatalf("%s not printed by the second round", n)
		}
	}

	// Without a state file (and without --from-start) a tail starts at the
	// latest checkpoint: nothing old is printed.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if out := runOK(t, "tail", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key, "--state", fresh, "--once"); out != "" {
		t.Errorf("a new tail printed %q", out)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a new tail wrote no state: %v", err)
	}

	// -o csv: one header, then a row per event, the rounds' events among
	// them (more may have been signed since: the tails' own reads).
	rows := parseCSV(t, runOK(t, "tail", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", key,
		"--state", filepath.Join(t.TempDir(), "csv"), "--from-start", "--once", "-o", "csv"))
	inCSV := map[string]bool{}
	for _, e := range rows {
		inCSV[e.Name()] = true
	}
	if len(inCSV) != len(rows) || len(rows) < len(seen) {
		t.Errorf("tail -o csv printed %d rows, %d of them distinct, want %d events at least", len(rows), len(inCSV), len(seen))
	}
	for n := range seen {
		if !inCSV[n] {
			t.Errorf("tail -o csv did not print %s", n)
		}
	}

	// Following: what arrives is printed, until the tail is stopped.
	var out, errs syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() { done <- run(ctx, append(tailArgs, "--interval", "100ms"), &out, &errs) }()
	deadline := time.Now().Add(20 * time.Second)
	for _, tag := range []string{"third", "fourth"} { // two rounds at least
		last := create(10, tag)[9]
		for !strings.Contains(out.String(), last) {
			if time.Now().After(deadline) {
				t.Fatalf("the following tail did not print the new events: %s%s", out.String(), errs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("the stopped tail: exit %d: %s", code, errs.String())
	}
	for _, n := range names(out.String()) {
		if seen[n] {
			t.Fatalf("%s printed again by the following tail", n)
		}
		seen[n] = true
	}

	// A state the log's key did not sign is refused, and left as it was.
	otherSrv := testserver.Start(t)
	otherText, err := os.ReadFile(filepath.Join(otherSrv.DataDir, "log-verification.key"))
	if err != nil {
		t.Fatal(err)
	}
	otherAuditor, err := client.Dial(t.Context(), otherSrv.PublicAddr, client.WithToken(otherSrv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer otherAuditor.Close()
	deadline = time.Now().Add(20 * time.Second)
	var foreign []byte
	for foreign == nil { // the other server signs its first checkpoint (of its self-audit events) soon
		if foreign, err = otherAuditor.Checkpoint(t.Context()); err != nil {
			otherAuditor.LogPage(t.Context(), 0, 1) // a self-audit event to sign
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if bytes.Equal(otherText, mustRead(t, key)) {
		t.Fatal("two servers with one key")
	}
	if err := os.WriteFile(state, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append(tailArgs, "--once"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "verification failed") || stdout.Len() != 0 {
		t.Errorf("a tail from a state of another log: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !bytes.Equal(mustRead(t, state), foreign) {
		t.Error("the refused tail changed its state file")
	}

	// One tail per state file.
	unlock, err := flock.Lock(state + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), append(tailArgs, "--once"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "another tail is running") {
		t.Errorf("a second tail on one state file: exit %d: %s", code, stderr.String())
	}
	unlock()

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "--state", state}, "--log-key"},
		{[]string{"tail", "--log-key", key}, "--state"},
		{[]string{"tail", "--log-key", key, "--state", state, "--interval", "0s"}, "--interval"},
		{[]string{"tail", "--log-key", key, "--state", state, "-o", "json"}, "-o"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, %s; want 2 naming %s", c.args, code, stderr.String(), c.want)
		}
	}
}
