package pebblestore_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// ctxPayload is what a caller's context carries in TestAppendReleasesContext:
// in the server, the context of a gRPC call, whose values lead to its
// transport and every answer queued on it. Its bytes make it an allocation
// of its own (the tiny allocator packs small objects without pointers
// together, and a weak pointer to one would follow its neighbours).
type ctxPayload struct{ b [1024]byte }

type payloadKey struct{}

// appendTracked appends events under a context that carries a payload of
// its own, and returns a weak pointer to that payload.
//
//go:noinline
func appendTracked(t *testing.T, s *pebblestore.Store, events []*audittrail.Event) weak.Pointer[ctxPayload] {
	p := &ctxPayload{}
	p.b[0] = byte(len(events))
	ctx := context.WithValue(context.Background(), payloadKey{}, p)
	if _, err := s.Append(ctx, events); err != nil {
		t.Error(err)
	}
	return weak.Make(p)
}

// TestAppendReleasesContext: once Append has returned, the store keeps
// nothing of the caller's context. The writer's groups kept their requests,
// each with its caller's context, until the group was used again (two
// group commits later), and a used group's slots beyond its last
// requests until new requests filled them: the self-audit of a search
// (an Append under the search's context) kept a gRPC connection with every
// answer queued on it, 850 MB for 100 unread answers of 8.5 MB, after the
// connection was closed, for as long as the server stored nothing more.
// Concurrent appends (grouped together) and a lone one after them, then
// two garbage collections: every context's payload must be gone.
func TestAppendReleasesContext(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	_, tracked := appendGroupedThenLone(newGen(7), func(events []*audittrail.Event) weak.Pointer[ctxPayload] {
		return appendTracked(t, s, events)
	})
	runtime.GC()
	runtime.GC()
	for i, w := range tracked {
		if w.Value() != nil {
			t.Errorf("the context of append %d (of %d) is still reachable after it returned", i, len(tracked))
		}
	}
}

// groupedCallers is how many appends of 3 events appendGroupedThenLone
// runs at once (the writer groups them), before its lone one.
const groupedCallers = 32

// appendGroupedThenLone runs appendFn for groupedCallers batches of 3
// events of g at once, then for one more alone, and returns the batches and
// what each call returned: the writer's groups see concurrent appends, then
// a lone one.
func appendGroupedThenLone[T any](g *gen, appendFn func([]*audittrail.Event) T) ([][]*audittrail.Event, []T) {
	batches := make([][]*audittrail.Event, groupedCallers+1)
	for i := range batches {
		batches[i] = g.batch(3)
	}
	out := make([]T, groupedCallers+1)
	var wg sync.WaitGroup
	for i := range groupedCallers {
		wg.Go(func() { out[i] = appendFn(batches[i]) })
	}
	wg.Wait()
	out[groupedCallers] = appendFn(batches[groupedCallers])
	return batches, out
}

// appendWeak appends events and returns weak pointers to the events of its
// answer: the stored events, which the writer's group kept by id.
//
//go:noinline
func appendWeak(t *testing.T, s *pebblestore.Store, events []*audittrail.Event) []weak.Pointer[audittrail.Event] {
	res, err := s.Append(context.Background(), events)
	if err != nil {
		t.Error(err)
		return nil
	}
	out := make([]weak.Pointer[audittrail.Event], len(res))
	for i, r := range res {
		if r.Err != nil || r.Event == nil {
			t.Errorf("event %d: %v", i, r.Err)
			continue
		}
		out[i] = weak.Make(r.Event)
	}
	return out
}

// TestAppendForgetsEvents: once Append has returned and the store is
// quiet, the writer keeps none of the events it answered. Its groups kept
// them by id (the pending map, which the next group's preparation reads to
// find retries of them) until the group was used again two group commits
// later: a store that went quiet kept the events of its last two groups
// for good, up to 16,000 events. Concurrent appends (grouped together) and
// a lone one after them; then the writer is left to notice that the last
// group is committed, with garbage collections until every event is gone.
// The deadline only bounds a hang: without the fix the events stay.
func TestAppendForgetsEvents(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	batches, tracked := appendGroupedThenLone(newGen(8), func(events []*audittrail.Event) []weak.Pointer[audittrail.Event] {
		return appendWeak(t, s, events)
	})
	last := batches[groupedCallers]
	kept := func() (n int) {
		for _, ws := range tracked {
			for _, w := range ws {
				if w.Value() != nil {
					n++
				}
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		n := kept()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d events answered are still reachable after Append returned and the store went quiet", n, 3*(groupedCallers+1))
		}
		time.Sleep(time.Millisecond)
	}
	// A retry of the last call, whose group is forgotten, is still
	// answered with the stored events, from the database.
	res, err := s.Append(context.Background(), last)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Event == nil || r.Event.ID != last[i].ID || r.Event.Seq == 0 {
			t.Errorf("retry of event %d: %+v", i, r)
		}
	}
}

// TestWriterShrinksBuffers: once its groups are committed, the writer
// keeps no group buffers over the bound (set to 1 MiB here). A group kept
// its buffers for the next one whatever their size, so one burst of large
// groups left them that large for good (19 MB after 4,000 events of 16 KB
// of metadata). Small groups keep theirs: they are not allocated again.
func TestWriterShrinksBuffers(t *testing.T) {
	defer pebblestore.SetMaxIdleGroupBytesForTest(1 << 20)()
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(10)
	small := g.batch(10)
	if _, err := s.Append(context.Background(), small); err != nil {
		t.Fatal(err)
	}
	kept, err := s.WriterBufferBytesForTest()
	if err != nil {
		t.Fatal(err)
	}
	if kept == 0 {
		t.Errorf("the buffers of a small group were dropped")
	}
	// 1,000 events of 4 KB of metadata: over 4 MB of records alone.
	large := g.batch(1000)
	for i, e := range large {
		c := *e
		c.Metadata = map[string]string{"payload": g.hex(4000)}
		large[i] = &c
	}
	if _, err := s.Append(context.Background(), large); err != nil {
		t.Fatal(err)
	}
	n, err := s.WriterBufferBytesForTest()
	if err != nil {
		t.Fatal(err)
	}
	if n > 2<<20 {
		t.Errorf("the writer keeps %d bytes of group buffers after a large group, over twice the bound of %d", n, 1<<20)
	}
	t.Logf("group buffers: %d bytes after a small group, %d after a large one", kept, n)
}
