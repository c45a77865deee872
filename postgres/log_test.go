package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/postgres"
	"github.com/audittrail/audittrail/storetest"
)

var _ logsign.SharedStore = (*postgres.Store)(nil)

// logKey returns a new signing key of the log and its public key.
func logKey(t testing.TB) (note.Signer, string) {
	t.Helper()
	signer, vkey, err := logsign.LoadOrCreateKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}

func newLog(t testing.TB, st *postgres.Store, signer note.Signer, vkey string) *logsign.Log {
	t.Helper()
	l, err := logsign.New(t.Context(), logsign.Config{Store: st, Signer: signer, VerifierKey: vkey, Logger: testLogger(t),
		Interval: 10 * time.Millisecond, SignInterval: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runLog runs l in the background until the returned function is called.
func runLog(l *logsign.Log) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// logEvents appends n events with ids from *next, their receive times going
// backwards (the store raises them), and returns them as stored.
func logEvents(t testing.TB, st *postgres.Store, next *atomic.Uint64, n int) []*audittrail.Event {
	t.Helper()
	out, err := appendLogEvents(t, st, next, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appendLogEvents is logEvents for goroutines other than the test's.
func appendLogEvents(t testing.TB, st *postgres.Store, next *atomic.Uint64, n int) ([]*audittrail.Event, error) {
	var in []*audittrail.Event
	for range n {
		k := next.Add(1)
		e, err := audittrail.PrepareNewEvent(fmt.Sprintf("00000000-0000-4000-8000-%012x", k), audittrail.NewEvent{Event: audittrail.Event{
			EventTime: base.Add(time.Duration(k%97) * time.Minute), EventSource: "src", Action: "act", Principal: "users/p", SourceIP: "1.1.1.1",
			Metadata: map[string]string{"k": fmt.Sprint(k), "nul": "a\x00b"},
		}}, base.Add(time.Hour-time.Duration(k)*time.Millisecond), false)
		if err != nil {
			return nil, err
		}
		if k%3 == 0 {
			e.Status = &audittrail.Status{Code: int32(k), Message: "é"}
		}
		in = append(in, e)
	}
	res, err := st.Append(context.Background(), in)
	if err != nil {
		return nil, fmt.Errorf("Append: %w", err)
	}
	out := make([]*audittrail.Event, len(res))
	for i, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("Append: %w", r.Err)
		}
		out[i] = r.Event
	}
	return out, nil
}

func openCP(t testing.TB, msg []byte, vkey string) *merkle.Checkpoint {
	t.Helper()
	v, err := merkle.NewVerifier([]byte(vkey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := merkle.OpenCheckpoint(msg, v)
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, msg)
	}
	return c
}

// checkLogged checks the log's stored events against what Append returned
// and Search finds (the leaf hash covers every field), that receive times
// strictly increase with seq, and that every event is proven in cp by l.
func checkLogged(t *testing.T, st *postgres.Store, l *logsign.Log, cp *merkle.Checkpoint, acked map[string]*audittrail.Event) {
	t.Helper()
	evs, err := st.EventsBySeq(t.Context(), 1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	searched := map[string]*audittrail.Event{}
	for _, e := range searchAll(t, st, everything, 1000) {
		searched[e.ID] = e
	}
	if uint64(len(searched)) != cp.Size || len(acked) != int(cp.Size) {
		t.Fatalf("search finds %d events, %d acknowledged, checkpoint size %d", len(searched), len(acked), cp.Size)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("EventsBySeq position %d holds seq %d", i, e.Seq)
		}
		if d := gocmp.Diff(searched[e.ID], e); d != "" {
			t.Fatalf("EventsBySeq and Search differ on seq %d (-search +log):\n%s", e.Seq, d)
		}
		if d := gocmp.Diff(acked[e.ID], e); d != "" {
			t.Fatalf("EventsBySeq differs from the acknowledged event of seq %d (-acked +log):\n%s", e.Seq, d)
		}
		if i > 0 && !e.ReceiveTime.After(evs[i-1].ReceiveTime) {
			t.Fatalf("receive time of seq %d (%v) is not after seq %d's (%v)", e.Seq, e.ReceiveTime, e.Seq-1, evs[i-1].ReceiveTime)
		}
		if !e.ReceiveTime.Before(cp.ReceivedBefore) {
			t.Fatalf("seq %d received at %v, not before the horizon %v", e.Seq, e.ReceiveTime, cp.ReceivedBefore)
		}
		p, err := l.InclusionProof(e.Seq, cp.Size)
		if err != nil {
			t.Fatalf("inclusion proof of seq %d: %v", e.Seq, err)
		}
		if err := merkle.VerifyEventInclusion(cp, e, p); err != nil {
			t.Fatalf("inclusion proof of seq %d: %v", e.Seq, err)
		}
	}
}

// TestLog integrates events of the PostgreSQL store, proves each of them
// and the consistency of two checkpoints with the merkle verifiers, resumes
// after a restart and audits the store.
func TestLog(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	st := mustOpen(t, url)
	defer st.Close()
	signer, vkey := logKey(t)
	l := newLog(t, st, signer, vkey)

	var next atomic.Uint64
	acked := map[string]*audittrail.Event{}
	add := func(evs []*audittrail.Event) {
		for _, e := range evs {
			acked[e.ID] = e
		}
	}
	add(logEvents(t, st, &next, 7))
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.Leading() {
		t.Fatal("the only replica does not lead after Flush")
	}
	note1, _ := l.Checkpoint()
	cp1 := openCP(t, note1, vkey)
	if cp1.Size != 7 {
		t.Fatalf("first checkpoint of size %d, want 7", cp1.Size)
	}
	for range 6 {
		add(logEvents(t, st, &next, 1+int(next.Load()%50)))
		if err := l.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	note2, _ := l.Checkpoint()
	cp2 := openCP(t, note2, vkey)
	if cp2.Size != uint64(len(acked)) || st.LastSeq() != cp2.Size {
		t.Fatalf("checkpoint of size %d, %d events acknowledged, LastSeq %d", cp2.Size, len(acked), st.LastSeq())
	}
	checkLogged(t, st, l, cp2, acked)
	cons, err := l.ConsistencyProof(cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(cp1, cp2, cons); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ConsistencyProof(cp1.Size, cp2.Size+1); err == nil {
		t.Error("consistency proof beyond the tree: no error")
	}

	// EventByID finds the events of the log, and nothing else.
	for _, e := range acked {
		got, err := st.EventByID(ctx, e.ID)
		if err != nil || gocmp.Diff(e, got) != "" {
			t.Fatalf("EventByID(%s) = %v, %v; want %v", e.ID, got, err, e)
		}
		break
	}
	for _, id := range []string{"00000000-0000-4000-8000-ffffffffffff", "not-a-uuid", "00000000-0000-4000-8000-00000000000A"} {
		if got, err := st.EventByID(ctx, id); got != nil || err != nil {
			t.Errorf("EventByID(%q) = %v, %v; want nil, nil", id, got, err)
		}
	}
	if _, err := st.EventsBySeq(ctx, 1, cp2.Size+1); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("EventsBySeq past the log: %v, want ENotFound", err)
	}

	// A restart (another Log, another Store) resumes from the stored tree
	// and checkpoint.
	st.Close()
	st = mustOpen(t, url)
	defer st.Close()
	l2 := newLog(t, st, signer, vkey)
	if n, _ := l2.Checkpoint(); string(n) != string(note2) {
		t.Fatalf("latest checkpoint not reloaded: %q", n)
	}
	add(logEvents(t, st, &next, 3))
	if err := l2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	note3, _ := l2.Checkpoint()
	cp3 := openCP(t, note3, vkey)
	if cp3.Size != cp2.Size+3 {
		t.Fatalf("size after restart %d, want %d", cp3.Size, cp2.Size+3)
	}
	checkLogged(t, st, l2, cp3, acked)

	rep, err := logsign.AuditStore(ctx, st, vkey)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := st.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Leaves != cp3.Size || rep.Checked != len(notes) || len(notes) < 3 {
		t.Fatalf("audit: %+v (%d stored checkpoints)", rep, len(notes))
	}
}

// capture is a merkle.HashStore that keeps the hashes it is given, for
// writing them with AppendTree by hand.
type capture struct {
	mem     merkle.MemStore
	indexes []int64
	hashes  [][32]byte
}

func (c *capture) ReadHashes(indexes []int64) ([]tlog.Hash, error) { return c.mem.ReadHashes(indexes) }
func (c *capture) WriteHashes(indexes []int64, hashes []tlog.Hash) error {
	c.indexes, c.hashes = append(c.indexes[:0], indexes...), c.hashes[:0]
	for _, h := range hashes {
		c.hashes = append(c.hashes, h)
	}
	return c.mem.WriteHashes(indexes, hashes)
}

// TestLogFence checks that one replica at a time integrates: the lock goes
// to one Store, the other's tree writes are refused, a write that does not
// extend the stored tree is refused, and the lock passes on when its holder
// closes.
func TestLogFence(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	defer b.Close()
	defer a.Close()
	if ok, err := a.LeadLog(ctx); !ok || err != nil {
		t.Fatalf("A LeadLog = %v, %v; want true", ok, err)
	}
	if ok, err := b.LeadLog(ctx); ok || err != nil {
		t.Fatalf("B LeadLog while A leads = %v, %v; want false", ok, err)
	}
	if ok, err := a.LeadLog(ctx); !ok || err != nil {
		t.Fatalf("A LeadLog again = %v, %v; want true", ok, err)
	}
	var next atomic.Uint64
	evs := logEvents(t, a, &next, 5)
	leaves := func(evs []*audittrail.Event) []tlog.Hash {
		var out []tlog.Hash
		for _, e := range evs {
			out = append(out, merkle.LeafHash(e))
		}
		return out
	}
	c := &capture{}
	if _, err := merkle.Integrate(c, 0, leaves(evs[:3])); err != nil {
		t.Fatal(err)
	}
	conflict := func(what string, err error) {
		t.Helper()
		if audittrail.ErrorCode(err) != audittrail.EConflict {
			t.Errorf("%s: %v, want EConflict", what, err)
		}
	}
	conflict("AppendTree by the replica that does not lead", b.AppendTree(3, c.indexes, c.hashes, nil))
	conflict("AppendTree of a size its hashes do not make", a.AppendTree(2, c.indexes, c.hashes, nil))
	if err := a.AppendTree(3, c.indexes[1:], c.hashes[1:], nil); err == nil {
		t.Error("AppendTree of hashes that do not start at the stored tree's end: no error")
	}
	if err := a.AppendTree(3, c.indexes, c.hashes, nil); err != nil {
		t.Fatal(err)
	}
	conflict("the same AppendTree again (the stored tree moved)", a.AppendTree(3, c.indexes, c.hashes, nil))
	conflict("a checkpoint alone of another size", a.AppendTree(4, nil, nil, []byte("x")))
	if size, err := b.TreeSize(); size != 3 || err != nil {
		t.Fatalf("TreeSize = %d, %v; want 3", size, err)
	}
	got, err := b.ReadTreeHashes(c.indexes)
	if err != nil || gocmp.Diff(c.hashes, got) != "" {
		t.Fatalf("ReadTreeHashes = %x, %v; want %x", got, err, c.hashes)
	}
	if _, err := b.ReadTreeHashes([]int64{c.indexes[len(c.indexes)-1] + 1}); err == nil {
		t.Error("ReadTreeHashes of an index not stored: no error")
	}

	// The lock passes to B when A goes away.
	a.Close()
	if ok, err := a.LeadLog(ctx); ok || err == nil {
		t.Errorf("LeadLog of a closed store = %v, %v", ok, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := b.LeadLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B does not get the lock after A closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := merkle.Integrate(c, 3, leaves(evs[3:])); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendTree(5, c.indexes, c.hashes, []byte("checkpoint of 5")); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendTree(5, nil, nil, []byte("again")); err == nil {
		t.Errorf("a second checkpoint of the same size: %v, want an error", err)
	}
	notes, err := b.Checkpoints(ctx)
	if err != nil || len(notes) != 1 || string(notes[0]) != "checkpoint of 5" {
		t.Fatalf("Checkpoints = %q, %v", notes, err)
	}
}

// TestLogReplicas runs two replicas (two Stores on one database, each with
// its Log running) while events are appended through both: one of them
// integrates, the other serves; when the leader dies the other takes over;
// the result is one tree, every event is proven by both, and the
// checkpoints signed by each verify and are consistent with each other.
func TestLogReplicas(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	signer, vkey := logKey(t)
	stA, stB := mustOpen(t, url), mustOpen(t, url)
	defer stB.Close()
	la := newLog(t, stA, signer, vkey)
	stopA := runLog(la)
	waitFor(t, "replica A to lead", la.Leading)
	lb := newLog(t, stB, signer, vkey)
	stopB := runLog(lb)
	defer func() { stopB() }()

	var (
		next  atomic.Uint64
		mu    sync.Mutex
		acked = map[string]*audittrail.Event{}
	)
	// write appends batches through st until stop is closed.
	write := func(st *postgres.Store, seed uint64, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			evs, err := appendLogEvents(t, st, &next, 1+rng.IntN(5))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, e := range evs {
				acked[e.ID] = e
			}
			mu.Unlock()
		}
	}
	count := func() uint64 { mu.Lock(); defer mu.Unlock(); return uint64(len(acked)) }

	// Phase 1: A leads; appends through both.
	stop1, stop2 := make(chan struct{}), make(chan struct{})
	var wgA, wgB sync.WaitGroup
	wgA.Add(2)
	wgB.Add(2)
	go write(stA, 1, stop1, &wgA)
	go write(stA, 2, stop1, &wgA)
	go write(stB, 3, stop2, &wgB)
	go write(stB, 4, stop2, &wgB)
	waitFor(t, "150 events", func() bool { return count() >= 150 })
	waitFor(t, "replica B to serve a checkpoint of 100 events", func() bool {
		_, c := lb.Checkpoint()
		return c != nil && c.Size >= 100
	})
	if lb.Leading() {
		t.Fatal("both replicas lead")
	}
	// A dies (no flush): its writers stop, its Log stops, its store closes.
	close(stop1)
	wgA.Wait()
	stopA()
	noteA, _ := la.Checkpoint()
	cpA := openCP(t, noteA, vkey)
	stA.Close()

	// Phase 2: B takes over while appends go on through it.
	waitFor(t, "replica B to lead", lb.Leading)
	atTakeover := count()
	waitFor(t, "100 more events", func() bool { return count() >= atTakeover+100 })
	close(stop2)
	wgB.Wait()
	if err := lb.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	noteB, _ := lb.Checkpoint()
	cpB := openCP(t, noteB, vkey)
	if cpB.Size != count() || cpB.Size <= cpA.Size {
		t.Fatalf("B's checkpoint has size %d; %d events acknowledged; A signed %d", cpB.Size, count(), cpA.Size)
	}

	// A comes back, as a replica that serves.
	stA2 := mustOpen(t, url)
	defer stA2.Close()
	la2 := newLog(t, stA2, signer, vkey)
	stopA2 := runLog(la2)
	defer stopA2()
	waitFor(t, "replica A to serve B's checkpoint", func() bool {
		n, _ := la2.Checkpoint()
		return string(n) == string(noteB)
	})
	if la2.Leading() || !lb.Leading() {
		t.Fatalf("after A's return: A leads %v, B leads %v; want B only", la2.Leading(), lb.Leading())
	}

	// One tree: every event proven by both replicas; the checkpoints A and
	// B signed are consistent; the full audit finds nothing.
	checkLogged(t, stB, lb, cpB, acked)
	checkLogged(t, stA2, la2, cpB, acked)
	for _, l := range []*logsign.Log{lb, la2} {
		p, err := l.ConsistencyProof(cpA.Size, cpB.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyConsistency(cpA, cpB, p); err != nil {
			t.Fatalf("A's checkpoint of %d and B's of %d: %v", cpA.Size, cpB.Size, err)
		}
	}
	notes, err := stB.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var prev *merkle.Checkpoint
	for _, n := range notes {
		c := openCP(t, n, vkey)
		if prev != nil {
			p, err := lb.ConsistencyProof(prev.Size, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyConsistency(prev, c, p); err != nil {
				t.Fatalf("stored checkpoints %d and %d: %v", prev.Size, c.Size, err)
			}
		}
		prev = c
	}
	rep, err := logsign.AuditStore(ctx, stA2, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Leaves != cpB.Size || rep.Checked != len(notes) {
		t.Fatalf("audit: %+v", rep)
	}
	t.Logf("%d events, %d checkpoints; A signed up to %d, B took over at about %d", cpB.Size, len(notes), cpA.Size, atTakeover)
}

// TestLogKeyBinding: the first replica's key becomes the log's; a replica
// with another key, or none, serves the log and never signs.
func TestLogKeyBinding(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	signer, vkey := logKey(t)
	st := mustOpen(t, url)
	defer st.Close()
	l := newLog(t, st, signer, vkey)
	var next atomic.Uint64
	logEvents(t, st, &next, 4)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	note1, _ := l.Checkpoint()

	st2 := mustOpen(t, url)
	defer st2.Close()
	otherSigner, otherKey := logKey(t)
	for name, cfg := range map[string]logsign.Config{
		"another key": {Store: st2, Signer: otherSigner, VerifierKey: otherKey},
		"no key":      {Store: st2},
	} {
		cfg.Logger = testLogger(t)
		o, err := logsign.New(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.VerifierKey() != vkey {
			t.Errorf("%s: serves key %q, want the log's %q", name, o.VerifierKey(), vkey)
		}
		if n, _ := o.Checkpoint(); string(n) != string(note1) {
			t.Errorf("%s: serves checkpoint %q, want %q", name, n, note1)
		}
		if err := o.Flush(ctx); err != nil || o.Leading() {
			t.Errorf("%s: Flush = %v, leading %v; want nil, false", name, err, o.Leading())
		}
		if err := o.Step(ctx); err == nil {
			t.Errorf("%s: Step of a replica without the log's key: no error", name)
		}
	}
	if got, err := st2.BindVerifierKey(ctx, otherKey); got != vkey || err != nil {
		t.Errorf("BindVerifierKey(other) = %q, %v; want the first key %q", got, err, vkey)
	}

	// A replica with no key on an empty log cannot start it.
	st3 := mustOpen(t, pgtest.Start(t))
	defer st3.Close()
	if _, err := logsign.New(ctx, logsign.Config{Store: st3, Logger: testLogger(t)}); err == nil {
		t.Error("a Log without any key on a log without one: no error")
	}
}

// TestReceiveTimeOrder appends through two stores at once, with receive
// times in any order: stored receive times strictly increase with seq.
func TestReceiveTimeOrder(t *testing.T) {
	url := pgtest.Start(t)
	stores := []*postgres.Store{mustOpen(t, url), mustOpen(t, url)}
	for _, s := range stores {
		defer s.Close()
	}
	var (
		next atomic.Uint64
		wg   sync.WaitGroup
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 20 {
				var batch []*audittrail.Event
				for range 1 + rng.IntN(4) {
					e := newEvent(t, next.Add(1), base)
					e.ReceiveTime = base.Add(time.Duration(rng.IntN(3)) * time.Microsecond) // many ties and inversions
					batch = append(batch, e)
				}
				res, err := stores[w%2].Append(context.Background(), batch)
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range res {
					if r.Err != nil || r.Event.ReceiveTime.Before(batch[i].ReceiveTime) {
						t.Errorf("append result %+v: receive time lowered from %v", r, batch[i].ReceiveTime)
					}
				}
			}
		}()
	}
	wg.Wait()
	evs, err := stores[0].EventsBySeq(t.Context(), 1, stores[0].LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != int(next.Load()) {
		t.Fatalf("%d events in the log, %d appended", len(evs), next.Load())
	}
	for i := 1; i < len(evs); i++ {
		if !evs[i].ReceiveTime.After(evs[i-1].ReceiveTime) {
			t.Fatalf("seq %d received at %v, seq %d at %v", evs[i-1].Seq, evs[i-1].ReceiveTime, evs[i].Seq, evs[i].ReceiveTime)
		}
	}
	// A missing receive time is refused.
	e := newEvent(t, next.Add(1), base)
	e.ReceiveTime = time.Time{}
	if _, err := stores[0].Append(context.Background(), []*audittrail.Event{e}); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("append without a receive time: %v, want EInvalid", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLogLockLost ends the leader's locking session from the server side
// (as a network failure or an administrator would) while events arrive:
// the leader notices, a replica (either) leads again, and the tree stays
// one tree that the audit finds clean.
func TestLogLockLost(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	signer, vkey := logKey(t)
	stA, stB := mustOpen(t, url), mustOpen(t, url)
	defer stA.Close()
	defer stB.Close()
	la, lb := newLog(t, stA, signer, vkey), newLog(t, stB, signer, vkey)
	stopA := runLog(la)
	waitFor(t, "replica A to lead", la.Leading)
	stopB := runLog(lb)
	var next atomic.Uint64
	for range 5 {
		logEvents(t, stA, &next, 20)
		logEvents(t, stB, &next, 20)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating the lock holder: %d sessions, %v", killed, err)
	}
	for range 5 {
		logEvents(t, stA, &next, 20)
		logEvents(t, stB, &next, 20)
	}
	waitFor(t, "a replica to lead again", func() bool { return la.Leading() != lb.Leading() })
	waitFor(t, "a checkpoint of every event", func() bool {
		_, ca := la.Checkpoint()
		_, cb := lb.Checkpoint()
		return ca != nil && cb != nil && ca.Size == next.Load() && cb.Size == next.Load()
	})
	stopA()
	stopB()
	rep, err := logsign.AuditStore(ctx, stA, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Leaves != next.Load() {
		t.Fatalf("audit: %+v", rep)
	}
}

// TestLogLeadFrozenDatabase freezes the server process of the leader's
// locking session (SIGSTOP: the connection stays open and nothing answers,
// as in a network partition without a reset): the leader's next check
// gives up after its bound and reports the failure, instead of holding the
// log's rounds until TCP gives up; once the process runs again and sees the
// closed connection, the lock is free for another replica.
func TestLogLeadFrozenDatabase(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	stA, stB := mustOpen(t, url), mustOpen(t, url)
	defer stA.Close()
	defer stB.Close()
	stA.SetLeadTimeoutForTest(300 * time.Millisecond)
	if ok, err := stA.LeadLog(ctx); !ok || err != nil {
		t.Fatalf("A leads: %v, %v", ok, err)
	}
	pid := int(stA.LeadPIDForTest())
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freezing the lock's session (process %d): %v", pid, err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("thawing process %d: %v", pid, err)
			}
		}
	}
	defer thaw()
	type answer struct {
		ok  bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		ok, err := stA.LeadLog(ctx)
		done <- answer{ok, err}
	}()
	select {
	case a := <-done:
		if a.ok || a.err == nil {
			t.Fatalf("A's check of a frozen session: leads %v, error %v", a.ok, a.err)
		}
	case <-time.After(time.Minute):
		thaw() // lets the hung check end
		t.Fatal("A's check of a frozen session did not give up")
	}
	if stA.LeadPIDForTest() != 0 {
		t.Error("A kept the frozen session as its lock")
	}
	thaw()
	waitFor(t, "B to lead once the frozen session ended", func() bool {
		ok, err := stB.LeadLog(ctx)
		return ok && err == nil
	})
	if ok, err := stA.LeadLog(ctx); ok || err != nil {
		t.Errorf("A after B took the lead: leads %v, %v", ok, err)
	}
}

// TestTreeConformance runs the tree storage tests every LogStore passes.
func TestTreeConformance(t *testing.T) {
	storetest.RunTree(t, func(t *testing.T) audittrail.LogStore { return mustOpen(t, pgtest.Start(t)) })
}

// TestTreeTiles: the tree keeps only the hashes of levels 0, 8, 16, ..., the
// leaves by tiles of 256 (migration 0003), and reads the same from a tree
// whose first part was written with every level, one row per hash (before
// 0003), switching in a tile's middle.
func TestTreeTiles(t *testing.T) {
	ctx := t.Context()
	sparse := mustOpen(t, pgtest.Start(t))
	defer sparse.Close()
	mixed := mustOpen(t, pgtest.Start(t))
	defer mixed.Close()
	mixed.WriteEveryTreeLevelForTest(true)
	const size = 70_000
	r := rand.New(rand.NewPCG(9, 10))
	var ref storetest.RefTree
	for n := int64(0); n < size; {
		k := storetest.GrowStep(r, n, size)
		idx, hs := ref.Grow(t, n, k)
		n += k
		if n > size/2 {
			mixed.WriteEveryTreeLevelForTest(false)
		}
		for _, s := range []*postgres.Store{sparse, mixed} {
			if err := s.AppendTree(uint64(n), idx, hs, nil); err != nil {
				t.Fatal(err)
			}
			storetest.CheckSample(t, s, ref, n, r, 100)
		}
	}
	storetest.CheckEveryHash(t, sparse, ref)
	storetest.CheckEveryHash(t, mixed, ref)
	// About one row per 128 leaves instead of two per leaf: the nodes of
	// levels 8, 16, ..., one row per tile of 256 leaves, and the leaves of
	// the last, partial tile.
	stored := ref.UpperNodes()
	hashes, tiles, err := sparse.TreeRowsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hashes != stored+size%256 || tiles != size/256 {
		t.Errorf("%d hash rows and %d tiles stored for %d leaves (%d hashes), want %d and %d", hashes, tiles, size, len(ref), stored+size%256, size/256)
	}
	// The mixed tree: its first tiles' leaves stay rows, the nodes above
	// them too; the tile it switched in has its row.
	if _, mtiles, err := mixed.TreeRowsForTest(ctx); err != nil {
		t.Fatal(err)
	} else if mtiles == 0 || mtiles >= size/256 {
		t.Errorf("%d tiles in the mixed tree, want some but fewer than %d", mtiles, size/256)
	}
}

// TestLogKeyRotation rotates the log's signing key across replicas sharing
// the database (docs/design/verifiable-log.md, "Rotating the signing key"):
// a replica with the new key and the previous one records both and signs
// with both; a replica with only the old key then serves and never signs;
// a replica that opened the store before the rotation and leads during it
// stops signing instead of storing a checkpoint without the new key's
// signature; a replica with the new key alone ends the rotation; a replica
// that opened the store before the rotation and leads after its end stops
// signing instead of storing a checkpoint the others could not verify, and
// follows the new keys as it serves. Every checkpoint stays consistent, and the
// audit passes with both keys.
func TestLogKeyRotation(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	signerA, keyA := logKey(t)
	signerB, keyB := logKey(t)
	ring := merkle.JoinKeys(keyB, keyA)
	var next atomic.Uint64
	open := func(cfg logsign.Config) (*postgres.Store, *logsign.Log) {
		t.Helper()
		st := mustOpen(t, url)
		t.Cleanup(func() { st.Close() })
		cfg.Store, cfg.Logger = st, testLogger(t)
		l, err := logsign.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st, l
	}
	// flush makes l sign a checkpoint of every event: once the replica
	// that led has closed its store, PostgreSQL releases the integrator
	// lock when that session ends, a moment later.
	flush := func(l *logsign.Log) *merkle.Checkpoint {
		t.Helper()
		waitFor(t, "the replica to lead", func() bool {
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			return l.Leading()
		})
		n, _ := l.Checkpoint()
		return openCP(t, n, l.VerifierKey())
	}

	// Before: two replicas with key A; the first leads.
	st1, l1 := open(logsign.Config{Signer: signerA, VerifierKey: keyA})
	// l1b keeps a copy of the log's keys for verifiers, as a server keeps
	// its data directory's log-verification.key.
	keyFile := filepath.Join(t.TempDir(), logsign.VerificationKeyFile)
	_, l1b := open(logsign.Config{Signer: signerA, VerifierKey: keyA, VerifierKeyFile: keyFile})
	checkKeyFile := func(when, want string) {
		t.Helper()
		if got, err := os.ReadFile(keyFile); err != nil || string(got) != want+"\n" || l1b.VerifierKey() != want {
			t.Errorf("%s: a replica that did not rotate serves keys %q and keeps %q (%v); want %q", when, l1b.VerifierKey(), got, err, want)
		}
	}
	checkKeyFile("before the rotation", keyA)
	_, l1c := open(logsign.Config{Signer: signerA, VerifierKey: keyA})
	logEvents(t, st1, &next, 5)
	cpA := flush(l1)
	if n, _ := l1.Checkpoint(); strings.Count(string(n), "\n— ") != 1 {
		t.Fatalf("before the rotation:\n%s", n)
	}

	// The rotation starts: a replica with B and the previous key A.
	st2, l2 := open(logsign.Config{Signer: signerB, Cosigners: []note.Signer{signerA}, VerifierKey: ring})
	if l2.VerifierKey() != ring {
		t.Fatalf("the rotating replica serves keys %q, want %q", l2.VerifierKey(), ring)
	}
	if got, _ := st2.BindVerifierKey(ctx, ""); got != ring {
		t.Fatalf("recorded keys %q, want %q", got, ring)
	}
	st1.Close() // the old leader goes away
	logEvents(t, st2, &next, 5)
	cpBA := flush(l2)
	noteBA, _ := l2.Checkpoint()
	openCP(t, noteBA, keyA) // verifiers holding only A keep working,
	openCP(t, noteBA, keyB) // and so do those that took B
	if !l2.Leading() {
		t.Fatal("the rotating replica does not lead")
	}
	// The other replicas see the rotation in the checkpoints they serve
	// (which still verify with A): they serve both keys, and write them.
	if err := l1b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkKeyFile("during the rotation", ring)

	// An old replica restarted with A alone serves and never signs.
	_, lOld := open(logsign.Config{Signer: signerA, VerifierKey: keyA})
	if lOld.VerifierKey() != ring {
		t.Errorf("an old replica serves keys %q, want %q", lOld.VerifierKey(), ring)
	}
	if err := lOld.Step(ctx); err == nil {
		t.Error("an old replica signed after the rotation started")
	}

	// l1c opened the store before the rotation, with A. Once it leads
	// during the rotation, it must not store a checkpoint signed with A
	// alone: verifiers that already took B would refuse it.
	st2.Close()
	logEvents(t, mustOpenClosed(t, url), &next, 2)
	var flushErr error
	waitFor(t, "the replica opened before the rotation to lead", func() bool {
		flushErr = l1c.Flush(ctx)
		if n, _ := l1c.Checkpoint(); flushErr == nil && string(n) != string(noteBA) {
			t.Fatalf("a replica without the new key signed during the rotation:\n%s", n)
		}
		return flushErr != nil
	})
	if !strings.Contains(flushErr.Error(), "does not sign with the log's current key") || l1c.Leading() {
		t.Fatalf("the replica opened before the rotation: %v, leading %v", flushErr, l1c.Leading())
	}
	st3, l3 := open(logsign.Config{Signer: signerB, Cosigners: []note.Signer{signerA}, VerifierKey: ring})
	flush(l3)

	// The rotation ends: a replica with B alone records B alone.
	st4, l4 := open(logsign.Config{Signer: signerB, VerifierKey: keyB})
	if got, _ := st4.BindVerifierKey(ctx, ""); got != keyB || l4.VerifierKey() != keyB {
		t.Fatalf("recorded keys %q, served %q; want B alone", got, l4.VerifierKey())
	}
	st3.Close()
	logEvents(t, st4, &next, 5)
	cpB := flush(l4)
	noteB, _ := l4.Checkpoint()
	if v, _ := merkle.NewVerifier([]byte(keyA)); v != nil {
		if _, err := merkle.OpenCheckpoint(noteB, v); err == nil {
			t.Error("a checkpoint after the rotation verifies with the old key")
		}
	}

	// l1b opened the store before the rotation, with A. Once it leads, it
	// must not store a checkpoint signed with A alone.
	st4.Close()
	logEvents(t, mustOpenClosed(t, url), &next, 3)
	waitFor(t, "the rotated-out replica to lead", func() bool {
		flushErr = l1b.Flush(ctx)
		n, _ := l1b.Checkpoint()
		if flushErr == nil && string(n) != string(noteB) {
			t.Fatalf("a replica whose key was rotated out served a checkpoint of its own:\n%s", n)
		}
		return flushErr != nil
	})
	if !strings.Contains(flushErr.Error(), "no longer one of the log's") {
		t.Fatalf("the rotated-out replica: %v", flushErr)
	}
	if l1b.Leading() {
		t.Fatal("the rotated-out replica still leads")
	}
	_, l5 := open(logsign.Config{Signer: signerB, VerifierKey: keyB})
	cpEnd := flush(l5)
	if err := l1b.Flush(ctx); err != nil {
		t.Fatalf("the rotated-out replica, serving: %v", err)
	}
	if n, _ := l1b.Checkpoint(); string(n) != string(mustNote(l5)) || l1b.VerifierKey() != keyB {
		t.Errorf("the rotated-out replica serves %q with keys %q; want the leader's checkpoint and B", n, l1b.VerifierKey())
	}
	checkKeyFile("after the rotation", keyB)

	// One history: each checkpoint consistent with the next, and the
	// audit passes with both keys (not with B alone: the first checkpoints
	// carry A's signature only).
	for _, pair := range [][2]*merkle.Checkpoint{{cpA, cpBA}, {cpBA, cpB}, {cpB, cpEnd}} {
		p, err := l5.ConsistencyProof(pair[0].Size, pair[1].Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyConsistency(pair[0], pair[1], p); err != nil {
			t.Fatalf("checkpoints of %d and %d: %v", pair[0].Size, pair[1].Size, err)
		}
	}
	st5 := mustOpen(t, url)
	defer st5.Close()
	rep, err := logsign.AuditStore(ctx, st5, ring)
	if err != nil || !rep.OK() || rep.Leaves != cpEnd.Size {
		t.Fatalf("audit with both keys: %+v, %v", rep, err)
	}
	if _, err := logsign.AuditStore(ctx, st5, keyB); err == nil {
		t.Error("audit with the new key alone passed over checkpoints signed with the old one")
	}
}

// mustOpenClosed opens a store that the test closes at its end.
func mustOpenClosed(t *testing.T, url string) *postgres.Store {
	st := mustOpen(t, url)
	t.Cleanup(func() { st.Close() })
	return st
}

func mustNote(l *logsign.Log) []byte {
	n, _ := l.Checkpoint()
	return n
}

// TestAuditAfterRetention drops a month's partition, as docs/postgres.md
// ("Retention") describes: the full audit stops at the first dropped event,
// and with AllowDeleted audits what is left, listing the dropped seqs,
// whose leaf hashes still fit the signed checkpoint.
func TestAuditAfterRetention(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	signer, vkey := logKey(t)
	st := mustOpen(t, url)
	defer st.Close()
	l := newLog(t, st, signer, vkey)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT audittrail_ensure_partition('2024-03-01')"); err != nil {
		t.Fatal(err)
	}
	month := func(m time.Month) time.Time { return time.Date(2024, m, 10, 0, 0, 0, 0, time.UTC) }
	var k uint64
	for _, m := range []time.Month{2, 3, 4, 3} { // seqs 1-5, 6-10, 11-15, 16-20
		var batch []*audittrail.Event
		for range 5 {
			k++
			batch = append(batch, newEvent(t, k, month(m).Add(time.Duration(k)*time.Minute)))
		}
		if res, err := st.Append(ctx, batch); err != nil || res[0].Err != nil {
			t.Fatalf("append: %v %+v", err, res)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := logsign.AuditStoreWith(ctx, st, vkey, logsign.AuditOptions{AllowDeleted: true}); err != nil || !rep.OK() || rep.AuditReport.Deleted != 0 || len(rep.Deleted) != 0 {
		t.Fatalf("audit before the drop: %+v, %v", rep, err)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE events_2024_03"); err != nil {
		t.Fatal(err)
	}

	var le *logsign.LeafError
	if _, err := logsign.AuditStore(ctx, st, vkey); !errors.As(err, &le) || le.Leaf != 5 || le.Signed == nil {
		t.Fatalf("audit after the drop: %v; want the leaf of seq 6, signed", err)
	}
	rep, err := logsign.AuditStoreWith(ctx, st, vkey, logsign.AuditOptions{AllowDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []logsign.SeqRange{{First: 6, Last: 10}, {First: 16, Last: 20}}
	if !rep.OK() || rep.Leaves != 20 || rep.Checked == 0 || rep.AuditReport.Deleted != 10 || !slices.Equal(rep.Deleted, want) || !rep.Searched {
		t.Fatalf("audit with AllowDeleted: %+v (deleted %v)", rep.AuditReport, rep.Deleted)
	}

	// The deleted events' leaves are still checked: one changed in the
	// tree's storage is a divergence at that leaf.
	if tag, err := conn.Exec(ctx, "UPDATE log_tree_hashes SET hash = sha256(hash) WHERE idx = $1", tlog.StoredHashIndex(0, 7)); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("changing leaf 7's hash: %v %v", tag, err)
	}
	rep, err = logsign.AuditStoreWith(ctx, st, vkey, logsign.AuditOptions{AllowDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Divergence == nil {
		t.Fatalf("audit after a deleted event's leaf hash changed: %+v", rep.AuditReport)
	}
}
