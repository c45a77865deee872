package server

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterPrunesRarely: once the limiter holds maxBuckets buckets still
// in use, a new bucket does not scan them all again. It did, every time,
// with the mutex every request takes held: an anonymous client failing to
// authenticate from that many addresses within burst/rate seconds (each
// address's bucket stays in use that long) made every later new address
// cost a scan of them all. Here the clock stands still, so no bucket is
// ever full again: 2,000 keys over a bound of 100 prune 5 times (at 100,
// 200, 400, 800 and 1,600 buckets), where they pruned 1,900 times. When
// the clock moves on, the buckets refill and the next prune drops them.
func TestLimiterPrunesRarely(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(RateLimit{Rate: 1, Burst: 10})
	l.now = func() time.Time { return now }
	l.maxBuckets, l.pruneAt = 100, 100
	const keys = 2000
	for i := range keys {
		if ok, _ := l.allow("unauthenticated:" + strconv.Itoa(i)); !ok {
			t.Fatalf("key %d refused", i)
		}
	}
	if len(l.buckets) != keys {
		t.Fatalf("%d buckets, want %d (none is full again: none may go)", len(l.buckets), keys)
	}
	if l.prunes > 5 {
		t.Errorf("%d prune passes for %d keys over a bound of %d buckets; want at most 5 (each scans every bucket)", l.prunes, keys, l.maxBuckets)
	}
	// A bucket refills within burst/rate seconds: with the clock moving on
	// by that much between new keys, the next prune (at 3,200 buckets)
	// drops every bucket but the newest, and the bound comes back down.
	for i := keys; l.prunes < 6; i++ {
		now = now.Add(10 * time.Second)
		l.allow("unauthenticated:" + strconv.Itoa(i))
	}
	if len(l.buckets) > 1 || l.pruneAt != l.maxBuckets {
		t.Errorf("after the buckets refilled and a prune: %d buckets, next prune at %d; want 1 and %d", len(l.buckets), l.pruneAt, l.maxBuckets)
	}
}
