package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// costlyRegex is valid, well within audittrail.MaxRegexProgram (503
// instructions: past 500, Go's regexp leaves its backtracker for the NFA),
// has no literal for the prefilter, and takes most of a millisecond per
// value, thousands of times what a regex people write takes: the kind of
// regex with which one request could keep a core busy for minutes
// (Config.SearchTimeout). It matches every resource of timeoutEvents.
const costlyRegex = `(?:.?){250}[0-9]$`

// timeoutEvents returns n events with distinct resources, and a timeout
// that is a quarter of what evaluating costlyRegex over their resources
// takes on this machine (so that the tests below do not depend on its
// speed).
func timeoutEvents(t *testing.T, seed uint64, n int) ([]*audittrail.Event, time.Duration) {
	t.Helper()
	events := newGen(seed).batch(n)
	re := regexp.MustCompile(costlyRegex)
	for i, e := range events {
		e.Resource = fmt.Sprintf("//engine-manager/workspaces/%08x-7b42-4c82-a3ae-5c45baa7b634/daiEngines/engine-%d", i*7919, i)
		if !re.MatchString(e.Resource) {
			t.Fatalf("test setup: %q does not match %s", e.Resource, costlyRegex)
		}
	}
	pass := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		for _, e := range events {
			re.MatchString(e.Resource)
		}
		pass = min(pass, time.Since(start))
	}
	return events, pass / 4
}

// TestSearchTimeoutPlanning: a search whose regex takes longer to evaluate
// over its field's dictionary than the search may take fails with
// EUnavailable and says why, rather than running for as long as the regex
// takes; nothing of the stopped evaluation is cached (a search with time
// enough answers correctly afterwards).
func TestSearchTimeoutPlanning(t *testing.T) {
	events, timeout := timeoutEvents(t, 61, 200)
	dir := t.TempDir()
	s := openStoreConfig(t, pebblestore.Config{Dir: dir, SearchTimeout: timeout})
	defer s.Close()
	all := stored(mustAppend(t, s, events))
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = costlyRegex
	q := compile(t, f)
	_, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, Limit: 50})
	if audittrail.ErrorCode(err) != audittrail.EUnavailable || !strings.Contains(audittrail.ErrorMessage(err), "ran out of time") {
		t.Fatalf("search with a regex that takes 4 times the timeout to plan: %v, want EUnavailable, ran out of time", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreConfig(t, pebblestore.Config{Dir: dir})
	defer s.Close()
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
}

// TestSearchTimeoutPartialPages: a search that runs out of time after
// examining events returns the page so far with Next where it stopped, as
// when MaxScan runs out, and the pages that follow hold the rest: none
// lost, none twice.
func TestSearchTimeoutPartialPages(t *testing.T) {
	// Resources inline (the dictionary freezes at 8 values): the regex is
	// evaluated on the value column's entries, window by window, as the
	// search goes, 16 entries to a window.
	defer pebblestore.SetColumnWindowsForTest(16, 1<<30)()
	events, timeout := timeoutEvents(t, 62, 200)
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), DictionaryLimit: 8, SearchTimeout: timeout})
	defer s.Close()
	all := stored(mustAppend(t, s, events))
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = costlyRegex
	q := compile(t, f)
	var got []*audittrail.Event
	var after *audittrail.Cursor
	requests := 0
	for {
		requests++
		if requests > 1000 {
			t.Fatal("no progress")
		}
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: audittrail.MaxPageSize})
		if err != nil {
			t.Fatalf("request %d: %v", requests, err)
		}
		got = append(got, res.Events...)
		if res.Next == nil {
			break
		}
		after = res.Next
	}
	if d := diff(bruteForce(all, q, nil), got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	// One page would hold all 200 matches: only the timeout cut it.
	if requests < 2 {
		t.Errorf("the whole result in %d request, which should have run out of time", requests)
	}
}

// TestSearchCanceled: a search its caller gave up on, here in the middle of
// a costly regex's evaluation, ends with the caller's error (not a partial
// page, nor the store's own timeout).
func TestSearchCanceled(t *testing.T) {
	events, quarter := timeoutEvents(t, 63, 200)
	s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir()})
	defer s.Close()
	mustAppend(t, s, events)
	var f audittrail.Filter
	f.Regex[audittrail.FieldResource] = costlyRegex
	q := compile(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), quarter)
	defer cancel()
	res, err := s.Search(ctx, audittrail.SearchRequest{Query: q, Limit: 50})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("search past its caller's deadline: %v, %v; want the context's error", res, err)
	}
}
