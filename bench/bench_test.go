package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func TestPct(t *testing.T) {
	var l Latencies
	for i := 1; i <= 30; i++ {
		l = append(l, time.Duration(31-i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 15 * time.Millisecond}, {99, 30 * time.Millisecond}, {100, 30 * time.Millisecond}, {1, time.Millisecond}} {
		if got := l.Pct(c.p); got != c.want {
			t.Errorf("Pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if (Latencies{}).Pct(50) != 0 {
		t.Error("Pct of no samples is not 0")
	}
}

// TestAnalyze checks the oracle against a direct evaluation, and that the
// parameters are picked as documented.
func TestAnalyze(t *testing.T) {
	now := time.Now()
	d := NewDataset(7, 5000, now)
	d.Analyze()
	if d.Stats.Events != 5000 {
		t.Fatalf("counted %d events", d.Stats.Events)
	}
	var events []*audittrail.Event
	src := d.Source()
	for {
		id, ne, ok := src.Next()
		if !ok {
			break
		}
		events = append(events, d.Prepare(id, ne))
	}
	for _, q := range d.Queries {
		cq, err := q.Filter.Compile(now)
		if err != nil {
			t.Fatal(err)
		}
		var newest []string
		for i := len(events) - 1; i >= 0; i-- {
			if cq.Match(events[i]) {
				newest = append(newest, events[i].ID)
			}
		}
		if q.Matches != len(newest) {
			t.Errorf("%s: oracle counted %d matches, direct evaluation %d", q.Key, q.Matches, len(newest))
		}
		if q.Drain {
			continue
		}
		lo, hi := min((q.Page-1)*q.PageSize, len(newest)), min(q.Page*q.PageSize, len(newest))
		if got, want := strings.Join(q.Expected, ","), strings.Join(newest[lo:hi], ","); got != want {
			t.Errorf("%s: expected page differs from direct evaluation", q.Key)
		}
	}
	byKey := map[string]*Query{}
	for _, q := range d.Queries {
		byKey[q.Key] = q
	}
	if byKey["resource-regex-none"].Matches != 0 {
		t.Errorf("the no-match regex matches %d events", byKey["resource-regex-none"].Matches)
	}
	if n := byKey["metadata-rare"].Matches; n != 1 {
		t.Errorf("the rare metadata query matches %d events, want 1", n)
	}
	if m := byKey["metadata-middling"].Matches; m <= 1 || m >= byKey["metadata-common"].Matches {
		t.Errorf("the middling metadata query matches %d events, want more than the rare one's 1 and fewer than the common one's %d",
			m, byKey["metadata-common"].Matches)
	}
	if byKey["principal-popular"].Matches <= byKey["principal-rare"].Matches {
		t.Error("the popular principal is not more popular than the rare one")
	}
	// Deterministic: the same parameters again.
	d2 := NewDataset(7, 5000, now)
	d2.Analyze()
	for i, q := range d.Queries {
		if q.Param != d2.Queries[i].Param || q.Matches != d2.Queries[i].Matches {
			t.Errorf("%s: a second analysis picked %s (%d matches), the first %s (%d)", q.Key, d2.Queries[i].Param, d2.Queries[i].Matches, q.Param, q.Matches)
		}
	}
}

func TestBaselineSQL(t *testing.T) {
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := &Query{PageSize: 50}
	q.Filter.Exact[audittrail.FieldPrincipal] = "users/a"
	q.Filter.Regex[audittrail.FieldAction] = "CREATE$"
	q.Filter.MetadataExact = map[string]string{"k": "v"}
	sql, args := BaselineSQL("events", q, 50, &sqlCursor{End: end, Time: end.Add(-time.Hour), ID: "x"})
	for _, want := range []string{"event_time >= $1", "event_time < $2", "principal = $3", "action ~ $4", "metadata @> $5",
		"event_time <= $6 AND (event_time < $6 OR id > $7)", "ORDER BY event_time DESC, id LIMIT 50"} {
		if !strings.Contains(sql, want) {
			t.Errorf("SQL lacks %q:\n%s", want, sql)
		}
	}
	if len(args) != 7 || args[0] != audittrail.DefaultStartTime || args[1] != end {
		t.Errorf("args = %v", args)
	}
}

func TestTopSymbols(t *testing.T) {
	report := []byte(`# Samples: 951  of event 'cpu-clock:ppp'
# Overhead  Symbol
#
    12.50%  [.] github.com/audittrail/audittrail/pebblestore.(*Store).Search     -      -
     3.00%  [k] clear_page_erms
`)
	if got, want := topSymbols(report, 8), "12.50% pebblestore.(*Store).Search; 3.00% clear_page_erms (951 samples)"; got != want {
		t.Errorf("topSymbols = %q, want %q", got, want)
	}
}

// TestWriteReport renders a report of a tiny fake run and replaces the
// generated section of an existing file, keeping the rest.
func TestWriteReport(t *testing.T) {
	d := NewDataset(1, 2000, time.Now())
	d.Analyze()
	emb := &SystemResult{Key: SysEmbedded, Name: "embedded", Queries: map[string]map[string]*QueryResult{"REST": {}}, Protocols: []string{"REST"},
		DiskEnd: 500_000, RSSIngest: 100 << 20, RSSSuite: 90 << 20,
		Ingest: []IngestResult{{Method: "BatchCreateEvents", Batch: 1000, Events: 2000, Producers: 4, Elapsed: time.Second}}}
	sql := &SystemResult{Key: SysSQL, Name: "sql", Queries: map[string]map[string]*QueryResult{"SQL": {}}, Protocols: []string{"SQL"}}
	for _, q := range d.Queries {
		emb.Queries["REST"][q.Key] = &QueryResult{Key: q.Key, Lat: Latencies{time.Millisecond}}
		sql.Queries["SQL"][q.Key] = &QueryResult{Key: q.Key, Lat: Latencies{30 * time.Millisecond}}
	}
	emb.Concurrent = &ConcurrentResult{Protocol: "REST", Workers: 16, Queries: 10, Wall: 2 * time.Second,
		Lat: slices.Repeat(Latencies{time.Millisecond}, 4321)}
	res := &Results{Config: Config{Runs: 1, Seed: 1}, Started: time.Now(), Finished: time.Now(),
		Sizes: []*SizeResult{{N: 2000, Dataset: d, Systems: []*SystemResult{emb, sql}}}}
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte("# Title\n\nhand-written\n\n"+BeginMarker+"\nold\n"+EndMarker+"\n\n## Analysis\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(path, res); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	for _, want := range []string{"hand-written", "## Analysis\n\nkept", "## Targets", "30.0×", "| met |", "Concurrent searches: 16 clients", "| embedded, REST | **2,161** |"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(s, "\nold\n") {
		t.Error("the old generated section is still there")
	}
	// The JSON round trip renders the same report.
	js := filepath.Join(t.TempDir(), "r.json")
	if err := SaveResults(js, res); err != nil {
		t.Fatal(err)
	}
	back, err := LoadResults(js)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := Markdown(res), Markdown(back); a != b {
		t.Error("the report of the reloaded results differs")
	}
}

// TestReportPGStoreWithoutSuite: a PostgreSQL store measured only for its
// ingest (-pgstore-suite-max) has its ingest target and disk row, and no
// query columns, which it would otherwise fill with dashes.
func TestReportPGStoreWithoutSuite(t *testing.T) {
	d := NewDataset(1, 2000, time.Now())
	d.Analyze()
	emb := &SystemResult{Key: SysEmbedded, Name: "embedded", Queries: map[string]map[string]*QueryResult{"REST": {}}, Protocols: []string{"REST"},
		DiskEnd: 500_000}
	for _, q := range d.Queries {
		emb.Queries["REST"][q.Key] = &QueryResult{Key: q.Key, Lat: Latencies{time.Millisecond}}
	}
	pgs := &SystemResult{Key: SysPGStore, Name: "audittrail, PostgreSQL store", SuiteSkipped: "sizes above 1,000 run only the ingest",
		RSSIngest: 50 << 20, RSSSuite: 40 << 20, TableBytes: 1_000_000, IndexBytes: 2_000_000, DBBytes: 4_000_000,
		Ingest: []IngestResult{{Method: "BatchCreateEvents", Batch: 1000, Events: 2000, Producers: 4, Elapsed: 100 * time.Millisecond}}}
	res := &Results{Config: Config{Runs: 1, Seed: 1}, Started: time.Now(), Finished: time.Now(),
		Sizes: []*SizeResult{{N: 2000, Dataset: d, Systems: []*SystemResult{emb, pgs}}}}
	md := Markdown(res)
	for _, want := range []string{
		"| 2k: ingest ≥ 30,000 events/s, PostgreSQL store, batches of 1000 | 20,000 events/s | **missed** (67% of it) |",
		"ran no query: sizes above 1,000 run only the ingest.",
		"| no suite |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "PG store REST | PG store gRPC") {
		t.Error("the query tables have columns for the PostgreSQL store, which ran no query")
	}
}

// TestWaitIdle: the wait ends in the first window the counter grows slower
// than the rate, and fails at the limit or when the context ends.
func TestWaitIdle(t *testing.T) {
	const window = 5 * time.Millisecond
	ctx := context.Background()
	busyFor := func(windows int) func() float64 {
		var calls int
		var v float64
		return func() float64 {
			calls++ // two reads per window
			if calls <= 2*windows {
				v += 1000
			}
			return v
		}
	}
	d, ok := waitIdle(ctx, busyFor(3), window, 10, time.Second)
	if !ok || d < 4*window {
		t.Errorf("busy for 3 windows: waited %v, settled %v; want settled after the 4th", d, ok)
	}
	if d, ok := waitIdle(ctx, busyFor(1<<30), window, 10, 10*window); ok || d < 10*window {
		t.Errorf("always busy: waited %v, settled %v; want not settled at the limit", d, ok)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := waitIdle(cancelled, busyFor(0), window, 10, time.Second); ok {
		t.Error("a cancelled context settled")
	}
}

// TestDiskWritten: a synced write of 8 MiB shows in the disks' counters.
func TestDiskWritten(t *testing.T) {
	before := DiskWritten()
	if before == 0 {
		t.Skip("no disk counters here (/proc/diskstats): SettleDisk does not wait")
	}
	dir := t.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Type == 0x01021994 { // TMPFS_MAGIC
		t.Skipf("%s is in memory (tmpfs): nothing reaches a disk", dir)
	}
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := DiskWritten() - before; got < 8<<20 {
		t.Errorf("the disks' counters grew by %d bytes after a synced write of 8 MiB", got)
	}
}

// TestP99Rank: the rank the report names is the one Latencies.Pct(99)
// takes, and its ordinal reads right.
func TestP99Rank(t *testing.T) {
	for _, n := range []int{1, 5, 30, 99, 100, 101, 200, 1000} {
		l := make(Latencies, n)
		for i := range l {
			l[i] = time.Duration(i + 1)
		}
		if got, want := p99Rank(n), int(l.Pct(99)); got != want {
			t.Errorf("p99Rank(%d) = %d, Pct(99) is the %dth", n, got, want)
		}
	}
	for n, want := range map[int]string{1: "st", 2: "nd", 3: "rd", 4: "th", 11: "th", 12: "th", 13: "th", 21: "st", 198: "th", 101: "st", 111: "th"} {
		if got := ordinalSuffix(n); got != want {
			t.Errorf("ordinalSuffix(%d) = %q, want %q", n, got, want)
		}
	}
}

// pageSearcher answers every query with its oracle's page, but fails the
// query with key fail and answers the query with key wrong with nothing.
type pageSearcher struct {
	fail, wrong string
	calls       atomic.Int64
}

func (s *pageSearcher) Name() string { return "fake" }

func (s *pageSearcher) Page(_ context.Context, q *Query, _ int, _ any) (Page, error) {
	s.calls.Add(1)
	switch q.Key {
	case s.fail:
		return Page{}, errors.New("refused")
	case s.wrong:
		return Page{Requests: 1}, nil
	}
	return Page{IDs: q.Expected, Requests: 1}, nil
}

// TestRunConcurrent: the concurrent phase times only the timed requests,
// cycles through the first pages of the index-bound queries and counts
// failures and answers that differ from the oracle's.
func TestRunConcurrent(t *testing.T) {
	d := NewDataset(1, 2000, time.Now())
	d.Analyze()
	qs := concurrentQueries(d.Queries)
	for _, q := range qs {
		if !indexBound(q) || q.Page > 1 || q.Drain {
			t.Fatalf("query %s is not the first page of an index-bound query", q.Key)
		}
	}
	if len(qs) < 5 {
		t.Fatalf("%d queries, want the suite's index-bound first pages", len(qs))
	}
	s := &pageSearcher{fail: qs[0].Key, wrong: qs[1].Key}
	r := RunConcurrent(context.Background(), s, qs, 4, 200*time.Millisecond, RunOptions{})
	n := len(r.Lat)
	if n == 0 || r.Errors == 0 || r.Wrong == 0 || r.ErrMsg != "refused" {
		t.Fatalf("%d requests, %d errors (%q), %d wrong: want some of each", n, r.Errors, r.ErrMsg, r.Wrong)
	}
	// Each worker cycles through every query, so a query has about 1/len
	// of the requests.
	if share := float64(r.Errors) / float64(n); share < 0.5/float64(len(qs)) || share > 2.0/float64(len(qs)) {
		t.Errorf("the failing query had %d of %d requests, want about 1/%d", r.Errors, n, len(qs))
	}
	if calls := s.calls.Load(); calls <= int64(n) {
		t.Errorf("%d calls for %d timed requests: the untimed warm-up is missing", calls, n)
	}
	if r.Wall < 200*time.Millisecond || r.Rate() <= 0 {
		t.Errorf("wall %v, rate %.0f", r.Wall, r.Rate())
	}
}
