package pebblestore_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/google/go-cmp/cmp"
)

// deepClone copies e and every string it holds: ScanEvents' events, and
// their strings, are valid only during the call.
func deepClone(e *audittrail.Event) *audittrail.Event {
	c := *e
	for _, s := range []*string{&c.ID, &c.EventSource, &c.Action, &c.Principal, &c.SourceIP, &c.UserAgent, &c.Resource, &c.Workspace} {
		*s = strings.Clone(*s)
	}
	cloneMap := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[strings.Clone(k)] = strings.Clone(v)
		}
		return out
	}
	c.Metadata, c.RequestParameters = cloneMap(e.Metadata), cloneMap(e.RequestParameters)
	if e.Status != nil {
		c.Status = &audittrail.Status{Code: e.Status.Code, Message: strings.Clone(e.Status.Message)}
	}
	return &c
}

// TestScanEvents: the storage-order reader of the audit returns every
// event exactly as EventsBySeq does (dictionary and inline values, empty
// and nil maps, wide receive times), whatever the number of workers, and
// LogPositions returns the time of each seq, read in one part or several.
func TestScanEvents(t *testing.T) {
	defer pebblestore.SetLogPositionsMinPartForTest(100)()
	for _, limit := range []int{0, 1} {
		s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), DictionaryLimit: limit})
		g := newGen(23)
		mustAppend(t, s, unusualEvents(g))
		for range 3 {
			mustAppend(t, s, g.batch(1000))
		}
		last := s.LastSeq()
		want, err := s.EventsBySeq(t.Context(), 1, last)
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 3} {
			var mu sync.Mutex
			got := make([]*audittrail.Event, 0, last)
			calls := make([]int, workers)
			hashers := make([]merkle.LeafHasher, workers)
			outOfOrder := make([]bool, workers) // per worker: workers run concurrently
			prev := make([]uint64, workers)
			// Each worker waits at its first event until every worker has
			// one: a worker holding a chunk cannot take another, so the
			// others must get the rest. Without it a loaded machine may
			// let one worker drain every chunk before another starts.
			var arrived sync.WaitGroup
			arrived.Add(workers)
			allArrived := make(chan struct{})
			go func() { arrived.Wait(); close(allArrived) }()
			err := s.ScanEvents(t.Context(), workers, func(w int, e *audittrail.Event, params, meta []merkle.MapEntry) error {
				if calls[w] == 0 {
					arrived.Done()
					select {
					case <-allArrived:
					case <-time.After(10 * time.Second):
						t.Errorf("limit %d: worker %d waited 10 s for every worker to get an event", limit, w)
					}
				}
				calls[w]++
				outOfOrder[w] = outOfOrder[w] || e.Seq <= prev[w]
				prev[w] = e.Seq
				if e.Metadata != nil || e.RequestParameters != nil {
					t.Errorf("seq %d: maps set; they are the entries", e.Seq)
				}
				c := deepClone(e)
				c.RequestParameters, c.Metadata = entriesMap(t, params), entriesMap(t, meta)
				orig := want[e.Seq-1]
				if orig.RequestParameters == nil && len(params) == 0 {
					c.RequestParameters = nil
				}
				if orig.Metadata == nil && len(meta) == 0 {
					c.Metadata = nil
				}
				if hashers[w].HashSorted(e, params, meta) != merkle.LeafHash(orig) {
					t.Errorf("seq %d: HashSorted of the scanned event is not the leaf hash of the event", e.Seq)
				}
				mu.Lock()
				got = append(got, c)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b *audittrail.Event) int { return int(a.Seq) - int(b.Seq) })
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("limit %d, %d workers: ScanEvents differs from EventsBySeq (-want +got)\n%s", limit, workers, d)
			}
			if !slices.Contains(outOfOrder, true) {
				t.Errorf("limit %d, %d workers: every worker saw its events in seq order; the test means storage order to differ", limit, workers)
			}
			if workers > 1 && slices.Contains(calls, 0) {
				t.Errorf("limit %d: a worker got no events: %v", limit, calls)
			}
		}
		for _, extra := range []int{0, 5} {
			ns := make([]int64, int(last)+extra)
			n, err := s.LogPositions(t.Context(), ns, 4)
			if err != nil || n != int(last) {
				t.Fatalf("LogPositions: %d, %v; want %d", n, err, last)
			}
			for i, e := range want {
				if ns[i] != e.EventTime.UnixNano() {
					t.Fatalf("position of seq %d: %d, want %d", e.Seq, ns[i], e.EventTime.UnixNano())
				}
			}
		}
		if err := s.ScanEvents(t.Context(), 2, func(int, *audittrail.Event, []merkle.MapEntry, []merkle.MapEntry) error { return errStop }); err != errStop {
			t.Errorf("ScanEvents returned %v, want fn's error", err)
		}
		s.Close()
		if err := s.ScanEvents(t.Context(), 2, func(int, *audittrail.Event, []merkle.MapEntry, []merkle.MapEntry) error { return nil }); err == nil {
			t.Error("ScanEvents of a closed store succeeded")
		}
	}
}

// entriesMap is the map of sorted, distinct entries (copied).
func entriesMap(t *testing.T, es []merkle.MapEntry) map[string]string {
	t.Helper()
	m := make(map[string]string, len(es))
	for i, e := range es {
		if i > 0 && es[i-1].Key >= e.Key {
			t.Errorf("entries not sorted or not distinct: %q", es)
		}
		m[strings.Clone(e.Key)] = strings.Clone(e.Value)
	}
	return m
}

var errStop = errorString("stop")

type errorString string

func (e errorString) Error() string { return string(e) }
