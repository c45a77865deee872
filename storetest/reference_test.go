package storetest_test

// This file holds a reference implementation of audittrail.Store for testing
// the suite itself: a brute-force store that keeps events in memory and in a
// JSON-lines file. It is written for obviousness, not speed. TestReference
// proves that a correct store passes the suite; TestSuiteCatchesMutants
// proves that the suite fails each of a list of wrong stores (mutants of the
// reference), so that its tests can fail.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/storetest"
)

// refStore is the reference store.
type refStore struct {
	mutant string // "" for the correct store; see mutants

	mu     sync.Mutex
	file   *os.File
	events []*audittrail.Event // newest first
	byID   map[string]*audittrail.Event
	seq    uint64
	recv   time.Time // receive time of the event at seq
	closed bool
}

var _ audittrail.Store = (*refStore)(nil)

func openRef(dir, mutant string) (*refStore, error) {
	s := &refStore{mutant: mutant, byID: map[string]*audittrail.Event{}}
	path := filepath.Join(dir, "events.jsonl")
	if data, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		sc.Buffer(nil, 1<<30)
		for sc.Scan() {
			var e audittrail.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return nil, err
			}
			s.insert(&e)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if mutant == "lose-last-event-on-reopen" && len(s.events) > 0 {
			last := slices.MaxFunc(s.events, func(a, b *audittrail.Event) int { return cmp.Compare(a.Seq, b.Seq) })
			s.events = slices.DeleteFunc(s.events, func(e *audittrail.Event) bool { return e == last })
			delete(s.byID, last.ID)
			s.seq--
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	s.file = f
	return s, nil
}

func clone(e *audittrail.Event) *audittrail.Event {
	c := *e
	if e.Status != nil {
		st := *e.Status
		c.Status = &st
	}
	c.Metadata = cloneMap(e.Metadata)
	c.RequestParameters = cloneMap(e.RequestParameters)
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// before reports whether a comes before b in the newest-first order.
func (s *refStore) before(a, b *audittrail.Event) bool {
	at, bt := a.EventTime.UnixNano(), b.EventTime.UnixNano()
	if at != bt {
		return at > bt
	}
	if s.mutant == "ties-by-ascending-seq" {
		return a.Seq < b.Seq
	}
	return a.Seq > b.Seq
}

func (s *refStore) insert(e *audittrail.Event) {
	i, _ := slices.BinarySearchFunc(s.events, e, func(x, y *audittrail.Event) int {
		if s.before(x, y) {
			return -1
		}
		return 1
	})
	s.events = slices.Insert(s.events, i, e)
	s.byID[e.ID] = e
	if e.Seq > s.seq {
		s.seq, s.recv = e.Seq, e.ReceiveTime
	}
}

func (s *refStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("closed")
	}
	out := make([]audittrail.AppendResult, len(events))
	for _, e := range events {
		if (e.ReceiveTime.Before(audittrail.MinEventTime) || !e.ReceiveTime.Before(audittrail.MaxReceiveTime)) && s.mutant != "receive-time-unchecked" {
			return nil, audittrail.Errorf(audittrail.EInvalid, "receive time out of range")
		}
	}
	pending := map[string]*audittrail.Event{}
	var added []*audittrail.Event
	seq, recv := s.seq, s.recv
	for i, e := range events {
		old := s.byID[e.ID]
		if p := pending[e.ID]; p != nil {
			old = p
		}
		if old != nil {
			same := old.SameContent(e)
			switch s.mutant {
			case "conflict-as-retry":
				same = true
			case "retry-as-conflict":
				same = false
			}
			if same {
				out[i].Event = clone(old)
				if s.mutant == "retry-takes-a-seq" {
					seq++
				}
			} else {
				out[i].Err = audittrail.Errorf(audittrail.EConflict, "event %s exists with other content", e.ID)
			}
			continue
		}
		seq++
		if s.mutant == "seq-from-zero" && seq == 1 && s.seq == 0 {
			seq = 0
		}
		c := clone(e)
		c.Seq = seq
		if !recv.IsZero() && !c.ReceiveTime.After(recv) {
			switch s.mutant {
			case "receive-time-not-raised":
			case "receive-time-nondecreasing":
				c.ReceiveTime = recv
			default:
				c.ReceiveTime = recv.Add(time.Nanosecond)
			}
		}
		recv = c.ReceiveTime
		switch s.mutant {
		case "status-nil-as-ok":
			if c.Status == nil {
				c.Status = &audittrail.Status{}
			}
		case "microseconds":
			c.EventTime = c.EventTime.Truncate(time.Microsecond)
		}
		pending[e.ID] = c
		added = append(added, c)
		out[i].Event = clone(c)
	}
	var buf []byte
	for _, e := range added {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := s.file.Write(buf); err != nil {
		return nil, err
	}
	if err := s.file.Sync(); err != nil {
		return nil, err
	}
	for _, e := range added {
		s.insert(e)
	}
	s.seq = seq
	return out, nil
}

func (s *refStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("closed")
	}
	q := s.mutateQuery(req.Query)
	maxScan := req.MaxScan
	if maxScan == 0 || s.mutant == "ignore-max-scan" {
		maxScan = audittrail.DefaultMaxScan
	}
	start, end := q.Start.UnixNano(), q.End.UnixNano()
	res := &audittrail.SearchResult{}
	scanned := 0
	var last *audittrail.Event // the last examined event
	for _, e := range s.events {
		t := e.EventTime.UnixNano()
		if t >= end && !(s.mutant == "end-inclusive" && t == end) {
			continue
		}
		if t < start || (s.mutant == "start-exclusive" && t == start) {
			break
		}
		if req.After != nil && !req.After.Before(t, e.Seq) && !(s.mutant == "cursor-inclusive" && t == req.After.Time && e.Seq == req.After.Seq) {
			continue
		}
		if scanned == maxScan {
			res.Next = &audittrail.Cursor{Time: last.EventTime.UnixNano(), Seq: last.Seq}
			return res, nil
		}
		scanned++
		last = e
		if !s.matchFields(q, e) {
			continue
		}
		if len(res.Events) == req.Limit {
			// The look-ahead found one more match.
			l := res.Events[len(res.Events)-1]
			res.Next = &audittrail.Cursor{Time: l.EventTime.UnixNano(), Seq: l.Seq}
			return res, nil
		}
		res.Events = append(res.Events, clone(e))
		if len(res.Events) == req.Limit && s.mutant == "no-look-ahead" {
			res.Next = &audittrail.Cursor{Time: t, Seq: e.Seq}
			return res, nil
		}
	}
	return res, nil
}

// mutateQuery returns the query a mutant executes instead of q.
func (s *refStore) mutateQuery(q *audittrail.Query) *audittrail.Query {
	c := *q
	switch s.mutant {
	case "regex-full-match":
		for i, re := range c.Regex {
			if re != nil {
				c.Regex[i] = regexp.MustCompile("^(?:" + re.String() + ")$")
			}
		}
	case "read-only-false-ignored":
		if c.ReadOnly != nil && !*c.ReadOnly {
			c.ReadOnly = nil
		}
	case "include-types-ignored":
		c.Types |= 7
	case "status-regex-anchored":
		if c.Status != nil {
			c.Status = regexp.MustCompile("^(?:" + c.Status.String() + ")$")
		}
	case "metadata-regex-anchored":
		c.MetadataRegex = map[string]*regexp.Regexp{}
		for k, re := range q.MetadataRegex {
			c.MetadataRegex[k] = regexp.MustCompile("^(?:" + re.String() + ")$")
		}
	case "exact-as-prefix":
		for i, v := range c.Exact {
			if v != nil {
				c.Exact[i] = nil
				c.Regex[i] = regexp.MustCompile("^" + regexp.QuoteMeta(*v))
			}
		}
	}
	return &c
}

func (s *refStore) matchFields(q *audittrail.Query, e *audittrail.Event) bool {
	switch s.mutant {
	case "absent-metadata-as-empty":
		c := clone(e)
		if c.Metadata == nil {
			c.Metadata = map[string]string{}
		}
		for k := range q.MetadataExact {
			if _, ok := c.Metadata[k]; !ok {
				c.Metadata[k] = ""
			}
		}
		for k := range q.MetadataRegex {
			if _, ok := c.Metadata[k]; !ok {
				c.Metadata[k] = ""
			}
		}
		e = c
	case "status-regex-on-message":
		if q.Status != nil {
			st := ""
			if e.Status != nil {
				st = e.Status.Message
			}
			rest := *q
			rest.Status = nil
			return q.Status.MatchString(st) && rest.MatchFields(e)
		}
	}
	return q.MatchFields(e)
}

func (s *refStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("closed twice")
	}
	s.closed = true
	return s.file.Close()
}

func harness(mutant string) storetest.Harness {
	return storetest.Harness{Open: func(t *testing.T, dir string) audittrail.Store {
		s, err := openRef(dir, mutant)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

func TestReference(t *testing.T) {
	storetest.RunHarness(t, harness(""))
}

// TestRun runs the suite through Run, which cannot reopen a store and skips
// the durability tests.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the same suite as TestReference without durability")
	}
	storetest.Run(t, func(t *testing.T) audittrail.Store {
		s, err := openRef(t.TempDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// mutants are wrong stores, each with the subtests of the suite that must
// catch it. Some also name the oracle, to show that it catches them on its
// own.
var mutants = map[string][]string{
	"ties-by-ascending-seq":      {"Search/NewestFirstWithTies", "Oracle"},
	"cursor-inclusive":           {"Search/After", "Paging/TiesAcrossPages"},
	"end-inclusive":              {"Search/TimeRange", "Oracle"},
	"start-exclusive":            {"Search/TimeRange", "Oracle"},
	"no-look-ahead":              {"Search/LookAhead", "Oracle"},
	"ignore-max-scan":            {"MaxScan/BoundsThePage"},
	"conflict-as-retry":          {"Append/Conflict"},
	"retry-as-conflict":          {"Append/Retry"},
	"retry-takes-a-seq":          {"Append/Retry"},
	"seq-from-zero":              {"Append/SequenceStartsAtOne"},
	"receive-time-not-raised":    {"Append/SequenceStartsAtOne", "Append/ConcurrentSequenceGapFree", "Oracle"},
	"receive-time-nondecreasing": {"Append/SequenceStartsAtOne", "Append/ConcurrentSequenceGapFree"},
	"receive-time-unchecked":     {"Append/ReceiveTimeRequired"},
	"lose-last-event-on-reopen":  {"Durability/CloseAndReopen"},
	"microseconds":               {"Durability/CloseAndReopen"},
	"status-nil-as-ok":           {"Filter/status_code_regex_no_status", "Oracle"},
	"status-regex-on-message":    {"Filter/status_code_regex_OK", "Oracle"},
	"status-regex-anchored":      {"Filter/status_code_regex_unanchored", "Oracle"},
	"regex-full-match":           {"Filter/event_source_regex_unanchored", "Oracle"},
	"metadata-regex-anchored":    {"Filter/metadata_regex_unanchored", "Oracle"},
	"exact-as-prefix":            {"Filter/principal_exact_no_prefix_match", "Oracle"},
	"read-only-false-ignored":    {"Filter/read_only_false", "Oracle"},
	"include-types-ignored":      {"Filter/include_types", "Oracle"},
	"absent-metadata-as-empty":   {"Filter/metadata_exact_absent_key", "Oracle"},
}

// TestSuiteCatchesMutants runs the suite on each mutant in a child process
// and expects the named subtests to fail. With -short it runs none.
func TestSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per mutant")
	}
	if os.Getenv("STORETEST_MUTANT") != "" {
		t.Skip("in a mutant child process")
	}
	names := make([]string, 0, len(mutants))
	for m := range mutants {
		names = append(names, m)
	}
	slices.Sort(names)
	for _, m := range names {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			want := mutants[m]
			var tops []string
			for _, w := range want {
				top, _, _ := strings.Cut(w, "/")
				tops = append(tops, top)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/^("+strings.Join(tops, "|")+")$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "STORETEST_MUTANT="+m, "STORETEST_SEED=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed on mutant %s; want %v to fail", m, want)
			}
			for _, w := range want {
				if !strings.Contains(string(out), "--- FAIL: TestMutant/"+w) {
					t.Errorf("mutant %s: want a failure of TestMutant/%s; output:\n%s", m, w, out)
				}
			}
		})
	}
}

// TestMutant runs the suite on the mutant named by STORETEST_MUTANT.
func TestMutant(t *testing.T) {
	m := os.Getenv("STORETEST_MUTANT")
	if m == "" {
		t.Skip("runs only as a child of TestSuiteCatchesMutants")
	}
	storetest.RunHarness(t, harness(m))
}
