package logmirror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/logmirror"
	"github.com/audittrail/audittrail/merkle"
)

// The mirror is tested against the real server binary (package testserver),
// its log signed by the server; the lies a dishonest server could tell are
// made by a Source that alters the real server's answers.

func TestMain(m *testing.M) { testserver.Main(m) }

type fixture struct {
	srv               *testserver.Server
	producer, auditor *client.Client
	verifier          note.Verifier
	seed              int64
}

func start(t testing.TB, args ...string) *fixture {
	t.Helper()
	srv := testserver.Start(t, args...)
	f := &fixture{srv: srv, producer: dial(t, srv.InternalAddr, srv.ProducerToken), auditor: dial(t, srv.PublicAddr, srv.ReaderToken)}
	key, err := os.ReadFile(filepath.Join(srv.DataDir, "log-verification.key"))
	if err != nil {
		t.Fatal(err)
	}
	if f.verifier, err = merkle.NewVerifier(key); err != nil {
		t.Fatal(err)
	}
	return f
}

func dial(t testing.TB, addr, token string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// produce creates n generated events and returns their ids.
func (f *fixture) produce(t testing.TB, n int) []string {
	t.Helper()
	f.seed++
	g := sample.New(f.seed, sample.Options{Events: n, Span: time.Hour, End: time.Now()})
	var ids []string
	for n > 0 {
		reqs := make([]audittrail.CreateRequest, min(n, audittrail.MaxBatch))
		for i := range reqs {
			reqs[i].EventID, reqs[i].Event = g.Next()
			ids = append(ids, reqs[i].EventID)
		}
		res, err := f.producer.BatchCreateEvents(t.Context(), reqs)
		if err != nil || len(res.Failed) > 0 {
			t.Fatalf("creating events: %v %v", err, res)
		}
		n -= len(reqs)
	}
	return ids
}

// checkpoint waits for a signed checkpoint of at least size leaves.
func (f *fixture) checkpoint(t testing.TB, size uint64) ([]byte, *merkle.Checkpoint) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		text, err := f.auditor.Checkpoint(t.Context())
		if err == nil {
			cp, err := merkle.OpenCheckpoint(text, f.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Size >= size {
				return text, cp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d leaves: %v", size, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lines returns the lines of the mirror's entries.jsonl.
func lines(t *testing.T, dir string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, logmirror.EntriesFile))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for l := range bytes.Lines(data) {
		out = append(out, l)
	}
	return out
}

func TestMirror(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testMirror(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { testMirror(t, start(t, "--store", pgtest.Start(t))) })
}

func testMirror(t *testing.T, f *fixture) {
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := logmirror.Open(dir, f.verifier); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("a second Open of the directory: %v, want it refused while the first holds it", err)
	}

	ids := f.produce(t, 1200)
	_, cp1 := f.checkpoint(t, 1200)
	var progress []uint64
	u, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{PageSize: 250, Progress: func(done, _ uint64) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if u.From != 0 || u.To < cp1.Size || m.Size() != u.To || m.Checkpoint().Size != u.To {
		t.Fatalf("first update %+v, mirror size %d, want 0..≥%d", u, m.Size(), cp1.Size)
	}
	if len(progress) < 5 || progress[len(progress)-1] != u.To {
		t.Errorf("progress %v: want a call per page of 250 up to %d", progress, u.To)
	}
	checkEntries(t, dir, f.verifier, u.To, ids)

	// The next update adds what came since, and the file goes on from
	// where it was.
	before := lines(t, dir)
	more := f.produce(t, 700)
	_, cp2 := f.checkpoint(t, u.To+700)
	u2, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u2.From != u.To || u2.To < cp2.Size {
		t.Fatalf("second update %+v, want from %d to ≥%d", u2, u.To, cp2.Size)
	}
	after := lines(t, dir)
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("line %d changed by the second update", i+1)
		}
	}
	checkEntries(t, dir, f.verifier, u2.To, append(ids, more...))

	// Every read of the entries was recorded, as a search is.
	res, err := f.auditor.SearchEvents(t.Context(), audittrail.SearchEventsRequest{
		Filter:   actionFilter(audittrail.ActionReadLogEntries),
		PageSize: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) < len(progress)+1 {
		t.Errorf("%d self-audit events of reading the entries, want at least %d", len(res.Events), len(progress)+1)
	}
	for _, e := range res.Events {
		if e.Resource != audittrail.LogResource || e.Principal != "users/reader" || e.RequestParameters["start"] == "" {
			t.Errorf("self-audit event %+v", e)
			break
		}
	}

	// Reading the entries needs the auditor role.
	_, _, err = f.producer.LogEntries(t.Context(), 0, 10)
	if audittrail.ErrorCode(err) != audittrail.EPermissionDenied {
		t.Errorf("a producer reading the entries: %v, want permission denied", err)
	}
	_, _, err = f.auditor.LogEntries(t.Context(), 0, -1)
	if audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("a negative page size: %v, want invalid", err)
	}
	events, committed, err := f.auditor.LogEntries(t.Context(), 1<<40, 10)
	if err != nil || len(events) != 0 || committed < u2.To {
		t.Errorf("entries beyond the log: %d events, committed %d, %v; want none, committed ≥ %d", len(events), committed, err, u2.To)
	}
}

// checkEntries verifies the mirror offline and checks that it holds size
// lines, one event each, among them every id of ids.
func checkEntries(t *testing.T, dir string, verifier note.Verifier, size uint64, ids []string) {
	t.Helper()
	v, err := logmirror.Verify(dir, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if v.Entries != size || v.Checkpoint.Size != size || v.Unverified != 0 {
		t.Fatalf("Verify: %d entries, checkpoint of %d, %d unverified; want %d, %d, 0", v.Entries, v.Checkpoint.Size, v.Unverified, size, size)
	}
	ls := lines(t, dir)
	if uint64(len(ls)) != size {
		t.Fatalf("%d lines, want %d", len(ls), size)
	}
	names := map[string]bool{}
	for i, l := range ls {
		var e struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(l, &e); err != nil || e.Name == "" {
			t.Fatalf("line %d: %v %q", i+1, err, l)
		}
		names[e.Name] = true
	}
	for _, id := range ids {
		if !names["events/"+id] {
			t.Fatalf("event %s is not in the mirror", id)
		}
	}
}

func actionFilter(action string) audittrail.Filter {
	var f audittrail.Filter
	f.Exact[audittrail.FieldAction] = action
	return f
}
