package pebblestore_test

import (
	"testing"

	"github.com/audittrail/audittrail"
)

// TestIDFilterIdempotency: on a reopened store, once the id filter is
// built, new ids are stored without a read, and retries of ids stored
// before the reopen, or just now, still return the stored events (the
// filter must never call a stored id absent).
func TestIDFilterIdempotency(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	g := newGen(41)
	before := appendBatches(t, s, g, 3, 500)
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	if !s.IDFilterReadyForTest() {
		t.Fatal("the id filter was not built")
	}
	fresh := g.batch(700)
	first := mustAppend(t, s, fresh)
	if n := s.IDsFilteredForTest(); n < 600 {
		t.Errorf("the filter answered %d of 700 new ids alone, want nearly all", n)
	}
	for _, stored := range [][]*audittrail.Event{before, stored(first)} {
		retry := make([]*audittrail.Event, len(stored))
		for i, e := range stored {
			c := *e
			c.Seq = 0
			retry[i] = &c
		}
		res := mustAppend(t, s, retry)
		for i, r := range res {
			if r.Err != nil || r.Event.Seq != stored[i].Seq {
				t.Fatalf("retry of %s: seq %d, %v; want the stored seq %d", stored[i].ID, r.Event.Seq, r.Err, stored[i].Seq)
			}
		}
	}
	if last := s.LastSeq(); last != uint64(len(before)+len(fresh)) {
		t.Fatalf("last seq %d after retries; want %d (a retry was stored again)", last, len(before)+len(fresh))
	}
}
