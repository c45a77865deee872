package storetest

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

func (s *suite) testAppend(t *testing.T) {
	t.Run("SequenceStartsAtOne", func(t *testing.T) {
		f := s.open(t)
		in := []*audittrail.Event{
			mkEvent(t, idOf(1), base.Add(3*time.Second)),
			mkEvent(t, idOf(2), base.Add(1*time.Second)),
			mkEvent(t, idOf(3), base.Add(2*time.Second)),
		}
		got := f.append(in...)
		got = append(got, f.append(mkEvent(t, idOf(4), base), mkEvent(t, idOf(5), base))...)
		in = append(in, mkEvent(t, idOf(4), base), mkEvent(t, idOf(5), base))
		// Receive times go down and repeat here: the store raises them to
		// strictly increase with seq.
		for i, want := range asStored(time.Time{}, 1, in...) {
			if d := gocmp.Diff(want, got[i], eventOpts); d != "" {
				t.Errorf("Append result %d: want the event as given with seq %d and a receive time after the one before (-want +got):\n%s", i, i+1, d)
			}
		}
		if d := diffEvents(newestFirst(got), searchAll(t, f.store, compile(t, everything), 100, 0)); d != "" {
			t.Errorf("Search after Append: %s", d)
		}
	})

	t.Run("Retry", func(t *testing.T) {
		f := s.open(t)
		first := f.append(mkEvent(t, idOf(1), base))[0]
		// The same event again, received later: an idempotent retry returns
		// the event as first stored and takes no sequence number.
		retry := mkEvent(t, idOf(1), base)
		retry.ReceiveTime = retry.ReceiveTime.Add(time.Hour)
		got := f.append(retry)[0]
		if d := gocmp.Diff(first, got, eventOpts); d != "" {
			t.Errorf("retry: want the event as first stored (-want +got):\n%s", d)
		}
		if next := f.append(mkEvent(t, idOf(2), base))[0]; next.Seq != 2 {
			t.Errorf("event after a retry got seq %d, want 2: a retry must not use a sequence number", next.Seq)
		}
		if got := searchAll(t, f.store, compile(t, everything), 10, 0); len(got) != 2 {
			t.Errorf("Search after a retry: %d events (%v), want 2", len(got), idsOf(got))
		}
	})

	t.Run("RetryWithEmptyMaps", func(t *testing.T) {
		// nil and empty maps are the same content (Event.SameContent).
		f := s.open(t)
		first := f.append(mkEvent(t, idOf(1), base))[0]
		retry := mkEvent(t, idOf(1), base)
		retry.Metadata, retry.RequestParameters = map[string]string{}, map[string]string{}
		got, err := f.store.Append(context.Background(), []*audittrail.Event{retry})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Err != nil {
			t.Fatalf("retry with empty instead of nil maps: %v, want an idempotent retry", got[0].Err)
		}
		if got[0].Event.Seq != first.Seq {
			t.Errorf("retry: seq %d, want %d", got[0].Event.Seq, first.Seq)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		at := base.Add(123456789)
		full := func(n *audittrail.NewEvent) {
			n.Event.UserAgent = "curl/8"
			n.Event.Status = &audittrail.Status{Code: 7, Message: "denied"}
			n.Event.Metadata = map[string]string{"env": "prod"}
			n.Event.RequestParameters = map[string]string{"q": "1"}
			n.Event.Type = audittrail.TypeAPI
		}
		changes := []struct {
			name string
			mod  opt
		}{
			{"event_time+1ns", func(n *audittrail.NewEvent) { n.Event.EventTime = at.Add(1) }},
			{"event_source", func(n *audittrail.NewEvent) { n.Event.EventSource = "other" }},
			{"action", func(n *audittrail.NewEvent) { n.Event.Action = "other" }},
			{"read_only", func(n *audittrail.NewEvent) { n.Event.ReadOnly = true }},
			{"principal", func(n *audittrail.NewEvent) { n.Event.Principal = "users/bob" }},
			{"source_ip_address", func(n *audittrail.NewEvent) { n.Event.SourceIP = "1.1.1.2" }},
			{"user_agent", func(n *audittrail.NewEvent) { n.Event.UserAgent = "curl/9" }},
			{"resource", func(n *audittrail.NewEvent) { n.Event.Resource = "//engine-manager/workspaces/w1/daiEngines/e2" }},
			{"workspace", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("workspaces/w2") }},
			{"status absent", func(n *audittrail.NewEvent) { n.Event.Status = nil }},
			{"status code", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Code: 8, Message: "denied"} }},
			{"status message", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Code: 7, Message: "Denied"} }},
			{"metadata value", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"env": "dev"} }},
			{"metadata extra key", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"env": "prod", "x": ""} }},
			{"metadata none", func(n *audittrail.NewEvent) { n.Event.Metadata = nil }},
			{"request_parameters", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{"q": "2"} }},
			{"type", func(n *audittrail.NewEvent) { n.Event.Type = audittrail.TypeSystem }},
		}
		f := s.open(t)
		for i, c := range changes {
			id := idOf(uint64(100 + i))
			orig := f.append(mkEvent(t, id, at, full))[0]
			other := mkEvent(t, id, at, full, c.mod)
			res, err := f.store.Append(context.Background(), []*audittrail.Event{other})
			if err != nil {
				t.Fatalf("%s: Append: %v", c.name, err)
			}
			if len(res) != 1 {
				t.Fatalf("%s: %d results", c.name, len(res))
			}
			if audittrail.ErrorCode(res[0].Err) != audittrail.EConflict {
				t.Errorf("%s: another event under a used id: result %+v, want an EConflict error", c.name, res[0])
			}
			// The stored event is unchanged.
			got := searchAll(t, f.store, compile(t, everything), 1000, 0)
			idx := slices.IndexFunc(got, func(e *audittrail.Event) bool { return e.ID == id })
			if idx < 0 {
				t.Fatalf("%s: stored event %s vanished after a conflict", c.name, id)
			}
			if d := gocmp.Diff(orig, got[idx], eventOpts); d != "" {
				t.Errorf("%s: stored event changed by a conflicting append (-want +got):\n%s", c.name, d)
			}
		}
		// Conflicts used no sequence numbers.
		if e := f.append(mkEvent(t, idOf(1), base))[0]; e.Seq != uint64(len(changes)+1) {
			t.Errorf("after %d events and %d conflicts the next event got seq %d, want %d", len(changes), len(changes), e.Seq, len(changes)+1)
		}
	})

	t.Run("RepeatedIDInOneCall", func(t *testing.T) {
		f := s.open(t)
		f.append(mkEvent(t, idOf(9), base)) // seq 1
		a := mkEvent(t, idOf(1), base.Add(time.Second))
		aRetry := mkEvent(t, idOf(1), base.Add(time.Second))
		aRetry.ReceiveTime = aRetry.ReceiveTime.Add(time.Minute)
		aOther := mkEvent(t, idOf(1), base.Add(time.Second), withAction("other"))
		b := mkEvent(t, idOf(2), base.Add(2*time.Second))
		nineRetry := mkEvent(t, idOf(9), base)
		nineOther := mkEvent(t, idOf(9), base, withAction("other"))
		res, err := f.store.Append(context.Background(), []*audittrail.Event{a, b, aRetry, aOther, nineRetry, nineOther, a})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 7 {
			t.Fatalf("%d results for 7 events", len(res))
		}
		for i, want := range []struct {
			seq      uint64
			conflict bool
		}{{2, false}, {3, false}, {2, false}, {0, true}, {1, false}, {0, true}, {2, false}} {
			r := res[i]
			if want.conflict {
				if audittrail.ErrorCode(r.Err) != audittrail.EConflict {
					t.Errorf("result %d: %+v, want an EConflict error", i, r)
				}
				continue
			}
			if r.Err != nil || r.Event == nil {
				t.Errorf("result %d: %+v, want the stored event", i, r)
				continue
			}
			if r.Event.Seq != want.seq {
				t.Errorf("result %d: seq %d, want %d", i, r.Event.Seq, want.seq)
			}
		}
		if res[2].Event != nil && !res[2].Event.ReceiveTime.Equal(a.ReceiveTime) {
			t.Errorf("retry within the call: receive_time %v, want the first copy's %v", res[2].Event.ReceiveTime, a.ReceiveTime)
		}
		got := searchAll(t, f.store, compile(t, everything), 100, 0)
		if d := gocmp.Diff([]string{idOf(2), idOf(1), idOf(9)}, idsOf(got)); d != "" {
			t.Errorf("stored events (-want +got):\n%s", d)
		}
		if e := f.append(mkEvent(t, idOf(3), base))[0]; e.Seq != 4 {
			t.Errorf("next event: seq %d, want 4", e.Seq)
		}
	})

	t.Run("ConcurrentSequenceGapFree", func(t *testing.T) {
		f := s.open(t)
		const workers, calls = 8, 15
		type call struct {
			in  []*audittrail.Event
			res []audittrail.AppendResult
			// retry[i] tells that in[i] retries an event of an earlier call.
			retry []bool
		}
		var (
			g       ids
			mu      sync.Mutex
			all     []call
			wg      sync.WaitGroup
			started = make(chan struct{})
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				var mine []*audittrail.Event
				<-started
				for range calls {
					var c call
					prev := len(mine)
					for range 1 + rng.IntN(4) {
						e := mkEvent(t, g.next(), base.Add(time.Duration(rng.IntN(3600))*time.Second))
						c.in, c.retry = append(c.in, e), append(c.retry, false)
						mine = append(mine, e)
					}
					if prev > 0 && rng.IntN(2) == 0 {
						old := *mine[rng.IntN(prev)]
						old.ReceiveTime = old.ReceiveTime.Add(time.Hour)
						at := rng.IntN(len(c.in) + 1)
						c.in = slices.Insert(c.in, at, &old)
						c.retry = slices.Insert(c.retry, at, true)
					}
					res, err := f.store.Append(context.Background(), c.in)
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					c.res = res
					mu.Lock()
					all = append(all, c)
					mu.Unlock()
				}
			}()
		}
		close(started)
		wg.Wait()
		if t.Failed() {
			return
		}
		seqOf := map[string]uint64{}
		var seqs []uint64
		for _, c := range all {
			if len(c.res) != len(c.in) {
				t.Fatalf("Append of %d events returned %d results", len(c.in), len(c.res))
			}
			var last uint64
			for i, r := range c.res {
				if r.Err != nil || r.Event == nil {
					t.Fatalf("Append result %d: %+v", i, r)
				}
				if c.retry[i] {
					continue
				}
				if r.Event.Seq <= last {
					t.Errorf("sequence numbers within one Append call are not increasing: %d after %d", r.Event.Seq, last)
				}
				last = r.Event.Seq
				seqOf[r.Event.ID] = r.Event.Seq
				seqs = append(seqs, r.Event.Seq)
			}
		}
		for _, c := range all {
			for i, r := range c.res {
				if c.retry[i] && seqOf[r.Event.ID] != 0 && r.Event.Seq != seqOf[r.Event.ID] {
					t.Errorf("retry of %s: seq %d, want the first seq %d", r.Event.ID, r.Event.Seq, seqOf[r.Event.ID])
				}
			}
		}
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("sequence numbers of %d events are not 1..%d without gaps or repeats: position %d holds %d (all: %v)", len(seqs), len(seqs), i, s, seqs)
			}
		}
		got := searchAll(t, f.store, compile(t, everything), 1000, 0)
		if len(got) != len(seqs) {
			t.Fatalf("Search: %d events, want %d", len(got), len(seqs))
		}
		for _, e := range got {
			if seqOf[e.ID] != e.Seq {
				t.Errorf("event %s: Search says seq %d, Append said %d", e.ID, e.Seq, seqOf[e.ID])
			}
		}
		// Receive times strictly increase with seq, whatever order the
		// concurrent calls' (random) receive times came in: each is the
		// one sent, or one nanosecond after the event before.
		sent := map[string]*audittrail.Event{}
		for _, c := range all {
			for i, e := range c.in {
				if !c.retry[i] {
					sent[e.ID] = e
				}
			}
		}
		slices.SortFunc(got, func(a, b *audittrail.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		var prev time.Time
		for _, e := range got {
			want := asStored(prev, e.Seq, sent[e.ID])[0]
			if !e.ReceiveTime.Equal(want.ReceiveTime) {
				t.Fatalf("seq %d: receive time %v, want %v (sent %v, the event before received at %v)",
					e.Seq, e.ReceiveTime, want.ReceiveTime, sent[e.ID].ReceiveTime, prev)
			}
			prev = e.ReceiveTime
		}
	})

	t.Run("ReceiveTimeRequired", func(t *testing.T) {
		f := s.open(t)
		for _, rt := range []time.Time{{}, audittrail.MinEventTime.Add(-1), audittrail.MaxReceiveTime} {
			e := mkEvent(t, idOf(1), base)
			e.ReceiveTime = rt
			_, err := f.store.Append(context.Background(), []*audittrail.Event{e})
			if audittrail.ErrorCode(err) != audittrail.EInvalid {
				t.Errorf("Append with receive time %v: error %v, want an invalid-argument error", rt, err)
			}
		}
		if got := searchAll(t, f.store, compile(t, everything), 10, 0); len(got) != 0 {
			t.Errorf("rejected events were stored: %v", idsOf(got))
		}
	})
}

func (s *suite) testDurability(t *testing.T) {
	if !s.reopen {
		t.Skip("storetest.Run cannot reopen a store; run the suite with RunHarness to test durability")
	}
	t.Run("CloseAndReopen", func(t *testing.T) {
		f := s.open(t)
		var g ids
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		long := func(n int) string { return strings.Repeat("x", n) }
		in := []*audittrail.Event{
			mkEvent(t, g.next(), base.Add(123456789)),                                 // nanoseconds
			mkEvent(t, g.next(), time.Date(2025, 8, 2, 3, 4, 5, 123456000, time.UTC)), // microseconds
			mkEvent(t, g.next(), time.Date(2025, 8, 2, 3, 4, 5, 0, zone)),
			mkEvent(t, g.next(), audittrail.MinEventTime),
			mkEvent(t, g.next(), audittrail.MaxEventTime.Add(-1)),
			mkEvent(t, g.next(), base, func(n *audittrail.NewEvent) { n.Event.Status = nil }),
			mkEvent(t, g.next(), base, func(n *audittrail.NewEvent) {
				n.Event.Status = &audittrail.Status{Code: 13, Message: "internal: ünïcode ✓"}
				n.Event.ReadOnly = true
				n.Event.Type = audittrail.TypeSystem
			}),
			mkEvent(t, g.next(), base, func(n *audittrail.NewEvent) {
				n.Event.Status = &audittrail.Status{Code: -1}
				n.Event.Type = audittrail.TypeUnspecified
				n.Event.Metadata = map[string]string{"a": "", "b_2": "x\x00y", "env": "prod"}
				n.Event.RequestParameters = map[string]string{"k": "v", "ключ": "значение", "\x00": "\x00"}
			}),
			mkEvent(t, g.next(), base, func(n *audittrail.NewEvent) {
				n.Event.UserAgent = "a\x00b\nc\td|e/f"
				n.Event.Principal = "users/a\x00b"
				n.Event.SourceIP = "2001:db8::1"
				n.Event.Resource = "//appstore/apps/a1"
				n.WorkspaceOverride = ptr("")
			}),
			mkEvent(t, g.next(), base, func(n *audittrail.NewEvent) {
				n.Event.Action = long(audittrail.MaxFieldLen)
				n.Event.Resource = "workspaces/" + long(audittrail.MaxResourceLen-len("workspaces/"))
				n.Event.Status = &audittrail.Status{Code: 2, Message: long(audittrail.MaxStatusMessage)}
				n.Event.Metadata = map[string]string{"big": long(audittrail.MaxMapValueLen)}
			}),
		}
		stored := f.append(in[:5]...)
		stored = append(stored, f.append(in[5:]...)...)
		for i, want := range asStored(time.Time{}, 1, in...) {
			if d := gocmp.Diff(want, stored[i], eventOpts); d != "" {
				t.Errorf("Append result %d: want the event as given, with seq %d (-want +got):\n%s", i, i+1, d)
			}
		}
		// Many small acknowledged appends right before the close.
		for range 20 {
			stored = append(stored, f.append(mkEvent(t, g.next(), base.Add(time.Duration(len(stored))*time.Millisecond)))...)
		}
		f.reopenStore()
		q := compile(t, everything)
		if d := diffEvents(newestFirst(stored), searchAll(t, f.store, q, 1000, 0)); d != "" {
			t.Fatalf("after reopen: %s", d)
		}
		// The log goes on where it stopped, and ids are remembered.
		next := f.append(mkEvent(t, g.next(), base))[0]
		if want := uint64(len(stored) + 1); next.Seq != want {
			t.Errorf("first event after reopen: seq %d, want %d", next.Seq, want)
		}
		retry := *in[0]
		retry.ReceiveTime = retry.ReceiveTime.Add(time.Hour)
		if got := f.append(&retry)[0]; !gocmp.Equal(got, stored[0], eventOpts) {
			t.Errorf("retry after reopen: got %+v, want the event as first stored %+v", got, stored[0])
		}
		conflict := *in[0]
		conflict.Action = "other"
		res, err := f.store.Append(context.Background(), []*audittrail.Event{&conflict})
		if err != nil {
			t.Fatal(err)
		}
		if audittrail.ErrorCode(res[0].Err) != audittrail.EConflict {
			t.Errorf("conflict after reopen: %+v, want EConflict", res[0])
		}
		stored = append(stored, next)
		f.reopenStore()
		if d := diffEvents(newestFirst(stored), searchAll(t, f.store, q, 7, 0)); d != "" {
			t.Fatalf("after the second reopen: %s", d)
		}
		// Filters work on reopened data (indexes, if any, are durable too).
		q = compile(t, audittrail.Filter{StartTime: ptr(audittrail.MinEventTime), Exact: exact(audittrail.FieldPrincipal, "users/a\x00b")})
		if got := searchAll(t, f.store, q, 10, 0); len(got) != 1 || got[0].ID != in[8].ID {
			t.Errorf("principal_exact after reopen: %v, want [%s]", idsOf(got), in[8].ID)
		}
	})
}

func exact(f audittrail.Field, v string) (a [audittrail.NumFields]string) {
	a[f] = v
	return a
}

func regex(f audittrail.Field, v string) (a [audittrail.NumFields]string) {
	a[f] = v
	return a
}
