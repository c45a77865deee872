package logsign_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
)

// countingStore counts the point reads (EventsBySeq) of an audit of the
// embedded store; it keeps the store's storage-order readers.
type countingStore struct {
	*pebblestore.Store
	bySeq atomic.Int64
}

func (c *countingStore) EventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	c.bySeq.Add(1)
	return c.Store.EventsBySeq(ctx, from, to)
}

// pointReadStore hides the storage-order readers: its audit reads by seq
// and searches, as for PostgreSQL.
type pointReadStore struct {
	audittrail.Store
	audittrail.LogStore
}

// TestAuditStorageOrder: the audit of the embedded store reads its events
// in storage order, with no read by seq, and reports what the audit by seq
// and search reports, on a store whose storage order is not seq order.
func TestAuditStorageOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	defer st.Close()
	l := newLog(t, st, dir)
	for _, from := range []int{1000, 0, 500, 2000} { // event times out of seq order
		appendEvents(t, st, 300, from)
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cs := &countingStore{Store: st}
	got, err := logsign.AuditStore(ctx, cs, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if !got.OK() || got.Leaves != 1200 || got.Checked < 4 || got.Covered != 1200 || !got.Searched {
		t.Fatalf("audit in storage order: %+v %+v", got, got.AuditReport)
	}
	if n := cs.bySeq.Load(); n != 0 {
		t.Errorf("the audit in storage order read by seq %d times", n)
	}
	want, err := logsign.AuditStore(ctx, pointReadStore{st, st}, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != want.Root || got.Checked != want.Checked || !want.OK() || !want.Searched {
		t.Fatalf("audit in storage order %+v, by seq %+v", got.AuditReport, want.AuditReport)
	}
}
