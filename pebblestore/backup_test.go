package pebblestore_test

import (
	"context"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

// TestCheckpoint copies a store while writers append: the copy opens as a
// store of its own and holds every event acknowledged before the copy
// began, as acknowledged, with seqs from 1 without gaps; the store goes on.
func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	var (
		mu    sync.Mutex
		acked = map[string]*audittrail.Event{}
	)
	run, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 3 {
		g := newGen(uint64(40 + w))
		wg.Go(func() {
			for run.Err() == nil {
				res, err := s.Append(ctx, g.batch(1+g.r.IntN(200)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range res {
					acked[r.Event.ID] = r.Event
				}
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 5000 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := maps.Clone(acked)
	mu.Unlock()
	dir := filepath.Join(t.TempDir(), "copy")
	if err := s.Checkpoint(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx, dir); err == nil {
		t.Error("a second checkpoint into the same directory succeeded")
	}
	stop()
	wg.Wait()

	c := openStore(t, dir)
	defer c.Close()
	last := c.LastSeq()
	if last < uint64(len(before)) || last > s.LastSeq() {
		t.Fatalf("the copy holds %d events: %d were acknowledged before it, the store holds %d", last, len(before), s.LastSeq())
	}
	all, err := c.EventsBySeq(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]*audittrail.Event{}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("seq %d at position %d of the copy", e.Seq, i+1)
		}
		found[e.ID] = e
	}
	for id, e := range before {
		if d := cmp.Diff(e, found[id]); d != "" {
			t.Fatalf("event %s in the copy (-acknowledged +copy):\n%s", id, d)
		}
	}
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, c, q, 500, 0)); d != "" {
		t.Fatalf("search of the copy (-records +search):\n%s", d)
	}
	// The copy is a store of its own: it takes appends.
	mustAppend(t, c, newGen(49).batch(3))
	if c.LastSeq() != last+3 {
		t.Fatalf("LastSeq %d after 3 appends to the copy, want %d", c.LastSeq(), last+3)
	}
}
