package postgres_test

import (
	"context"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestAppendLooksUpAfterAConflict: an append of new ids stores them without
// looking them up first; one with a stored id (a retry, a conflict) fails
// its first insert without storing anything, looks the ids up and resolves
// them as the contract says, the new events numbered without a gap. The
// conformance suite holds every outcome to the contract; this test holds
// the number of lookups.
func TestAppendLooksUpAfterAConflict(t *testing.T) {
	st := mustOpen(t, pgtest.Start(t))
	defer st.Close()
	ctx := context.Background()
	event := func(k int, action string) *audittrail.Event { return numberedEvent(t, k, action) }
	appendAll := func(events ...*audittrail.Event) []audittrail.AppendResult {
		t.Helper()
		res, err := st.Append(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	var first []*audittrail.Event
	for k := range 10 {
		first = append(first, event(k, "create"))
	}
	// A repeated new id within the call is resolved in the call: no lookup.
	res := appendAll(append(first, event(3, "create"))...)
	if n := st.LookupsForTest(); n != 0 {
		t.Fatalf("%d lookups for new ids, want 0", n)
	}
	for i, r := range res {
		want := uint64(i + 1)
		if i == 10 {
			want = 4
		}
		if r.Err != nil || r.Event.Seq != want {
			t.Fatalf("result %d: %+v, want seq %d", i, r, want)
		}
	}
	// A retry, a new id, a conflicting content, a new id.
	res = appendAll(event(3, "create"), event(100, "create"), event(5, "delete"), event(101, "create"))
	if n := st.LookupsForTest(); n != 1 {
		t.Fatalf("%d lookups after a batch with stored ids, want 1", n)
	}
	if r := res[0]; r.Err != nil || r.Event.Seq != 4 {
		t.Errorf("retry: %+v, want the stored event of seq 4", r)
	}
	if r := res[2]; r.Err == nil || audittrail.ErrorCode(r.Err) != audittrail.EConflict {
		t.Errorf("conflicting content: %+v, want a conflict", r)
	}
	if res[1].Err != nil || res[3].Err != nil || res[1].Event.Seq != 11 || res[3].Event.Seq != 12 {
		t.Errorf("new ids after the failed first insert: %+v, %+v; want seqs 11 and 12", res[1], res[3])
	}
	if got := st.LastSeq(); got != 12 {
		t.Errorf("LastSeq %d, want 12", got)
	}
}
