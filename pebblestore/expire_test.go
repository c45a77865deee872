package pebblestore_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestExpire deletes the events before a cutoff from a store whose log has
// integrated all but its newest events: searches (random filters, paged,
// against the brute force over what remains), lookups by id, the log's
// reads and appends all behave as if the events before the cutoff never
// were; the records, id entries, posting blocks and column buckets before
// it are gone, except the records the store keeps (not integrated, the
// last seq, the tree's last leaf); after a reopen and once the log caught
// up, a second pass deletes those. Each pass either visits the posting
// lists of the records it deletes (the passes before it finished) or, as
// after an interrupted pass, walks every list.
//
// The events come 50 ms apart on average, all in one epoch of the posting
// lists, or (epochs) 5 minutes apart, over about six epochs: the pass
// deletes the epochs before the cutoff's whole, and its blocks before the
// cutoff list by list.
func TestExpire(t *testing.T) {
	for _, limit := range []int{0, 8} {
		for _, walk := range []bool{false, true} {
			for _, epochs := range []bool{false, true} {
				t.Run(fmt.Sprintf("DictionaryLimit=%d,walk=%v,epochs=%v", limit, walk, epochs), func(t *testing.T) { testExpire(t, limit, walk, epochs) })
			}
		}
	}
}

func testExpire(t *testing.T, limit int, walk, epochs bool) {
	ctx := context.Background()
	cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: limit}
	s := openStoreConfig(t, cfg)
	defer func() { s.Close() }()
	g := newGen(11)
	if epochs {
		g.maxStep = 10 * time.Minute
	}
	all := appendBatches(t, s, g, 12, 250)
	n := uint64(len(all))
	// The log has integrated all but the last 200 events.
	tree := n - 200
	if err := s.PutTreeHashesForTest(tree, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Reopened, so that the counts the appends changed are saved: what
	// the pass changes must be saved by the pass.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreConfig(t, cfg)
	times := make([]time.Time, len(all))
	for i, e := range all {
		times[i] = e.EventTime
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := times[len(times)/2]

	// What the pass must delete and keep.
	kept := func(e *audittrail.Event, tree uint64) bool { return e.Seq >= tree || e.Seq == n }
	var wantDeleted, wantKept int64
	var remaining []*audittrail.Event
	for _, e := range all {
		switch {
		case !e.EventTime.Before(cutoff):
			remaining = append(remaining, e)
		case kept(e, tree):
			wantKept++
		default:
			wantDeleted++
		}
	}
	if wantKept < 5 || wantDeleted < 1000 {
		t.Fatalf("the data does not exercise the pass: %d to keep, %d to delete", wantKept, wantDeleted)
	}
	before, err := s.KeysBeforeForTest(cutoff.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, all, "before the pass")

	// Appends run during the pass: none may be lost or shown wrongly.
	var wg sync.WaitGroup
	var during []*audittrail.Event
	var appendErr error
	batches := make([][]*audittrail.Event, 5)
	for i := range batches {
		batches[i] = g.batch(20)
		for _, e := range batches[i] {
			if e.EventTime.Before(cutoff) { // the generator's jitter
				e.EventTime = cutoff
			}
		}
	}
	wg.Go(func() {
		for _, b := range batches {
			res, err := s.Append(ctx, b)
			for _, r := range res {
				err = cmp.Or(err, r.Err)
			}
			if err != nil {
				appendErr = err
				return
			}
			during = append(during, stored(res)...)
		}
	})
	if walk {
		s.ForgetCleanedForTest()
	}
	fieldsBefore, metaBefore, prefixesBefore := s.DictionaryIDsForTest()
	cutoffEpoch := pebblestore.EpochOfForTest(cutoff.UnixNano())
	if ep := s.EpochsForTest(); epochs != (ep[0] < cutoffEpoch) {
		t.Fatalf("epochs %v, the cutoff's %d: want some before it only when the events are spread", ep, cutoffEpoch)
	}
	res, err := s.Expire(ctx, cutoff)
	wg.Wait()
	if err != nil || appendErr != nil {
		t.Fatal(err, appendErr)
	}
	if !res.Cutoff.Equal(cutoff) || res.Deleted != wantDeleted || res.Kept != wantKept {
		t.Fatalf("Expire: %+v; want cutoff %v, %d deleted, %d kept", res, cutoff, wantDeleted, wantKept)
	}
	remaining = append(remaining, during...)
	all = append(all, during...)

	if ep := s.EpochsForTest(); ep[0] != cutoffEpoch {
		t.Fatalf("epochs %v after the pass, want the first to be the cutoff's, %d", ep, cutoffEpoch)
	}
	after, err := s.KeysBeforeForTest(cutoff.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	if after["e"] != int(wantKept) {
		t.Fatalf("%d records before the cutoff remain, want the %d kept", after["e"], wantKept)
	}
	for _, k := range []string{"w", "z", "v"} {
		if before[k] == 0 && (k == "w" || limit > 0) {
			t.Fatalf("no %s keys before the cutoff to begin with: %v", k, before)
		}
		// A targeted pass leaves the blocks of the kept records' lists
		// (the next pass that deletes them visits those lists); a walk
		// and the column leave nothing.
		allowed := 0
		if !walk && k != "v" {
			allowed = before[k] / 10
		}
		if after[k] > allowed {
			t.Fatalf("%d %s keys before the cutoff remain (of %d; %d records kept)", after[k], k, before[k], wantKept)
		}
	}
	if want := len(all) - int(wantDeleted); after["i"] != want {
		t.Fatalf("%d id entries, want %d", after["i"], want)
	}
	var held []*audittrail.Event // by the events still stored
	for _, e := range all {
		if !e.EventTime.Before(cutoff) || kept(e, tree) {
			held = append(held, e)
		}
	}
	erased := checkErased(t, s, held, fieldsBefore, metaBefore, prefixesBefore, res.Erased)
	checkCounts(t, s, held, "after the pass")
	if limit == 0 && erased < 1000 {
		t.Fatalf("%d values erased: the data does not exercise the erasure", erased)
	}

	check := func(s *pebblestore.Store, label string) {
		t.Helper()
		r := rand.New(rand.NewPCG(3, 4))
		for i := range 150 {
			f := audittrail.Filter{}
			if i > 0 {
				f = randomFilter(r, all)
			}
			if i%3 == 1 {
				// Ask for the time before the cutoff explicitly.
				start, end := cutoff.Add(-time.Hour), cutoff.Add(time.Duration(r.IntN(300))*time.Second)
				f.StartTime, f.EndTime = &start, &end
			}
			q := compile(t, f)
			want := bruteForce(remaining, q, nil)
			lim := []int{1, 7, 50, 1000}[r.IntN(4)]
			if d := diff(want, drain(t, s, q, lim, 0)); d != "" {
				t.Fatalf("%s: search %d, filter %+v, limit %d: (-want +got)\n%s", label, i, f, lim, d)
			}
		}
		for _, e := range all {
			got, err := s.EventByID(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if e.EventTime.Before(cutoff) != (got == nil) {
				t.Fatalf("%s: EventByID(%s, event time %v): %v", label, e.ID, e.EventTime, got)
			}
		}
		last := s.LastSeq()
		sparse, err := s.EventsBySeqSparse(ctx, 1, last)
		if err != nil {
			t.Fatal(err)
		}
		bySeq := map[uint64]*audittrail.Event{}
		for _, e := range all {
			bySeq[e.Seq] = e
		}
		for i, got := range sparse {
			e := bySeq[uint64(i)+1]
			if e == nil || e.EventTime.Before(cutoff) { // nil: deleted, its id used again
				if got != nil {
					t.Fatalf("%s: EventsBySeqSparse shows seq %d, before the cutoff", label, e.Seq)
				}
			} else if d := diff([]*audittrail.Event{e}, []*audittrail.Event{got}); d != "" {
				t.Fatalf("%s: EventsBySeqSparse seq %d: %s", label, e.Seq, d)
			}
		}
	}
	check(s, "after the pass")

	// The log's integrator still reads what it has not integrated, and a
	// deleted event cannot be read by seq.
	for _, e := range all {
		if !e.EventTime.Before(cutoff) {
			continue
		}
		evs, err := s.EventsBySeq(ctx, e.Seq, e.Seq)
		switch {
		case kept(e, tree):
			if err != nil || evs[0].ID != e.ID {
				t.Fatalf("kept event seq %d: %v", e.Seq, err)
			}
		case audittrail.ErrorCode(err) != audittrail.ENotFound:
			t.Fatalf("deleted event seq %d read by seq: %v, %v", e.Seq, evs, err)
		}
	}

	// Appends: an event before the cutoff is refused with a clear error,
	// the others of its batch are stored; a deleted event's id may be
	// used again.
	old := g.next()
	old.EventTime = cutoff.Add(-time.Nanosecond)
	var reused *audittrail.Event
	for _, e := range all {
		if e.EventTime.Before(cutoff) && !kept(e, tree) {
			reused = e.Clone()
			break
		}
	}
	fresh := g.next()
	reused.EventTime, reused.Seq, reused.ReceiveTime = fresh.EventTime, 0, fresh.ReceiveTime
	ar, err := s.Append(ctx, []*audittrail.Event{old, fresh, reused})
	if err != nil {
		t.Fatal(err)
	}
	if audittrail.ErrorCode(ar[0].Err) != audittrail.EInvalid || ar[1].Err != nil || ar[2].Err != nil {
		t.Fatalf("append before the cutoff, after, reused id: %v, %v, %v", ar[0].Err, ar[1].Err, ar[2].Err)
	}
	t.Logf("refused: %v", ar[0].Err)
	remaining = append(remaining, ar[1].Event, ar[2].Event)
	all = append(all, ar[1].Event, ar[2].Event)
	// The reused event's values came back (its resource, unique, was
	// erased when the dictionary held it): they have ids again.
	byResource := compile(t, audittrail.Filter{Exact: [audittrail.NumFields]string{audittrail.FieldResource: reused.Resource}})
	if got := drain(t, s, byResource, 10, 0); len(got) != 1 || got[0].Seq != ar[2].Event.Seq {
		t.Fatalf("the resource of a deleted event, stored again: found %d events", len(got))
	}
	// The deleted event of that id is no longer in all: its id names the
	// new one now.
	all = slices.DeleteFunc(all, func(e *audittrail.Event) bool { return e.ID == reused.ID && e.Seq != ar[2].Event.Seq })
	check(s, "after appends")

	// An earlier cutoff changes nothing; the cutoff survives a reopen.
	if res, err := s.Expire(ctx, cutoff.Add(-time.Hour)); err != nil || !res.Cutoff.Equal(cutoff) || res.Deleted != 0 {
		t.Fatalf("Expire with an earlier cutoff: %+v, %v", res, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fieldsBefore, metaBefore, prefixesBefore = s.DictionaryIDsForTest()
	s = openStoreConfig(t, cfg)
	if !s.Cutoff().Equal(cutoff) {
		t.Fatalf("cutoff after reopen: %v, want %v", s.Cutoff(), cutoff)
	}
	fieldsAfter, metaAfter, prefixesAfter := s.DictionaryIDsForTest()
	if !reflect.DeepEqual(fieldsAfter, fieldsBefore) || !reflect.DeepEqual(metaAfter, metaBefore) || !reflect.DeepEqual(prefixesAfter, prefixesBefore) {
		t.Fatal("the dictionaries read after a reopen are not those before it")
	}
	check(s, "after reopen")
	checkCounts(t, s, slices.DeleteFunc(slices.Clone(all), func(e *audittrail.Event) bool {
		return e.EventTime.Before(cutoff) && !kept(e, tree)
	}), "after reopen")
	if got := drain(t, s, byResource, 10, 0); len(got) != 1 || got[0].Seq != ar[2].Event.Seq {
		t.Fatalf("after reopen, the resource of a deleted event stored again: found %d events", len(got))
	}

	// Once the log has integrated everything, the next pass deletes the
	// kept records but the last seq's and the last leaf's (the same one).
	if err := s.PutTreeHashesForTest(s.LastSeq(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if walk {
		s.ForgetCleanedForTest()
	}
	res, err = s.Expire(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != wantKept || res.Kept != 0 {
		t.Fatalf("second pass: %+v, want %d deleted, none kept", res, wantKept)
	}
	held = slices.DeleteFunc(slices.Clone(all), func(e *audittrail.Event) bool { return e.EventTime.Before(cutoff) })
	checkErased(t, s, held, fieldsAfter, metaAfter, prefixesAfter, res.Erased)
	checkCounts(t, s, held, "after the second pass")
	after, err = s.KeysBeforeForTest(cutoff.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"e", "w", "z", "v"} {
		if after[k] != 0 {
			t.Fatalf("%d %s keys before the cutoff after the second pass", after[k], k)
		}
	}
	check(s, "after the second pass")
}

// checkErased checks what a retention pass did to the dictionaries: of the
// values they held before it (fields, meta), those of the events still
// stored (held) are still there, the others were erased; of the value
// column's prefixes, none is left that no inline value of a held event
// has (one that has may be gone: a value written before its prefix was
// in the dictionary does not refer to it). As many as the pass reported
// are gone, and no key or value of the database holds them (long enough
// ones that no held event contains). It returns how many were erased.
func checkErased(t *testing.T, s *pebblestore.Store, held []*audittrail.Event,
	fields [audittrail.NumFields]map[string]uint32, meta, prefixes map[string]uint32, reported int64) int64 {
	t.Helper()
	var heldFields [audittrail.NumFields]map[string]bool
	for f := range heldFields {
		heldFields[f] = map[string]bool{}
	}
	heldMeta := map[string]bool{}
	var text strings.Builder // every string of the held events
	for _, e := range held {
		for f := range audittrail.NumFields {
			heldFields[f][e.Value(f)] = true
			text.WriteString(e.Value(f) + "\n")
		}
		for k, v := range e.Metadata {
			heldMeta[k+"\x00"+v] = true
			text.WriteString(k + "\n" + v + "\n")
		}
		for k, v := range e.RequestParameters {
			text.WriteString(k + "\n" + v + "\n")
		}
		text.WriteString(e.UserAgent + "\n" + e.LoginPrincipal + "\n")
	}
	nowFields, nowMeta, nowPrefixes := s.DictionaryIDsForTest()
	// The prefixes the column entries of held events may refer to: those
	// of their inline values (not in a dictionary).
	heldPrefixes := map[string]bool{}
	notePrefix := func(v string, dict map[string]uint32) {
		if _, inDict := dict[v]; !inDict {
			if p, ok := pebblestore.SplitColumnValueForTest(v); ok {
				heldPrefixes[p] = true
			}
		}
	}
	for f := range audittrail.NumFields {
		for v := range heldFields[f] {
			notePrefix(v, nowFields[f])
		}
	}
	for v := range heldMeta {
		notePrefix(v, nowMeta)
	}
	dump, err := s.DumpForTest()
	if err != nil {
		t.Fatal(err)
	}
	var erased int64
	gone := func(name, v, needle string) {
		erased++
		if len(needle) >= 8 && !strings.Contains(text.String(), needle) && bytes.Contains(dump, []byte(needle)) {
			t.Fatalf("%s %q was erased, but the database still holds %q", name, v, needle)
		}
	}
	// A value held now but under another id than before the pass was
	// erased, then stored again by an event appended during the pass.
	check := func(name string, before map[string]uint32, held map[string]bool, now map[string]uint32, needle func(string) string) {
		for v, id := range before {
			nowID, stays := now[v]
			switch {
			case held[v] && !stays:
				t.Fatalf("%s %q, held by a stored event, was erased", name, v)
			case !held[v] && stays:
				t.Fatalf("%s %q, held by no stored event, was not erased", name, v)
			case !held[v]:
				gone(name, v, needle(v))
			case nowID != id:
				erased++
			}
		}
	}
	for f := range audittrail.NumFields {
		check(f.String(), fields[f], heldFields[f], nowFields[f], func(v string) string { return v })
	}
	check("metadata pair", meta, heldMeta, nowMeta, func(v string) string { _, val, _ := strings.Cut(v, "\x00"); return val })
	for p, id := range prefixes {
		nowID, stays := nowPrefixes[p]
		switch {
		case !heldPrefixes[p] && stays:
			t.Fatalf("column prefix %q, of no inline value of a stored event, was not erased", p)
		case !stays:
			gone("column prefix", p, p)
		case nowID != id:
			erased++
		}
	}
	if erased != reported {
		t.Fatalf("the pass reported %d values erased, %d were", reported, erased)
	}
	return erased
}

// checkCounts checks that the posting count of every value the
// dictionaries hold is the number of the held events (those stored) that
// have it.
func checkCounts(t *testing.T, s *pebblestore.Store, held []*audittrail.Event, label string) {
	t.Helper()
	var want [audittrail.NumFields]map[string]uint64
	for f := range want {
		want[f] = map[string]uint64{}
	}
	wantMeta := map[string]uint64{}
	for _, e := range held {
		for f := range audittrail.NumFields {
			want[f][e.Value(f)]++
		}
		for k, v := range e.Metadata {
			wantMeta[k+"\x00"+v]++
		}
	}
	fields, meta := s.CountsForTest()
	compare := func(name string, got, want map[string]uint64) {
		for v, n := range got {
			if n != want[v] {
				t.Fatalf("%s: %s %q: posting count %d, %d events have it", label, name, v, n, want[v])
			}
		}
	}
	for f := range audittrail.NumFields {
		compare(f.String(), fields[f], want[f])
	}
	compare("metadata pair", meta, wantMeta)
}

// TestExpireErasesFromFiles: after a pass, the store's files no longer hold
// the deleted events' values (principals, resources, request and trace ids),
// although their records, column entries and dictionary keys were long in
// the bottom level: the store writes its tables uncompressed here, so that
// their bytes can be searched. With the default dictionary limit the
// values are in dictionaries; with a small one most are inline (records,
// the value column), and ten parent paths of deleted events only are in
// the column's prefix dictionary.
func TestExpireErasesFromFiles(t *testing.T) {
	for _, limit := range []int{0, 16} {
		t.Run(fmt.Sprintf("DictionaryLimit=%d", limit), func(t *testing.T) { testExpireErasesFromFiles(t, limit) })
	}
}

// peopleStore fills the store of cfg with 2,000 generated events and, before
// them, events older than the cutoff it returns: 20 whose resources have no
// parent path (with a small DictionaryLimit they fill the resource
// dictionary, so that the next resources are inline, in the value column),
// then 30 under ten parent paths that only they have (returned), three
// values each, so that the second puts the path in the column's prefix
// dictionary. The log has integrated everything, and every key is in the
// bottom level, as in a store that has run for a while.
func peopleStore(t *testing.T, cfg pebblestore.Config) (s *pebblestore.Store, all []*audittrail.Event, parents []string, cutoff time.Time) {
	t.Helper()
	s = openStoreConfig(t, cfg)
	g := newGen(5)
	var batches [][]*audittrail.Event
	for range 8 {
		batches = append(batches, g.batch(250))
	}
	// At the start of a bucket of the value column (69 s): a pass deletes
	// the buckets that end before its cutoff, and the events of the
	// cutoff's own bucket before it with the bucket, by a later pass.
	cutoff = pebblestore.ColumnBucketStartForTest(batches[4][0].EventTime)
	old := func(e *audittrail.Event, i int) *audittrail.Event {
		e.EventTime = cutoff.Add(-time.Duration(1+i) * time.Second)
		return e
	}
	var first []*audittrail.Event
	for i := range 20 {
		e := old(g.next(), i)
		e.Resource = fmt.Sprintf("thing-%04d", i)
		first = append(first, e)
	}
	for i := range 10 {
		parents = append(parents, fmt.Sprintf("//drive/people/jane.doe-%02d@example.com/files", i))
		for j := range 3 {
			e := old(g.next(), 20+i*3+j)
			// The part after the parent is long and unique, so that
			// TestExpireErasesFromFiles looks for it too: with a small
			// DictionaryLimit the value column holds it apart from the
			// record (prefix id and rest), and only compacting the
			// column's deleted buckets takes it out of the files.
			e.Resource = fmt.Sprintf("%s/quarterly-report-%02d-%d.pdf", parents[i], i, j)
			first = append(first, e)
		}
	}
	all = stored(mustAppend(t, s, first))
	for _, b := range batches {
		all = append(all, stored(mustAppend(t, s, b))...)
	}
	if err := s.PutTreeHashesForTest(uint64(len(all)), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CompactAllForTest(); err != nil {
		t.Fatal(err)
	}
	if _, _, prefixes := s.DictionaryValuesForTest(); cfg.DictionaryLimit > 0 {
		for _, p := range parents {
			if !prefixes[p] {
				t.Fatalf("the column's prefix dictionary lacks %q: the test does not exercise its erasure", p)
			}
		}
	}
	return s, all, parents, cutoff
}

func testExpireErasesFromFiles(t *testing.T, limit int) {
	ctx := context.Background()
	dir := t.TempDir()
	s, all, parents, cutoff := peopleStore(t, pebblestore.UncompressedForTest(pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: limit}))
	defer func() { s.Close() }()
	var text strings.Builder // every string of the events that stay
	for _, e := range all {
		if !e.EventTime.Before(cutoff) {
			fmt.Fprintf(&text, "%s\n%s\n%s\n%s\n%v\n", e.Principal, e.Resource, e.Workspace, e.Action, e.Metadata)
		}
	}
	needles := slices.Clone(parents) // values of deleted events only
	if limit == 0 {
		needles = nil // the column holds no prefixes
	}
	for _, e := range all {
		if !e.EventTime.Before(cutoff) {
			continue
		}
		rest := e.Resource[strings.LastIndexByte(e.Resource, '/')+1:] // what the column keeps of an inline value besides its prefix
		for _, v := range []string{e.Principal, e.Resource, rest, e.Metadata["request_id"], e.Metadata["trace_id"]} {
			if len(v) >= 16 && !strings.Contains(text.String(), v) {
				needles = append(needles, v)
			}
		}
	}
	files := func() []byte {
		var b []byte
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			b = append(b, data...)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	held := func(data []byte) (out []string) {
		for _, v := range needles {
			if bytes.Contains(data, []byte(v)) {
				out = append(out, v)
			}
		}
		return out
	}
	if h := held(files()); len(needles) < 500 || len(h) != len(needles) {
		t.Fatalf("before the pass the files hold %d of the %d values to erase", len(h), len(needles))
	}
	res, err := s.Expire(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	_, _, prefixes := s.DictionaryValuesForTest()
	for _, p := range parents {
		if prefixes[p] {
			t.Fatalf("the column prefix %q of deleted events only is still in the dictionary", p)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if h := held(files()); len(h) != 0 {
		t.Fatalf("after the pass (%+v) the files hold %d of the %d deleted values, such as %q", res, len(h), len(needles), h[0])
	}
}

// TestExpireKeepsPrefixesInUse: a column prefix that only deleted events
// had, used again by an event stored after the pass read the column (the
// writer notes it), is not erased: after a reopen the new event's resource
// is found by a regex, which reads the column.
func TestExpireKeepsPrefixesInUse(t *testing.T) {
	ctx := context.Background()
	cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 16}
	s, _, parents, cutoff := peopleStore(t, cfg)
	defer func() { s.Close() }()
	g := newGen(6)
	var again *audittrail.Event
	defer pebblestore.SetPrefixScanHookForTest(func() {
		e := g.next()
		e.EventTime = cutoff.Add(time.Hour)
		e.Resource = parents[3] + "/again.pdf"
		again = stored(mustAppend(t, s, []*audittrail.Event{e}))[0]
	})()
	res, err := s.Expire(ctx, cutoff)
	if err != nil || again == nil {
		t.Fatal(err, again)
	}
	_, _, prefixes := s.DictionaryValuesForTest()
	for i, p := range parents {
		if prefixes[p] != (i == 3) {
			t.Fatalf("after the pass (%+v), prefix %q in the dictionary: %v", res, p, prefixes[p])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreConfig(t, cfg)
	q := compile(t, audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldResource: "jane.doe-03@example.com/files/again"}})
	if got := drain(t, s, q, 10, 0); len(got) != 1 || got[0].Resource != again.Resource {
		t.Fatalf("the event stored during the pass, found by its resource: %d events", len(got))
	}
}

// TestExpireCutoffRange: a cutoff outside the event times the store holds
// is refused.
func TestExpireCutoffRange(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	for _, c := range []time.Time{time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), audittrail.MaxEventTime} {
		if _, err := s.Expire(context.Background(), c); audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Fatalf("Expire(%v): %v, want invalid", c, err)
		}
	}
	if !s.Cutoff().IsZero() {
		t.Fatalf("cutoff %v after refused passes", s.Cutoff())
	}
}

// TestExpireClosed: a pass on a closed store fails as other calls do.
func TestExpireClosed(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(context.Background(), time.Now()); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Fatalf("Expire on a closed store: %v, want unavailable", err)
	}
}

// TestExpireReportsInterruptedPass: when the process ended during a pass
// (after its deletions, before it recorded its end), the first pass after
// Open says so (ExpireResult.Resumed), so that the deletion is recorded
// although that pass deletes nothing more; the passes after it do not.
func TestExpireReportsInterruptedPass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	defer func() { s.Close() }()
	all := appendBatches(t, s, newGen(12), 4, 250)
	if err := s.PutTreeHashesForTest(uint64(len(all)), nil, nil); err != nil {
		t.Fatal(err)
	}
	times := make([]time.Time, len(all))
	for i, e := range all {
		times[i] = e.EventTime
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := times[len(times)/2]
	res, err := s.Expire(ctx, cutoff)
	if err != nil || res.Deleted == 0 || res.Resumed {
		t.Fatalf("first pass: %+v, %v; want deletions, not resumed", res, err)
	}
	// The process ends before the pass's end is recorded.
	s.InterruptPassForTest()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if res, err = s.Expire(ctx, cutoff); err != nil || res.Deleted != 0 || !res.Resumed {
		t.Fatalf("the pass after the interrupted one: %+v, %v; want none deleted, resumed", res, err)
	}
	if res, err = s.Expire(ctx, cutoff); err != nil || res.Resumed {
		t.Fatalf("the pass after that: %+v, %v; want not resumed", res, err)
	}
	// A store that finished its passes reports none resumed after a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if res, err = s.Expire(ctx, cutoff); err != nil || res.Resumed {
		t.Fatalf("after a reopen of a store whose passes finished: %+v, %v; want not resumed", res, err)
	}
	// A server raises the cutoff before it serves (RaiseCutoff), then
	// passes: that neither makes a finished store look interrupted nor
	// hides an interrupted one.
	for i, interrupted := range []bool{false, true} {
		if interrupted {
			s.InterruptPassForTest()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir)
		later := times[len(times)*(5+i)/8]
		if got, err := s.RaiseCutoff(ctx, later); err != nil || !got.Equal(later) {
			t.Fatalf("RaiseCutoff: %v, %v", got, err)
		}
		if res, err = s.Expire(ctx, later); err != nil || res.Deleted == 0 || res.Resumed != interrupted {
			t.Fatalf("a pass after RaiseCutoff (the last pass interrupted: %v): %+v, %v; want deletions, resumed %v", interrupted, res, err, interrupted)
		}
	}
	// Nor does a store whose passes ran on a build that marked neither a
	// pass's end nor its start (a cutoff, nothing else: the upgrade from
	// such a build recorded a resumed pass that never was), nor one whose
	// last pass's end was lost (it is not synced).
	s.ForgetPassMarksForTest()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if res, err = s.Expire(ctx, cutoff); err != nil || res.Resumed {
		t.Fatalf("after a reopen of a store of a build without the marks: %+v, %v; want not resumed", res, err)
	}
}
