package postgres

import (
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// TestRecentLeavesRing: the ring serves a range only when it holds every
// seq of it; newer events take the place of those recentLeavesSize before
// them, and a late add of older events does not hide newer ones.
func TestRecentLeavesRing(t *testing.T) {
	var r recentLeaves
	events := func(from, n uint64) []*audittrail.Event {
		out := make([]*audittrail.Event, n)
		for i := range out {
			out[i] = &audittrail.Event{Seq: from + uint64(i), ReceiveTime: time.Unix(0, int64(from)+int64(i))}
		}
		return out
	}
	served := func(from, to uint64) bool {
		hs, receive, ok := r.get(from, to, nil)
		if ok && (len(hs) != int(to-from+1) || receive != int64(to)) {
			t.Fatalf("[%d, %d]: %d hashes, last receive %d", from, to, len(hs), receive)
		}
		return ok
	}
	const size = recentLeavesSize
	if served(1, 1) {
		t.Fatal("an empty ring serves")
	}
	r.add(events(10, 100))
	r.add(events(150, 10)) // a gap: another replica's events
	if !served(10, 109) || served(10, 110) || served(149, 159) || !served(150, 159) {
		t.Fatal("first adds")
	}
	r.add(events(110, 40)) // filled in late
	if !served(10, 159) {
		t.Fatal("late add")
	}
	r.add(events(160, size-100)) // overwrites seqs 10..59
	if served(59, 60) || !served(60, 160+size-101) {
		t.Fatal("after wrapping")
	}
	r.add(events(20, 10)) // older than what is kept: ignored
	if served(20, 29) || !served(size+20, size+29) {
		t.Fatal("a late add of older events changed the ring")
	}
	if served(60, 60+size) {
		t.Fatal("a range longer than the ring is served")
	}
}
