package pebblestore_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/pebblestore"
)

// Benchmarks run on a generated data set of AUDITTRAIL_BENCH_EVENTS events
// (default 200,000; the targets are stated for 10,000,000). Building the set
// takes a while at full size: set AUDITTRAIL_BENCH_DIR to keep it between
// runs (it is reused when it holds the requested number of events).
//
//	go test -run '^$' -bench . ./pebblestore/
//	AUDITTRAIL_BENCH_EVENTS=10000000 AUDITTRAIL_BENCH_DIR=/var/tmp/at10m go test -run '^$' -bench Search -benchtime 200x -timeout 2h ./pebblestore/

var bench struct {
	once  sync.Once
	store *pebblestore.Store
	n     int
	err   error
	temp  string // a data set directory to remove at exit
}

// TestMain removes the benchmarks' temporary data set at exit.
func TestMain(m *testing.M) {
	code := m.Run()
	removeCheckStores()
	if bench.store != nil {
		bench.store.Close()
	}
	if bench.temp != "" {
		os.RemoveAll(bench.temp)
	}
	os.Exit(code)
}

func benchEvents() int {
	if s := os.Getenv("AUDITTRAIL_BENCH_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err == nil && n > 0 {
			return n
		}
	}
	return 200_000
}

// benchStore returns the shared data set, building it on first use.
func benchStore(b *testing.B) *pebblestore.Store {
	b.Helper()
	bench.once.Do(func() {
		n := benchEvents()
		dir := os.Getenv("AUDITTRAIL_BENCH_DIR")
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "pebblestore-bench-"); err != nil {
				bench.err = err
				return
			}
			bench.temp = dir
		}
		dir = filepath.Join(dir, strconv.Itoa(n))
		s, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: dir})
		if err != nil {
			bench.err = err
			return
		}
		if have := int(s.Stats().Events); have != n {
			if have != 0 {
				bench.err = fmt.Errorf("%s holds %d events, not %d", dir, have, n)
				return
			}
			start := time.Now()
			g := newGen(42)
			for done := 0; done < n; {
				k := min(1000, n-done)
				res, err := s.Append(context.Background(), g.batch(k))
				if err != nil {
					bench.err = err
					return
				}
				for _, r := range res {
					if r.Err != nil {
						bench.err = r.Err
						return
					}
				}
				done += k
			}
			fmt.Fprintf(os.Stderr, "built %d events in %s (%.0f events/s) in %s\n", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds(), dir)
		}
		st := s.Stats()
		fmt.Fprintf(os.Stderr, "data set: %d events, %d bytes on disk (%.0f bytes/event, value column %.0f), dictionaries %d values / %d bytes, frozen %v\n",
			st.Events, st.DiskBytes, float64(st.DiskBytes)/float64(st.Events), float64(st.ColumnDiskBytes)/float64(st.Events), st.DictionaryValues, st.DictionaryBytes, st.FrozenDictionaries)
		var line []string
		for k, v := range s.DiskUsageByPrefixForTest() {
			if v > 0 {
				line = append(line, fmt.Sprintf("%s %.1f", k, float64(v)/float64(st.Events)))
			}
		}
		slices.Sort(line)
		if len(line) == 0 {
			line = []string{"none yet (everything in the memtable)"}
		}
		fmt.Fprintf(os.Stderr, "disk bytes/event by key prefix (estimates; storage.md, Key layout): %s\n", strings.Join(line, ", "))
		bench.store, bench.n = s, n
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.store
}

var benchEnd = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkAppend1000 appends batches of 1000 new events to a fresh store,
// one call at a time (each call is one synced group commit), and with four
// concurrent callers (group commit merges their calls).
func BenchmarkAppend1000(b *testing.B) {
	for _, callers := range []int{1, 4} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			gens := make([]*gen, callers)
			for i := range gens {
				gens[i] = newGen(uint64(i + 1))
			}
			benchAppend(b, callers, func(c int) []*audittrail.Event { return gens[c].batch(1000) })
		})
	}
}

// BenchmarkAppendSample is BenchmarkAppend1000 with four callers on the
// end-to-end benchmark's events (internal/sample, as its 1M and 10M data
// sets: spread over 30 days, 0.39 and 3.9 events per second of event time),
// the callers sending consecutive batches of one stream as its producers
// do. How close in time events are decides how many postings share a block
// (postings.go).
//
//	go test -run '^$' -bench AppendSample -benchtime 500x ./pebblestore/
func BenchmarkAppendSample(b *testing.B) {
	for _, size := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("stream=%dM", size/1_000_000), func(b *testing.B) {
			g := sample.New(1, sample.Options{Events: size})
			now := time.Now()
			benchAppend(b, 4, func(int) []*audittrail.Event { return sampleBatch(b, g, now, 1000) })
		})
	}
}

// sampleBatch returns g's next n events, prepared as the server prepares
// them when it receives them at now.
func sampleBatch(b *testing.B, g *sample.Generator, now time.Time, n int) []*audittrail.Event {
	out := make([]*audittrail.Event, n)
	for i := range out {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, now, true)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// benchAppend appends b.N batches to a fresh store, callers at a time, and
// reports events/s and the process's CPU per event; batch(c) makes caller
// c's next batch, outside the timer.
func benchAppend(b *testing.B, callers int, batch func(c int) []*audittrail.Event) {
	s := openStoreConfig(b, pebblestore.Config{Dir: b.TempDir()})
	defer s.Close()
	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i += callers {
		b.StopTimer()
		batches := make([][]*audittrail.Event, callers)
		for c := range batches {
			batches[c] = batch(c)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for c := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mustAppend(b, s, batches[c])
			}()
		}
		wg.Wait()
		total += time.Since(start)
		cpu += cpuTime() - cpu0
	}
	b.ReportMetric(float64(b.N*1000)/total.Seconds(), "events/s")
	// Process CPU while appending (all goroutines, Pebble's flushes and
	// compactions included): less sensitive than events/s to other load
	// on the machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*1000), "cpu-µs/event")
}

// BenchmarkAppendSustained appends b.N batches of 1000 new events to a fresh
// store from four concurrent callers, as fast as the store takes them, and
// reports the calls' latencies: the tail shows write stalls, which appear
// only once the store is large and compactions run long. A generator
// goroutine makes the events meanwhile (a producer's share of the CPU).
//
//	go test -run '^$' -bench AppendSustained -benchtime 10000x -timeout 30m ./pebblestore/
func BenchmarkAppendSustained(b *testing.B) {
	const callers, batch = 4, 1000
	s := openStoreConfig(b, pebblestore.Config{Dir: b.TempDir()})
	defer s.Close()
	next := make(chan []*audittrail.Event, 2*callers)
	go func() {
		g := newGen(1)
		for range b.N {
			next <- g.batch(batch)
		}
		close(next)
	}()
	b.ResetTimer()
	start := time.Now()
	lat, err := sample.AppendFrom(context.Background(), s, next, callers)
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSearch(b *testing.B, s *pebblestore.Store, f audittrail.Filter, limit int) (*audittrail.SearchResult, int) {
	q, err := f.Compile(benchEnd)
	if err != nil {
		b.Fatal(err)
	}
	var res *audittrail.SearchResult
	for b.Loop() {
		res, err = s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: limit})
		if err != nil {
			b.Fatal(err)
		}
	}
	return res, len(res.Events)
}

// BenchmarkSearchExact is the first page (50) of selective and unselective
// exact-match searches.
func BenchmarkSearchExact(b *testing.B) {
	s := benchStore(b)
	g := newGen(42) // the data set's principals and workspaces
	cases := []struct {
		name string
		f    audittrail.Filter
	}{
		// A principal of middling popularity (~1 event in 2,000).
		{"principal", audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, g.principals[60])}},
		// Two conditions: the rarer drives, the other is checked by id.
		{"principal+action", audittrail.Filter{Exact: exact2(audittrail.FieldPrincipal, g.principals[3], audittrail.FieldAction, g.actions[0].name)}},
		{"workspace+status", audittrail.Filter{Exact: exact(audittrail.FieldWorkspace, "workspaces/"+g.workspaces[10]), StatusCodeRegex: "^7$"}},
		{"metadata", audittrail.Filter{MetadataExact: map[string]string{"tenant": "acme"}}},
		// No filter: the newest events, read from the primary range.
		{"none", audittrail.Filter{}},
		{"unknown", audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, "users/nobody")}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			_, n := benchSearch(b, s, c.f, 50)
			b.ReportMetric(float64(n), "results")
		})
	}
}

func exact(f audittrail.Field, v string) (e [audittrail.NumFields]string) {
	e[f] = v
	return e
}

func exact2(f1 audittrail.Field, v1 string, f2 audittrail.Field, v2 string) (e [audittrail.NumFields]string) {
	e[f1], e[f2] = v1, v2
	return e
}

// BenchmarkSearchRegexScan measures the primary scan: a regex matching half
// the principals (too many values for posting lists) with a status regex
// that matches nothing, so every search examines MaxScan events or the whole
// set. events/s is the scan rate.
//
// The inline case is a regex on resources, which are nearly unique: the
// resource dictionary is frozen and most records carry their resource
// inline, so the regex (with its literal prefilter) runs on every record.
func BenchmarkSearchRegexScan(b *testing.B) {
	s := benchStore(b)
	for _, tc := range []struct {
		name   string
		filter func(f *audittrail.Filter)
	}{
		{"dictionary", func(f *audittrail.Filter) {
			f.Regex[audittrail.FieldPrincipal] = "^users/[0-7]"
			f.StatusCodeRegex = "^99$"
		}},
		{"inline", func(f *audittrail.Filter) { f.Regex[audittrail.FieldResource] = "/no-such-document-6326$" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var f audittrail.Filter
			tc.filter(&f)
			q, err := f.Compile(benchEnd)
			if err != nil {
				b.Fatal(err)
			}
			examined := 0
			for b.Loop() {
				res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50})
				if err != nil {
					b.Fatal(err)
				}
				if res.Next != nil {
					examined += audittrail.DefaultMaxScan
				} else {
					examined += bench.n
				}
			}
			b.ReportMetric(float64(examined)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRegexDictionary measures evaluating a regex over a dictionary,
// done once per search (not per event) and then cached: here without the
// cache, as for a new regex. ns/value is the cost per distinct value.
func BenchmarkRegexDictionary(b *testing.B) {
	s := benchStore(b)
	cases := []struct {
		name, expr string
		field      audittrail.Field
		meta       string
	}{
		{"principal", "^zz1|x{3}y", audittrail.FieldPrincipal, ""},          // literals rule out every value
		{"principal-literal", "engine", audittrail.FieldPrincipal, ""},      // an unanchored literal
		{"principal-class", "[0-9a-f]{8}-0", audittrail.FieldPrincipal, ""}, // a weak literal ("-0")
		{"principal-noliteral", "^.*[xyz]{3}$", audittrail.FieldPrincipal, ""},
		{"resource", "daiEngine-12", audittrail.FieldResource, ""},
		{"resource-noliteral", "[a-z]{4}-9[0-9]{3}$", audittrail.FieldResource, ""},
		{"metadata", "^eu", 0, "region"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			re := regexp.MustCompile(c.expr)
			matched := 0
			for b.Loop() {
				matched = s.EvalRegexForTest(c.field, c.meta, re)
			}
			values := dictSize(s, c.field, c.meta)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(max(values, 1)), "ns/value")
			b.ReportMetric(float64(values), "values")
			b.ReportMetric(float64(matched), "matched")
		})
	}
}

// dictSize counts the values a regex over the dictionary evaluates: a regex
// that matches everything.
func dictSize(s *pebblestore.Store, f audittrail.Field, meta string) int {
	return s.EvalRegexForTest(f, meta, regexp.MustCompile(""))
}

// BenchmarkAppend1 is one event per Append from one caller: the latency of a
// durable single write (the self-audit record of every search takes this
// path), fsync included.
func BenchmarkAppend1(b *testing.B) {
	s := openStoreConfig(b, pebblestore.Config{Dir: b.TempDir()})
	defer s.Close()
	g := newGen(1)
	mustAppend(b, s, g.batch(10000))
	events := g.batch(b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustAppend(b, s, events[i:i+1])
	}
}

// BenchmarkSearchDrain reads every page (1,000 events each) of one
// workspace's events, newest first: the posting-list walk and one record
// read per event, as a client draining a result does.
func BenchmarkSearchDrain(b *testing.B) {
	s := benchStore(b)
	g := newGen(42)
	// A workspace of about 10,000 events in the 10M set (1 in 1,000).
	f := audittrail.Filter{Exact: exact(audittrail.FieldWorkspace, "workspaces/"+g.workspaces[100])}
	q, err := f.Compile(benchEnd)
	if err != nil {
		b.Fatal(err)
	}
	var events int
	for b.Loop() {
		events = searchAll(b, s, q, 1000, 0)
	}
	b.ReportMetric(float64(events), "results")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(max(events, 1)), "ns/event")
}

// BenchmarkSearchRegexScanAll pages through a resource regex over the whole
// data set, as a client does: every request examines up to MaxScan
// candidates (value column entries) and resumes where it stopped. ns/op is
// the time to go through everything once: with a regex that matches nothing
// and with one that matches about one resource name in 9,000 (its literal
// occurs in other names: the search looks at many more candidates).
func BenchmarkSearchRegexScanAll(b *testing.B) {
	s := benchStore(b)
	for _, c := range []struct{ name, expr string }{
		{"none", "/no-such-document-6326$"},
		{"rare", "/appInstance-1194$"},
	} {
		b.Run(c.name, func(b *testing.B) {
			matches := resourceRegexPasses(b, s, c.expr, benchEnd)
			if c.name == "none" && matches != 0 {
				b.Fatalf("%d events match a regex that matches nothing", matches)
			}
			b.ReportMetric(float64(matches), "matches")
			b.ReportMetric(float64(s.Stats().Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// resourceRegexPasses makes b.N full passes of a resource_regex search
// ending at end, paged by 1M candidates as the server pages it, and returns
// the matches of a pass.
func resourceRegexPasses(b *testing.B, s *pebblestore.Store, expr string, end time.Time) int {
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = expr
	q, err := f.Compile(end)
	if err != nil {
		b.Fatal(err)
	}
	matches := 0
	for b.Loop() {
		matches = searchAll(b, s, q, 50, 1_000_000)
	}
	return matches
}

// searchAll reads every page of q (limit events and up to maxScan
// candidates each, 0: the store's default) and returns the events.
func searchAll(b *testing.B, s *pebblestore.Store, q *audittrail.Query, limit, maxScan int) int {
	events := 0
	var after *audittrail.Cursor
	for {
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit, MaxScan: maxScan})
		if err != nil {
			b.Fatal(err)
		}
		events += len(res.Events)
		if res.Next == nil {
			return events
		}
		after = res.Next
	}
}

// BenchmarkSearchRegexSample makes full passes over the resources of the
// end-to-end benchmark's events (internal/sample, seed 1; 1M events, or
// AUDITTRAIL_BENCH_SAMPLE_EVENTS; kept under AUDITTRAIL_BENCH_DIR when set:
// sampleStore)
// with a regex whose literal has no rare byte, one whose literal has, and
// one whose literal spans a parent path (format 7's prefixes qualify, so
// every entry is parsed), each with the column's literal searched by two
// bytes at once (pair, the
// default) and by IndexByte on its rarest byte alone (indexbyte), paged by
// 1M candidates as the server does.
//
//	AUDITTRAIL_BENCH_SAMPLE_EVENTS=10000000 AUDITTRAIL_BENCH_DIR=<dir> go test -run '^$' -bench SearchRegexSample -benchtime 5x -count 3 ./pebblestore/
func BenchmarkSearchRegexSample(b *testing.B) {
	s := sampleStore(b)
	defer s.Close()
	for _, c := range []struct{ name, expr string }{
		{"common-bytes", "/app-instance-1194$"}, // rarest byte 'i', one byte in 61 of the resources
		{"rare-byte", "/vaults/[^/]+$"},         // 'v', one in 978; no match
		// A literal across a parent path and the name: the prefixes of
		// that parent qualify, and every entry of the column is parsed.
		{"in-parent", "/workspaces/eb688285-2f57-4281-a194-00ced36b9101/appInstances/app-instance-11[0-9][0-9]$"},
	} {
		for _, mode := range []struct {
			name string
			rate int
		}{{"pair", -1}, {"indexbyte", 0}} {
			b.Run(c.name+"/"+mode.name, func(b *testing.B) {
				if mode.rate >= 0 {
					defer pebblestore.SetPairAnchorRateForTest(mode.rate)()
				}
				b.ReportMetric(float64(resourceRegexPasses(b, s, c.expr, sample.DefaultEnd)), "matches")
			})
		}
	}
}

// sampleStore opens a store of internal/sample's events, 1M of them or
// AUDITTRAIL_BENCH_SAMPLE_EVENTS, filled when it is new: in a temporary
// directory, or kept under AUDITTRAIL_BENCH_DIR for the next runs.
func sampleStore(b *testing.B) *pebblestore.Store { return sampleStoreFormat(b, false) }

// sampleStoreFormat is sampleStore, with the posting lists written as
// format 7 did (without epochs) when format7 is set.
func sampleStoreFormat(b *testing.B, format7 bool) *pebblestore.Store {
	n := envInt("AUDITTRAIL_BENCH_SAMPLE_EVENTS", 1_000_000)
	dir := b.TempDir()
	if d := os.Getenv("AUDITTRAIL_BENCH_DIR"); d != "" {
		dir = filepath.Join(d, fmt.Sprintf("sample-%d", n))
		if format7 {
			dir += "-format7"
		}
	}
	s := openStoreConfig(b, pebblestore.Config{Dir: dir})
	if have := int(s.Stats().Events); have != n {
		if have != 0 {
			b.Fatalf("%s holds %d events, not %d", dir, have, n)
		}
		if format7 {
			s.WriteFormat7ForTest()
		}
		g := sample.New(1, sample.Options{Events: n})
		now := time.Now()
		for done := 0; done < n; done += 1000 {
			mustAppend(b, s, sampleBatch(b, g, now, min(1000, n-done)))
		}
	}
	return s
}

// BenchmarkSearchSampleEpochs is the first page (50) of exact searches over
// internal/sample's 30 days (sampleStore), on a store whose posting lists
// are under epochs of event time (format 8) and on one written as format 7
// did, side by side. A rare value's list is sought in every epoch of the
// range, where format 7 seeks once: request-id, a metadata value of one
// event, pays for all of them; principal-rare, the principal whose events
// are nearest to 20 in number, as make bench picks it (125 of 10M), takes
// its page from its newest eight epochs or so. A popular value's page
// comes from the newest epoch.
//
//	AUDITTRAIL_BENCH_SAMPLE_EVENTS=10000000 AUDITTRAIL_BENCH_DIR=<dir> go test -run '^$' -bench SearchSampleEpochs -count 3 ./pebblestore/
func BenchmarkSearchSampleEpochs(b *testing.B) {
	n := envInt("AUDITTRAIL_BENCH_SAMPLE_EVENTS", 1_000_000)
	// Values from the stream: the most frequent principal, the one with
	// the number of events nearest to 20 (as make bench picks its rare
	// principal), and the request_id of one event (the first that has one
	// from the 50,000th).
	g := sample.New(1, sample.Options{Events: n})
	counts := map[string]int{}
	var requestID string
	for i := range n {
		_, e := g.Next()
		counts[e.Event.Principal]++
		if i >= 50_000 && requestID == "" {
			requestID = e.Event.Metadata["request_id"]
		}
	}
	if requestID == "" {
		b.Fatal("no request_id after the 50,000th event")
	}
	popular, rare := "", ""
	for _, p := range slices.Sorted(maps.Keys(counts)) {
		if popular == "" || counts[p] > counts[popular] {
			popular = p
		}
		if rare == "" || max(counts[p]-20, 20-counts[p]) < max(counts[rare]-20, 20-counts[rare]) {
			rare = p
		}
	}
	dayAgo := sample.DefaultEnd.Add(-24 * time.Hour)
	for _, layout := range []string{"epochs", "format7"} {
		s := sampleStoreFormat(b, layout == "format7")
		defer s.Close()
		rareF := audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, rare)}
		q, err := rareF.Compile(sample.DefaultEnd)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %d events in the stream, %d found", rare, counts[rare], searchAll(b, s, q, 50, 0))
		rare24h := audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, rare), StartTime: &dayAgo}
		for _, c := range []struct {
			name string
			f    audittrail.Filter
		}{
			{"principal-rare", audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, rare)}},
			{"principal-rare-24h", rare24h},
			{"request-id", audittrail.Filter{MetadataExact: map[string]string{"request_id": requestID}}},
			{"principal-popular", audittrail.Filter{Exact: exact(audittrail.FieldPrincipal, popular)}},
		} {
			b.Run(c.name+"/"+layout, func(b *testing.B) {
				q, err := c.f.Compile(sample.DefaultEnd)
				if err != nil {
					b.Fatal(err)
				}
				var res *audittrail.SearchResult
				for b.Loop() {
					if res, err = s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(res.Events)), "results")
				b.ReportMetric(float64(len(s.EpochsForTest())), "epochs")
			})
		}
	}
}

// BenchmarkErasePrefixes measures what each retention pass that deleted
// events adds for the value column's prefixes: a read of the whole column
// (every entry's prefix id) and the writer's turns, on a store of
// internal/sample's events (sampleStore), compacted, where nothing is to
// erase.
//
//	AUDITTRAIL_BENCH_SAMPLE_EVENTS=10000000 AUDITTRAIL_BENCH_DIR=<dir> go test -run '^$' -bench ErasePrefixes -benchtime 5x ./pebblestore/
func BenchmarkErasePrefixes(b *testing.B) {
	s := sampleStore(b)
	defer s.Close()
	// As in a store that has run for a while, and without the fill's
	// compactions competing for the cores.
	if _, _, err := s.CompactAllForTest(); err != nil {
		b.Fatal(err)
	}
	st := s.Stats()
	b.ResetTimer()
	for range b.N {
		if n, err := s.ErasePrefixesForTest(context.Background()); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(st.ColumnDiskBytes)/(1<<20), "column-MiB")
	b.ReportMetric(float64(len(s.ColumnPrefixesForTest())), "prefixes")
}

// BenchmarkGC measures one full garbage collection (runtime.GC) with the
// data set's store open and nothing else live: what every collection of a
// server marks on top of its requests' garbage. The store's long-lived heap
// is mostly its dictionaries (values.go keeps them out of the marking).
// heap-MiB is the live heap after a collection.
func BenchmarkGC(b *testing.B) {
	s := benchStore(b)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(s)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
}

// BenchmarkDiskByPrefix reports the bytes per event each key prefix takes
// in the store at AUDITTRAIL_DISK_DIR (Pebble's EstimateDiskUsage per
// prefix, as the data set line of benchStore prints them): how the figures
// of docs/design/performance.md, "Disk", were read from the end-to-end
// benchmark's data directory (auditbench -keep -workdir DIR; the store is
// DIR/embedded-SIZE/pebble). Opening a store of an earlier format moves it
// to this one: give it a copy.
//
//	AUDITTRAIL_DISK_DIR=/tmp/copy go test -run '^$' -bench DiskByPrefix ./pebblestore/
func BenchmarkDiskByPrefix(b *testing.B) {
	dir := os.Getenv("AUDITTRAIL_DISK_DIR")
	if dir == "" {
		b.Skip("set AUDITTRAIL_DISK_DIR to a store's directory (a copy) to measure it")
	}
	s := openStore(b, dir)
	defer s.Close()
	events := float64(s.Stats().Events)
	for k, v := range s.DiskUsageByPrefixForTest() {
		if v > 0 {
			b.ReportMetric(float64(v)/events, k+"-B/event")
		}
	}
}

// BenchmarkSelfAuditWrites appends events like the server's self-audit
// events (one per search: the same source, action, principal and resource)
// one per call from 16 writers, to a copy of a store of
// AUDITTRAIL_BENCH_EVENTS generated events, with the ids of
// audittrail.NewEventID (ids=time) and with random UUIDv4s (ids=random).
// Enough of them (AUDITTRAIL_SELFAUDIT_EVENTS, default 1,000,000) fill
// several memtables, and the benchmark waits for the compactions their
// flushes start, so that the CPU per event includes them: the cost of a
// read-heavy server's own writes. Run it once per setting:
//
//	AUDITTRAIL_BENCH_EVENTS=10000000 go test -run '^$' -bench SelfAuditWrites -benchtime 1x -timeout 1h ./pebblestore/
func BenchmarkSelfAuditWrites(b *testing.B) {
	base := filepath.Join(b.TempDir(), "base")
	s := openStore(b, base)
	g := newGen(42)
	for done, n := 0, benchEvents(); done < n; done += 1000 {
		mustAppend(b, s, g.batch(min(1000, n-done)))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	writes := envInt("AUDITTRAIL_SELFAUDIT_EVENTS", 1_000_000)
	for _, mode := range []string{"random", "time"} {
		b.Run("ids="+mode, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
				b.Fatal(err)
			}
			s := openStore(b, dir)
			defer s.Close()
			var cpu time.Duration
			var written uint64
			for b.Loop() {
				c0 := cpuTime()
				w0, _ := s.CompactionBytesForTest()
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						for next.Add(1) <= int64(writes) {
							now := time.Now()
							id := uuid.NewString()
							if mode == "time" {
								id = audittrail.NewEventID(now)
							}
							mustAppend(b, s, []*audittrail.Event{selfAuditLike(b, id, now)})
						}
					})
				}
				wg.Wait()
				// The compactions the flushes started.
				for quiet := 0; quiet < 10; {
					if _, n := s.CompactionBytesForTest(); n == 0 {
						quiet++
					} else {
						quiet = 0
					}
					time.Sleep(100 * time.Millisecond)
				}
				cpu += cpuTime() - c0
				w1, _ := s.CompactionBytesForTest()
				written += w1 - w0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*writes), "cpu-µs/event")
			b.ReportMetric(float64(written>>20)/float64(b.N), "flushed+compacted-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// selfAuditLike is an event like the self-audit event of a search.
func selfAuditLike(tb testing.TB, id string, now time.Time) *audittrail.Event {
	empty := ""
	e, err := audittrail.PrepareNewEvent(id, audittrail.NewEvent{Event: audittrail.Event{
		EventTime: now, EventSource: audittrail.DefaultSelfAuditSource, Action: audittrail.ActionSearchEvents, ReadOnly: true,
		Status: &audittrail.Status{}, Principal: "users/reader", SourceIP: "private", UserAgent: "Go-http-client/1.1",
		Resource: audittrail.SearchResource, Type: audittrail.TypeAPI,
		RequestParameters: map[string]string{"page_size": "50", "filter.end_event_time": "2026-01-01T00:00:00Z"},
	}, WorkspaceOverride: &empty}, now, true)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// BenchmarkExpire measures a retention pass (expire.go) over the
// end-to-end benchmark's 1M stream (30 days of event time): each iteration
// loads a fresh store of 200,000 of its events (AUDITTRAIL_BENCH_EXPIRE_EVENTS
// sets another number), all integrated, and expires the older half. It
// reports the events deleted per second of the pass and the slowest append
// of a single event made meanwhile (appends wait for the writer's chunks of
// record deletions), and, for comparison, the slowest of the same appends
// made for as long right after the pass.
//
//	go test -run '^$' -bench Expire -benchtime 3x ./pebblestore/
func BenchmarkExpire(b *testing.B) {
	n := envInt("AUDITTRAIL_BENCH_EXPIRE_EVENTS", 200_000)
	ctx := context.Background()
	var deleted, erased int64
	var passTime time.Duration
	var slowest, idle, again time.Duration
	for range b.N {
		b.StopTimer()
		s := openStore(b, b.TempDir())
		g := sample.New(1, sample.Options{Events: n})
		now := time.Now()
		// Only the events' times are kept: at 10M the events themselves
		// would take gigabytes.
		times := make([]int64, 0, n)
		for len(times) < n {
			for _, e := range stored(mustAppend(b, s, sampleBatch(b, g, now, 1000))) {
				times = append(times, e.EventTime.UnixNano())
			}
		}
		if err := s.PutTreeHashesForTest(uint64(len(times)), nil, nil); err != nil {
			b.Fatal(err)
		}
		last := time.Unix(0, times[len(times)-1]).UTC()
		slices.Sort(times)
		cutoff := time.Unix(0, times[len(times)/2]).UTC()
		late := sampleBatch(b, g, now, 1)[0]
		late.EventTime = last
		k := 0
		// appendWhile appends single events until stop is closed and
		// returns the slowest.
		appendWhile := func(stop <-chan struct{}) <-chan time.Duration {
			done := make(chan time.Duration, 1)
			go func() {
				var worst time.Duration
				for {
					select {
					case <-stop:
						done <- worst
						return
					default:
					}
					k++
					e := late.Clone()
					e.ID = fmt.Sprintf("00000000-0000-4000-8000-%012x", k)
					t0 := time.Now()
					if res, err := s.Append(ctx, []*audittrail.Event{e}); err != nil || res[0].Err != nil {
						panic(fmt.Sprint("append during the pass: ", err, res))
					}
					worst = max(worst, time.Since(t0))
				}
			}()
			return done
		}
		stop := make(chan struct{})
		done := appendWhile(stop)
		b.StartTimer()
		t0 := time.Now()
		res, err := s.Expire(ctx, cutoff)
		pass := time.Since(t0)
		passTime += pass
		b.StopTimer()
		close(stop)
		slowest = max(slowest, <-done)
		if err != nil {
			b.Fatal(err)
		}
		deleted += res.Deleted
		erased += res.Erased
		// A pass with nothing left to delete still walks every posting
		// list (the next hourly pass, on a store without new events).
		t1 := time.Now()
		if _, err := s.Expire(ctx, cutoff); err != nil {
			b.Fatal(err)
		}
		again = max(again, time.Since(t1))
		// The same appends for as long without a pass: the baseline.
		stop = make(chan struct{})
		done = appendWhile(stop)
		time.Sleep(pass)
		close(stop)
		idle = max(idle, <-done)
		s.Close()
	}
	b.ReportMetric(float64(deleted)/passTime.Seconds(), "deleted/s")
	b.ReportMetric(float64(erased)/float64(b.N), "erased-values")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "max-append-ms")
	b.ReportMetric(float64(idle.Microseconds())/1000, "max-append-idle-ms")
	b.ReportMetric(float64(again.Microseconds())/1000, "empty-pass-ms")
}

// BenchmarkWriteAmplification appends internal/sample's events (1M, or
// AUDITTRAIL_BENCH_WAMP_EVENTS) to a fresh store from four callers, as
// BenchmarkAppendSample does, and attributes what Pebble writes to the
// kinds of keys (keys.go): per event, the bytes of the tables its flushes
// wrote and of those its compactions wrote (moves excluded), by the prefix
// of each table's keys ("mixed": a table whose first and last keys are of
// two kinds), and the bytes of each kind in the tables at the end. Their
// ratio is each kind's write amplification: where ingest's compaction CPU
// goes as the store grows. The posting lists under epochs (this build's
// format) and written as format 7 did, side by side (-count alternates
// them).
//
//	AUDITTRAIL_BENCH_WAMP_EVENTS=10000000 go test -run '^$' -bench WriteAmplification -benchtime 1x -timeout 60m ./pebblestore/
func BenchmarkWriteAmplification(b *testing.B) {
	for _, format7 := range []bool{false, true} {
		name := "lists=epochs"
		if format7 {
			name = "lists=format7"
		}
		b.Run(name, func(b *testing.B) { benchWriteAmplification(b, format7) })
	}
}

func benchWriteAmplification(b *testing.B, format7 bool) {
	n := envInt("AUDITTRAIL_BENCH_WAMP_EVENTS", 1_000_000)
	kind := func(t pebble.TableInfo) string {
		lo, hi := t.Smallest.UserKey, t.Largest.UserKey
		if len(lo) == 0 || len(hi) == 0 || lo[0] != hi[0] {
			return "mixed"
		}
		return string(lo[:1])
	}
	for range b.N {
		var mu sync.Mutex
		flushed, compacted := map[string]uint64{}, map[string]uint64{}
		live := map[uint64]pebble.TableInfo{}
		listen := func(l *pebble.EventListener) {
			l.FlushEnd = func(i pebble.FlushInfo) {
				mu.Lock()
				defer mu.Unlock()
				for _, t := range i.Output {
					flushed[kind(t)] += t.Size
					live[uint64(t.FileNum)] = t
				}
			}
			l.CompactionEnd = func(i pebble.CompactionInfo) {
				if i.Err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, in := range i.Input {
					for _, t := range in.Tables {
						delete(live, uint64(t.FileNum))
					}
				}
				for _, t := range i.Output.Tables {
					if i.Reason != "move" {
						compacted[kind(t)] += t.Size
					}
					live[uint64(t.FileNum)] = t
				}
			}
		}
		s := openStoreConfig(b, pebblestore.ListenForTest(pebblestore.Config{Dir: b.TempDir()}, listen))
		if format7 {
			s.WriteFormat7ForTest()
		}
		g := sample.New(1, sample.Options{Events: n})
		now := time.Now()
		next := make(chan []*audittrail.Event, 8)
		go func() {
			defer close(next)
			for k := 0; k < n; k += 1000 {
				next <- sampleBatch(b, g, now, 1000)
			}
		}()
		cpu0 := cpuTime()
		if _, err := sample.AppendFrom(context.Background(), s, next, 4); err != nil {
			b.Fatal(err)
		}
		cpu := cpuTime() - cpu0
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		stored := map[string]uint64{}
		for _, t := range live {
			stored[kind(t)] += t.Size
		}
		union := maps.Clone(stored)
		maps.Copy(union, flushed)
		maps.Copy(union, compacted)
		kinds := slices.Sorted(maps.Keys(union))
		var all [3]uint64
		for _, k := range kinds {
			b.ReportMetric(float64(flushed[k])/float64(n), k+"-flushed-B/event")
			b.ReportMetric(float64(compacted[k])/float64(n), k+"-compacted-B/event")
			b.ReportMetric(float64(stored[k])/float64(n), k+"-stored-B/event")
			all[0] += flushed[k]
			all[1] += compacted[k]
			all[2] += stored[k]
		}
		mu.Unlock()
		b.ReportMetric(float64(all[0])/float64(n), "flushed-B/event")
		b.ReportMetric(float64(all[1])/float64(n), "compacted-B/event")
		b.ReportMetric(float64(all[2])/float64(n), "stored-B/event")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	}
}

// envInt returns the positive integer in the environment variable name
// (a benchmark's size), or def when it is unset or not one.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkCheckIndexes runs the index check of "verify store"
// (CheckIndexes: every key read, the indexes compared with the records) over
// the shared data set, on every core. An op is a whole check.
//
//	AUDITTRAIL_BENCH_EVENTS=1000000 go test -run '^$' -bench CheckIndexes -benchtime 3x ./pebblestore/
func BenchmarkCheckIndexes(b *testing.B) {
	s := benchStore(b)
	var st pebblestore.IndexCheck
	for b.Loop() {
		var err error
		st, err = s.CheckIndexes(context.Background(), runtime.GOMAXPROCS(0), func(f pebblestore.IndexFinding) {
			// Counts are saved once a second: the open data set's lag.
			if !f.Warning {
				b.Errorf("finding: %s", f)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(st.Events), "ns/event")
	b.ReportMetric(float64(st.Keys), "keys")
	b.ReportMetric(float64(st.Bytes)/(1<<20), "MiB")
	b.ReportMetric(float64(st.Entries)/float64(st.Events), "entries/event")
}
