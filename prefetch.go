package audittrail

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reading the next page ahead.
//
// A client that asks for large pages is most likely reading a whole result
// (an export, a drain), one request after the other: while it receives and
// decodes a page, the server has nothing to do, and when the next request
// comes, the store's search of that page is the largest part of answering
// it. So when a search returns a full page of at least
// Service.PrefetchMinPage events and a next page token, the service starts
// the store's search of the next page at once; the request that comes with
// that token (from the same caller: the token is checked first, as always)
// takes the result, waiting for it if it is still running, instead of
// searching again.
//
// What a prefetched page means: the same answer as a search made when the
// previous page was answered, instead of when the next request arrives. The
// end of the search is fixed by the first page's token either way; only an
// event stored with an older event time in between (a late producer) or
// removed by retention in between can differ, exactly as if the client had
// asked a few milliseconds sooner. The caller's scope is compared when the
// page is taken: a caller whose workspaces changed gets a new search. Each
// request is still audited, and login names are filled when the page is
// taken.
//
// What it costs: at most maxPrefetched pages are kept or being read (a page
// holds at most MaxPageSize events), at most maxPrefetchedPerCaller of them
// for one caller, so that one client's abandoned drains cannot take every
// slot from the others; a page not taken within prefetchTTL is dropped, its
// search work wasted. A page that ended short of full (the end
// of the result, or the request's work bound MaxScan: a rare regex) starts
// no read ahead, so a scan-bound search never starts a speculative scan.
const (
	// DefaultPrefetchMinPage is the page size from which the server reads
	// the next page ahead (serve --prefetch-min-page).
	DefaultPrefetchMinPage = 500
	maxPrefetched          = 16
	maxPrefetchedPerCaller = 4
	prefetchTTL            = 30 * time.Second
	// prefetchTimeout bounds one read ahead, which no request's context
	// bounds.
	prefetchTimeout = time.Minute
)

// prefetched is the read ahead of one page.
type prefetched struct {
	size    int    // the page size it was read for
	caller  string // the caller it was read for
	scope   Scope  // the caller's scope it was read in
	started time.Time
	done    chan struct{} // closed when res and err are set
	res     *SearchResult
	err     error
	expiry  *time.Timer // drops the page once its time to live has passed
}

// prefetcher holds the pages read ahead, by the page token that asks for
// them.
type prefetcher struct {
	mu    sync.Mutex
	pages map[string]*prefetched
	stats prefetchCounters
	ttl   time.Duration // 0: prefetchTTL (tests set less)
}

// timeToLive is how long a page read ahead is kept unasked.
func (p *prefetcher) timeToLive() time.Duration {
	if p.ttl > 0 {
		return p.ttl
	}
	return prefetchTTL
}

// expire drops f, the page of token, when it is still kept: its time to
// live has passed. Pages used to be dropped only when a later page was read
// ahead, so a server that read nothing ahead after a burst of abandoned
// drains kept up to maxPrefetched pages for good (16 pages of 1,000
// events: about 1 GiB at the event size limit, from the 65 MiB of such a
// page's answer in docs/limits.md).
func (p *prefetcher) expire(token string, f *prefetched) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pages[token] == f {
		delete(p.pages, token)
		p.stats.expired.Add(1)
	}
}

// PrefetchStats counts what became of the pages read ahead since the
// Service started (for metrics: Service.PrefetchStats).
type PrefetchStats struct {
	// Started: reads ahead begun. Full: pages that would have been read
	// ahead but were not, maxPrefetched being kept already (or
	// maxPrefetchedPerCaller for their caller).
	Started, Full uint64
	// Taken: pages handed to the request of their token; Waited: of
	// those, pages whose read was still running when the request came
	// (it waited for the rest).
	Taken, Waited uint64
	// Failed: reads ahead that ended in an error (the request searched
	// again). Mismatched: pages dropped because their token came with
	// another page size or scope, or too late. Expired: pages dropped
	// unasked after prefetchTTL.
	Failed, Mismatched, Expired uint64
}

type prefetchCounters struct {
	started, full, taken, waited, failed, mismatched, expired atomic.Uint64
}

// start reads the page of token ahead for caller with search, unless as
// many pages are kept already, in all or for that caller.
func (p *prefetcher) start(token, caller string, size int, scope Scope, now time.Time, search func(context.Context) (*SearchResult, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pages == nil {
		p.pages = map[string]*prefetched{}
	}
	mine := 0
	for t, f := range p.pages {
		if now.Sub(f.started) > p.timeToLive() {
			f.expiry.Stop()
			delete(p.pages, t)
			p.stats.expired.Add(1)
		} else if f.caller == caller {
			mine++
		}
	}
	if len(p.pages) >= maxPrefetched || mine >= maxPrefetchedPerCaller {
		p.stats.full.Add(1)
		return
	}
	f := &prefetched{size: size, caller: caller, scope: scope, started: now, done: make(chan struct{})}
	p.pages[token] = f
	f.expiry = time.AfterFunc(p.timeToLive(), func() { p.expire(token, f) })
	p.stats.started.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
		defer cancel()
		f.res, f.err = search(ctx)
		close(f.done)
	}()
}

// take returns the page read ahead for token, size and scope, waiting for
// its read; nil when there is none (or its read failed: the caller then
// searches itself). The page is handed out once.
func (p *prefetcher) take(ctx context.Context, token string, size int, scope Scope, now time.Time) (*SearchResult, error) {
	p.mu.Lock()
	f := p.pages[token]
	delete(p.pages, token)
	p.mu.Unlock()
	if f == nil {
		return nil, nil
	}
	f.expiry.Stop()
	if f.size != size || now.Sub(f.started) > p.timeToLive() ||
		f.scope.All != scope.All || !slices.Equal(f.scope.Workspaces, scope.Workspaces) {
		p.stats.mismatched.Add(1)
		return nil, nil
	}
	waited := false
	select {
	case <-f.done:
	default:
		waited = true
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		p.stats.failed.Add(1)
		return nil, nil
	}
	p.stats.taken.Add(1)
	if waited {
		p.stats.waited.Add(1)
	}
	return f.res, nil
}

// forget drops every page read ahead (counted as expired): a read in
// flight finishes for nobody.
func (p *prefetcher) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.expired.Add(uint64(len(p.pages)))
	for _, f := range p.pages {
		f.expiry.Stop()
	}
	clear(p.pages)
}

// snapshot returns the counts so far.
func (p *prefetcher) snapshot() PrefetchStats {
	c := &p.stats
	return PrefetchStats{
		Started: c.started.Load(), Full: c.full.Load(), Taken: c.taken.Load(), Waited: c.waited.Load(),
		Failed: c.failed.Load(), Mismatched: c.mismatched.Load(), Expired: c.expired.Load(),
	}
}

// pending returns the number of pages kept or being read (tests).
func (p *prefetcher) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pages)
}
