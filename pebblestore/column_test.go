package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestColumnUpgrade opens stores written before the value column (format
// 1): Open builds the column, once, and regex searches over inline values
// find every match. A build interrupted after writing the column (the
// format still says 1) is started over, not added to: a duplicated entry
// would return an event twice.
func TestColumnUpgrade(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", keep), func(t *testing.T) {
			defer pebblestore.SetColumnWindowsForTest(50, 2)()
			cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 8}
			s := openStoreConfig(t, cfg)
			g := newGen(21)
			all := appendBatches(t, s, g, 6, 250)
			if err := s.DowngradeForTest(keep); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStoreConfig(t, cfg)
			defer s.Close()
			r := rand.New(rand.NewPCG(3, 4))
			for i := range 200 {
				var f audittrail.Filter
				e := all[r.IntN(len(all))]
				fld := []audittrail.Field{audittrail.FieldResource, audittrail.FieldSourceIP, audittrail.FieldPrincipal}[r.IntN(3)]
				v := e.Value(fld)
				f.Regex[fld] = regexp_QuoteMeta(v[len(v)/2:]) + "$"
				q := compile(t, f)
				if d := diff(bruteForce(all, q, nil), drain(t, s, q, []int{1, 50}[r.IntN(2)], []int{0, 7}[r.IntN(2)])); d != "" {
					t.Fatalf("search %d, regex %q on %s: (-want +got)\n%s", i, f.Regex[fld], fld, d)
				}
			}
		})
	}
}

// TestColumnTimeLimits: events at the first and last storable times are
// found through the value column, with the widest time range a query can
// have (the column's bucket bounds near the end of 64-bit nanoseconds).
func TestColumnTimeLimits(t *testing.T) {
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 1})
	defer s.Close()
	// Enough other events for the planner to prefer the column to a scan.
	events := newGen(31).batch(3000)
	times := []time.Time{audittrail.MinEventTime, audittrail.MinEventTime.Add(time.Nanosecond),
		audittrail.MaxEventTime.Add(-time.Nanosecond), audittrail.MaxEventTime.Add(-time.Hour),
		audittrail.MaxEventTime.Add(-time.Nanosecond), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, tm := range times {
		events[i].EventTime = tm
		events[i].Resource = fmt.Sprintf("//svc/things/thing-%d", i)
	}
	all := stored(mustAppend(t, s, events))
	start, end := audittrail.MinEventTime, audittrail.MaxEventTime
	for _, expr := range []string{"thing-[0-9]$", "thing-[15]$", "nothing"} {
		var f audittrail.Filter
		f.StartTime, f.EndTime = &start, &end
		f.Regex[audittrail.FieldResource] = expr
		q := compile(t, f)
		for _, maxScan := range []int{0, 1, 2} {
			if d := diff(bruteForce(all, q, nil), drain(t, s, q, 2, maxScan)); d != "" {
				t.Fatalf("regex %q, maxScan %d: (-want +got)\n%s", expr, maxScan, d)
			}
		}
	}
}

// TestColumnMetadata: a regex over a metadata key whose pairs are mostly
// inline (the key froze: a request id) reads the value column's pairs of
// that key only, also after the column is rebuilt from the records.
func TestColumnMetadata(t *testing.T) {
	cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 16}
	s := openStoreConfig(t, cfg)
	events := newGen(41).batch(3000)
	r := rand.New(rand.NewPCG(7, 8))
	for _, e := range events {
		e.Metadata = map[string]string{
			"request_id": fmt.Sprintf("%016x", r.Uint64()),
			"trace_id":   fmt.Sprintf("%016x", r.Uint64()), // another frozen key: its pairs must not match
		}
	}
	all := stored(mustAppend(t, s, events))
	check := func(s *pebblestore.Store) {
		t.Helper()
		for _, expr := range []string{"^ab", "ff$", "^0123", "zz"} {
			var f audittrail.Filter
			f.MetadataRegex = map[string]string{"request_id": expr}
			q := compile(t, f)
			want := bruteForce(all, q, nil)
			if expr == "^ab" && len(want) == 0 {
				t.Fatal("test setup: no request id starts with ab")
			}
			for _, maxScan := range []int{0, 100} {
				if d := diff(want, drain(t, s, q, 50, maxScan)); d != "" {
					t.Fatalf("metadata_regex request_id %q, maxScan %d: (-want +got)\n%s", expr, maxScan, d)
				}
			}
		}
	}
	check(s)
	if err := s.DowngradeForTest(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreConfig(t, cfg)
	defer s.Close()
	check(s)
}

// TestColumnResume: a request whose budget runs out while the value column
// has matches at hand that are yet to be examined (those of the window it
// read last) examines them past the budget, up to maxScan/64, and resumes
// below that window; beyond, it resumes just above the first match not
// examined (Next is one seq above it), not at the last candidate examined:
// the next request would read again every window in between. The pages are
// those of a search without a budget.
func TestColumnResume(t *testing.T) {
	defer pebblestore.SetColumnWindowsForTest(64, 1<<30)()
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 1})
	defer s.Close()
	events := newGen(51).batch(3000)
	base := events[0].EventTime
	for i, e := range events {
		// 14 events per bucket of 69 s: a window of 64 entries
		// spans 4 or 5 buckets.
		e.EventTime = base.Add(time.Duration(i) * 5 * time.Second)
		e.Resource = fmt.Sprintf("//svc/things/thing-%d", i)
		if i%20 == 10 { // not the first: the only value in the dictionary
			e.Resource += "-hit"
		}
	}
	all := stored(mustAppend(t, s, events))
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = "-hit$"
	q := compile(t, f)
	want := bruteForce(all, q, nil)
	if len(want) != 150 {
		t.Fatalf("test setup: %d matches, want 150", len(want))
	}
	// A window of 64 entries holds 3 or 4 matches: a budget of 100 lets 1
	// be examined past it, one of 640 lets 10.
	for _, maxScan := range []int{100, 640} {
		if d := diff(want, drain(t, s, q, 1000, maxScan)); d != "" {
			t.Fatalf("maxScan %d: (-want +got)\n%s", maxScan, d)
		}
		var got []*audittrail.Event
		var after *audittrail.Cursor
		atCandidate, requests := 0, 0
		for {
			res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: 1000, MaxScan: maxScan})
			if err != nil {
				t.Fatal(err)
			}
			requests++
			if after != nil && after.Seq != 0 {
				// The previous request stopped at a candidate: this
				// one starts with it.
				atCandidate++
				if len(res.Events) == 0 {
					t.Fatalf("maxScan %d: resumed at %+v: no event", maxScan, *after)
				}
				if e := res.Events[0]; e.EventTime.UnixNano() != after.Time || e.Seq+1 != after.Seq {
					t.Fatalf("maxScan %d: resumed at %+v: first event (%d, %d), want the candidate just below", maxScan, *after, e.EventTime.UnixNano(), e.Seq)
				}
			}
			got = append(got, res.Events...)
			if res.Next == nil {
				break
			}
			after = res.Next
		}
		if d := diff(want, got); d != "" {
			t.Fatalf("maxScan %d: (-want +got)\n%s", maxScan, d)
		}
		switch {
		case maxScan == 100 && atCandidate == 0:
			t.Fatal("test setup: no request stopped at a candidate")
		case maxScan == 640 && atCandidate > 0:
			t.Fatalf("maxScan 640: %d of %d requests stopped at a candidate", atCandidate, requests)
		}
	}
}

// TestColumnPrefixes: inline values split at their last '/' into a prefix
// dictionary's value and the rest (storage format 7) are found by regexes
// whose literal lies in the prefix, in the rest, across the '/' between
// them (also when the prefix ends with '/'), or that have no
// literal, over time ranges and page sizes; values whose prefix came after
// the prefix dictionary filled up, or is too short, are stored whole and
// found alike; and a store whose column holds format 6's entries, opened by
// this build, finds both kinds, also after a reopen.
func TestColumnPrefixes(t *testing.T) {
	defer pebblestore.SetColumnWindowsForTest(50, 2)()
	const limit = 24
	cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: limit}
	s := openStoreConfig(t, cfg)
	s.WriteFormat6ForTest()
	r := rand.New(rand.NewPCG(9, 10))
	// A prefix ending in '/', one too short for the dictionary, then
	// more than it can hold.
	parents := []string{"//svc/dir/", "//a/b"}
	for i := range 30 {
		parents = append(parents, fmt.Sprintf("//svc%d/workspaces/w%d/apps", i%3, i))
	}
	g := newGen(61)
	// batch returns n events with resources under the first np parents.
	batch := func(n, np int) []*audittrail.Event {
		events := g.batch(n)
		for i, e := range events {
			// Actions and metadata from the dictionaries, so that
			// the first prefixes are the parents, in order.
			e.Action = fmt.Sprintf("actions/svc/things/VERB%d", i%3)
			e.Metadata = nil
			e.Resource = parents[i%np] + fmt.Sprintf("/item-%d", r.IntN(3000))
			if i >= np && r.IntN(10) == 0 {
				e.Resource = fmt.Sprintf("item-%d", r.IntN(3000)) // no '/'
			}
		}
		return events
	}
	all := stored(mustAppend(t, s, batch(1000, len(parents))))
	s = reopenAsFormat(t, s, cfg, 6)
	all = append(all, stored(mustAppend(t, s, batch(500, 12)))...)
	keys, err := s.ColumnKeysForTest()
	if err != nil || keys[2] == 0 || keys[3] == 0 {
		t.Fatalf("column keys by last byte %v (%v), want both format 6's (2) and 7's (3)", keys, err)
	}
	if n := len(s.ColumnPrefixesForTest()); n >= limit {
		t.Fatalf("test setup: the prefix dictionary is full (%d) before the second round", n)
	}
	exprs := []string{
		"^//svc1/workspaces/w4/",     // in the prefix, anchored
		"w7/apps",                    // in the prefix
		"/item-2[0-9][0-9]$",         // in the rest
		"apps/item-4[0-9]$",          // across the '/'
		"dir//item-1",                // across the second of two '/'s
		"^item-2",                    // no '/': stored whole
		"b/item-7",                   // across the '/' of a prefix too short
		"[0-9]7$",                    // no literal
		"w1[0-9]/apps/item-[0-9]+9$", // prefixes of several parents and the rest
		"w2[5-9]/apps/item-1",        // across the '/', parents stored whole
		"nothing",
	}
	check := func(when string) {
		t.Helper()
		var times []time.Time
		for _, e := range all {
			times = append(times, e.EventTime)
		}
		slices.SortFunc(times, time.Time.Compare)
		for i, expr := range exprs {
			var f audittrail.Filter
			f.Regex[audittrail.FieldResource] = expr
			if i%2 == 1 {
				// About half the events, in the middle of their times.
				a, b := times[len(times)/8+r.IntN(len(times)/4)], times[len(times)*5/8+r.IntN(len(times)/4)]
				f.StartTime, f.EndTime = &a, &b
			}
			q := compile(t, f)
			want := bruteForce(all, q, nil)
			if len(want) == 0 && expr != "nothing" {
				t.Fatalf("test setup: no resource matches %q", expr)
			}
			for _, size := range []int{7, 1000} {
				if d := diff(want, drain(t, s, q, size, 0)); d != "" {
					t.Fatalf("%s: regex %q, pages of %d: (-want +got)\n%s", when, expr, size, d)
				}
			}
		}
	}
	check("format 6 store, then format 7")
	// More prefixes, until the dictionary is full: the searches'
	// classification of the prefixes (cached) is extended to the new ones.
	for range 3 {
		all = append(all, stored(mustAppend(t, s, batch(500, len(parents))))...)
	}
	check("format 6 store, then format 7, more prefixes")
	prefixes := s.ColumnPrefixesForTest()
	if len(prefixes) != limit {
		t.Fatalf("%d prefixes, want the dictionary full (%d)", len(prefixes), limit)
	}
	// The dictionary is shared by the fields (inline principals have
	// prefixes too): the first parents are in it, the last are not.
	in := 0
	for _, p := range parents {
		if slices.Contains(prefixes, p) {
			in++
		}
	}
	if !slices.Contains(prefixes, parents[0]) || slices.Contains(prefixes, parents[1]) || in < 15 || in == len(parents)-1 {
		t.Fatalf("prefixes %q: want %q, not %q, and some of the other parents, not all", prefixes, parents[0], parents[1])
	}
	s.Close()
	s = openStoreConfig(t, cfg)
	defer s.Close()
	if got := s.ColumnPrefixesForTest(); !slices.Equal(got, prefixes) {
		t.Fatalf("prefixes after reopening %q, want %q", got, prefixes)
	}
	check("reopened")
}

// TestColumnPrefixesWhileAppending: searches of the value column running
// while appends add new prefixes see every prefix their entries refer to
// (the writer publishes a prefix before the batch that uses it commits; a
// missing one would be reported as a corrupt entry), and find every event
// appended before they started.
func TestColumnPrefixesWhileAppending(t *testing.T) {
	// The resource dictionary freezes after 2,048 values: the other
	// resources are inline, in the column, each under a new parent.
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 1 << 11})
	defer s.Close()
	g := newGen(71)
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = "/item-7$"
	q := compile(t, f)
	done := make(chan error)
	var mu sync.Mutex
	var all []*audittrail.Event
	go func() {
		defer close(done)
		for b := range 40 {
			events := g.batch(100)
			for i, e := range events {
				// A new parent every two events (a prefix enters the
				// dictionary when seen twice): most prefixes are new to
				// the dictionary when their batch commits. Matches only
				// after the resource dictionary froze, so that the
				// planner reads the column rather than the records.
				name := "thing"
				if b >= 25 {
					name = "item"
				}
				e.Resource = fmt.Sprintf("//svc/workspaces/w%d/apps/%s-%d", b*50+i/2, name, i%10)
			}
			res, err := s.Append(context.Background(), events)
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			all = append(all, stored(res)...)
			mu.Unlock()
		}
	}()
	for searching := true; searching; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			searching = false
		default:
		}
		mu.Lock()
		before := slices.Clone(all)
		mu.Unlock()
		got := drain(t, s, q, 50, 0)
		for _, e := range bruteForce(before, q, nil) {
			if !slices.ContainsFunc(got, func(x *audittrail.Event) bool { return x.ID == e.ID }) {
				t.Fatalf("event %s (%s), appended before the search, not found", e.ID, e.Resource)
			}
		}
	}
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 50, 0)); d != "" {
		t.Fatalf("after the appends: (-want +got)\n%s", d)
	}
	if n := len(s.ColumnPrefixesForTest()); n < 900 {
		t.Fatalf("test setup: %d prefixes", n)
	}
}

// TestColumnPrefixesSeenTwice: a prefix enters the value column's prefix
// dictionary the second time it is seen, so that parent paths used once
// (an id at every level) do not fill and freeze it; values under a prefix
// seen once are stored whole and found alike.
func TestColumnPrefixesSeenTwice(t *testing.T) {
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 64})
	defer s.Close()
	events := newGen(81).batch(2000)
	for i, e := range events {
		e.Action = "actions/svc/things/GET"                             // in the dictionary: no action prefixes
		e.Resource = fmt.Sprintf("//svc/users/u%d/keys/key-%d", i, i%7) // every parent once
		if i%2 == 0 {
			e.Resource = fmt.Sprintf("//svc/apps/app%d/versions/v-%d", i/2%10, i%7) // ten parents, many times
		}
	}
	all := stored(mustAppend(t, s, events))
	prefixes := s.ColumnPrefixesForTest()
	for i := range 10 {
		if p := fmt.Sprintf("//svc/apps/app%d/versions", i); !slices.Contains(prefixes, p) {
			t.Fatalf("prefix %q, seen 100 times, not in the dictionary %q", p, prefixes)
		}
	}
	for _, p := range prefixes {
		if strings.HasPrefix(p, "//svc/users/") {
			t.Fatalf("prefix %q, seen once, is in the dictionary", p)
		}
	}
	for _, expr := range []string{"u1[0-9]/keys/key-3$", "app3/versions/v-4", "/v-5$"} {
		var f audittrail.Filter
		f.Regex[audittrail.FieldResource] = expr
		q := compile(t, f)
		want := bruteForce(all, q, nil)
		if len(want) == 0 {
			t.Fatalf("test setup: no resource matches %q", expr)
		}
		if d := diff(want, drain(t, s, q, 10, 0)); d != "" {
			t.Fatalf("regex %q: (-want +got)\n%s", expr, d)
		}
	}
}
