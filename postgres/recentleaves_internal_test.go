package postgres

import (
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// TestRecentLeavesWindow: the kept range slides with new events, keeps at
// most recentLeavesSize of them, ignores events older than it, and starts
// over past a gap larger than itself.
func TestRecentLeavesWindow(t *testing.T) {
	var r recentLeaves
	events := func(from, n uint64) []*audittrail.Event {
		out := make([]*audittrail.Event, n)
		for i := range out {
			out[i] = &audittrail.Event{Seq: from + uint64(i), ReceiveTime: time.Unix(0, int64(from)+int64(i))}
		}
		return out
	}
	has := func(seq uint64) bool {
		if seq < r.base || seq >= r.base+uint64(len(r.ents)) {
			return false
		}
		return r.ents[seq-r.base].set && r.ents[seq-r.base].receive == int64(seq)
	}
	const size = recentLeavesSize
	r.add(events(10, 100))
	r.add(events(150, 10)) // a gap of another replica's events
	if !has(10) || !has(109) || has(110) || has(149) || !has(159) {
		t.Fatal("first adds")
	}
	r.add(events(110, 40)) // filled in late, out of order
	if !has(110) || !has(149) {
		t.Fatal("late add")
	}
	r.add(events(160, size-100)) // slides by 50
	if r.base != 60 || len(r.ents) != size || has(59) || !has(60) || !has(160+size-101) {
		t.Fatalf("slide: base %d, %d entries", r.base, len(r.ents))
	}
	r.add(events(5, 10)) // older than the window: ignored
	if r.base != 60 || has(5) {
		t.Fatal("old events changed the window")
	}
	far := uint64(10 * size)
	r.add(events(far, 3)) // past everything kept: start over
	if r.base != far || len(r.ents) != 3 || !has(far+2) || has(60) {
		t.Fatalf("start over: base %d, %d entries", r.base, len(r.ents))
	}
}
