// Package storetest is the conformance suite of audittrail.Store. Every
// storage engine runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunHarness(t, storetest.Harness{
//			Open: func(t *testing.T, dir string) audittrail.Store {
//				s, err := mystore.Open(t.Context(), mystore.Config{Dir: dir})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//		})
//	}
//
// The suite defines the behaviour of a store in detail: sequence numbers,
// idempotent retries and conflicts, durability, newest-first order with ties
// broken by sequence number, cursors, look-ahead, the MaxScan work bound, and
// the meaning of every filter field. Where the behaviour belongs to
// audittrail.Service (page sizes, defaults, page tokens) the suite tests it
// through a Service over the store, so that each engine is proven to work
// with the real rules on top of it.
//
// Every subtest opens a fresh store. The random tests (the oracle) log their
// seed; set STORETEST_SEED to replay one.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/audittrail/audittrail"
)

// Harness describes the store under test.
type Harness struct {
	// Open opens the store whose files live in dir. The suite passes a new
	// empty directory for a new store, and the same directory again, after
	// Close, to reopen it (the durability tests). The suite closes every
	// store it opens, so Open must not register a Close of its own.
	Open func(t *testing.T, dir string) audittrail.Store
}

// Run runs the conformance suite on stores made by open, each subtest on a
// fresh one. The suite closes the stores. Run cannot reopen a store, so it
// skips the durability tests; stores that keep files use RunHarness.
func Run(t *testing.T, open func(t *testing.T) audittrail.Store) {
	t.Helper()
	run(t, Harness{Open: func(t *testing.T, _ string) audittrail.Store { return open(t) }}, false)
}

// RunHarness runs the whole conformance suite, durability tests included.
func RunHarness(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	run(t, h, true)
}

func run(t *testing.T, h Harness, reopen bool) {
	s := &suite{h: h, reopen: reopen}
	t.Run("Append", s.testAppend)
	t.Run("Durability", s.testDurability)
	t.Run("Search", s.testSearch)
	t.Run("Filter", s.testFilter)
	t.Run("Service", s.testService)
	t.Run("Paging", s.testPaging)
	t.Run("MaxScan", s.testMaxScan)
	t.Run("Oracle", s.testOracle)
	t.Run("Expire", s.testExpire)
}

type suite struct {
	h      Harness
	reopen bool
}

// fixture is one store under test, with what a subtest needs around it.
type fixture struct {
	t      *testing.T
	h      Harness
	dir    string
	store  audittrail.Store
	closed bool
}

func (s *suite) open(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, h: s.h, dir: t.TempDir()}
	f.store = s.h.Open(t, f.dir)
	if f.store == nil {
		t.Fatal("Harness.Open returned a nil store")
	}
	t.Cleanup(func() {
		if !f.closed {
			f.closed = true
			if err := f.store.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return f
}

// reopenStore closes the store and opens it again from the same directory.
func (f *fixture) reopenStore() {
	f.t.Helper()
	f.closed = true
	if err := f.store.Close(); err != nil {
		f.t.Fatalf("Close: %v", err)
	}
	f.store = f.h.Open(f.t, f.dir)
	if f.store == nil {
		f.t.Fatal("Harness.Open returned a nil store on reopen")
	}
	f.closed = false
}

// append stores events that must all be new or retries, and returns the
// stored events.
func (f *fixture) append(events ...*audittrail.Event) []*audittrail.Event {
	f.t.Helper()
	return mustAppend(f.t, f.store, events...)
}

func mustAppend(t testing.TB, st audittrail.Store, events ...*audittrail.Event) []*audittrail.Event {
	t.Helper()
	res, err := st.Append(context.Background(), events)
	if err != nil {
		t.Fatalf("Append(%d events): %v", len(events), err)
	}
	if len(res) != len(events) {
		t.Fatalf("Append(%d events) returned %d results", len(events), len(res))
	}
	out := make([]*audittrail.Event, len(res))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Append: event %d (%s): %v", i, events[i].ID, r.Err)
		}
		if r.Event == nil {
			t.Fatalf("Append: event %d (%s): nil Event and nil Err", i, events[i].ID)
		}
		out[i] = r.Event
	}
	return out
}

// --- Times and services ---------------------------------------------------

var (
	// now is the clock of every Service of the suite: the default end of a
	// search range.
	now = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	// base is a time well inside the default range.
	base = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)

	key1 = bytes.Repeat([]byte{1}, audittrail.PageTokenKeySize)
	key2 = bytes.Repeat([]byte{2}, audittrail.PageTokenKeySize)

	// everything is a time range holding every storable event.
	everything = audittrail.Filter{StartTime: ptr(audittrail.MinEventTime), EndTime: ptr(audittrail.MaxEventTime)}
)

func newService(st audittrail.Store, key []byte) *audittrail.Service {
	return &audittrail.Service{Store: st, PageTokenKey: key, Now: func() time.Time { return now }}
}

func as(name string) context.Context {
	return audittrail.NewContextWithPrincipal(context.Background(),
		&audittrail.Principal{Name: name, Roles: []audittrail.Role{audittrail.RoleAuditor}})
}

func ptr[T any](v T) *T { return &v }

// --- Events -----------------------------------------------------------------

// idOf returns a valid UUIDv4 that encodes n, so that failures name events
// readably.
func idOf(n uint64) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

// ids is a source of fresh event ids, safe for concurrent use.
type ids struct {
	mu sync.Mutex
	n  uint64
}

func (g *ids) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return idOf(g.n)
}

type opt func(*audittrail.NewEvent)

// mkEvent builds a prepared event (as audittrail.PrepareNewEvent returns it)
// at time at, with defaults changed by opts.
func mkEvent(t testing.TB, id string, at time.Time, opts ...opt) *audittrail.Event {
	t.Helper()
	in := audittrail.NewEvent{Event: audittrail.Event{
		EventTime:   at,
		EventSource: "h2oai-enginemanager-server",
		Action:      "actions/enginemanager/daiEngines/CREATE",
		Principal:   "users/alice",
		SourceIP:    "1.1.1.1",
		Resource:    "//engine-manager/workspaces/w1/daiEngines/e1",
		Status:      &audittrail.Status{Code: 0},
		Type:        audittrail.TypeAPI,
	}}
	for _, o := range opts {
		o(&in)
	}
	e, err := audittrail.PrepareNewEvent(id, in, at.Add(1234567891*time.Nanosecond), false)
	if err != nil {
		t.Fatalf("PrepareNewEvent(%s): %v", id, err)
	}
	return e
}

// asStored returns copies of events as a store must store them when they
// are appended in this order right after an event received at prev (zero
// for an empty store): with consecutive sequence numbers from first, and
// each receive time raised to one nanosecond after the one before when it
// is not later already (the Store contract, Append).
func asStored(prev time.Time, first uint64, events ...*audittrail.Event) []*audittrail.Event {
	out := make([]*audittrail.Event, len(events))
	for i, e := range events {
		c := e.Clone()
		c.Seq = first + uint64(i)
		if !prev.IsZero() && !c.ReceiveTime.After(prev) {
			c.ReceiveTime = prev.Add(time.Nanosecond)
		}
		prev = c.ReceiveTime
		out[i] = c
	}
	return out
}

func withAction(a string) opt { return func(n *audittrail.NewEvent) { n.Event.Action = a } }

// --- Order and comparison ---------------------------------------------------

// position is an event's place in the newest-first order.
type position struct {
	t   int64
	seq uint64
}

func pos(e *audittrail.Event) position { return position{e.EventTime.UnixNano(), e.Seq} }

// comparePos orders positions newest first: negative when a comes first.
func comparePos(a, b position) int {
	if c := cmp.Compare(b.t, a.t); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}

func cursorPos(c *audittrail.Cursor) position { return position{c.Time, c.Seq} }

// newestFirst returns events sorted newest first, by (event_time, seq) both
// descending.
func newestFirst(events []*audittrail.Event) []*audittrail.Event {
	out := slices.Clone(events)
	slices.SortFunc(out, func(a, b *audittrail.Event) int { return comparePos(pos(a), pos(b)) })
	return out
}

func idsOf(events []*audittrail.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// eventOpts compares events field by field; nil and empty maps are the same
// content.
var eventOpts = gocmp.Options{cmpopts.EquateEmpty()}

// diffEvents reports the differences between two event lists.
func diffEvents(want, got []*audittrail.Event) string {
	if d := gocmp.Diff(idsOf(want), idsOf(got)); d != "" {
		return "event ids (-want +got):\n" + d
	}
	if d := gocmp.Diff(want, got, eventOpts); d != "" {
		return "event contents (-want +got):\n" + d
	}
	return ""
}

// checkStrictOrder fails when events are not in strictly newest-first order
// (which also rules out duplicates).
func checkStrictOrder(t testing.TB, events []*audittrail.Event) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if comparePos(pos(events[i-1]), pos(events[i])) >= 0 {
			t.Fatalf("events %d (%s, %v, seq %d) and %d (%s, %v, seq %d) are not in strictly newest-first order",
				i-1, events[i-1].ID, events[i-1].EventTime, events[i-1].Seq, i, events[i].ID, events[i].EventTime, events[i].Seq)
		}
	}
}

// --- Searching --------------------------------------------------------------

func compile(t testing.TB, f audittrail.Filter) *audittrail.Query {
	t.Helper()
	q, err := f.Compile(now)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return q
}

// searchAll drains a search on the store directly and checks the cursor
// invariants on the way: cursors move strictly forward and the result is in
// strictly newest-first order.
func searchAll(t testing.TB, st audittrail.Store, q *audittrail.Query, limit, maxScan int) []*audittrail.Event {
	t.Helper()
	var out []*audittrail.Event
	var after *audittrail.Cursor
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatal("search did not finish after 100000 pages")
		}
		res, err := st.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit, MaxScan: maxScan})
		if err != nil {
			t.Fatalf("Search page %d: %v", page, err)
		}
		if len(res.Events) > limit {
			t.Fatalf("Search page %d: %d events, more than the limit %d", page, len(res.Events), limit)
		}
		out = append(out, res.Events...)
		if res.Next == nil {
			break
		}
		if after != nil && comparePos(cursorPos(after), cursorPos(res.Next)) >= 0 {
			t.Fatalf("Search page %d: cursor did not move forward: after %+v, next %+v", page, *after, *res.Next)
		}
		if n := len(res.Events); n > 0 && comparePos(pos(res.Events[n-1]), cursorPos(res.Next)) > 0 {
			t.Fatalf("Search page %d: next cursor %+v is before the last returned event (%v, seq %d)", page, *res.Next, res.Events[n-1].EventTime, res.Events[n-1].Seq)
		}
		after = res.Next
	}
	checkStrictOrder(t, out)
	return out
}

// drain runs a search through the service until the last page and checks the
// page invariants: at most the page size per page, searched_until within the
// range and moving backwards, equal to the start on the last page.
func drain(t testing.TB, ctx context.Context, svc *audittrail.Service, f audittrail.Filter, pageSize int) []*audittrail.Event {
	t.Helper()
	events, _ := drainPages(t, ctx, svc, f, pageSize)
	return events
}

func drainPages(t testing.TB, ctx context.Context, svc *audittrail.Service, f audittrail.Filter, pageSize int) ([]*audittrail.Event, []*audittrail.SearchEventsResponse) {
	t.Helper()
	q := compile(t, f) // the range the service resolves (its clock is fixed)
	size := pageSize
	switch {
	case size == 0:
		size = audittrail.DefaultPageSize
	case size > audittrail.MaxPageSize:
		size = audittrail.MaxPageSize
	}
	var out []*audittrail.Event
	var pages []*audittrail.SearchEventsResponse
	token := ""
	prevUntil := q.End
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatal("search did not finish after 100000 pages")
		}
		resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: f, PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatalf("SearchEvents page %d: %v", page, err)
		}
		pages = append(pages, resp)
		if len(resp.Events) > size {
			t.Fatalf("SearchEvents page %d: %d events, more than the page size %d", page, len(resp.Events), size)
		}
		if resp.SearchedUntil.Before(q.Start) || resp.SearchedUntil.After(prevUntil) {
			t.Fatalf("SearchEvents page %d: searched_until %v is outside [start %v, previous %v]", page, resp.SearchedUntil, q.Start, prevUntil)
		}
		prevUntil = resp.SearchedUntil
		out = append(out, resp.Events...)
		if resp.NextPageToken == "" {
			if !resp.SearchedUntil.Equal(q.Start) {
				t.Fatalf("SearchEvents last page: searched_until %v, want the start %v", resp.SearchedUntil, q.Start)
			}
			break
		}
		token = resp.NextPageToken
	}
	checkStrictOrder(t, out)
	return out, pages
}

func wantCode(t testing.TB, err error, code string, what string) {
	t.Helper()
	if got := audittrail.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}
