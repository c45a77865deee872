package witness_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/witness"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// memTree is a log's tree in memory: the stored hashes in tlog's layout.
type memTree struct {
	hashes []tlog.Hash
	size   int64
}

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// grow appends n leaves whose data starts with tag (two trees with
// different tags fork from their first differing leaf).
func (m *memTree) grow(t testing.TB, n int, tag string) {
	t.Helper()
	for range n {
		hs, err := tlog.StoredHashes(m.size, fmt.Appendf(nil, "%s-%d", tag, m.size), m)
		if err != nil {
			t.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
		m.size++
	}
}

func (m *memTree) root(t testing.TB) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(m.size, m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (m *memTree) prove(old, new uint64) ([]tlog.Hash, error) {
	return tlog.ProveTree(int64(new), int64(old), m)
}

// testLog is a log's key and the checkpoints it signs.
type testLog struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{signer: s, verifier: v, vkey: vkey}
}

// checkpoint signs the tree as the log does: four lines, the fourth the
// receive-time horizon, an extension line a witness signs without reading.
func (l *testLog) checkpoint(t testing.TB, m *memTree) []byte {
	t.Helper()
	c := &merkle.Checkpoint{Origin: l.signer.Name(), Size: uint64(m.size), Root: m.root(t),
		ReceivedBefore: time.Date(2026, 11, 28, 0, 0, 0, int(m.size), time.UTC)}
	cp, err := merkle.Sign(c, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// testWitness is a Server behind an HTTP listener, counting requests.
type testWitness struct {
	name     string
	vkey     string
	srv      *witness.Server
	http     *httptest.Server
	requests atomic.Int64
	dir      string
	skey     string
	logs     map[string][]note.Verifier
}

func startWitness(t testing.TB, name string, logs ...*testLog) *testWitness {
	t.Helper()
	skey, vkey, err := witness.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	w := &testWitness{name: name, vkey: vkey, dir: t.TempDir(), skey: skey, logs: map[string][]note.Verifier{}}
	for _, l := range logs {
		w.logs[l.signer.Name()] = append(w.logs[l.signer.Name()], l.verifier)
	}
	w.open(t)
	w.http = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.requests.Add(1)
		w.srv.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.http.Close)
	return w
}

// open (re)opens the witness's state directory, as a restart does.
func (w *testWitness) open(t testing.TB) {
	t.Helper()
	if w.srv != nil {
		w.srv.Close()
	}
	signer, vkey, err := witness.NewCosignatureSigner(w.skey)
	if err != nil {
		t.Fatal(err)
	}
	if vkey != w.vkey {
		t.Fatalf("NewCosignatureSigner's vkey %s, GenerateKey's %s", vkey, w.vkey)
	}
	srv, err := witness.NewServer(witness.ServerConfig{Signer: signer, Logs: w.logs, StateDir: w.dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	t.Cleanup(func() { srv.Close() })
}

func (w *testWitness) line() string {
	return fmt.Sprintf("witness %s %s %s\n", w.name[strings.LastIndex(w.name, "/")+1:], w.vkey, w.http.URL)
}

func policy(t testing.TB, text string) *witness.Policy {
	t.Helper()
	p, err := witness.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cosigner(t testing.TB, p *witness.Policy) *witness.Cosigner {
	t.Helper()
	c, err := witness.NewCosigner(witness.CosignerConfig{Policy: p, Timeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCosign runs the exchange of c2sp.org/tlog-witness between the log's
// Cosigner and two witness Servers: first contact, growth with consistency
// proofs, a log that forgot what the witnesses hold (a restart), and a
// witness restarted from its state directory.
func TestCosign(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	w1, w2 := startWitness(t, "w.example.com/w1", log), startWitness(t, "w.example.com/w2", log)
	p := policy(t, w1.line()+w2.line()+"group both all w1 w2\nquorum both\n")
	c := cosigner(t, p)
	tree := &memTree{}
	tree.grow(t, 5, "a")

	cp := log.checkpoint(t, tree)
	if err := p.Check(cp); !errors.Is(err, witness.ErrQuorum) || !strings.Contains(err.Error(), "no witness") {
		t.Fatalf("Check of an uncosigned checkpoint: %v", err)
	}
	got := c.Cosign(ctx, cp, 5, tree.prove)
	if err := p.Check(got); err != nil {
		t.Fatalf("Check after cosigning: %v\n%s", err, got)
	}
	if !bytes.HasPrefix(got, cp) {
		t.Fatalf("the cosigned checkpoint does not extend the log's:\n%s", got)
	}
	// The log's own verification ignores the cosignatures.
	v, err := merkle.NewVerifier([]byte(log.vkey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := merkle.OpenCheckpoint(got, v); err != nil {
		t.Fatalf("OpenCheckpoint of the cosigned checkpoint: %v", err)
	}
	// The cosignatures are cosignature/v1 over the whole note text,
	// horizon line included, timestamped now.
	for _, w := range []*testWitness{w1, w2} {
		wv, err := fnote.NewVerifierForCosignatureV1(w.vkey)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(got, note.VerifierList(wv))
		if err != nil {
			t.Fatalf("%s's cosignature: %v", w.name, err)
		}
		ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
		if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
			t.Fatalf("%s's cosignature time %v, %v", w.name, ts, err)
		}
		if !bytes.Equal(w.srv.Latest(log.signer.Name()), cp) {
			t.Fatalf("%s keeps %q", w.name, w.srv.Latest(log.signer.Name()))
		}
	}

	// Growth: the witnesses check a consistency proof from 5.
	tree.grow(t, 300, "a")
	got = c.Cosign(ctx, log.checkpoint(t, tree), 305, tree.prove)
	if err := p.Check(got); err != nil {
		t.Fatalf("Check at 305: %v", err)
	}
	// The same checkpoint again: old size = size, same root.
	if err := p.Check(c.Cosign(ctx, log.checkpoint(t, tree), 305, tree.prove)); err != nil {
		t.Fatalf("Check of the same size again: %v", err)
	}

	// A new Cosigner (the log restarted) does not know the witnesses'
	// sizes: the 409 tells it, and it proves from there.
	before := w1.requests.Load()
	tree.grow(t, 17, "a")
	c2 := cosigner(t, p)
	if err := p.Check(c2.Cosign(ctx, log.checkpoint(t, tree), 322, tree.prove)); err != nil {
		t.Fatalf("Check after the log's restart: %v", err)
	}
	if n := w1.requests.Load() - before; n != 2 {
		t.Fatalf("%d requests to w1 after the restart, want 2 (a 409, then the proof)", n)
	}
	for _, s := range c2.Stats() {
		if s.Size != 322 || s.Cosigned != 1 || s.Failures != 0 {
			t.Fatalf("stats %+v", s)
		}
	}

	// A restarted witness remembers 322: a checkpoint of a smaller tree
	// is refused with its size.
	w1.open(t)
	small := &memTree{}
	small.grow(t, 5, "a")
	status, body, ctype := post(t, w1, &witness.Request{OldSize: 0, Checkpoint: log.checkpoint(t, small)})
	if status != http.StatusConflict || body != "322\n" || ctype != witness.SizeContentType {
		t.Fatalf("a rollback after the witness's restart: %d %q %q", status, body, ctype)
	}
}

// TestCosignRefusesForks shows the witnesses refusing a second history of
// the log: a different tree of the size they cosigned, and a larger one
// whose proof from their tree cannot verify. The Cosigner returns the
// checkpoint without their cosignatures, which the policy then refuses.
func TestCosignRefusesForks(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	w1 := startWitness(t, "w.example.com/w1", log)
	p := policy(t, w1.line()+"quorum w1\n")
	honest := &memTree{}
	honest.grow(t, 40, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, log.checkpoint(t, honest), 40, honest.prove)); err != nil {
		t.Fatal(err)
	}

	fork := &memTree{}
	fork.grow(t, 39, "a")
	fork.grow(t, 1, "b") // leaf 40 differs
	status, body, _ := post(t, w1, &witness.Request{OldSize: 40, Checkpoint: log.checkpoint(t, fork)})
	if status != http.StatusConflict || !strings.Contains(body, "another root hash") {
		t.Fatalf("a fork of the same size: %d %q", status, body)
	}
	fork.grow(t, 20, "b")
	// The forked tree's own proof from 40 proves its own tree of 40, not
	// the one the witness cosigned.
	proof, err := fork.prove(40, 60)
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ = post(t, w1, &witness.Request{OldSize: 40, Proof: proof, Checkpoint: log.checkpoint(t, fork)})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("a larger fork: %d %q", status, body)
	}
	c := cosigner(t, p)
	got := c.Cosign(ctx, log.checkpoint(t, fork), 60, fork.prove)
	err = p.Check(got)
	if !errors.Is(err, witness.ErrQuorum) || !strings.Contains(err.Error(), "not cosigned by w1") {
		t.Fatalf("Check of the fork: %v", err)
	}
	if st := c.Stats()[0]; st.Failures != 1 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "422") {
		t.Fatalf("stats after the fork: %+v", st)
	}
	// Two forks posted by hand, one by the Cosigner (after a 409 that
	// told it the witness's size).
	if st := w1.srv.Stats()[log.signer.Name()]; st.Forked != 3 || st.Conflict != 1 || st.Cosigned != 1 || st.Refused != 0 || st.Size != 40 {
		t.Fatalf("the witness's stats after the forks refused: %+v", st)
	}
	// The honest log goes on.
	honest.grow(t, 20, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, log.checkpoint(t, honest), 60, honest.prove)); err != nil {
		t.Fatalf("the honest log after the fork: %v", err)
	}
}

// TestServerLogKeyTwice: a log's key given twice (`audittrail witness
// --log-key old.pub --log-key keys.pub` after a rotation, keys.pub holding
// the new key and the old one) must not make the witness refuse every
// checkpoint: note.VerifierList calls a key listed twice ambiguous.
func TestServerLogKeyTwice(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	rotated := newTestLog(t, "audit.example.com/log")
	w := startWitness(t, "w.example.com/w1", log, rotated, log)
	p := policy(t, w.line()+"quorum w1\n")
	tree := &memTree{}
	tree.grow(t, 3, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, log.checkpoint(t, tree), 3, tree.prove)); err != nil {
		t.Fatalf("a checkpoint of a log whose key the witness was given twice: %v", err)
	}
	tree.grow(t, 3, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, rotated.checkpoint(t, tree), 6, tree.prove)); err != nil {
		t.Fatalf("a checkpoint signed with the log's other key: %v", err)
	}
}

// TestServerHugeTree: a checkpoint of more than 2^62 leaves (the protocol
// allows sizes up to 2^63-1) is refused at once. tlog's proof check loops
// forever on such a size, and the witness checks under its lock: one
// request signed by a log's key would stop the witness for every log.
func TestServerHugeTree(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	w := startWitness(t, "w.example.com/w1", log)
	p := policy(t, w.line()+"quorum w1\n")
	tree := &memTree{}
	tree.grow(t, 5, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, log.checkpoint(t, tree), 5, tree.prove)); err != nil {
		t.Fatal(err)
	}
	proof := make([]tlog.Hash, witness.MaxProofLines)
	for _, size := range []uint64{1<<62 + 1, 1<<63 - 1} {
		root := tree.root(t)
		text := fmt.Sprintf("%s\n%d\n%s\n", log.signer.Name(), size, base64.StdEncoding.EncodeToString(root[:]))
		cp, err := note.Sign(&note.Note{Text: text}, log.signer)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Timeout: 5 * time.Second}
		resp, err := hc.Post(w.http.URL+"/add-checkpoint", "text/plain",
			bytes.NewReader((&witness.Request{OldSize: 5, Proof: proof, Checkpoint: cp}).Marshal()))
		if err != nil {
			t.Fatalf("a checkpoint of %d leaves: %v", size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "leaves") {
			t.Fatalf("a checkpoint of %d leaves: %d %q", size, resp.StatusCode, b)
		}
	}
	tree.grow(t, 5, "a")
	if err := p.Check(cosigner(t, p).Cosign(ctx, log.checkpoint(t, tree), 10, tree.prove)); err != nil {
		t.Fatalf("after the huge trees: %v", err)
	}
}

// TestServerRefuses covers the witness's other answers: an unknown log
// (404), a checkpoint not signed by the log's key (403), malformed
// requests (400), a wrong method or path.
func TestServerRefuses(t *testing.T) {
	log := newTestLog(t, "audit.example.com/log")
	w := startWitness(t, "w.example.com/w1", log)
	tree := &memTree{}
	tree.grow(t, 3, "a")
	other := newTestLog(t, "other.example.com/log")
	impostor := newTestLog(t, "audit.example.com/log") // the log's name, another key
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"unknown log", string((&witness.Request{Checkpoint: other.checkpoint(t, tree)}).Marshal()), 404, "does not cosign the log"},
		{"not the log's key", string((&witness.Request{Checkpoint: impostor.checkpoint(t, tree)}).Marshal()), 403, "no valid signature"},
		{"old size above the checkpoint's", string((&witness.Request{OldSize: 4, Checkpoint: log.checkpoint(t, tree)}).Marshal()), 400, "larger than the checkpoint's"},
		{"a proof from the empty tree", "old 0\n" + strings.Repeat("A", 43) + "=\n\n" + string(log.checkpoint(t, tree)), 400, "must be empty"},
		{"no old line", "\n" + string(log.checkpoint(t, tree)), 400, `"old <size>"`},
		{"leading zero", "old 03\n\n" + string(log.checkpoint(t, tree)), 400, "not a tree size"},
		{"bad proof line", "old 1\nnot base64\n\n" + string(log.checkpoint(t, tree)), 400, "proof line 1"},
		{"no signatures", "old 0\n\naudit.example.com/log\n3\n", 400, "no signatures"},
		{"a malformed signature line", "old 0\n\naudit.example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— audit.example.com/log !!\n", 400, "not a signed note"},
		{"too large", "old 0\n\n" + strings.Repeat("x", witness.MaxRequestSize+10), 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(w.http.URL+"/add-checkpoint", "text/plain", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %q, want %d and %q", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
	resp, err := http.Get(w.http.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if w.srv.Latest(log.signer.Name()) != nil {
		t.Fatal("a refused request changed the witness's state")
	}
}

// TestCosignerBacksOff: a witness that does not answer is skipped until
// its retry time, while the others go on cosigning.
func TestCosignerBacksOff(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	w1, w2 := startWitness(t, "w.example.com/w1", log), startWitness(t, "w.example.com/w2", log)
	p := policy(t, w1.line()+w2.line()+"group any1 any w1 w2\nquorum any1\n")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c, err := witness.NewCosigner(witness.CosignerConfig{Policy: p, Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	w2.http.Close() // down
	tree := &memTree{}
	// Round 0 asks w2 (it fails: retry in 1 s); round 1, half a second
	// later, does not; round 2, a second after that, asks again (it fails:
	// retry in 2 s).
	for i, step := range []time.Duration{0, 500 * time.Millisecond, time.Second} {
		now = now.Add(step)
		tree.grow(t, 10, "a")
		got := c.Cosign(ctx, log.checkpoint(t, tree), uint64(tree.size), tree.prove)
		if err := p.Check(got); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if witness.Cosigned(got, p.Witnesses()[1].Verifier) {
			t.Fatalf("round %d: cosigned by a witness that is down", i)
		}
		st := c.Stats()[1]
		if want := []uint64{1, 1, 2}[i]; st.Failures != want || st.LastError == nil {
			t.Fatalf("round %d: stats of the witness that is down %+v, want %d failures", i, st, want)
		}
	}
	if st := c.Stats()[0]; st.Cosigned != 3 || st.Size != 30 {
		t.Fatalf("w1: %+v", st)
	}
}

func post(t *testing.T, w *testWitness, r *witness.Request) (int, string, string) {
	t.Helper()
	resp, err := http.Post(w.http.URL+"/add-checkpoint", "text/plain", bytes.NewReader(r.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

func TestParsePolicy(t *testing.T) {
	_, vkey, err := witness.GenerateKey("w.example.com/w1")
	if err != nil {
		t.Fatal(err)
	}
	_, vkey2, err := witness.GenerateKey("w.example.com/w2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text, want string
	}{
		{"witness w1 " + vkey + " https://w1.example/\nquorum w1\n", ""},
		{"# comment\nwitness w1 " + vkey + " https://w1.example/ # trailing\nwitness w2 " + vkey2 + " http://w2.example/x\ngroup g 1 w1 w2\nquorum g\n", ""},
		{"quorum none\n", ""},
		{"witness w1 " + vkey + " https://w1.example/\n", "must define a quorum"},
		{"witness w1 " + vkey + " ftp://w1.example/\nquorum w1\n", "not an http or https URL"},
		{"witness w1 " + vkey + " https://w1.example/\nwitness w2 " + vkey + " https://w2.example/\ngroup g all w1 w2\nquorum g\n", "the same key"},
		{"witness w1 notakey https://w1.example/\nquorum w1\n", "witness"},
		// One key under another name: a cosignature does not name its
		// witness, so it would count twice.
		{"witness w1 " + vkey + " https://w1.example/\nwitness w2 " + renamed(t, vkey, "w.example.com/other") + " https://w2.example/\ngroup g all w1 w2\nquorum g\n", "the same key"},
		{"group g 1 w1\nquorum g\n", "unknown component"},
		// One member listed twice in a group: its cosignature would count
		// twice towards the threshold, so one witness would satisfy "2".
		{"witness w1 " + vkey + " https://w1.example/\nwitness w2 " + vkey2 + " https://w2.example/\ngroup g 2 w1 w1 w2\nquorum g\n", "listed twice"},
		{"witness w1 " + vkey + " https://w1.example/\ngroup a any w1\ngroup g 2 a a\nquorum g\n", "listed twice"},
		// A threshold of 0 demands nothing while reading as a requirement.
		{"witness w1 " + vkey + " https://w1.example/\ngroup g 0 w1\nquorum g\n", "group g has threshold 0"},
		{"group g all\nquorum g\n", "group g has threshold 0"},
		{"witness w1 " + vkey + " https://w1.example/\ngroup g 2 w1\nquorum g\n", "threshold"},
		{strings.Repeat("#", 70<<10), "more than"},
	} {
		_, err := witness.ParsePolicy([]byte(tc.text))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ParsePolicy(%.60q): %v, want %q", tc.text, err, tc.want)
		}
	}
}

// TestPolicyGroups: thresholds over groups, as verifiers apply them.
func TestPolicyGroups(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	ws := []*testWitness{startWitness(t, "w.example.com/w1", log), startWitness(t, "w.example.com/w2", log), startWitness(t, "w.example.com/w3", log)}
	lines := ws[0].line() + ws[1].line() + ws[2].line()
	tree := &memTree{}
	tree.grow(t, 9, "a")
	// Only w1 and w3 cosign (w2 is asked by nobody).
	only := policy(t, ws[0].line()+ws[2].line()+"group g all w1 w3\nquorum g\n")
	cp := cosigner(t, only).Cosign(ctx, log.checkpoint(t, tree), 9, tree.prove)
	for _, tc := range []struct {
		policy string
		ok     bool
	}{
		{lines + "group g 2 w1 w2 w3\nquorum g\n", true},
		{lines + "group g all w1 w2 w3\nquorum g\n", false},
		{lines + "group a any w2\ngroup g all a w1\nquorum g\n", false},
		{lines + "group a any w2 w3\ngroup g all a w1\nquorum g\n", true},
		{lines + "quorum none\n", true},
	} {
		err := policy(t, tc.policy).Check(cp)
		if (err == nil) != tc.ok {
			t.Errorf("policy %q: %v", tc.policy[len(lines):], err)
		}
	}
}

// renamed returns the cosignature vkey of vkey's public key under another
// name.
func renamed(t *testing.T, vkey, name string) string {
	t.Helper()
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	plain, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(raw[1:]))
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.VKeyToCosignatureV1(plain)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCosignerOneLinePerWitness: a witness that answers with its
// cosignature line many times over (or many valid lines, each with another
// timestamp) must not make the log's checkpoint unreadable: note.Open
// refuses a note of more than 100 signature lines, so every verifier, and
// the log itself at its next start, would refuse the stored checkpoint.
// One line per witness is all a policy counts.
func TestCosignerOneLinePerWitness(t *testing.T) {
	ctx := context.Background()
	log := newTestLog(t, "audit.example.com/log")
	skey, vkey, err := witness.GenerateKey("w.example.com/w1")
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := witness.NewCosignatureSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := witness.ParseRequest(body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		text, _, _ := bytes.Cut(req.Checkpoint, []byte("\n\n"))
		signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, signer)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		_, line, _ := bytes.Cut(signed, []byte("\n\n"))
		rw.Write(bytes.Repeat(line, 150))
	}))
	t.Cleanup(srv.Close)
	p := policy(t, fmt.Sprintf("witness w1 %s %s\nquorum w1\n", vkey, srv.URL))
	tree := &memTree{}
	tree.grow(t, 7, "a")
	got := cosigner(t, p).Cosign(ctx, log.checkpoint(t, tree), 7, tree.prove)
	v, err := merkle.NewVerifier([]byte(log.vkey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := merkle.OpenCheckpoint(got, merkle.Witnessed(v, p)); err != nil {
		t.Fatalf("OpenCheckpoint of the cosigned checkpoint: %v\n%d bytes", err, len(got))
	}
}
