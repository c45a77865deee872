package logsign_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

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

// outOfOrderStore returns an embedded store of 1,200 events whose storage
// order is not seq order (event times out of seq order), all integrated by
// its log, which it returns too. The store is closed at the end of the test.
func outOfOrderStore(t *testing.T) (*pebblestore.Store, *logsign.Log) {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "db"))
	t.Cleanup(func() { st.Close() })
	l := newLog(t, st, dir)
	for _, from := range []int{1000, 0, 500, 2000} {
		appendEvents(t, st, 300, from)
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return st, l
}

// TestAuditStorageOrder: the audit of the embedded store reads its events
// in storage order, with no read by seq, and reports what the audit by seq
// and search reports, on a store whose storage order is not seq order.
func TestAuditStorageOrder(t *testing.T) {
	ctx := context.Background()
	st, l := outOfOrderStore(t)
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

// sparsePointStore is pointReadStore with the sparse reads an audit of a
// store that deletes needs.
type sparsePointStore struct {
	pointReadStore
	sp logsign.SparseLogReader
}

func (s sparsePointStore) EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return s.sp.EventsBySeqSparse(ctx, from, to)
}

// TestAuditStorageOrderDeleted: after retention deleted part of the
// embedded store (and hid the records it keeps, not yet integrated), the
// audit with
// AllowDeleted still reads in storage order, with no read by seq, and
// reports what the audit by seq reports: the same root and the same
// deleted seqs, which are not in seq order (event times are not).
func TestAuditStorageOrderDeleted(t *testing.T) {
	ctx := context.Background()
	st, l := outOfOrderStore(t)
	// Events the log has not integrated yet, 50 of them before the cutoff:
	// kept by the pass, hidden, so deleted for the audit.
	appendEvents(t, st, 300, 700)
	// Deletes the integrated events numbered 0 to 749: seqs 301-600 (0-299)
	// and 601-850 (500-749).
	cutoff := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Add(750 * time.Second)
	res, err := st.Expire(ctx, cutoff)
	if err != nil || res.Deleted != 550 || res.Kept != 50 {
		t.Fatalf("Expire: %+v, %v", res, err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := logsign.AuditStore(ctx, st, l.VerifierKey()); err == nil {
		t.Fatal("an audit without AllowDeleted passed a store with deleted events")
	}
	opts := logsign.AuditOptions{AllowDeleted: true}
	cs := &countingStore{Store: st}
	got, err := logsign.AuditStoreWith(ctx, cs, l.VerifierKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []logsign.SeqRange{{First: 301, Last: 850}, {First: 1201, Last: 1250}}
	if !got.OK() || got.Leaves != 1500 || got.AuditReport.Deleted != 600 || !slices.Equal(got.Deleted, want) || !got.Searched {
		t.Fatalf("audit in storage order: %+v %+v, deleted %v", got, got.AuditReport, got.Deleted)
	}
	if n := cs.bySeq.Load(); n != 0 {
		t.Errorf("the audit in storage order read by seq %d times", n)
	}
	bySeq, err := logsign.AuditStoreWith(ctx, sparsePointStore{pointReadStore{st, st}, st}, l.VerifierKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != bySeq.Root || got.Checked != bySeq.Checked || !bySeq.OK() || bySeq.AuditReport.Deleted != 600 || !slices.Equal(bySeq.Deleted, want) {
		t.Fatalf("audit in storage order %+v, by seq %+v (deleted %v)", got.AuditReport, bySeq.AuditReport, bySeq.Deleted)
	}
}
