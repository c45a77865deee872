package logsign_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/google/uuid"
)

// TestThinCheckpoints signs a checkpoint after each event, three an hour
// for five hours, and thins them: those of the hours before the cutoff
// keep the last of each hour, the newer ones stay; a later pass resumes,
// a new Log (after a restart) thins the same, and the audit of the store
// passes with what is left.
func TestThinCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := base
	cfg := logsign.Config{Store: st, KeepAllCheckpoints: 2 * time.Hour, Now: func() time.Time { return now }}
	l := newLogWith(t, dir, cfg)
	seq := 0
	// add appends one event per 20 minutes of receive time in [from, to)
	// hours after base, each followed by a checkpoint.
	add := func(from, to int) {
		t.Helper()
		for rt := base.Add(time.Duration(from) * time.Hour); rt.Before(base.Add(time.Duration(to) * time.Hour)); rt = rt.Add(20 * time.Minute) {
			seq++
			e := &audittrail.Event{ID: uuid.NewString(), EventTime: rt, ReceiveTime: rt, EventSource: "test", Action: "create", Principal: "alice"}
			if res, err := st.Append(ctx, []*audittrail.Event{e}); err != nil || res[0].Err != nil {
				t.Fatalf("append: %v %+v", err, res)
			}
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored := func() []uint64 {
		t.Helper()
		notes, err := st.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []uint64
		for _, n := range notes {
			v, _ := merkle.NewVerifier([]byte(l.VerifierKey()))
			c, err := merkle.OpenCheckpoint(n, v)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, c.Size)
		}
		return sizes
	}
	add(0, 5) // sizes 1..15, hours 0..4
	if got := stored(); len(got) != 15 {
		t.Fatalf("before thinning: %v", got)
	}
	// At 5:30 with 2 h kept, the cutoff is 3:00: hours 0..2 keep their last.
	now = base.Add(5*time.Hour + 30*time.Minute)
	if err := l.Thin(ctx); err != nil {
		t.Fatal(err)
	}
	want := []uint64{3, 6, 9, 10, 11, 12, 13, 14, 15}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("after thinning at 5:30: %v, want %v", got, want)
	}
	if l.Thinned() != 6 {
		t.Errorf("Thinned() = %d, want 6", l.Thinned())
	}
	if err := l.Thin(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("after thinning again: %v, want %v", got, want)
	}
	add(5, 6) // sizes 16..18
	now = base.Add(7*time.Hour + 30*time.Minute)
	if err := l.Thin(ctx); err != nil {
		t.Fatal(err)
	}
	want = []uint64{3, 6, 9, 12, 15, 16, 17, 18}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("after thinning at 7:30: %v, want %v", got, want)
	}
	// A restarted log, with nothing to resume from, and the whole history
	// older than the cutoff: the latest stays, the last of each hour too.
	// Its rounds read one page of two checkpoints each, so the pass takes
	// several rounds of Run, each resuming where the last stopped, one of
	// them in the middle of an hour (16, 17 and 18 are of one hour).
	now = base.Add(100 * time.Hour)
	l = newLogWith(t, dir, cfg)
	logsign.SetThinPaging(l, 2, 1)
	for range 20 { // a round after the end of the pass waits for the next interval: does nothing
		if err := logsign.ThinRound(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	want = []uint64{3, 6, 9, 12, 15, 18}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("after a restart at 100:00: %v, want %v", got, want)
	}
	if n, _ := l.Checkpoint(); n == nil {
		t.Fatal("no latest checkpoint after thinning")
	}
	rep, err := logsign.AuditStore(ctx, st, l.VerifierKey())
	if err != nil || !rep.OK() || rep.Checked != len(want) || rep.Covered != 18 {
		t.Fatalf("audit after thinning: %+v, %v", rep, err)
	}
	// Without KeepAllCheckpoints nothing is thinned.
	cfg.KeepAllCheckpoints = 0
	if err := newLogWith(t, dir, cfg).Thin(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("with thinning off: %v, want %v", got, want)
	}
}
