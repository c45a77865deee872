package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestParallelFetch: pages whose records are read on several cores are the
// pages of a sequential search, event for event and cursor for cursor, for
// random filters (one posting list, unions of lists, conditions tested on
// the records, inline values), page sizes and work budgets; and together
// they are what the brute force finds.
func TestParallelFetch(t *testing.T) {
	for _, dictLimit := range []int{0, 8} {
		t.Run(fmt.Sprintf("DictionaryLimit=%d", dictLimit), func(t *testing.T) {
			s := openStoreConfig(t, pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: dictLimit})
			defer s.Close()
			g := newGen(23)
			var all []*audittrail.Event
			for range 8 {
				all = append(all, stored(mustAppend(t, s, g.batch(400)))...)
			}
			r := rand.New(rand.NewPCG(5, 6))
			before := pebblestore.ParallelFetchBatchesForTest()
			for i := range 200 {
				f := randomFilter(r, all)
				q := compile(t, f)
				limit := []int{1, 2, 5, 50, 1000}[r.IntN(5)]
				maxScan := []int{0, 0, 3, 40, 200}[r.IntN(5)]
				// Sequential: the threshold is never reached.
				want := pages(t, s, q, limit, maxScan, 1<<30, 1)
				// Every batch of two candidates or more, on three readers.
				got := pages(t, s, q, limit, maxScan, 2, 3)
				if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
					t.Fatalf("search %d, filter %+v, limit %d, maxScan %d: pages differ (-sequential +parallel)\n%s", i, f, limit, maxScan, d)
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

// pages returns every page of a search whose records are read on readers
// cores when a page can use at least min candidates.
func pages(t *testing.T, s *pebblestore.Store, q *audittrail.Query, limit, maxScan, min, readers int) []*audittrail.SearchResult {
	t.Helper()
	defer pebblestore.SetParallelFetchForTest(min, readers)()
	var out []*audittrail.SearchResult
	var after *audittrail.Cursor
	for {
		res, err := s.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit, MaxScan: maxScan})
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
