package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
)

// compareEvents fails unless got and want are the same events, field by
// field (the leaf hash covers every field).
func compareEvents(t *testing.T, what string, got, want []*audittrail.Event) {
	t.Helper()
	if err := diffEvents(what, got, want); err != nil {
		t.Fatal(err)
	}
}

func diffEvents(what string, got, want []*audittrail.Event) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			return fmt.Errorf("%s: event %d differs:\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
	return nil
}

// windowRange compares the window's answer for [from, to] with the
// database's, and with EventsBySeq's; it reports whether the window had it.
func windowRange(s *pebblestore.Store, from, to uint64) (bool, error) {
	ctx := context.Background()
	want, err := s.DiskEventsBySeqForTest(ctx, from, to)
	if err != nil {
		return false, err
	}
	got, ok, err := s.RecentEventsBySeqForTest(ctx, from, to)
	if err != nil {
		return ok, err
	}
	if ok {
		if err := diffEvents(fmt.Sprintf("window [%d, %d]", from, to), got, want); err != nil {
			return ok, err
		}
	}
	all, err := s.EventsBySeq(ctx, from, to)
	if err != nil {
		return ok, err
	}
	if err := diffEvents(fmt.Sprintf("EventsBySeq [%d, %d]", from, to), all, want); err != nil {
		return ok, err
	}
	// The leaf hashes the writer computed are those of the events stored.
	// (Appends may evict the range between the two reads of the window, so
	// only a served range is compared.)
	hs, rt, hok, err := s.RecentLeafHashes(ctx, from, to, nil)
	if err != nil || !hok {
		return ok, err
	}
	for i, e := range want {
		if h := merkle.LeafHash(e); hs[i] != h {
			return ok, fmt.Errorf("RecentLeafHashes [%d, %d]: seq %d: hash %x, want %x (the stored event's)", from, to, e.Seq, hs[i], h)
		}
	}
	if last := want[len(want)-1].ReceiveTime; !rt.Equal(last) {
		return ok, fmt.Errorf("RecentLeafHashes [%d, %d]: last receive time %v, want %v", from, to, rt, last)
	}
	return ok, nil
}

func checkWindowRange(t *testing.T, s *pebblestore.Store, from, to uint64) bool {
	t.Helper()
	ok, err := windowRange(s, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestRecentWindowMatchesDisk: with concurrent appenders sending new events,
// retries, conflicting ids and cancelled requests (and modifying what they
// sent and got back), every range the window serves is exactly what the
// database holds, including while appends go on.
func TestRecentWindowMatchesDisk(t *testing.T) {
	const window = 700
	defer pebblestore.SetRecentWindowForTest(window, 64<<20)()
	s := openStore(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()

	var wg sync.WaitGroup
	const writers = 4
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(uint64(100 + w))
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var sent []*audittrail.Event
			for range 60 {
				batch := g.batch(1 + r.IntN(40))
				for range r.IntN(4) { // retries and conflicts of earlier events
					if len(sent) == 0 {
						break
					}
					e := sent[r.IntN(len(sent))].Clone()
					if r.IntN(2) == 0 {
						e.Action += "-conflict"
					}
					batch = append(batch, e)
				}
				if r.IntN(8) == 0 { // cancelled: dropped, or stored anyway
					cctx, cancel := context.WithCancel(ctx)
					cancel()
					s.Append(cctx, batch)
					continue
				}
				res, err := s.Append(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				for i, e := range batch {
					sent = append(sent, e.Clone())
					// Callers own what they sent and got back.
					e.Action, e.Metadata = "mutated", map[string]string{"x": "y"}
					if res[i].Event != nil {
						res[i].Event.Principal = "mutated"
						res[i].Event.Metadata = nil
					}
				}
			}
		}()
	}
	// A reader like the integrator, while appends go on.
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	served := 0
	go func() {
		defer close(readerDone)
		var size uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			last := s.LastSeq()
			if last > size {
				ok, err := windowRange(s, size+1, last)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					served++
				}
				size = last
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone

	last := s.LastSeq()
	if last < window*2 {
		t.Fatalf("only %d events stored", last)
	}
	if served == 0 {
		t.Error("the window served no range during appends")
	}
	// Every range ending at the last seq: inside the window exactly when it
	// starts at last-window+1 or later.
	for from := last - window - 50; from <= last; from += 7 {
		in := checkWindowRange(t, s, from, last)
		if want := from > last-window; in != want {
			t.Errorf("range [%d, %d] served from the window: %v, want %v", from, last, in, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		from := last - uint64(r.IntN(window))
		to := from + uint64(r.IntN(int(last-from+1)))
		if !checkWindowRange(t, s, from, to) {
			t.Errorf("range [%d, %d] not served from the window", from, to)
		}
	}
}

// TestRecentWindowFallback: ranges partly or wholly outside the window, and
// every range after a restart (empty window), are read from the database.
func TestRecentWindowFallback(t *testing.T) {
	defer pebblestore.SetRecentWindowForTest(300, 64<<20)()
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(5)
	for range 10 {
		mustAppend(t, s, g.batch(100))
	}
	ctx := context.Background()
	for _, rg := range [][2]uint64{{1, 1000}, {1, 10}, {600, 800}, {700, 1000}, {701, 1000}, {701, 701}, {1000, 1000}} {
		in := checkWindowRange(t, s, rg[0], rg[1])
		if want := rg[0] >= 701; in != want {
			t.Errorf("range %v served from the window: %v, want %v", rg, in, want)
		}
	}
	if _, err := s.EventsBySeq(ctx, 990, 1001); err == nil {
		t.Error("range past the last seq: no error")
	}
	want, err := s.EventsBySeq(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if checkWindowRange(t, s, 900, 1000) {
		t.Error("the window served a range after a restart")
	}
	got, err := s.EventsBySeq(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	compareEvents(t, "after restart", got, want)
	// New appends fill the window again from the seq after the restart.
	mustAppend(t, s, g.batch(50))
	if !checkWindowRange(t, s, 1001, 1050) {
		t.Error("new events after a restart not served from the window")
	}
	if checkWindowRange(t, s, 1000, 1050) {
		t.Error("a range starting before the restart served from the window")
	}
}

// TestRecentWindowByteBound: the byte bound evicts the oldest records.
func TestRecentWindowByteBound(t *testing.T) {
	defer pebblestore.SetRecentWindowForTest(1<<20, 20<<10)()
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(9)
	for range 10 {
		mustAppend(t, s, g.batch(100))
	}
	if checkWindowRange(t, s, 1, 1000) {
		t.Error("1000 events in a 20 kB window")
	}
	if !checkWindowRange(t, s, 1000, 1000) {
		t.Error("the last event not in the window")
	}
}

// BenchmarkEventsBySeq: reading back the last 5,000 committed events (about
// one integration step at 25,000 events/s) from the window and from disk.
func BenchmarkEventsBySeq(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	g := newGen(3)
	for range 20 {
		if _, err := s.Append(context.Background(), g.batch(1000)); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	last := s.LastSeq()
	from := last - 4999
	b.Run("window", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := s.RecentEventsBySeqForTest(ctx, from, last); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/event")
	})
	b.Run("disk", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.DiskEventsBySeqForTest(ctx, from, last); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/event")
	})
}
