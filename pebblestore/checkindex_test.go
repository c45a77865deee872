package pebblestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/pebblestore"
)

// checkStore is a closed store of internal/sample events made once for
// the index check's tests, which each tamper with a copy.
type checkStore struct {
	dir    string
	events []*audittrail.Event // as stored, by seq
	cutoff time.Time           // zero without retention
}

var (
	checkStores   = map[bool]*checkStore{}
	checkStoresMu sync.Mutex
)

// checkStoreDictionaryLimit makes the dictionaries of the sample's
// high-cardinality fields (principals, resources, ips, request ids) freeze,
// so that the store holds inline values, their hashed lists and the value
// column with its prefixes.
const checkStoreDictionaryLimit = 400

// sampleCheckStore returns the closed store, with events before the
// median time expired by retention when expire is set.
func sampleCheckStore(t *testing.T, expire bool) *checkStore {
	t.Helper()
	checkStoresMu.Lock()
	defer checkStoresMu.Unlock()
	if cs := checkStores[expire]; cs != nil {
		return cs
	}
	dir, err := os.MkdirTemp("", "checkindex")
	if err != nil {
		t.Fatal(err)
	}
	cs := &checkStore{dir: dir}
	cfg := pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: checkStoreDictionaryLimit}
	s := openStoreConfig(t, cfg)
	g := sample.New(3, sample.Options{Events: 6000})
	now := time.Now()
	for range 24 {
		cs.events = append(cs.events, stored(mustAppend(t, s, sampleEvents(t, g, now, 250)))...)
	}
	if expire {
		n := uint64(len(cs.events))
		// The log has integrated the first quarter of the events:
		// retention keeps those it has not (expire.go), which are hidden
		// but stored, their index entries partly deleted (the value
		// column's buckets before the cutoff).
		if err := s.PutTreeHashesForTest(n/4, nil, nil); err != nil {
			t.Fatal(err)
		}
		times := make([]time.Time, len(cs.events))
		for i, e := range cs.events {
			times[i] = e.EventTime
		}
		slices.SortFunc(times, time.Time.Compare)
		cs.cutoff = times[len(times)/2]
		res, err := s.Expire(context.Background(), cs.cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted < 1000 {
			t.Fatalf("retention deleted %d events", res.Deleted)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkStores[expire] = cs
	return cs
}

// removeCheckStores removes the stores sampleCheckStore made (TestMain).
func removeCheckStores() {
	for _, cs := range checkStores {
		os.RemoveAll(cs.dir)
	}
}

func sampleEvents(t testing.TB, g *sample.Generator, now time.Time, n int) []*audittrail.Event {
	out := make([]*audittrail.Event, n)
	for i := range out {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, now, true)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// copyStore copies the closed store cs to a new directory.
func (cs *checkStore) copy(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(dir, os.DirFS(cs.dir)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkIndexes opens the store at dir and returns what CheckIndexes
// reports.
func checkIndexes(t *testing.T, dir string) ([]pebblestore.IndexFinding, pebblestore.IndexCheck) {
	t.Helper()
	s := openStoreConfig(t, pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: checkStoreDictionaryLimit})
	defer s.Close()
	var found []pebblestore.IndexFinding
	st, err := s.CheckIndexes(context.Background(), 2, func(f pebblestore.IndexFinding) { found = append(found, f) })
	if err != nil {
		t.Fatal(err)
	}
	return found, st
}

func TestCheckIndexesUntouched(t *testing.T) {
	for _, expire := range []bool{false, true} {
		t.Run(fmt.Sprintf("expired=%v", expire), func(t *testing.T) {
			cs := sampleCheckStore(t, expire)
			found, st := checkIndexes(t, cs.copy(t))
			for _, f := range found {
				t.Errorf("finding on an untouched store: %s: %s", f.Kind, f)
			}
			if !st.Complete || st.Keys < uint64(len(cs.events)) || st.Bytes == 0 || st.Events == 0 || st.Entries < 8*st.Events {
				t.Errorf("stats %+v", st)
			}
			if expire {
				if st.Events >= uint64(len(cs.events)) || st.BeforeCutoff == 0 {
					t.Errorf("after retention: stats %+v, %d events appended", st, len(cs.events))
				}
			} else if st.Events != uint64(len(cs.events)) {
				t.Errorf("%d events read, %d stored", st.Events, len(cs.events))
			}
		})
	}
}

// findingsOf returns the findings of kind about seq, as text.
func findingsOf(found []pebblestore.IndexFinding, kind string, seq uint64) []string {
	var out []string
	for _, f := range found {
		if f.Kind == kind && f.Seq == seq {
			out = append(out, f.String())
		}
	}
	return out
}

// lateEvent returns an event after the retention cutoff of cs, from the
// end of the store, whose event source differs from other's.
func lateEvent(cs *checkStore, back int, other string) *audittrail.Event {
	for i := len(cs.events) - 1 - back; i >= 0; i-- {
		if e := cs.events[i]; e.EventSource != other && !e.EventTime.Before(cs.cutoff) {
			return e
		}
	}
	panic("no event")
}

func TestCheckIndexesDeletedPosting(t *testing.T) {
	for _, expire := range []bool{false, true} {
		t.Run(fmt.Sprintf("expired=%v", expire), func(t *testing.T) {
			cs := sampleCheckStore(t, expire)
			dir := cs.copy(t)
			e := lateEvent(cs, 300, "")
			if err := pebblestore.DeletePosting(dir, audittrail.FieldEventSource, e.EventSource, e.Seq); err != nil {
				t.Fatal(err)
			}
			found, st := checkIndexes(t, dir)
			got := findingsOf(found, "missing", e.Seq)
			want := fmt.Sprintf("postings of event_source: event seq %d (id %s)", e.Seq, e.ID)
			if len(found) != 1 || len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], e.EventSource) {
				t.Errorf("findings %q, want one starting %q", found, want)
			}
			if st.Disagreeing != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestCheckIndexesAddedPosting(t *testing.T) {
	cs := sampleCheckStore(t, false)
	dir := cs.copy(t)
	e := cs.events[len(cs.events)-10]
	other := lateEvent(cs, 20, e.EventSource)
	// A posting of e's source naming another event, and one naming a seq
	// that does not exist.
	if err := pebblestore.AddPosting(dir, audittrail.FieldEventSource, e.EventSource, other.EventTime.UnixNano(), other.Seq); err != nil {
		t.Fatal(err)
	}
	beyond := uint64(len(cs.events)) + 5
	if err := pebblestore.AddPosting(dir, audittrail.FieldEventSource, e.EventSource, e.EventTime.UnixNano(), beyond); err != nil {
		t.Fatal(err)
	}
	found, _ := checkIndexes(t, dir)
	got := findingsOf(found, "extra", other.Seq)
	if len(got) != 1 || !strings.Contains(got[0], "postings of event_source") || !strings.Contains(got[0], e.EventSource) || !strings.Contains(got[0], other.ID) {
		t.Errorf("findings %q: want one for the posting naming seq %d", found, other.Seq)
	}
	got = findingsOf(found, "extra", 0)
	if len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("names seq %d", beyond)) {
		t.Errorf("findings %q: want one for the posting naming seq %d", found, beyond)
	}
	if len(found) != 2 {
		t.Errorf("%d findings: %q", len(found), found)
	}
}

func TestCheckIndexesChangedColumnValue(t *testing.T) {
	cs := sampleCheckStore(t, false)
	dir := cs.copy(t)
	// The last events' resources are inline (the dictionary froze early):
	// the column holds them, a name after a prefix.
	e := cs.events[len(cs.events)-1]
	rest := e.Resource[strings.LastIndexByte(e.Resource, '/'):]
	changed := rest[:len(rest)-1] + "\x01"
	n, err := pebblestore.ReplaceInColumn(dir, []byte(rest), []byte(changed))
	if err != nil || n == 0 {
		t.Fatalf("replacing %q in the column: %d, %v", rest, n, err)
	}
	found, _ := checkIndexes(t, dir)
	missing, extra := findingsOf(found, "missing", e.Seq), findingsOf(found, "extra", e.Seq)
	if len(missing) != 1 || !strings.Contains(missing[0], "value column of resource") || !strings.Contains(missing[0], e.Resource) ||
		len(extra) != 1 || !strings.Contains(extra[0], "value column of resource") || !strings.Contains(extra[0], `\x01`) {
		t.Errorf("findings %q: want the column entry of seq %d missing and a wrong one", found, e.Seq)
	}
	for _, f := range found {
		if f.Index != "value column of resource" {
			t.Errorf("finding %s", f)
		}
	}
}

func TestCheckIndexesCorruptBlock(t *testing.T) {
	cs := sampleCheckStore(t, false)
	dir := cs.copy(t)
	// One table: compacted into the bottom level.
	s := openStoreConfig(t, pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: checkStoreDictionaryLimit})
	if _, _, err := s.CompactAllForTest(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var largest string
	var size int64
	for _, f := range tables {
		if fi, err := os.Stat(f); err == nil && fi.Size() > size {
			largest, size = f, fi.Size()
		}
	}
	if largest == "" {
		t.Fatal("no table")
	}
	table, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	// A byte in the middle of the table: a data block of the records or
	// the indexes. Open reads a few blocks (the dictionaries, the counts,
	// the first block of each epoch, the last record): when the byte is
	// in one of those, Open fails (which is also a finding, not
	// CheckIndexes's) and the next place is tried.
	for _, at := range []float64{0.5, 0.6, 0.4, 0.7, 0.3} {
		b := slices.Clone(table)
		b[int(float64(len(b))*at)] ^= 0x40
		damaged := filepath.Join(t.TempDir(), "store")
		if err := os.CopyFS(damaged, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(damaged, filepath.Base(largest)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: damaged, CacheSize: 16 << 20, DictionaryLimit: checkStoreDictionaryLimit})
		if err != nil {
			t.Logf("a byte at %.0f %% of the table: Open fails: %v", at*100, err)
			continue
		}
		s.Close()
		found, st := checkIndexes(t, damaged)
		if len(found) != 1 || found[0].Kind != "corrupt" || !strings.Contains(found[0].String(), "database: cannot read") || st.Complete {
			t.Errorf("a byte at %.0f %% of the table: findings %q, stats %+v: want one corrupt block", at*100, found, st)
		}
		return
	}
	t.Fatal("Open failed at every place tried")
}

// TestCheckIndexesEarlierFormats checks stores holding what earlier
// builds wrote beside this build's keys (one key per posting, format 5's
// lists and positions, format 6's column entries, format 7's lists without
// epochs): untouched, they report nothing.
func TestCheckIndexesEarlierFormats(t *testing.T) {
	for _, format := range []string{"unpacked", "format5", "format6", "format7"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			cfg := pebblestore.Config{Dir: dir, CacheSize: 16 << 20, DictionaryLimit: checkStoreDictionaryLimit}
			s := openStoreConfig(t, cfg)
			switch format {
			case "unpacked":
				s.WriteUnpackedPostingsForTest()
			case "format5":
				s.WriteFormat5ForTest()
			case "format6":
				s.WriteFormat6ForTest()
			case "format7":
				s.WriteFormat7ForTest()
			}
			g := sample.New(5, sample.Options{Events: 2000})
			now := time.Now()
			var events []*audittrail.Event
			for i := range 8 {
				if i == 4 && format != "unpacked" {
					s.WriteCurrentFormatForTest()
					s.WriteFormat7ForTest()
					if format != "format7" {
						s.WriteCurrentFormatForTest()
					}
				}
				events = append(events, stored(mustAppend(t, s, sampleEvents(t, g, now, 250)))...)
			}
			legacy := map[string][]byte{"unpacked": []byte("xh"), "format5": []byte("qs"), "format7": []byte("pk")}[format]
			for _, p := range legacy {
				if n, err := s.KeysWithPrefixForTest(p); err != nil || n == 0 {
					t.Fatalf("%d keys %c, %v", n, p, err)
				}
			}
			if format == "format6" {
				if keys, err := s.ColumnKeysForTest(); err != nil || keys[2] == 0 {
					t.Fatalf("column keys %v, %v", keys, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			found, st := checkIndexes(t, dir)
			for _, f := range found {
				t.Errorf("finding on an untouched store: %s: %s", f.Kind, f)
			}
			if !st.Complete || st.Events != uint64(len(events)) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestCheckIndexesDuplicateDictionaryValue(t *testing.T) {
	cs := sampleCheckStore(t, false)
	dir := cs.copy(t)
	v := cs.events[0].EventSource
	id, err := pebblestore.AddDictionaryValue(dir, audittrail.FieldEventSource, v)
	if err != nil {
		t.Fatal(err)
	}
	found, _ := checkIndexes(t, dir)
	var dup, unused int
	for _, f := range found {
		switch {
		case f.Kind == "dictionary" && !f.Warning && strings.Contains(f.String(), fmt.Sprintf("dictionary of event_source: value %q is held twice, as ids", v)) && strings.Contains(f.String(), fmt.Sprintf(" and %d", id)):
			dup++
		case f.Kind == "statistics" && f.Warning && strings.Contains(f.String(), "dictionary of event_source: 1 values no stored event refers to"):
			unused++
		default:
			t.Errorf("finding %s", f)
		}
	}
	if dup != 1 || unused != 1 {
		t.Errorf("findings %q: want the value held twice and unused", found)
	}
}

func TestCheckIndexesRecordReferences(t *testing.T) {
	cs := sampleCheckStore(t, false)
	t.Run("erased value", func(t *testing.T) {
		dir := cs.copy(t)
		e := cs.events[len(cs.events)-1]
		id, err := pebblestore.EraseDictionaryValue(dir, audittrail.FieldEventSource, e.EventSource)
		if err != nil {
			t.Fatal(err)
		}
		found, _ := checkIndexes(t, dir)
		want := fmt.Sprintf("dictionary of event_source: event seq %d at ", e.Seq)
		got := findingsOf(found, "dictionary", e.Seq)
		if len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], fmt.Sprintf("refers to value id %d, which the dictionary does not hold", id)) {
			t.Errorf("findings of seq %d: %q, want one starting %q", e.Seq, got, want)
		}
	})
	t.Run("inline value of a dictionary not frozen", func(t *testing.T) {
		dir := cs.copy(t)
		if err := pebblestore.UnfreezeDictionary(dir, audittrail.FieldResource); err != nil {
			t.Fatal(err)
		}
		e := cs.events[len(cs.events)-1]
		found, _ := checkIndexes(t, dir)
		got := findingsOf(found, "dictionary", e.Seq)
		if len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("the record holds value %q inline, but the dictionary is not frozen", e.Resource)) {
			t.Errorf("findings of seq %d: %q", e.Seq, got)
		}
		for _, f := range found {
			if f.Kind != "dictionary" || f.Index != "dictionary of resource" {
				t.Errorf("finding %s", f)
			}
		}
	})
}
