package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/merkle"
)

// trickyEvent is a prepared event with id number n whose strings, maps and
// status vary as storage could alter them: NUL and the escape byte (stored
// escaped), non-ASCII, empty and absent maps, absent status.
func trickyEvent(t testing.TB, r *rand.Rand, n uint64) *audittrail.Event {
	at := base.Add(time.Duration(r.IntN(1000)) * time.Second)
	texts := []string{"plain", "nul\x00inside", "esc\x01byte", "ünïcödé ✓", "", "a\x01\x02b"}
	in := audittrail.NewEvent{Event: audittrail.Event{
		EventTime: at, EventSource: "src", Action: "actions/x/" + texts[r.IntN(4)],
		Principal: "users/" + texts[r.IntN(len(texts))], SourceIP: "10.0.0.1",
		Resource: "//r/" + texts[r.IntN(len(texts))], UserAgent: texts[r.IntN(len(texts))],
		ReadOnly: r.IntN(2) == 0, Type: audittrail.EventType(r.IntN(3)),
	}}
	switch r.IntN(3) {
	case 0:
		in.Event.Status = &audittrail.Status{Code: int32(r.IntN(17)), Message: texts[r.IntN(len(texts))]}
	case 1:
		in.Event.Status = &audittrail.Status{}
	}
	switch r.IntN(3) {
	case 0:
		in.Event.Metadata = map[string]string{"k": texts[r.IntN(len(texts))], "k2": "v\x00w"}
	case 1:
		in.Event.Metadata = map[string]string{}
	}
	if r.IntN(2) == 0 {
		in.Event.RequestParameters = map[string]string{"q": texts[r.IntN(len(texts))]}
	}
	e, err := audittrail.PrepareNewEvent(fmt.Sprintf("00000000-0000-4000-8000-%012x", n), in, at.Add(time.Second), false)
	if err != nil {
		panic(err) // called from the appenders' goroutines: a bug of this helper
	}
	return e
}

// TestRecentLeafHashesMatchStoredEvents: the leaf hashes the store keeps of
// what it appended are those of the events read back (EventsBySeq), with
// concurrent appenders, retries and conflicts; a range holding an event
// another replica appended is not served.
func TestRecentLeafHashesMatchStoredEvents(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	other := mustOpen(t, url) // another replica on the same database
	defer other.Close()
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	next := uint64(1)
	id := func() uint64 { mu.Lock(); defer mu.Unlock(); next++; return next }
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			var sent []*audittrail.Event
			for range 15 {
				var batch []*audittrail.Event
				for range 1 + r.IntN(30) {
					batch = append(batch, trickyEvent(t, r, id()))
				}
				for range r.IntN(3) { // retries and conflicts
					if len(sent) > 0 {
						e := sent[r.IntN(len(sent))].Clone()
						if r.IntN(2) == 0 {
							e.Action += "-conflict"
						}
						batch = append(batch, e)
					}
				}
				if _, err := s.Append(ctx, batch); err != nil {
					t.Error(err)
					return
				}
				sent = append(sent, batch...)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	last := s.LastSeq()
	all, err := s.EventsBySeq(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	check := func(from, to uint64) bool {
		t.Helper()
		hs, rt, ok, err := s.RecentLeafHashes(ctx, from, to, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return false
		}
		for i, e := range all[from-1 : to] {
			if h := merkle.LeafHash(e); hs[i] != h {
				t.Fatalf("[%d, %d]: seq %d: hash %x, want %x (the stored event's)", from, to, e.Seq, hs[i], h)
			}
		}
		if want := all[to-1].ReceiveTime; !rt.Equal(want) {
			t.Fatalf("[%d, %d]: last receive time %v, want %v", from, to, rt, want)
		}
		return true
	}
	if !check(1, last) {
		t.Fatalf("the whole range [1, %d], all appended here, is not served", last)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		from := 1 + r.Uint64N(last)
		to := from + r.Uint64N(last-from+1)
		if !check(from, to) {
			t.Fatalf("[%d, %d] is not served", from, to)
		}
	}
	// Another replica appends one event, then this one: a range with the
	// other's is read from the database; one after it is served.
	if _, err := other.Append(ctx, []*audittrail.Event{trickyEvent(t, r, id())}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*audittrail.Event{trickyEvent(t, r, id()), trickyEvent(t, r, id())}); err != nil {
		t.Fatal(err)
	}
	if all, err = s.EventsBySeq(ctx, 1, last+3); err != nil {
		t.Fatal(err)
	}
	if check(last, last+2) || check(last+1, last+1) {
		t.Errorf("a range with the other replica's event (seq %d) is served", last+1)
	}
	if !check(last+2, last+3) {
		t.Errorf("[%d, %d], appended here, is not served", last+2, last+3)
	}
	if _, _, ok, err := other.RecentLeafHashes(ctx, last+1, last+1, nil); err != nil || !ok {
		t.Errorf("the other replica does not serve its own event: %v, %v", ok, err)
	}
}
