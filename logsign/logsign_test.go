package logsign_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/google/uuid"
)

func openStore(t *testing.T, dir string) *pebblestore.Store {
	t.Helper()
	st, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// appendEvents appends n events numbered from on st (either store).
func appendEvents(t *testing.T, st audittrail.Store, n, from int) {
	t.Helper()
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var evs []*audittrail.Event
	for i := from; i < from+n; i++ {
		evs = append(evs, &audittrail.Event{
			ID:          uuid.NewString(),
			EventTime:   base.Add(time.Duration(i) * time.Second),
			ReceiveTime: base.Add(time.Duration(i) * time.Millisecond),
			EventSource: "test",
			Action:      "create",
			Principal:   "alice",
			Resource:    fmt.Sprintf("res-target-%04d", i),
			Metadata:    map[string]string{"k": "v"},
		})
	}
	res, err := st.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func newLog(t *testing.T, st *pebblestore.Store, dir string) *logsign.Log {
	t.Helper()
	return newLogWith(t, dir, logsign.Config{Store: st, Interval: 10 * time.Millisecond, SignInterval: 20 * time.Millisecond})
}

// newLogWith makes a log of cfg signed with the key in dir (created on
// first use).
func newLogWith(t *testing.T, dir string, cfg logsign.Config) *logsign.Log {
	t.Helper()
	signer, vkey, err := logsign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Signer, cfg.VerifierKey = signer, vkey
	l, err := logsign.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	s1, v1, err := logsign.LoadOrCreateKey(dir, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, logsign.SigningKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode: %v %v", fi, err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, logsign.VerificationKeyFile))
	if err != nil || string(pub) != v1+"\n" {
		t.Fatalf("verification key file %q, want %q (%v)", pub, v1, err)
	}
	s2, v2, err := logsign.LoadOrCreateKey(dir, "ignored")
	if err != nil || v2 != v1 || s2.Name() != s1.Name() || s2.KeyHash() != s1.KeyHash() {
		t.Fatalf("reloaded key differs: %v %q %q", err, v2, v1)
	}
}

// TestKeyFileRace: servers starting at once on a new directory (a test
// harness, replicas sharing a volume) end up with one signing key: those
// that lose the race load the winner's.
func TestKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), logsign.SigningKeyFile)
	const n = 8
	vkeys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, vkeys[i], errs[i] = logsign.LoadOrCreateKeyFile(path, "example.com/log", true) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || vkeys[i] != vkeys[0] {
			t.Fatalf("start %d: key %q (%v), start 0: %q", i, vkeys[i], errs[i], vkeys[0])
		}
	}
}

// TestIntegrateProveAudit integrates events from a pebblestore, signs a
// checkpoint in the background, proves inclusion and consistency, survives
// a restart, and audits the store.
func TestIntegrateProveAudit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	l := newLog(t, st, dir)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }()

	appendEvents(t, st, 5, 0)
	var first *merkle.Checkpoint
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, c := l.Checkpoint(); c != nil && c.Size >= 5 {
			first = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint covering 5 events")
		}
		time.Sleep(10 * time.Millisecond)
	}
	appendEvents(t, st, 12, 5)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done

	v, err := merkle.NewVerifier([]byte(l.VerifierKey()))
	if err != nil {
		t.Fatal(err)
	}
	note, _ := l.Checkpoint()
	cp, err := merkle.OpenCheckpoint(note, v)
	if err != nil || cp.Size != 17 {
		t.Fatalf("checkpoint: %v size %v", err, cp)
	}
	evs, err := st.EventsBySeq(ctx, 1, 17)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		p, err := l.InclusionProof(e.Seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyEventInclusion(cp, e, p); err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		if !e.ReceiveTime.Before(cp.ReceivedBefore) {
			t.Fatalf("seq %d received at %v, not before the horizon %v", e.Seq, e.ReceiveTime, cp.ReceivedBefore)
		}
	}
	cons, err := l.ConsistencyProof(first.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	firstOpened, err := merkle.OpenCheckpoint(mustNote(t, st, first.Size), v)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(firstOpened, cp, cons); err != nil {
		t.Fatal(err)
	}

	// Restart: the log resumes from the stored tree and checkpoint.
	l2 := newLog(t, st, dir)
	if n2, _ := l2.Checkpoint(); !bytes.Equal(n2, note) {
		t.Fatal("latest checkpoint not reloaded")
	}
	appendEvents(t, st, 3, 17)
	if err := l2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, c := l2.Checkpoint(); c.Size != 20 {
		t.Fatalf("size after restart %d", c.Size)
	}

	rep, err := logsign.AuditStore(ctx, st, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Divergence != nil || rep.Leaves != 20 || rep.Checked < 2 {
		t.Fatalf("audit: %+v", rep)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustNote(t *testing.T, st *pebblestore.Store, size uint64) []byte {
	t.Helper()
	notes, err := st.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		if bytes.Contains(n, fmt.Appendf(nil, "\n%d\n", size)) {
			return n
		}
	}
	t.Fatalf("no stored checkpoint of size %d", size)
	return nil
}

// TestAuditTamper changes one stored record directly in Pebble with the
// store closed; the audit names the leaf.
func TestAuditTamper(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "db")
	st := openStore(t, dbDir)
	l := newLog(t, st, dir)
	appendEvents(t, st, 30, 0)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	Tamper(t, dbDir, []byte("res-target-0012"), []byte("res-target-0099"))

	st = openStore(t, dbDir)
	defer st.Close()
	rep, err := logsign.AuditStore(ctx, st, vkey)
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Divergence
	if d == nil || !d.Exact || d.FirstLeaf != 12 {
		t.Fatalf("divergence %+v, want exact leaf 12 (seq 13)", d)
	}
}

// Tamper replaces old by new (same length) in every stored value of the
// Pebble database at dir.
func Tamper(t *testing.T, dir string, old, new []byte) {
	t.Helper()
	n, err := pebblestore.ReplaceInValues(dir, old, new)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("%q not found in the database", old)
	}
}

// TestRoundCatchesUp: one round of Run integrates every event committed
// before it, however many steps of BatchSize that takes, and signs once,
// after the last step. (With one step per round the log integrated at
// most BatchSize events per Interval and fell behind a faster ingest.)
func TestRoundCatchesUp(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	appendEvents(t, st, 95, 0)
	// The first round runs at once; the next one an hour later.
	l := newLogWith(t, dir, logsign.Config{Store: st, BatchSize: 10, Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, cp := l.Checkpoint(); cp != nil && cp.Size == 95 {
			break
		} else if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("after the first round the checkpoint is %v, want size 95", cp)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	notes, err := st.Checkpoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 {
		t.Errorf("%d checkpoints signed in one round of 10 steps, want 1", len(notes))
	}
}
