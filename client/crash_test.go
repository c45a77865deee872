package client_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/merkle"
)

// TestCrashKeepsAcknowledgedEvents kills the server with SIGKILL while
// producers create events as fast as they can, a few times over, and checks
// after each restart what a producer relies on: an event whose create was
// acknowledged is stored, as acknowledged; an event whose create failed is
// stored at most once and is stored once its create is retried; the
// verifiable log after the restart extends the one signed before the crash.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	// A line per request (debug) would bury what a failure's server output
	// shows.
	quiet := []string{"--log-level", "info"}
	t.Run("embedded", func(t *testing.T) {
		srv := testserver.Start(t, quiet...)
		crashUnderLoad(t, srv, srv.Crash, srv.Resume)
	})
	t.Run("postgres", func(t *testing.T) {
		srv := testserver.Start(t, append(quiet, "--store", pgtest.Start(t))...)
		crashUnderLoad(t, srv, srv.Crash, srv.Resume)
	})
	// The database crashes instead (immediate shutdown: recovery from its
	// WAL), while the server runs on: it must answer the outage with
	// errors, not acknowledgements, and go on by itself once the database
	// is back.
	t.Run("postgres-database", func(t *testing.T) {
		cluster := pgtest.New(t)
		srv := testserver.Start(t, append(quiet, "--store", cluster.NewDatabase(t))...)
		crashUnderLoad(t, srv, func() { cluster.Crash(t) }, func() { cluster.Start(t) })
	})
}

// Shape of the crash test's load.
const (
	crashCycles      = 3
	batchProducers   = 3 // goroutines sending BatchCreateEvents of 50-200 events
	singleProducers  = 4 // goroutines sending CreateEvent
	crashMinDelay    = 300 * time.Millisecond
	crashMaxDelay    = 1200 * time.Millisecond
	maxAckedPerCycle = 20_000 // the crash comes earlier when this many are acknowledged: it bounds the drains
	provenSample     = 30     // acknowledged events whose inclusion proofs are checked per cycle
)

// crashUnderLoad runs the crash cycles against srv: crash stops what is
// crashed (the server, or its database) under load, and recover brings it
// back.
func crashUnderLoad(t *testing.T, srv *testserver.Server, crash, recover func()) {
	verifier := serverVerifier(t, srv)
	// The generated events end an hour ago, so that the drains, which end
	// there, leave out the searches' own self-audit events (now).
	end := time.Now().Add(-time.Hour).Truncate(time.Second)
	drainFilter := audittrail.Filter{EndTime: &end}
	l := &ledger{acked: map[string]ackedEvent{}, uncertain: map[string]audittrail.NewEvent{}}
	var lastVerified *merkle.Checkpoint // the checkpoint the previous cycle ended with
	for cycle := range crashCycles {
		start := time.Now()
		l.startCycle(cycle)
		producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken), client.WithRetry(1, 0))
		watcher := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken), client.WithRetry(1, 0))

		ctx, stopLoad := context.WithCancel(t.Context())
		var crashing atomic.Bool
		var wg sync.WaitGroup
		for g := range batchProducers + singleProducers {
			gen := sample.New(int64(1000*cycle+g), sample.Options{Events: 1 << 20, Span: 48 * time.Hour, End: end})
			wg.Go(func() { l.produce(ctx, t, producer, gen, g < batchProducers, &crashing) })
		}
		var latest atomic.Pointer[merkle.Checkpoint] // the largest checkpoint verified before the crash
		latest.Store(lastVerified)
		wg.Go(func() { watchCheckpoints(ctx, t, watcher, verifier, &latest) })

		// Crash at a random moment, but not before the log has signed a
		// checkpoint of events of this cycle, so that the crash cuts into
		// a log a verifier has seen signed under load.
		delay := crashMinDelay + rand.N(crashMaxDelay-crashMinDelay)
		deadline := time.Now().Add(15 * time.Second)
		for (time.Since(start) < delay && l.ackedInCycle.Load() < maxAckedPerCycle) || !l.covers(latest.Load()) {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no checkpoint signed under load within 15 s (%d acknowledged)", cycle, l.ackedInCycle.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
		crashing.Store(true)
		crash()
		crashedAfter := time.Since(start)
		stopLoad()
		wg.Wait()
		producer.Close()
		watcher.Close()
		preCrash := latest.Load()
		acked, uncertain := l.ackedInCycle.Load(), len(l.uncertain)

		restart := time.Now()
		recover()
		t.Logf("cycle %d: crash after %v, under load: %d events acknowledged, %d uncertain, %d calls failed before the crash; restart %v",
			cycle, crashedAfter.Round(time.Millisecond), acked, uncertain, l.failedBeforeCrash, time.Since(restart).Round(time.Millisecond))
		producer = dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
		auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))

		// What survived the crash: every acknowledged event, as
		// acknowledged, and nothing but acknowledged and uncertain events.
		stored := drain(t, auditor, drainFilter)
		storedUncertain := l.checkStored(t, stored, true)
		if t.Failed() {
			t.FailNow() // the checks that follow would report the same
		}

		// A retried create of an uncertain event succeeds: with the stored
		// event when the failed call had stored it after all. Then the
		// store holds exactly the acknowledged events.
		l.retryUncertain(t, producer, stored)
		stored = drain(t, auditor, drainFilter)
		l.checkStored(t, stored, false)

		// The indexes recovered with the events: searches that go through
		// them (posting lists, the value column) find what the drain found.
		checkIndexedSearches(t, auditor, stored, end, cycle)

		// The log: a checkpoint that covers every event stored, consistent
		// with the one signed before the crash and with the one the
		// previous cycle ended with.
		afterRestart := l.markCovered(t, producer, verifier, end, cycle)
		for _, older := range []*merkle.Checkpoint{lastVerified, preCrash} {
			if older != nil {
				checkConsistent(t, auditor, older, afterRestart)
			}
		}
		if afterRestart.Size < uint64(len(l.acked)) {
			t.Errorf("cycle %d: the log's tree holds %d leaves, fewer than the %d events acknowledged", cycle, afterRestart.Size, len(l.acked))
		}
		l.checkProofs(t, auditor, verifier, preCrash, afterRestart, cycle)
		lastVerified = afterRestart

		t.Logf("cycle %d: after the restart: %d of the uncertain events stored before their retry, %d events stored in all; "+
			"checkpoint before the crash %d leaves, after %d; cycle %v",
			cycle, storedUncertain, len(stored), preCrash.Size, afterRestart.Size, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			return
		}
	}
}

// ledger is the producers' record of what the server answered.
type ledger struct {
	mu    sync.Mutex
	cycle int
	acked map[string]ackedEvent // by event id: creates that returned the event
	// uncertain holds the events of failed creates, which may or may not
	// be stored, with what was sent, for the retry.
	uncertain map[string]audittrail.NewEvent
	// firstReceived is the receive time of the first event acknowledged in
	// this cycle: a checkpoint whose horizon is later holds it.
	firstReceived time.Time
	// failedBeforeCrash counts the calls of this cycle that failed while
	// the server was still up (load shed, say): legitimate, but they should
	// be few.
	failedBeforeCrash int
	ackedInCycle      atomic.Int64
}

type ackedEvent struct {
	event        *audittrail.Event
	cycle        int       // of the crash cycle
	at           time.Time // when the answer came
	afterRestart bool      // acknowledged after the restart: on the retry, or the marker of markCovered
}

func (l *ledger) startCycle(cycle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cycle, l.firstReceived, l.failedBeforeCrash = cycle, time.Time{}, 0
	l.ackedInCycle.Store(0)
}

// covers reports whether cp holds an event acknowledged in this cycle.
func (l *ledger) covers(cp *merkle.Checkpoint) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cp != nil && !l.firstReceived.IsZero() && l.firstReceived.Before(cp.ReceivedBefore)
}

// produce creates generated events until ctx ends or, once the crash has
// begun, a call fails. With retries off every call is either acknowledged or
// failed; its events are recorded as such.
func (l *ledger) produce(ctx context.Context, t *testing.T, c *client.Client, gen *sample.Generator, batch bool, crashing *atomic.Bool) {
	for ctx.Err() == nil {
		n := 1
		if batch {
			n = 50 + rand.IntN(151)
		}
		reqs := make([]audittrail.CreateRequest, n)
		for i := range reqs {
			reqs[i].EventID, reqs[i].Event = gen.Next()
		}
		var (
			events []*audittrail.Event
			failed map[int]*audittrail.Error
			err    error
		)
		if batch {
			var res *audittrail.BatchResult
			if res, err = c.BatchCreateEvents(ctx, reqs); err == nil {
				events, failed = res.Events, res.Failed
			}
		} else {
			var e *audittrail.Event
			if e, err = c.CreateEvent(ctx, reqs[0].EventID, reqs[0].Event); err == nil {
				events = []*audittrail.Event{e}
			}
		}
		l.record(t, reqs, events, failed, err, crashing.Load())
		if err != nil && crashing.Load() {
			return
		}
	}
}

// record files the answer to one create call.
func (l *ledger) record(t *testing.T, reqs []audittrail.CreateRequest, events []*audittrail.Event, failed map[int]*audittrail.Error, err error, crashing bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		for _, r := range reqs {
			l.uncertain[r.EventID] = r.Event
		}
		if !crashing {
			l.failedBeforeCrash++
			t.Logf("a create failed before the crash: %v", err)
		}
		return
	}
	// A batch answers the stored events in request order, the failed ones
	// by index; none should fail.
	if len(events)+len(failed) != len(reqs) {
		t.Errorf("a batch of %d answered %d events and %d failures", len(reqs), len(events), len(failed))
	}
	k := 0
	for i, r := range reqs {
		if f := failed[i]; f != nil {
			t.Errorf("the create of %s failed alone: %v", r.EventID, f)
			l.uncertain[r.EventID] = r.Event
			continue
		}
		if k >= len(events) || events[k].ID != r.EventID {
			t.Errorf("the answer to the create of %s is not its event", r.EventID)
			l.uncertain[r.EventID] = r.Event
			continue
		}
		if _, dup := l.acked[r.EventID]; dup {
			t.Errorf("the generators repeated event id %s", r.EventID)
		}
		l.acked[r.EventID] = ackedEvent{event: events[k], cycle: l.cycle, at: now}
		if l.firstReceived.IsZero() {
			l.firstReceived = events[k].ReceiveTime
		}
		l.ackedInCycle.Add(1)
		k++
	}
}

// watchCheckpoints fetches the signed checkpoint every 20 ms until ctx ends
// and keeps in latest the largest one that verifies. Fetches fail once the
// server is killed; a checkpoint that does not verify, or a smaller one
// after a larger, fails the test.
func watchCheckpoints(ctx context.Context, t *testing.T, c *client.Client, v note.Verifier, latest *atomic.Pointer[merkle.Checkpoint]) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if raw, err := c.Checkpoint(ctx); err == nil && len(raw) > 0 {
			cp, err := merkle.OpenCheckpoint(raw, v)
			switch {
			case err != nil:
				t.Errorf("a checkpoint the server served does not verify: %v\n%s", err, raw)
			case latest.Load() != nil && cp.Size < latest.Load().Size:
				t.Errorf("the server served a checkpoint of %d leaves after one of %d", cp.Size, latest.Load().Size)
			default:
				latest.Store(cp)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkIndexedSearches compares searches answered from the store's indexes
// (an exact value of each field, a metadata pair, an anchored regex over a
// resource, a principal with an action regex) with the drained events
// they match, for the values of a few events picked at random: after a crash
// the indexes must hold exactly the events that survived it.
func checkIndexedSearches(t *testing.T, c *client.Client, stored map[string]*audittrail.Event, end time.Time, cycle int) {
	t.Helper()
	ids := slices.Sorted(maps.Keys(stored))
	rng := rand.New(rand.NewPCG(uint64(cycle), 7))
	var filters []audittrail.Filter
	for range 3 {
		e := stored[ids[rng.IntN(len(ids))]]
		for f := range audittrail.NumFields {
			if v := e.Value(f); v != "" {
				var fl audittrail.Filter
				fl.Exact[f] = v
				filters = append(filters, fl)
			}
		}
		for k, v := range e.Metadata {
			filters = append(filters, audittrail.Filter{MetadataExact: map[string]string{k: v}})
		}
		var byResource, combined audittrail.Filter
		byResource.Regex[audittrail.FieldResource] = "^" + regexp.QuoteMeta(e.Resource) + "$"
		combined.Exact[audittrail.FieldPrincipal] = e.Principal
		combined.Regex[audittrail.FieldAction] = "(CREATE|DELETE|" + regexp.QuoteMeta(path.Base(e.Action)) + ")$"
		filters = append(filters, byResource, combined)
	}
	matched := 0
	for _, f := range filters {
		f.EndTime = &end
		q, err := f.Compile(end)
		if err != nil {
			t.Fatalf("cycle %d: %s: %v", cycle, describeFilter(f), err)
		}
		var want []string
		for _, id := range ids {
			if q.Match(stored[id]) {
				want = append(want, id)
			}
		}
		matched += len(want)
		got := slices.Sorted(maps.Keys(drain(t, c, f)))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("cycle %d: after the restart, a search of %s found other events than the drain holds (-drain +search):\n%s", cycle, describeFilter(f), diff)
		}
	}
	t.Logf("cycle %d: %d searches through the indexes agree with the drain (%d events matched in all)", cycle, len(filters), matched)
}

// describeFilter names the conditions of a filter of checkIndexedSearches.
func describeFilter(f audittrail.Filter) string {
	var parts []string
	for field := range audittrail.NumFields {
		if v := f.Exact[field]; v != "" {
			parts = append(parts, fmt.Sprintf("%s = %q", field, v))
		}
		if v := f.Regex[field]; v != "" {
			parts = append(parts, fmt.Sprintf("%s ~ %q", field, v))
		}
	}
	for k, v := range f.MetadataExact {
		parts = append(parts, fmt.Sprintf("metadata %s = %q", k, v))
	}
	return strings.Join(parts, " and ")
}

// drain returns every event matching filter by id, failing the test on an
// id returned twice.
func drain(t *testing.T, c *client.Client, filter audittrail.Filter) map[string]*audittrail.Event {
	t.Helper()
	out := map[string]*audittrail.Event{}
	for e, err := range c.Events(t.Context(), filter, audittrail.MaxPageSize) {
		if err != nil {
			t.Fatal(err)
		}
		if out[e.ID] != nil {
			t.Errorf("event %s stored twice", e.ID)
		}
		out[e.ID] = e
	}
	return out
}

// checkStored compares what is stored with what the producers were told:
// every acknowledged event is stored as acknowledged, and every stored event
// was acknowledged or, when uncertainAllowed, sent in a failed call. It
// returns how many uncertain events are stored.
func (l *ledger) checkStored(t *testing.T, stored map[string]*audittrail.Event, uncertainAllowed bool) (storedUncertain int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost []string
	for id, a := range l.acked {
		e := stored[id]
		switch {
		case e == nil:
			lost = append(lost, id)
		case !sameStored(a.event, e):
			t.Errorf("event %s is not stored as acknowledged (-acknowledged +stored):\n%s", id, cmp.Diff(a.event, e))
		}
	}
	if len(lost) > 0 {
		slices.SortFunc(lost, func(a, b string) int { return l.acked[b].at.Compare(l.acked[a].at) })
		t.Errorf("%d acknowledged events are not stored, e.g. %s", len(lost), l.describe(lost[:min(len(lost), 5)]))
	}
	var unknown []string
	for id := range stored {
		if _, ok := l.acked[id]; ok {
			continue
		}
		if _, ok := l.uncertain[id]; ok && uncertainAllowed {
			storedUncertain++
			continue
		}
		unknown = append(unknown, id)
	}
	if len(unknown) > 0 {
		t.Errorf("%d stored events were never acknowledged nor sent in a failed call, e.g. %v", len(unknown), unknown[:min(len(unknown), 5)])
	}
	return storedUncertain
}

// sameStored reports whether a and b, as the API returned them, are the same
// stored event: the same content and receive time (the seq is not on the
// wire; the login name is resolved at search time). It is cmp.Equal at the
// speed that checking every event after every crash needs.
func sameStored(a, b *audittrail.Event) bool {
	return a.SameContent(b) && a.ReceiveTime.Equal(b.ReceiveTime)
}

// describe names acknowledged events with their cycle and answer time,
// for the report of lost ones.
func (l *ledger) describe(ids []string) string {
	s := ""
	for _, id := range ids {
		a := l.acked[id]
		s += fmt.Sprintf("\n\t%s (cycle %d, acknowledged at %s)", id, a.cycle, a.at.Format("15:04:05.000"))
	}
	return s
}

// retryUncertain creates every uncertain event again, same id and content,
// in batches with the client's retries on: each must succeed, with the
// stored event when it was stored already. They are acknowledged then.
func (l *ledger) retryUncertain(t *testing.T, c *client.Client, stored map[string]*audittrail.Event) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	reqs := make([]audittrail.CreateRequest, 0, len(l.uncertain))
	for id, e := range l.uncertain {
		reqs = append(reqs, audittrail.CreateRequest{EventID: id, Event: e})
	}
	for len(reqs) > 0 {
		batch := reqs[:min(len(reqs), audittrail.MaxBatch)]
		reqs = reqs[len(batch):]
		res, err := c.BatchCreateEvents(t.Context(), batch)
		if err != nil {
			t.Fatalf("retrying %d uncertain creates: %v", len(batch), err)
		}
		for i, f := range res.Failed {
			t.Errorf("the retried create of %s was refused: %v (stored before the retry: %v)", batch[i].EventID, f, stored[batch[i].EventID] != nil)
		}
		for _, e := range res.Events {
			if before := stored[e.ID]; before != nil && !sameStored(before, e) {
				t.Errorf("the retried create of %s answered another event than the stored one (-stored +answered):\n%s", e.ID, cmp.Diff(before, e))
			}
			l.acked[e.ID] = ackedEvent{event: e, cycle: l.cycle, at: time.Now(), afterRestart: true}
			delete(l.uncertain, e.ID)
		}
	}
	if len(l.uncertain) > 0 {
		t.Errorf("%d uncertain creates not acknowledged on retry", len(l.uncertain))
	}
}

// markCovered creates one more event with a receipt, asking again until a
// signed checkpoint covers it, and returns that checkpoint: the log's
// sequence follows the commits, so it covers every event stored before.
func (l *ledger) markCovered(t *testing.T, c *client.Client, v note.Verifier, end time.Time, cycle int) *merkle.Checkpoint {
	t.Helper()
	gen := sample.New(int64(1000*cycle+999), sample.Options{Events: 1 << 20, Span: 48 * time.Hour, End: end})
	id, ne := gen.Next()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e, receipt, err := c.CreateEventWithReceipt(t.Context(), id, ne)
		if err != nil {
			t.Fatal(err)
		}
		cp, pending, err := receipt.Verify(v, []*audittrail.Event{e})
		if err != nil {
			t.Fatalf("the receipt of %s: %v", id, err)
		}
		if pending == 0 {
			l.mu.Lock()
			l.acked[id] = ackedEvent{event: e, cycle: cycle, at: time.Now(), afterRestart: true}
			l.mu.Unlock()
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers %s after the restart within 15 s", id)
		}
		time.Sleep(50 * time.Millisecond) // the server waited already; this only keeps a fast refusal from spinning
	}
}

// checkConsistent checks with the server's proof that the log of newer
// extends that of older.
func checkConsistent(t *testing.T, c *client.Client, older, newer *merkle.Checkpoint) {
	t.Helper()
	proof, err := c.ConsistencyProof(t.Context(), older.Size, newer.Size)
	if err != nil {
		t.Fatalf("consistency proof %d..%d: %v", older.Size, newer.Size, err)
	}
	if err := merkle.VerifyConsistency(older, newer, proof); err != nil {
		t.Errorf("the checkpoint of %d leaves does not extend the one of %d: %v", newer.Size, older.Size, err)
	}
}

// checkProofs checks the inclusion proofs of some acknowledged events
// against cp, or a later checkpoint consistent with it: the events
// acknowledged last before the crash, which a lost write would hit first,
// those acknowledged after the restart, and some at random. Each event's
// leaf must also lie on the right side of the checkpoint signed before the
// crash: inside its tree when received before its horizon, outside after.
func (l *ledger) checkProofs(t *testing.T, c *client.Client, v note.Verifier, preCrash, cp *merkle.Checkpoint, cycle int) {
	t.Helper()
	l.mu.Lock()
	var lastBefore, afterRestart, random []ackedEvent
	for _, a := range l.acked {
		switch {
		case a.cycle == cycle && a.afterRestart:
			afterRestart = append(afterRestart, a)
		case a.cycle == cycle:
			lastBefore = append(lastBefore, a)
		}
		random = append(random, a)
	}
	l.mu.Unlock()
	slices.SortFunc(lastBefore, func(a, b ackedEvent) int { return b.at.Compare(a.at) })
	rand.Shuffle(len(afterRestart), func(i, j int) { afterRestart[i], afterRestart[j] = afterRestart[j], afterRestart[i] })
	rand.Shuffle(len(random), func(i, j int) { random[i], random[j] = random[j], random[i] })
	var check []ackedEvent
	for _, from := range [][]ackedEvent{lastBefore, afterRestart, random} {
		check = append(check, from[:min(len(from), provenSample/3)]...)
	}

	leaves := map[uint64]string{}
	for _, a := range check {
		// The events at the event's time: few, often just it.
		from, to := a.event.EventTime, a.event.EventTime.Add(time.Nanosecond)
		res, p, err := c.SearchEventsWithProofs(t.Context(), audittrail.SearchEventsRequest{
			Filter: audittrail.Filter{StartTime: &from, EndTime: &to}, PageSize: audittrail.MaxPageSize,
		})
		if err != nil {
			t.Fatal(err)
		}
		at, pending, err := p.Verify(v, res.Events)
		if err != nil || pending > 0 {
			t.Fatalf("proofs of the events at %s: %d pending, %v", from, pending, err)
		}
		i := slices.IndexFunc(res.Events, func(e *audittrail.Event) bool { return e.ID == a.event.ID })
		if i < 0 {
			t.Fatalf("acknowledged event %s not found at its time", a.event.ID)
		}
		if at.Size != cp.Size {
			checkConsistent(t, c, cp, at)
		}
		leaf := p.Inclusions[i].LeafIndex
		if other, ok := leaves[leaf]; ok && other != a.event.ID {
			t.Errorf("events %s and %s at the same leaf %d", other, a.event.ID, leaf)
		}
		leaves[leaf] = a.event.ID
		if inside := a.event.ReceiveTime.Before(preCrash.ReceivedBefore); inside != (leaf < preCrash.Size) {
			t.Errorf("event %s received at %s is at leaf %d; the checkpoint before the crash has %d leaves, received before %s",
				a.event.ID, a.event.ReceiveTime.Format(time.RFC3339Nano), leaf, preCrash.Size, preCrash.ReceivedBefore.Format(time.RFC3339Nano))
		}
	}
	if len(check) < provenSample/2 {
		t.Errorf("only %d events checked for proofs", len(check))
	}
}
