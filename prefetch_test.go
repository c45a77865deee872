package audittrail

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPrefetcher: a page read ahead is handed out once, to the request with
// its token, size and scope, within its time to live; failed reads hand out
// nothing; at most maxPrefetched pages are kept.
func TestPrefetcher(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx := context.Background()
	page := &SearchResult{Events: []*Event{{ID: "a"}}}
	found := func(context.Context) (*SearchResult, error) { return page, nil }
	ws := Scope{Workspaces: []string{"workspaces/a"}}

	var p prefetcher
	p.start("t1", "alice", 500, ws, now, found)
	if got, err := p.take(ctx, "t1", 500, Scope{Workspaces: []string{"workspaces/a"}}, now.Add(time.Second)); err != nil || got != page {
		t.Fatalf("take: %v, %v; want the page read ahead", got, err)
	}
	if got, _ := p.take(ctx, "t1", 500, ws, now); got != nil || p.pending() != 0 {
		t.Errorf("a page was handed out twice (pending %d)", p.pending())
	}

	// Another size, scope or token, or a page past its time: nothing, and
	// the page is dropped.
	for name, c := range map[string]struct {
		token string
		size  int
		scope Scope
		at    time.Time
	}{
		"other token":      {"t9", 500, ws, now},
		"other size":       {"t1", 1000, ws, now},
		"other workspaces": {"t1", 500, Scope{Workspaces: []string{"workspaces/b"}}, now},
		"all events":       {"t1", 500, Scope{All: true}, now},
		"too late":         {"t1", 500, ws, now.Add(prefetchTTL + time.Second)},
	} {
		p.start("t1", "alice", 500, ws, now, found)
		if got, err := p.take(ctx, c.token, c.size, c.scope, c.at); got != nil || err != nil {
			t.Errorf("%s: %v, %v; want nothing", name, got, err)
		}
		p.take(ctx, "t1", 500, ws, now) // drop what is left
	}

	// A failed read ahead: the request searches itself.
	p.start("t2", "alice", 500, ws, now, func(context.Context) (*SearchResult, error) { return nil, errors.New("disk on fire") })
	if got, err := p.take(ctx, "t2", 500, ws, now); got != nil || err != nil {
		t.Errorf("failed read: %v, %v; want nothing", got, err)
	}

	// A request that ends while the read is running gets its context's
	// error.
	release := make(chan struct{})
	p.start("t3", "alice", 500, ws, now, func(context.Context) (*SearchResult, error) { <-release; return page, nil })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.take(cctx, "t3", 500, ws, now); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request: %v, want context.Canceled", err)
	}
	close(release)

	// The bound: pages past maxPrefetched are not read; pages past their
	// time make room.
	for i := range maxPrefetched + 3 {
		p.start(fmt.Sprint("b", i), fmt.Sprint("caller", i%5), 500, ws, now, found) // at most 4 each
	}
	if n := p.pending(); n != maxPrefetched {
		t.Errorf("%d pages kept, want at most %d", n, maxPrefetched)
	}
	if got, _ := p.take(ctx, fmt.Sprint("b", maxPrefetched), 500, ws, now); got != nil {
		t.Error("a page past the bound was read ahead")
	}
	p.start("late", "alice", 500, ws, now.Add(prefetchTTL+time.Second), found)
	if n := p.pending(); n != 1 {
		t.Errorf("after the time to live: %d pages kept, want only the new one", n)
	}

	// One caller gets at most maxPrefetchedPerCaller pages; another still
	// gets its page.
	later := now.Add(prefetchTTL + time.Second)
	for i := range maxPrefetchedPerCaller + 1 {
		p.start(fmt.Sprint("bob", i), "bob", 500, ws, later, found)
	}
	p.start("carol", "carol", 500, ws, later, found)
	if n := p.pending(); n != 1+maxPrefetchedPerCaller+1 {
		t.Errorf("%d pages kept, want late, %d of bob's and carol's", n, maxPrefetchedPerCaller)
	}
	if got, _ := p.take(ctx, fmt.Sprint("bob", maxPrefetchedPerCaller), 500, ws, later); got != nil {
		t.Error("a caller got more than its share of pages read ahead")
	}
	if got, _ := p.take(ctx, "carol", 500, ws, later); got != page {
		t.Error("another caller's page was not read ahead")
	}

	// What became of each page above (Waited depends on the goroutines'
	// timing: at most the pages taken).
	got := p.snapshot()
	want := PrefetchStats{Started: 30, Full: 4, Taken: 3, Failed: 1, Mismatched: 4, Expired: maxPrefetched, Waited: got.Waited}
	if got != want || got.Waited > got.Taken {
		t.Errorf("stats %+v, want %+v", got, want)
	}

	// forget (a retention pass moved the cutoff) drops every page kept,
	// counted as expired.
	kept := p.pending()
	p.start("d", "dave", 500, ws, later, found)
	p.forget()
	if got, _ := p.take(ctx, "d", 500, ws, later); got != nil || p.pending() != 0 {
		t.Error("a page read ahead was handed out after forget")
	}
	if n := p.snapshot().Expired - want.Expired; n != uint64(kept+1) {
		t.Errorf("forget counted %d pages expired, want %d", n, kept+1)
	}
}

// TestPrefetcherExpiresUnasked: a page read ahead and never asked for is
// dropped once its time to live has passed, counted as expired, though no
// later page is read ahead (a quiet server kept it for good). The deadline
// only bounds a hang.
func TestPrefetcherExpiresUnasked(t *testing.T) {
	p := prefetcher{ttl: time.Millisecond}
	page := &SearchResult{Events: []*Event{{ID: "a"}}}
	p.start("t1", "alice", 500, Scope{All: true}, time.Now(), func(context.Context) (*SearchResult, error) { return page, nil })
	deadline := time.Now().Add(10 * time.Second)
	for p.pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the page read ahead is still kept 10 s after its time to live (%s)", p.ttl)
		}
		time.Sleep(time.Millisecond)
	}
	if got := p.snapshot(); got.Expired != 1 || got.Started != 1 {
		t.Errorf("stats %+v, want 1 started, 1 expired", got)
	}
}
