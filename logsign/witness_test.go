package logsign_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
)

// quorumWitness stands for the witnesses of a policy: Cosign asks them
// (counted), and check passes while up says they answer.
type quorumWitness struct {
	up    atomic.Bool
	asked atomic.Int64
}

func (w *quorumWitness) Cosign(_ context.Context, cp []byte, _ uint64, _ func(old, new uint64) ([]tlog.Hash, error)) []byte {
	w.asked.Add(1)
	return cp
}

// witnessedStore opens a store in a new directory, closed with the test,
// and a quorumWitness that answers.
func witnessedStore(t *testing.T) (dir string, st *pebblestore.Store, w *quorumWitness) {
	t.Helper()
	dir = t.TempDir()
	st = openStore(t, filepath.Join(dir, "db"))
	t.Cleanup(func() { st.Close() })
	w = &quorumWitness{}
	w.up.Store(true)
	return dir, st, w
}

func (w *quorumWitness) check(cp []byte) error {
	if !w.up.Load() {
		return errors.New("not cosigned by w1")
	}
	return nil
}

// TestWitnessQuorum: with Config.WitnessQuorum, a checkpoint the quorum did
// not cosign is not stored: the latest stays the last cosigned one while
// the tree grows, rounds keep asking (once per SignInterval, logged once),
// a Flush says ErrWithheld, and the next cosigned checkpoint covers every
// event.
func TestWitnessQuorum(t *testing.T) {
	dir, st, w := witnessedStore(t)
	var logs syncbuf.Buffer
	l := newLogWith(t, dir, logsign.Config{Store: st, Interval: 5 * time.Millisecond, SignInterval: 20 * time.Millisecond,
		Witnesses: w, WitnessQuorum: w.check, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := t.Context()
	stored := func() int {
		t.Helper()
		notes, err := st.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(notes)
	}

	appendEvents(t, st, 10, 0)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, cp := l.Checkpoint(); cp == nil || cp.Size != 10 {
		t.Fatalf("cosigned checkpoint %v, want size 10", cp)
	}
	before := stored()

	// The quorum is lost: the tree grows, no checkpoint is stored.
	w.up.Store(false)
	appendEvents(t, st, 5, 10)
	if err := l.Flush(ctx); !errors.Is(err, logsign.ErrWithheld) {
		t.Fatalf("Flush without the quorum: %v, want ErrWithheld", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }()
	asked := w.asked.Load()
	for deadline := time.Now().Add(10 * time.Second); w.asked.Load() < asked+5; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rounds stopped asking the witnesses")
		}
		appendEvents(t, st, 1, int(st.LastSeq())) // something new to sign
	}
	cancel()
	<-done
	if _, cp := l.Checkpoint(); cp.Size != 10 || stored() != before {
		t.Fatalf("without the quorum: latest checkpoint of %d, %d stored (had %d)", cp.Size, stored(), before)
	}
	if n := l.Withheld(); n < 5 {
		t.Fatalf("Withheld() = %d, want at least 5", n)
	}
	if n := strings.Count(logs.String(), "checkpoints withheld"); n != 1 {
		t.Fatalf("the withholding logged %d times, want once:\n%s", n, logs.String())
	}

	// The quorum is back: the next checkpoint covers every event.
	w.up.Store(true)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, cp := l.Checkpoint(); cp.Size != st.LastSeq() || stored() != before+1 {
		t.Fatalf("with the quorum back: latest of %d (events %d), %d stored (had %d)", cp.Size, st.LastSeq(), stored(), before)
	}
	if !strings.Contains(logs.String(), "cosigns checkpoints again") {
		t.Fatalf("the quorum's return is not logged:\n%s", logs.String())
	}
}

// floodingWitness returns the checkpoint with more signature lines than a
// note may hold (note.Open refuses over 100).
type floodingWitness struct{}

func (floodingWitness) Cosign(_ context.Context, cp []byte, _ uint64, _ func(old, new uint64) ([]tlog.Hash, error)) []byte {
	sig := cp[bytes.LastIndex(cp[:len(cp)-1], []byte("\n"))+1:] // the log's own line
	return append(cp, bytes.Repeat(sig, 120)...)
}

// TestWitnessesCannotSpoilCheckpoints: cosignatures that make a checkpoint
// unreadable (too many lines) are dropped before it is stored: the
// checkpoint is stored as the log signed it, verifiers can open it, and the
// log starts again on its store.
func TestWitnessesCannotSpoilCheckpoints(t *testing.T) {
	dir, st, _ := witnessedStore(t)
	var logs syncbuf.Buffer
	l := newLogWith(t, dir, logsign.Config{Store: st, Witnesses: floodingWitness{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	appendEvents(t, st, 10, 0)
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	notes, err := st.Checkpoints(t.Context())
	if err != nil || len(notes) == 0 {
		t.Fatalf("stored checkpoints: %d, %v", len(notes), err)
	}
	v, err := merkle.NewVerifier([]byte(l.VerifierKey()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := merkle.OpenCheckpoint(notes[len(notes)-1], v); err != nil {
		t.Fatalf("the stored checkpoint does not open: %v", err)
	}
	if !strings.Contains(logs.String(), "stored without them") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	newLogWith(t, dir, logsign.Config{Store: st}) // starts: its latest checkpoint opens
}

// TestWitnessInterval: with Config.WitnessInterval the witnesses are asked
// at most once per interval. Without WitnessQuorum the checkpoints signed
// in between are stored uncosigned; with it, only one is signed (and
// stored) per interval. A Flush asks at once.
func TestWitnessInterval(t *testing.T) {
	for _, required := range []bool{false, true} {
		t.Run(map[bool]string{false: "stored", true: "quorum"}[required], func(t *testing.T) {
			dir, st, w := witnessedStore(t)
			var mu sync.Mutex
			clock := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			cfg := logsign.Config{Store: st, SignInterval: time.Second, Witnesses: w, WitnessInterval: 10 * time.Second,
				Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
			if required {
				cfg.WitnessQuorum = w.check
			}
			l := newLogWith(t, dir, cfg)
			ctx := t.Context()
			// A minute of rounds a second apart, each with a new event.
			for i := range 60 {
				appendEvents(t, st, 1, i)
				if err := logsign.Step(ctx, l); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				clock = clock.Add(time.Second)
				mu.Unlock()
			}
			notes, err := st.Checkpoints(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := w.asked.Load(); n != 6 {
				t.Fatalf("the witnesses were asked %d times in a minute, want 6 (every 10 s)", n)
			}
			want := 60 // one checkpoint a second, cosigned or not
			if required {
				want = 6 // only those the witnesses were asked for
			}
			if len(notes) != want || l.Withheld() != 0 {
				t.Fatalf("%d checkpoints stored, %d withheld; want %d, none", len(notes), l.Withheld(), want)
			}
			appendEvents(t, st, 1, 60)
			if err := l.Flush(ctx); err != nil || w.asked.Load() != 7 {
				t.Fatalf("Flush: %v, the witnesses asked %d times, want 7", err, w.asked.Load())
			}
		})
	}
}
