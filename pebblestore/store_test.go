package pebblestore_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var testEnd = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// bruteForce returns the events matching q strictly after the cursor,
// newest first: the reference answer.
func bruteForce(all []*audittrail.Event, q *audittrail.Query, after *audittrail.Cursor) []*audittrail.Event {
	var out []*audittrail.Event
	for _, e := range all {
		if q.Match(e) && (after == nil || after.Before(e.EventTime.UnixNano(), e.Seq)) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.EventTime.Equal(b.EventTime) {
			return a.EventTime.After(b.EventTime)
		}
		return a.Seq > b.Seq
	})
	return out
}

// drain pages through a search, checking the paging invariants, and returns
// every event.
func drain(t *testing.T, s audittrail.Store, q *audittrail.Query, limit, maxScan int) []*audittrail.Event {
	t.Helper()
	var out []*audittrail.Event
	var after *audittrail.Cursor
	for pages := 0; ; pages++ {
		if pages > 1_000_000 {
			t.Fatal("search does not terminate")
		}
		// Every other page as a read ahead (one core): the answers are
		// the same.
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit, MaxScan: maxScan, ReadAhead: pages%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) > limit {
			t.Fatalf("page of %d events, limit %d", len(res.Events), limit)
		}
		out = append(out, res.Events...)
		if res.Next == nil {
			return out
		}
		if after != nil && !after.Before(res.Next.Time, res.Next.Seq) {
			t.Fatalf("no progress: next %+v, after %+v", *res.Next, *after)
		}
		if n := len(res.Events); n > 0 {
			if l := res.Events[n-1]; res.Next.Before(l.EventTime.UnixNano(), l.Seq) {
				t.Fatalf("next %+v is before the last event returned (%d, %d)", *res.Next, l.EventTime.UnixNano(), l.Seq)
			}
		}
		after = res.Next
	}
}

func compile(t testing.TB, f audittrail.Filter) *audittrail.Query {
	t.Helper()
	q, err := f.Compile(testEnd)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func stored(res []audittrail.AppendResult) []*audittrail.Event {
	out := make([]*audittrail.Event, len(res))
	for i, r := range res {
		out[i] = r.Event
	}
	return out
}

// diff compares event lists by content, nil and empty maps alike.
func diff(want, got []*audittrail.Event) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

// randomFilter draws a filter whose conditions hit the data: exact values
// taken from stored events, regexes from a pool, metadata, status, types.
func randomFilter(r *rand.Rand, all []*audittrail.Event) audittrail.Filter {
	var f audittrail.Filter
	pick := func() *audittrail.Event { return all[r.IntN(len(all))] }
	regexes := []string{"a", "^users/[0-7]", "-server$", "DELETE$|GET$", "^$", "^//mlops", "workspaces/", `\.1`, "^10\\.", "(?i)ENGINE", "z{2}", "."}
	for range r.IntN(3) + 1 {
		fld := audittrail.Field(r.IntN(int(audittrail.NumFields)))
		switch r.IntN(4) {
		case 0, 1:
			f.Exact[fld] = pick().Value(fld)
			if f.Exact[fld] == "" {
				f.Exact[fld] = "workspaces/none"
			}
		case 2:
			f.Regex[fld] = regexes[r.IntN(len(regexes))]
		case 3:
			if r.IntN(3) == 0 {
				f.Exact[fld] = "no such value"
			} else {
				v := pick().Value(fld)
				if len(v) > 3 {
					v = v[len(v)-3:]
				}
				f.Regex[fld] = regexp_QuoteMeta(v) + "$"
			}
		}
	}
	switch r.IntN(6) {
	case 0:
		e := pick()
		for k, v := range e.Metadata {
			f.MetadataExact = map[string]string{k: v}
			break
		}
	case 1:
		f.MetadataRegex = map[string]string{[]string{"region", "request_id", "tenant", "missing"}[r.IntN(4)]: []string{"^eu", "a", "^$", "7$"}[r.IntN(4)]}
	case 2:
		f.MetadataExact = map[string]string{"cluster": "prod-a"}
		f.MetadataRegex = map[string]string{"cluster": "prod"}
	}
	switch r.IntN(5) {
	case 0:
		f.StatusCodeRegex = "^$"
	case 1:
		f.StatusCodeRegex = "^[357]$"
	}
	if r.IntN(4) == 0 {
		b := r.IntN(2) == 0
		f.ReadOnly = &b
	}
	if r.IntN(5) == 0 {
		f.ExcludeTypes = []audittrail.EventType{audittrail.TypeAPI}
	}
	if r.IntN(3) == 0 {
		e := pick()
		start, end := e.EventTime.Add(-time.Hour), e.EventTime.Add(time.Duration(r.IntN(3))*time.Minute)
		f.StartTime, f.EndTime = &start, &end
	}
	return f
}

func regexp_QuoteMeta(s string) string {
	const special = `\.+*?()|[]{}^$`
	out := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		if slices.Contains([]byte(special), s[i]) {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// TestOracle compares random searches with the brute-force answer, with
// normal dictionaries and with tiny ones (every dictionary and metadata key
// frozen early, so that most values are inline), with sequential and
// parallel scans (tiny chunks, and tiny value column windows read in
// parallel), and again after reopening.
func TestOracle(t *testing.T) {
	for _, c := range []struct{ limit, chunk int }{{0, 0}, {8, 0}, {0, 37}, {8, 61}} {
		limit := c.limit
		t.Run(fmt.Sprintf("DictionaryLimit=%d,ScanChunk=%d", c.limit, c.chunk), func(t *testing.T) {
			if c.chunk > 0 {
				defer pebblestore.SetScanChunkEventsForTest(c.chunk)()
				defer pebblestore.SetColumnWindowsForTest(c.chunk, 2)()
			}
			dir := t.TempDir()
			cfg := pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: limit}
			s := openStoreConfig(t, cfg)
			g := newGen(7)
			all := appendBatches(t, s, g, 12, 250)
			if limit > 0 && len(s.Stats().FrozenDictionaries) == 0 {
				t.Fatal("no dictionary is frozen")
			}
			r := rand.New(rand.NewPCG(1, 2))
			check := func(s *pebblestore.Store, n int) {
				for i := range n {
					f := randomFilter(r, all)
					q := compile(t, f)
					want := bruteForce(all, q, nil)
					limit, maxScan := []int{1, 3, 50, 1000}[r.IntN(4)], []int{0, 0, 5, 200}[r.IntN(4)]
					if d := diff(want, drain(t, s, q, limit, maxScan)); d != "" {
						t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: (-want +got)\n%s", i, f, limit, maxScan, d)
					}
				}
			}
			check(s, 300)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStoreConfig(t, cfg)
			defer s.Close()
			check(s, 100)
		})
	}
}

// TestDurability closes and reopens the store: every event is there with
// its seq, the dictionaries and counts are back, and appends continue the
// sequence.
func TestDurability(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(3)
	all := appendBatches(t, s, g, 4, 300)
	before := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openStore(t, dir)
	defer s.Close()
	ignoreDisk := cmpopts.IgnoreFields(pebblestore.Stats{}, "DiskBytes", "ColumnDiskBytes")
	if after := s.Stats(); !cmp.Equal(before, after, ignoreDisk, cmpopts.SortSlices(func(a, b string) bool { return a < b })) {
		t.Fatalf("stats after reopen: %+v, before %+v", after, before)
	}
	if s.LastSeq() != 1200 {
		t.Fatalf("LastSeq %d, want 1200", s.LastSeq())
	}
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("after reopen (-want +got)\n%s", d)
	}
	// Retries are recognised across a restart; new events continue the log.
	res := mustAppend(t, s, append([]*audittrail.Event{all[10]}, g.batch(2)...))
	if res[0].Event.Seq != all[10].Seq || res[1].Event.Seq != 1201 || res[2].Event.Seq != 1202 {
		t.Fatalf("seqs after reopen: %d %d %d", res[0].Event.Seq, res[1].Event.Seq, res[2].Event.Seq)
	}
}

// TestCloseRemovesFlushedWAL: a clean Close flushes the memtables and
// leaves one empty WAL file, not the recycled ones (walfs.go); everything is
// there after reopening, and the store goes on (Pebble reads an empty WAL as
// one without records).
func TestCloseRemovesFlushedWAL(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(4)
	// A young store's memtables start small and double, so these appends
	// rotate the WAL several times.
	all := appendBatches(t, s, g, 20, 500)
	walFiles := func() (n int, bytes int64) {
		logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logs {
			fi, err := os.Stat(l)
			if err != nil {
				t.Fatal(err)
			}
			bytes += fi.Size()
		}
		return len(logs), bytes
	}
	if n, b := walFiles(); n < 2 || b == 0 {
		t.Fatalf("premise: %d WAL files of %d bytes while open, want several", n, b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, b := walFiles(); n != 1 || b != 0 {
		t.Fatalf("after Close: %d WAL files of %d bytes, want one empty", n, b)
	}
	s = openStore(t, dir)
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("after reopen (-want +got)\n%s", d)
	}
	all = append(all, appendBatches(t, s, g, 2, 100)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("after the second reopen (-want +got)\n%s", d)
	}
}

// TestConcurrentAppends: many goroutines append at once; the seqs are
// exactly 1..N and every event is found.
func TestConcurrentAppends(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	const workers, calls, per = 16, 20, 25
	batches := make([][][]*audittrail.Event, workers)
	for w := range batches {
		g := newGen(uint64(100 + w))
		for range calls {
			batches[w] = append(batches[w], g.batch(per))
		}
	}
	var mu sync.Mutex
	var all []*audittrail.Event
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range batches[w] {
				res, err := s.Append(context.Background(), b)
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range res {
					if r.Err != nil || r.Event.ID != b[i].ID {
						t.Errorf("result %d: %v", i, r.Err)
						return
					}
					// One call's events get consecutive seqs, in order.
					if i > 0 && r.Event.Seq != res[i-1].Event.Seq+1 {
						t.Errorf("seqs within a call: %d after %d", r.Event.Seq, res[i-1].Event.Seq)
					}
				}
				mu.Lock()
				all = append(all, stored(res)...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seqs := make([]uint64, len(all))
	for i, e := range all {
		seqs[i] = e.Seq
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seq %d at position %d: not gap-free", seq, i)
		}
	}
	if got := s.Stats(); got.Events != workers*calls*per || got.NextSeq != workers*calls*per+1 {
		t.Fatalf("stats %+v", got)
	}
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
}

// TestIdempotency: retries return the stored event, conflicts fail alone,
// and an id repeated in one call behaves as if the copies came in sequence.
func TestIdempotency(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(5)
	a, b, c := g.next(), g.next(), g.next()
	first := mustAppend(t, s, []*audittrail.Event{a, b})

	retry := *a
	retry.ReceiveTime = retry.ReceiveTime.Add(time.Hour) // server-set: not content
	other := *b
	other.Action = "something else"
	res, err := s.Append(context.Background(), []*audittrail.Event{&retry, &other, c, c})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Event.Seq != first[0].Event.Seq || !res[0].Event.ReceiveTime.Equal(a.ReceiveTime) {
		t.Errorf("retry: %+v, want the first copy (seq %d)", res[0], first[0].Event.Seq)
	}
	if audittrail.ErrorCode(res[1].Err) != audittrail.EConflict || res[1].Event != nil {
		t.Errorf("conflict: %+v", res[1])
	} else if want := "event_id " + b.ID + " is already used by another event"; audittrail.ErrorMessage(res[1].Err) != want {
		t.Errorf("conflict message %q, want %q", audittrail.ErrorMessage(res[1].Err), want)
	}
	if res[2].Err != nil || res[2].Event.Seq != 3 || res[3].Err != nil || res[3].Event.Seq != 3 {
		t.Errorf("repeated id in one call: %+v, %+v; want both seq 3", res[2], res[3])
	}
	// Within one call: a new event then a different one with its id.
	d := g.next()
	d2 := *d
	d2.Principal = "users/someone-else"
	res, err = s.Append(context.Background(), []*audittrail.Event{d, &d2})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Event.Seq != 4 || audittrail.ErrorCode(res[1].Err) != audittrail.EConflict {
		t.Errorf("new then conflicting copy in one call: %+v, %+v", res[0], res[1])
	}
	if st := s.Stats(); st.Events != 4 {
		t.Errorf("%d events stored, want 4", st.Events)
	}
	// The results are copies: changing them changes nothing stored.
	res[0].Event.Action = "mutated"
	got := drain(t, s, compile(t, audittrail.Filter{}), 10, 0)
	if got[0].Action == "mutated" {
		t.Error("a returned event aliases the stored one")
	}
}

// TestIdempotencyBottomLevel: retries are recognised when the stored ids
// have been compacted into the bottom level, whose bloom filters the id
// lookup uses (Pebble skips them by default): a filter may only rule out
// ids that are absent.
func TestIdempotencyBottomLevel(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(6)
	stored := g.batch(3000)
	first := mustAppend(t, s, stored)
	bottom, above, err := s.CompactAllForTest()
	if err != nil {
		t.Fatal(err)
	}
	if bottom == 0 || above != 0 {
		t.Fatalf("after compaction: %d tables in L6, %d above; want all in L6", bottom, above)
	}
	checkRetries(t, s, stored, first)
	if st := s.Stats(); st.Events != uint64(len(stored)) {
		t.Errorf("%d events stored, want %d", st.Events, len(stored))
	}
}

// checkRetries retries every stored event: each answers its first copy and
// none is stored again. One in ten is changed: a conflict.
func checkRetries(t *testing.T, s *pebblestore.Store, stored []*audittrail.Event, first []audittrail.AppendResult) {
	t.Helper()
	retries := make([]*audittrail.Event, len(stored))
	for i, e := range stored {
		r := *e
		if i%10 == 0 {
			r.Action = "actions/changed"
		}
		retries[i] = &r
	}
	for lo := 0; lo < len(retries); lo += audittrail.MaxBatch {
		hi := min(lo+audittrail.MaxBatch, len(retries))
		res, err := s.Append(context.Background(), retries[lo:hi])
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res {
			i := lo + j
			if i%10 == 0 {
				if audittrail.ErrorCode(r.Err) != audittrail.EConflict {
					t.Fatalf("changed retry %d: %+v, want a conflict", i, r)
				}
			} else if r.Err != nil || r.Event.Seq != first[i].Event.Seq {
				t.Fatalf("retry %d: %+v, want seq %d", i, r, first[i].Event.Seq)
			}
		}
	}
}

// TestIDFilters: the tables' filters hold the ids only, and id lookups stay
// exact across builds: this build reads a store whose tables carry the
// earlier every-key filters, and an earlier build reads the tables this one
// writes (it does not know their filter and reads them unfiltered).
func TestIDFilters(t *testing.T) {
	const n = 3000
	filters := func(s *pebblestore.Store) (map[string]int, uint64) {
		t.Helper()
		if _, _, err := s.CompactAllForTest(); err != nil {
			t.Fatal(err)
		}
		tables, size, err := s.FiltersForTest()
		if err != nil {
			t.Fatal(err)
		}
		return tables, size
	}
	stats := func(s *pebblestore.Store, want int) {
		t.Helper()
		if st := s.Stats(); st.Events != uint64(want) {
			t.Errorf("%d events stored, want %d", st.Events, want)
		}
	}

	// The same events in a store of this build and in one of the earlier
	// builds: ~1.25 filter bytes per id against ~1.25 per key.
	dirNew, dirOld := t.TempDir(), t.TempDir()
	events := newGen(7).batch(n)
	s := openStore(t, dirNew)
	firstNew := mustAppend(t, s, events)
	tables, newBytes := filters(s)
	if len(tables) != 1 || tables["audittrail.IDKeysBloomFilter"] == 0 {
		t.Errorf("filter policies of the tables: %v, want only audittrail.IDKeysBloomFilter", tables)
	}
	if max := uint64(n*10/8 + 256*sum(tables)); newBytes > max {
		t.Errorf("filters take %d bytes for %d ids, want at most %d", newBytes, n, max)
	}
	checkRetries(t, s, events, firstNew)
	stats(s, n)
	// Searches read ranges and never consult a filter, so what filters
	// hold cannot change their speed; an append's id check does.
	probes := s.FilterProbesForTest()
	g := newGen(7)
	for _, f := range []audittrail.Filter{
		{},
		{Exact: exact(audittrail.FieldPrincipal, g.principals[0])},
		{Regex: [audittrail.NumFields]string{audittrail.FieldAction: ".*CREATE$"}},
		{MetadataExact: map[string]string{"tenant": "acme"}},
	} {
		if len(drain(t, s, compile(t, f), 1000, 0)) == 0 {
			t.Errorf("%+v: no events", f)
		}
	}
	if got := s.FilterProbesForTest(); got != probes {
		t.Errorf("searches consulted table filters %d times", got-probes)
	}
	// A new id is usually answered by the store's in-memory id filter
	// (idfilter.go); a retry's id is in it and is looked up in the tables.
	mustAppend(t, s, newGen(9).batch(1))
	retry := *events[0]
	retry.Seq = 0
	if res := mustAppend(t, s, []*audittrail.Event{&retry}); res[0].Event.Seq != firstNew[0].Event.Seq {
		t.Fatalf("a retry stored seq %d, want %d", res[0].Event.Seq, firstNew[0].Event.Seq)
	}
	if s.FilterProbesForTest() == probes {
		t.Error("a retry's id check consulted no table filter")
	}
	s.Close()

	restore := pebblestore.SimulateEarlierFiltersForTest()
	s = openStore(t, dirOld)
	firstOld := mustAppend(t, s, events)
	tables, oldBytes := filters(s)
	if len(tables) != 1 || tables["rocksdb.BuiltinBloomFilter"] == 0 {
		t.Errorf("filter policies of the earlier build's tables: %v", tables)
	}
	if oldBytes < 5*newBytes {
		t.Errorf("every-key filters take %d bytes, id filters %d: want a fifth at most", oldBytes, newBytes)
	}
	s.Close()
	restore()

	// This build on the earlier build's store, then on a mix of both kinds
	// of table.
	s = openStore(t, dirOld)
	checkRetries(t, s, events, firstOld)
	more := newGen(8).batch(n)
	firstMore := mustAppend(t, s, more)
	if err := s.FlushForTest(); err != nil {
		t.Fatal(err)
	}
	if tables, _, err := s.FiltersForTest(); err != nil || len(tables) != 2 {
		t.Fatalf("filter policies after a flush: %v (%v), want both kinds", tables, err)
	}
	checkRetries(t, s, events, firstOld)
	checkRetries(t, s, more, firstMore)
	filters(s)
	checkRetries(t, s, events, firstOld)
	checkRetries(t, s, more, firstMore)
	stats(s, 2*n)
	s.Close()

	// An earlier build on the tables written by this one.
	restore = pebblestore.SimulateEarlierFiltersForTest()
	defer restore()
	s = openStore(t, dirNew)
	defer s.Close()
	checkRetries(t, s, events, firstNew)
	stats(s, n+1)
	if got := drain(t, s, compile(t, audittrail.Filter{}), 1000, 0); len(got) != n+1 {
		t.Errorf("an earlier build reads %d events of this build's store, want %d", len(got), n+1)
	}
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestMaxScan: with a small budget every page makes progress and the pages
// together are exactly the answer, on the scan path and on posting lists.
func TestMaxScan(t *testing.T) {
	t.Run("sequential", func(t *testing.T) { testMaxScan(t) })
	t.Run("parallel", func(t *testing.T) {
		defer pebblestore.SetScanChunkEventsForTest(29)()
		testMaxScan(t)
	})
	t.Run("parallel fetch", func(t *testing.T) {
		defer pebblestore.SetParallelFetchForTest(2, 2)()
		testMaxScan(t)
	})
}

func testMaxScan(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(11)
	all := stored(mustAppend(t, s, g.batch(2000)))
	var scan, posting audittrail.Filter
	scan.Regex[audittrail.FieldPrincipal] = "^users/[0-7]" // too many values for lists: a scan
	scan.StatusCodeRegex = "^[57]$"
	posting.Exact[audittrail.FieldPrincipal] = all[0].Principal
	posting.ReadOnly = new(bool)
	for _, f := range []audittrail.Filter{scan, posting} {
		q := compile(t, f)
		want := bruteForce(all, q, nil)
		if len(want) < 5 {
			t.Fatalf("test setup: %d matches", len(want))
		}
		for _, maxScan := range []int{1, 2, 7, 28, 29, 30, 58, 100, 1000} {
			if d := diff(want, drain(t, s, q, 3, maxScan)); d != "" {
				t.Fatalf("filter %+v, maxScan %d: (-want +got)\n%s", f, maxScan, d)
			}
		}
		// A budget of 1 examines one candidate: a page holds at most one
		// event, and the cursor is the candidate examined.
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 10, MaxScan: 1})
		if err != nil || len(res.Events) > 1 || res.Next == nil {
			t.Fatalf("MaxScan 1: %d events, next %v, err %v", len(res.Events), res.Next, err)
		}
	}
}

// TestLookAhead: a full page is followed by Next only when another match
// exists; a finished search never returns a token.
func TestLookAhead(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(13)
	all := stored(mustAppend(t, s, g.batch(500)))
	var f audittrail.Filter
	f.Exact[audittrail.FieldPrincipal] = all[17].Principal
	q := compile(t, f)
	want := bruteForce(all, q, nil)
	res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: len(want)})
	if err != nil || len(res.Events) != len(want) || res.Next != nil {
		t.Fatalf("exact page: %d events (want %d), next %v, err %v", len(res.Events), len(want), res.Next, err)
	}
	res, err = s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: len(want) - 1})
	if err != nil || res.Next == nil {
		t.Fatalf("short page: next %v, err %v", res.Next, err)
	}
	unknown := compile(t, audittrail.Filter{Exact: exact(audittrail.FieldAction, "never used")})
	if res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: unknown, Limit: 5}); err != nil || len(res.Events) != 0 || res.Next != nil {
		t.Fatalf("unknown value: %+v, %v", res, err)
	}
}

// TestCancelAndClose: a cancelled Append stores nothing; Close waits for
// appends in flight, and later calls fail with EUnavailable.
func TestCancelAndClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(17)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, g.batch(3)); err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
	if s.Stats().Events != 0 {
		t.Fatal("a cancelled Append stored events")
	}
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for range 8 {
		batch := g.batch(100)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Append(context.Background(), batch)
			if err == nil && (len(res) != len(batch) || res[0].Event == nil) {
				err = fmt.Errorf("bad result")
			}
			results <- err
		}()
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if audittrail.ErrorCode(err) != audittrail.EUnavailable {
			t.Errorf("append during Close: %v", err)
		}
	}
	if _, err := s.Append(context.Background(), g.batch(1)); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.Search(context.Background(), audittrail.SearchRequest{Query: compile(t, audittrail.Filter{}), Limit: 1}); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("Search after Close: %v", err)
	}
	s2 := openStore(t, dir)
	defer s2.Close()
	if got := s2.Stats().Events; got != uint64(ok*100) {
		t.Errorf("%d events after reopen, want %d (acknowledged appends)", got, ok*100)
	}
}

// unusualEvents returns three events of g with the values a record
// encoding gets wrong first: no status, empty and nil maps, NUL bytes, empty
// strings, a receive time the store must raise, the latest event time, a
// negative status code and non-ASCII text.
func unusualEvents(g *gen) []*audittrail.Event {
	e1, e2, e3 := g.next(), g.next(), g.next()
	e1.Status, e1.Metadata, e1.RequestParameters = nil, map[string]string{}, map[string]string{}
	e2.Metadata = map[string]string{"a": "", "b": "x\x00y"}
	e2.RequestParameters = map[string]string{"\x00": "\x00", "k": ""}
	e2.UserAgent, e2.Workspace = "", ""
	e3.ReceiveTime = audittrail.MinEventTime // raised above e2's by the store
	e3.EventTime = audittrail.MaxEventTime.Add(-1)
	e3.Status = &audittrail.Status{Code: -7, Message: "ünï"}
	return []*audittrail.Event{e1, e2, e3}
}

// TestRoundTrip stores unusual values and reads them back unchanged.
func TestRoundTrip(t *testing.T) {
	for _, limit := range []int{0, 1} {
		s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), DictionaryLimit: limit})
		g := newGen(19)
		in := stored(mustAppend(t, s, unusualEvents(g)))
		got := drain(t, s, compile(t, audittrail.Filter{StartTime: &audittrail.MinEventTime, EndTime: &audittrail.MaxEventTime}), 10, 0)
		if d := cmp.Diff(bruteForce(in, compile(t, audittrail.Filter{StartTime: &audittrail.MinEventTime, EndTime: &audittrail.MaxEventTime}), nil), got); d != "" {
			t.Errorf("limit %d: (-want +got)\n%s", limit, d)
		}
		s.Close()
	}
}

// TestRetryBehindOriginal: retries sent while their original is being
// committed (the next group) resolve to the stored event, never a new seq,
// even when the original's caller changes its result at once.
func TestRetryBehindOriginal(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := newGen(23)
	for round := range 30 {
		batch := g.batch(50)
		var wg sync.WaitGroup
		var first []audittrail.AppendResult
		wg.Add(1)
		go func() {
			defer wg.Done()
			first = mustAppend(t, s, batch)
			for _, r := range first {
				r.Event.Action = "changed by the caller"
			}
		}()
		copies := make([]*audittrail.Event, len(batch))
		for i, e := range batch {
			c := *e
			copies[i] = &c
		}
		retries := mustAppend(t, s, copies)
		wg.Wait()
		for i := range batch {
			a, b := first[i].Event.Seq, retries[i].Event.Seq
			if a != b {
				t.Fatalf("round %d event %d: seq %d and %d for one id", round, i, a, b)
			}
			if retries[i].Event.Action != batch[i].Action {
				t.Fatalf("round %d: retry returned action %q", round, retries[i].Event.Action)
			}
		}
	}
	if n := s.Stats().Events; n != 30*50 {
		t.Fatalf("%d events stored, want %d", n, 30*50)
	}
}

// TestOpenLocked: a second Open of a data directory in use fails and says
// why (a server running on it), leaving the first store working.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	_, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "cannot lock it; is another server running on this data directory?") {
		t.Fatalf("a second Open: %v", err)
	}
	if _, err := st.Search(t.Context(), audittrail.SearchRequest{Query: &audittrail.Query{End: time.Now()}, Limit: 1}); err != nil {
		t.Fatalf("the first store after the refused Open: %v", err)
	}
}

// TestCorruptTableIsAnError: a table whose blocks fail their checksums (a
// damaged copy, a backup restored from a bad volume) makes Open or the
// search that reads it fail with Pebble's corruption error, not panic the
// process (Pebble's default for a corruption it reports is its logger's
// Fatalf).
func TestCorruptTableIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	appendBatches(t, s, newGen(5), 4, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("premise: no table after Close: %v", err)
	}
	for _, f := range tables {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 4; i < len(b)/4+64; i++ {
			b[i] ^= 0x55
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var panicked any
	err = func() (err error) {
		defer func() { panicked = recover() }()
		s, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: dir})
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Search(context.Background(), audittrail.SearchRequest{Query: compile(t, audittrail.Filter{}), Limit: 1000})
		return err
	}()
	if panicked != nil {
		t.Fatalf("a corrupt table panics: %v", panicked)
	}
	if err == nil || !pebble.IsCorruptionError(err) {
		t.Fatalf("a corrupt table: %v, want Pebble's corruption error", err)
	}
}

// readOnlyDisk is an in-memory file system mounted read-only: taking the
// directory's lock fails as it does on a read-only mount.
type readOnlyDisk struct{ vfs.FS }

func (d readOnlyDisk) Lock(name string) (io.Closer, error) {
	return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
}

// TestOpenReadOnly: a directory that cannot be locked for another reason
// than another process holding the lock (a read-only file system) is
// refused with that reason alone; the question whether another server ran
// on the directory sent the operator looking for one.
func TestOpenReadOnly(t *testing.T) {
	_, err := pebblestore.Open(t.Context(), pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data"}, readOnlyDisk{vfs.NewMem()}))
	if err == nil || strings.Contains(err.Error(), "another server") || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("Open on a read-only file system: %v", err)
	}
}

// TestOpenForReading: a store opened with Config.ReadOnly (verify store)
// reads as any other, refuses appends and leaves its directory as it was:
// the files, and an older storage format, which a read-write Open moves to
// this build's (older builds then refuse the directory).
func TestOpenForReading(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	all := appendBatches(t, s, newGen(5), 3, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pebblestore.RawSetFormat(dir, 7); err != nil {
		t.Fatal(err)
	}
	files := func() map[string]int64 {
		out := map[string]int64{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = fi.Size()
		}
		return out
	}
	before := files()
	s, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Errorf("read-only (-want +got)\n%s", d)
	}
	if _, err := s.Append(t.Context(), newGen(6).batch(1)); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("Append on a read-only store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, files()); d != "" {
		t.Errorf("the directory changed (-before +after)\n%s", d)
	}
	if f, err := pebblestore.RawFormat(dir); err != nil || f != 7 {
		t.Errorf("storage format after a read-only Open: %d (%v), want 7", f, err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: missing, ReadOnly: true}); err == nil {
		t.Error("a read-only Open of a missing directory succeeded")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a read-only Open created the directory")
	}
}
