package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestParallelFetch: pages whose records are read in batches, on one reader
// or several, are the pages of a search that reads candidate by candidate,
// newest first, event for event and cursor for cursor, for
// random filters (one posting list, unions of lists, conditions tested on
// the records, inline values), page sizes and work budgets; and together
// they are what the brute force finds.
func TestParallelFetch(t *testing.T) {
	for _, dictLimit := range []int{0, 8} {
		t.Run(fmt.Sprintf("DictionaryLimit=%d", dictLimit), func(t *testing.T) {
			s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: dictLimit})
			defer s.Close()
			g := newGen(23)
			all := appendBatches(t, s, g, 8, 400)
			r := rand.New(rand.NewPCG(5, 6))
			before := pebblestore.ParallelFetchBatchesForTest()
			for i := range 200 {
				f := randomFilter(r, all)
				q := compile(t, f)
				limit := []int{1, 2, 5, 50, 1000}[r.IntN(5)]
				maxScan := []int{0, 0, 3, 40, 200}[r.IntN(5)]
				// Candidate by candidate, newest first: no batches.
				restore := pebblestore.SetUnbatchedFetchForTest()
				want := pages(t, s, q, limit, maxScan, 1<<30, 1, false)
				restore()
				// Batches on one reader: the threshold is never reached.
				one := pages(t, s, q, limit, maxScan, 1<<30, 1, false)
				if d := cmp.Diff(want, one, cmpopts.EquateEmpty()); d != "" {
					t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: pages differ (-one by one +batches)\n%s", i, f, limit, maxScan, d)
				}
				// Every batch of two candidates or more, on three readers.
				got := pages(t, s, q, limit, maxScan, 2, 3, false)
				if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
					t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: pages differ (-one by one +parallel)\n%s", i, f, limit, maxScan, d)
				}
				// Pages read ahead stay on one core, whatever the thresholds.
				batches := pebblestore.ParallelFetchBatchesForTest()
				ahead := pages(t, s, q, limit, maxScan, 2, 3, true)
				if pebblestore.ParallelFetchBatchesForTest() != batches {
					t.Fatalf("search %d: a read ahead read its records on several cores", i)
				}
				if d := cmp.Diff(want, ahead, cmpopts.EquateEmpty()); d != "" {
					t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: pages differ (-sequential +read ahead)\n%s", i, f, limit, maxScan, d)
				}
				var events []*audittrail.Event
				for _, p := range got {
					events = append(events, p.Events...)
				}
				if d := diff(bruteForce(all, q, nil), events); d != "" {
					t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: (-want +got)\n%s", i, f, limit, maxScan, d)
				}
			}
			if pebblestore.ParallelFetchBatchesForTest() == before {
				t.Fatal("no page was read on several cores")
			}
		})
	}
}

// TestReadAheadOneCore: pages read ahead (SearchRequest.ReadAhead) never use
// a second core, in any of the three places a search can (records read in
// batches on several readers, parallel scans, value column windows in two
// halves), and are the pages a search on all cores returns. Tiny chunks and
// windows and frozen dictionaries make every path run on a small store.
func TestReadAheadOneCore(t *testing.T) {
	defer pebblestore.SetScanChunkEventsForTest(37)()
	defer pebblestore.SetColumnWindowsForTest(37, 2)()
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 8})
	defer s.Close()
	g := newGen(31)
	all := appendBatches(t, s, g, 12, 250)
	used := func() [3]int64 {
		return [3]int64{pebblestore.ParallelFetchBatchesForTest(), pebblestore.ParallelScansForTest(), pebblestore.ColumnHalvesForTest()}
	}
	var anyResource string
	for _, e := range all {
		anyResource = e.Resource
	}
	var none, rx audittrail.Filter
	rx.Regex[audittrail.FieldResource] = regexp.QuoteMeta(anyResource[len(anyResource)/2:]) + "|/"
	filters := []audittrail.Filter{none, rx}
	r := rand.New(rand.NewPCG(9, 10))
	for range 60 {
		filters = append(filters, randomFilter(r, all))
	}
	before := used()
	for i, f := range filters {
		q := compile(t, f)
		limit := []int{5, 50, 1000}[i%3]
		cores := pages(t, s, q, limit, 0, 2, 3, false)
		at := used()
		ahead := pages(t, s, q, limit, 0, 2, 3, true)
		if got := used(); got != at {
			t.Fatalf("filter %d %+v: a read ahead used a second core (record batches, scans, column halves: %v before, %v after)", i, f, at, got)
		}
		if d := cmp.Diff(cores, ahead, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("filter %d %+v, limit %d: pages differ (-all cores +read ahead)\n%s", i, f, limit, d)
		}
	}
	// The searches on all cores did use each path, so the check above could fail.
	if after := used(); after[0] == before[0] || after[1] == before[1] || after[2] == before[2] {
		t.Fatalf("a path was never taken on several cores (record batches, scans, column halves: %v before, %v after)", before, after)
	}
}

// pages returns every page of a search whose records are read on readers
// cores when a page can use at least min candidates (as a read ahead when
// readAhead is set).
func pages(t *testing.T, s *pebblestore.Store, q *audittrail.Query, limit, maxScan, min, readers int, readAhead bool) []*audittrail.SearchResult {
	t.Helper()
	defer pebblestore.SetParallelFetchForTest(min, readers)()
	var out []*audittrail.SearchResult
	var after *audittrail.Cursor
	for {
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit, MaxScan: maxScan, ReadAhead: readAhead})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
		if res.Next == nil {
			return out
		}
		if len(out) > 100_000 {
			t.Fatal("search does not terminate")
		}
		after = res.Next
	}
}

// TestParallelFetchDuringAppends: pages read on several cores while appends
// go on hold every matching event stored before the search began, no event
// twice, newest first, each as stored.
func TestParallelFetchDuringAppends(t *testing.T) {
	defer pebblestore.SetParallelFetchForTest(2, 3)()
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(29)
	before := stored(mustAppend(t, s, g.batch(3000)))
	// The commonest event source: a long posting list, many batches.
	var f audittrail.Filter
	f.Exact[audittrail.FieldEventSource] = commonestSource(before)
	q := compile(t, f)
	want := bruteForce(before, q, nil)
	if len(want) < 200 {
		t.Fatalf("test setup: %d matches", len(want))
	}

	stop := make(chan struct{})
	appended := make(chan []*audittrail.Event)
	go func() {
		var more []*audittrail.Event
		defer func() { appended <- more }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Append(context.Background(), g.batch(50))
			if err != nil {
				t.Error(err)
				return
			}
			more = append(more, stored(res)...)
		}
	}()
	batches := pebblestore.ParallelFetchBatchesForTest()
	var drains [][]*audittrail.Event
	for i := range 12 {
		drains = append(drains, drain(t, s, q, []int{100, 333, 1000}[i%3], 0))
	}
	close(stop)
	more := <-appended
	if len(more) == 0 || pebblestore.ParallelFetchBatchesForTest() == batches {
		t.Fatalf("test setup: %d events appended meanwhile, parallel batches %d", len(more), pebblestore.ParallelFetchBatchesForTest()-batches)
	}
	all := map[string]*audittrail.Event{}
	for _, e := range append(before, more...) {
		all[e.ID] = e
	}

	for i, got := range drains {
		seen := map[string]bool{}
		for j, e := range got {
			if seen[e.ID] {
				t.Fatalf("drain %d: event %s twice", i, e.ID)
			}
			seen[e.ID] = true
			if p := got[max(j-1, 0)]; j > 0 && !(audittrail.Cursor{Time: p.EventTime.UnixNano(), Seq: p.Seq}).Before(e.EventTime.UnixNano(), e.Seq) {
				t.Fatalf("drain %d: event %d is not older than the one before", i, j)
			}
			if d := diff([]*audittrail.Event{all[e.ID]}, []*audittrail.Event{e}); d != "" || !q.Match(e) {
				t.Fatalf("drain %d: event %s is not a stored match (-stored +got)\n%s", i, e.ID, d)
			}
		}
		for _, e := range want {
			if !seen[e.ID] {
				t.Fatalf("drain %d: event %s, stored before the search, is missing", i, e.ID)
			}
		}
	}
}

// TestRecordReadersOpenAfterLists: a search opens its posting lists, then
// its record readers, so that the readers see every record the lists point
// to. Events committed in between are not in the lists' view and the search
// answers as of the lists; were the readers opened first, the lists would
// hold postings of records the readers cannot see, and the search would fail.
func TestRecordReadersOpenAfterLists(t *testing.T) {
	for _, readers := range []int{1, 3} {
		t.Run(fmt.Sprintf("readers=%d", readers), func(t *testing.T) {
			// Sequentially, or every batch of two candidates or more on
			// three readers.
			if readers > 1 {
				defer pebblestore.SetParallelFetchForTest(2, readers)()
			}
			s := openStore(t, t.TempDir())
			defer s.Close()
			g := newGen(31)
			before := stored(mustAppend(t, s, g.batch(600)))
			source := before[len(before)-1].EventSource
			q := compile(t, audittrail.Filter{Exact: exact(audittrail.FieldEventSource, source)})
			want := bruteForce(before, q, nil)
			if len(want) < 10 {
				t.Fatalf("test setup: %d matches", len(want))
			}
			var appended []*audittrail.Event
			defer pebblestore.SetListsOpenedHookForTest(func() {
				if appended != nil {
					return
				}
				batch := g.batch(50) // newer than every stored event
				for _, e := range batch {
					e.EventSource = source
				}
				appended = stored(mustAppend(t, s, batch))
			})()
			res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if appended == nil {
				t.Fatal("the search opened no posting list")
			}
			if d := diff(want, res.Events); d != "" {
				t.Fatalf("the answer is not that of the lists' view (-want +got)\n%s", d)
			}
			// The next search sees them.
			if got := drain(t, s, q, 1000, 0); len(got) != len(want)+len(appended) {
				t.Fatalf("a later search finds %d events, want %d", len(got), len(want)+len(appended))
			}
		})
	}
}

// TestDictionaryHashCollisions: with the dictionaries' value hashes made to
// clash (values.go), every value still gets its own id, written and after a
// reopen: searches with random filters find what the brute force finds.
func TestDictionaryHashCollisions(t *testing.T) {
	defer pebblestore.SetHashCollisionsForTest()()
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(37)
	all := appendBatches(t, s, g, 4, 300)
	check := func(s *pebblestore.Store, when string) {
		t.Helper()
		r := rand.New(rand.NewPCG(7, 8))
		for i := range 60 {
			f := randomFilter(r, all)
			q := compile(t, f)
			if d := diff(bruteForce(all, q, nil), drain(t, s, q, 100, 0)); d != "" {
				t.Fatalf("%s, search %d, filter %+v: (-want +got)\n%s", when, i, f, d)
			}
		}
	}
	check(s, "written")
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	check(s, "reopened")
}

// TestParallelFetchMissingRecord: a posting whose record is gone (storage
// damaged behind the store's back) fails the search, whether the page is
// read on one core or several and wherever the record falls in a reader's
// part; no page comes back with the events around it silently left out.
func TestParallelFetchMissingRecord(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	all := stored(mustAppend(t, s, newGen(31).batch(4000)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The commonest event source: a posting list long enough for a page
	// read on several cores.
	var f audittrail.Filter
	f.Exact[audittrail.FieldEventSource] = commonestSource(all)
	var evs []*audittrail.Event
	for _, e := range all {
		if e.EventSource == f.Exact[audittrail.FieldEventSource] {
			evs = append(evs, e)
		}
	}
	if len(evs) < 300 {
		t.Fatalf("the commonest event source has %d events: too few for the test", len(evs))
	}
	// Newest first, as a search returns them: the damaged record is in the
	// middle of the first page, inside a reader's part.
	slices.SortFunc(evs, func(a, b *audittrail.Event) int {
		if c := b.EventTime.Compare(a.EventTime); c != 0 {
			return c
		}
		return int(b.Seq) - int(a.Seq)
	})
	gone := evs[len(evs)/2]
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(pebblestore.RawEventKey(gone.EventTime.UnixNano(), gone.Seq), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	q := compile(t, f)
	for _, c := range []struct {
		name         string
		min, readers int
		unbatched    bool
	}{{"one by one", 1 << 30, 1, true}, {"one reader", 1 << 30, 1, false}, {"three readers", 2, 3, false}, {"two readers", 2, 2, false}} {
		t.Run(c.name, func(t *testing.T) {
			defer pebblestore.SetParallelFetchForTest(c.min, c.readers)()
			if c.unbatched {
				defer pebblestore.SetUnbatchedFetchForTest()()
			}
			batches := pebblestore.ParallelFetchBatchesForTest()
			res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 1000})
			if err == nil {
				t.Fatalf("a page of %d events without event seq %d, and no error", len(res.Events), gone.Seq)
			}
			if !strings.Contains(err.Error(), "has no record") {
				t.Fatalf("error %q, want one naming the posting without a record", err)
			}
			if parallel := pebblestore.ParallelFetchBatchesForTest() != batches; parallel != (c.readers > 1) {
				t.Fatalf("records read on several cores: %v, want %v", parallel, c.readers > 1)
			}
		})
	}
}

// commonestSource returns the event source of the most events of evs.
func commonestSource(evs []*audittrail.Event) string {
	count := map[string]int{}
	best := ""
	for _, e := range evs {
		if count[e.EventSource]++; count[e.EventSource] > count[best] {
			best = e.EventSource
		}
	}
	return best
}

// TestRetentionBetweenListsAndRecords: a retention pass that deletes
// records after a search opened its posting lists (which still hold their
// postings: a pass deletes the records first) and before it opened its
// record readers. The search leaves the deleted events out, one by one, in
// batches on one reader and on three, instead of failing with "posting ...
// has no record", and answers what is left.
func TestRetentionBetweenListsAndRecords(t *testing.T) {
	for _, mode := range []string{"one by one", "batches", "batches on three readers"} {
		t.Run(mode, func(t *testing.T) {
			switch mode {
			case "one by one":
				defer pebblestore.SetUnbatchedFetchForTest()()
			case "batches on three readers":
				defer pebblestore.SetParallelFetchForTest(2, 3)()
			}
			s := openStore(t, t.TempDir())
			defer s.Close()
			g := newGen(41)
			all := stored(mustAppend(t, s, g.batch(600)))
			// Integrated by the log, so that the pass may delete them.
			if err := s.PutTreeHashesForTest(uint64(len(all)), nil, nil); err != nil {
				t.Fatal(err)
			}
			// The commonest principal: candidates on both sides of the cutoff.
			n := map[string]int{}
			for _, e := range all {
				n[e.Principal]++
			}
			principal := all[0].Principal
			for p, c := range n {
				if c > n[principal] {
					principal = p
				}
			}
			q := compile(t, audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, principal)})
			times := make([]time.Time, len(all))
			for i, e := range all {
				times[i] = e.EventTime
			}
			slices.SortFunc(times, time.Time.Compare)
			cutoff := times[len(times)/2]
			searchAcrossPass(t, s, all, q, cutoff)
		})
	}
}

// searchAcrossPass searches q in s (holding all) with a retention pass at
// cutoff made between the opening of the search's posting stream and of its
// record readers, and checks that the answer is the events the pass left.
func searchAcrossPass(t *testing.T, s *pebblestore.Store, all []*audittrail.Event, q *audittrail.Query, cutoff time.Time) {
	t.Helper()
	left := slices.DeleteFunc(slices.Clone(all), func(e *audittrail.Event) bool {
		return e.EventTime.Before(cutoff) && e.Seq != uint64(len(all)) // the last seq is kept
	})
	want := bruteForce(left, q, nil)
	if deleted := len(bruteForce(all, q, nil)) - len(want); deleted < 5 || len(want) < 5 {
		t.Fatalf("test setup: %d matching events to delete, %d to keep", deleted, len(want))
	}
	passed := false
	defer pebblestore.SetListsOpenedHookForTest(func() {
		if passed {
			return
		}
		passed = true
		if res, err := s.Expire(context.Background(), cutoff); err != nil || res.Deleted == 0 {
			t.Errorf("Expire: %+v, %v", res, err)
		}
	})()
	res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !passed {
		t.Fatal("the search opened no posting stream")
	}
	if d := diff(want, res.Events); d != "" {
		t.Fatalf("the answer is not the events left after the pass (-want +got)\n%s", d)
	}
}

// TestRetentionBetweenColumnAndRecords is TestRetentionBetweenListsAndRecords
// for candidates from the value column: a regex over inline resources (a
// dictionary of 8 values leaves nearly all of them inline), whose plan reads
// the column, sees the column as it was before the pass, and must leave out
// the candidates whose records the pass deleted.
func TestRetentionBetweenColumnAndRecords(t *testing.T) {
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 8})
	defer s.Close()
	all := stored(mustAppend(t, s, newGen(43).batch(600)))
	if err := s.PutTreeHashesForTest(uint64(len(all)), nil, nil); err != nil {
		t.Fatal(err)
	}
	times := make([]time.Time, len(all))
	for i, e := range all {
		times[i] = e.EventTime
	}
	slices.SortFunc(times, time.Time.Compare)
	cutoff := times[len(times)/2]
	// Inline resources of events on both sides of the cutoff.
	dict, _, _ := s.DictionaryValuesForTest()
	var before, after []string
	for _, e := range all {
		if dict[audittrail.FieldResource][e.Resource] {
			continue
		}
		if e.EventTime.Before(cutoff) && len(before) < 10 {
			before = append(before, regexp.QuoteMeta(e.Resource))
		} else if !e.EventTime.Before(cutoff) && len(after) < 10 {
			after = append(after, regexp.QuoteMeta(e.Resource))
		}
	}
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = "^(?:" + strings.Join(append(before, after...), "|") + ")$"
	searchAcrossPass(t, s, all, compile(t, f), cutoff)
}
