package pebblestore_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
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
	g := newGen(7)
	const callers = 32
	batches := make([][]*audittrail.Event, callers+1)
	for i := range batches {
		batches[i] = g.batch(3)
	}
	tracked := make([]weak.Pointer[ctxPayload], callers+1)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { tracked[i] = appendTracked(t, s, batches[i]) })
	}
	wg.Wait()
	tracked[callers] = appendTracked(t, s, batches[callers])
	runtime.GC()
	runtime.GC()
	for i, w := range tracked {
		if w.Value() != nil {
			t.Errorf("the context of append %d (of %d) is still reachable after it returned", i, len(tracked))
		}
	}
}
