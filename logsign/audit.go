package logsign

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// StoreReport is the outcome of AuditStore: the audit of the log's leaves
// against the signed checkpoints (merkle.AuditReport), and how the events
// that searches show compare with those leaves.
type StoreReport struct {
	*merkle.AuditReport
	// Covered is the largest checked checkpoint's size: leaves from index
	// Covered on are signed by no stored checkpoint yet. With the server
	// stopped after a clean shutdown there are none; after a crash, or
	// with replicas running, the last second's may be.
	Covered uint64
	// Searched is set when the store could be searched (audittrail.Store):
	// every event a search shows must be the log's leaf at its seq, and
	// every leaf must show.
	Searched bool
	// NotInLog lists events that searches show but that are not the log's
	// leaf at their seq (at most 100; NotInLogCount has the total): an
	// event written to storage around the log, or a changed copy.
	NotInLog      []SearchedEvent
	NotInLogCount int
	// Unsearchable lists leaves (indexes) that no search shows (at most
	// 100; UnsearchableCount has the total).
	Unsearchable      []uint64
	UnsearchableCount int
	// Deleted lists the ranges of seqs whose events are gone, audited from
	// the log's leaf hashes with AuditOptions.AllowDeleted (at most 100
	// ranges; AuditReport.Deleted counts the events).
	Deleted []SeqRange
}

// SeqRange is the seqs [First, Last].
type SeqRange struct{ First, Last uint64 }

// AuditOptions change what AuditStore accepts.
type AuditOptions struct {
	// AllowDeleted audits a store whose events were partly deleted on
	// purpose (PostgreSQL's dropped monthly partitions, docs/postgres.md,
	// "Retention"): a leaf whose event is gone is audited from the log's
	// stored leaf hash (merkle.Auditor.AddDeleted), which the recomputed
	// roots still compare with every signed checkpoint, and is listed in
	// StoreReport.Deleted, instead of stopping the audit with a
	// *LeafError. The store must read events sparsely (SparseLogReader).
	AllowDeleted bool
}

// SparseLogReader is a LogStore that can read a range of seqs whose events
// may be partly deleted: EventsBySeqSparse is EventsBySeq with a nil event
// for each seq whose event is not stored.
type SparseLogReader interface {
	EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error)
}

// SearchedEvent names an event as a search showed it.
type SearchedEvent struct {
	ID  string
	Seq uint64
}

const maxFindings = 100

// OK reports whether the audit found nothing wrong. Leaves not yet covered
// by a checkpoint are not wrong.
func (r *StoreReport) OK() bool {
	return r.AuditReport.OK() && r.NotInLogCount == 0 && r.UnsearchableCount == 0
}

// LeafError is an audit that could not read a leaf's event from the store:
// it was deleted (or its partition dropped), or cannot be decoded. When a
// stored checkpoint covers the leaf and the store's hashes prove what it
// was, Signed is that checkpoint and LeafHash the signed leaf hash.
type LeafError struct {
	Leaf     uint64 // index; the event's seq is Leaf+1
	Err      error
	Signed   *merkle.Checkpoint
	LeafHash tlog.Hash
}

func (e *LeafError) Error() string {
	msg := fmt.Sprintf("leaf %d (seq %d) cannot be read from the store: %v", e.Leaf, e.Leaf+1, e.Err)
	if e.Signed != nil {
		msg += fmt.Sprintf("; the signed checkpoint of size %d includes it with leaf hash %s", e.Signed.Size, merkle.HashString(e.LeafHash))
	}
	return msg
}

func (e *LeafError) Unwrap() error { return e.Err }

// AuditStore recomputes the whole tree from the store's events and compares
// it with every stored signed checkpoint (merkle.Auditor), using the
// store's own hashes to pinpoint the first divergent leaf. Checkpoints that
// do not verify with verifierKey are an error, and so is a leaf whose event
// cannot be read (a *LeafError). When the store can search, it also checks
// that searches show exactly the log's leaves. A store that reads its
// events in storage order (the embedded store) is audited in one scan of
// them (scanLeaves); any other is read by seq and then searched. The
// checkpoints are read before the events, so the audit of a store that
// replicas keep appending to is consistent too.
func AuditStore(ctx context.Context, st audittrail.LogStore, verifierKey string) (*StoreReport, error) {
	return AuditStoreWith(ctx, st, verifierKey, AuditOptions{})
}

// AuditStoreWith is AuditStore with options.
func AuditStoreWith(ctx context.Context, st audittrail.LogStore, verifierKey string, opts AuditOptions) (*StoreReport, error) {
	read := st.EventsBySeq
	if opts.AllowDeleted {
		sp, ok := st.(SparseLogReader)
		if !ok {
			return nil, errors.New("logsign: this store does not delete events, so it cannot audit deleted ones")
		}
		read = sp.EventsBySeqSparse
	}
	v, err := merkle.NewVerifier([]byte(verifierKey))
	if err != nil {
		return nil, err
	}
	notes, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	cps := make([]*merkle.Checkpoint, 0, len(notes))
	for i, n := range notes {
		c, err := merkle.OpenCheckpoint(n, v)
		if err != nil {
			return nil, fmt.Errorf("stored checkpoint %d: %w", i, err)
		}
		cps = append(cps, c)
	}
	last := st.LastSeq()
	tree := merkle.NewFlatStore(last)
	defer tree.Release()
	a, err := merkle.NewAuditor(cps, tree)
	if err != nil {
		return nil, err
	}
	l := &Log{cfg: Config{Store: st}}
	readErr := func(from, to uint64, err error) error {
		return l.leafError(ctx, from, to, cps, err)
	}
	s, searches := st.(audittrail.Store)
	var scanned *scanFindings
	var deleted []SeqRange
	if sc, ok := st.(storageScanner); ok && searches {
		var logHashes tlog.HashReader // nil: no leaf may be deleted
		if opts.AllowDeleted {
			logHashes = l.hashReader()
		}
		scanned, err = scanLeaves(ctx, sc, st, last, a, tree, logHashes, readErr)
		if err != nil {
			return nil, err
		}
		if scanned != nil {
			deleted = scanned.deleted
		}
	}
	if scanned == nil {
		if deleted, err = auditLeaves(ctx, read, l.hashReader(), last, a, readErr); err != nil {
			return nil, err
		}
	}
	rep, err := a.Finish(l.hashReader())
	if err != nil {
		return nil, err
	}
	r := &StoreReport{AuditReport: rep, Deleted: deleted[:min(len(deleted), maxFindings)]}
	for _, c := range cps {
		if c.Size <= rep.Leaves {
			r.Covered = max(r.Covered, c.Size)
		}
	}
	switch {
	case scanned != nil:
		r.Searched = true
		r.NotInLog, r.NotInLogCount = scanned.notInLog, scanned.notInLogCount
	case searches:
		if err := r.checkSearch(ctx, st, s, tree, deleted); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// storageScanner is a store that reads its events in storage order
// (pebblestore.Store): its log positions (seq → event time, which with the
// seq is the key of the event's record) in one pass, and every record, in
// any order, on several goroutines.
type storageScanner interface {
	LogPositions(ctx context.Context, ns []int64, workers int) (int, error)
	ScanEvents(ctx context.Context, workers int, fn func(worker int, e *audittrail.Event, params, meta []merkle.MapEntry) error) error
}

// scanFindings is what scanLeaves found beside the log's leaves.
type scanFindings struct {
	notInLog      []SearchedEvent
	notInLogCount int
	deleted       []SeqRange
}

// cutoffStore is a store with a retention cutoff (pebblestore.Store): the
// events before it are deleted, or hidden until they are.
type cutoffStore interface{ Cutoff() time.Time }

// scanLeaves does the work of auditLeaves and of checkSearch in one scan of
// a store that reads its events in storage order, which is not seq order
// (the event time comes first). It reads the log positions, then every
// stored event on GOMAXPROCS goroutines, each hashing its events: an event
// at its seq's position (the record the position names) is that leaf, put
// in a merkle.LeafTable; any other is NOT IN LOG (a record written beside
// the log), unless it is numbered after the audited leaves and the log has
// it by now. Then it adds the leaves to a in seq order. The leaf hashes
// wait in the room of tree, a's empty FlatStore (merkle.NewLeafTable). A
// leaf without a position or without its record is a *LeafError
// (readErr), as in auditLeaves.
//
// A search of the whole time range on such a store scans these same
// records (the primary range) and shows each, so the scan sees what
// searches show: each leaf once (or it is missing), and every other record
// as NOT IN LOG. NOT SEARCHABLE cannot occur on this path.
//
// A record that cannot be decoded stops the scan, and scanLeaves returns
// nil findings and no error: the caller falls back to auditLeaves and
// checkSearch, which name the leaf (or report the search error).
//
// With logHashes (AuditOptions.AllowDeleted), a leaf without its record,
// or whose record is before the store's retention cutoff (which every read
// then shows as deleted, as EventsBySeqSparse does), is the log's stored
// leaf hash, added as deleted; the deleted seqs are in the findings.
func scanLeaves(ctx context.Context, sc storageScanner, ls audittrail.LogStore, last uint64, a *merkle.Auditor, tree *merkle.FlatStore,
	logHashes tlog.HashReader, readErr func(from, to uint64, err error) error) (*scanFindings, error) {
	if last > merkle.MaxTreeSize {
		return nil, nil
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	pos := make([]int64, last)
	n, err := sc.LogPositions(ctx, pos, workers)
	if err != nil {
		return nil, err
	}
	leaves := merkle.NewLeafTable(uint64(n), tree)
	defer leaves.Release()
	hashers := make([]merkle.LeafHasher, workers)
	var mu sync.Mutex
	f := &scanFindings{}
	cutoff := int64(math.MinInt64)
	if cs, ok := ls.(cutoffStore); ok && logHashes != nil && !cs.Cutoff().IsZero() {
		cutoff = cs.Cutoff().UnixNano()
	}
	err = sc.ScanEvents(ctx, workers, func(w int, e *audittrail.Event, params, meta []merkle.MapEntry) error {
		seq := e.Seq
		if e.EventTime.UnixNano() < cutoff {
			return nil // hidden, so deleted for the audit
		}
		if seq >= 1 && seq <= uint64(n) && pos[seq-1] == e.EventTime.UnixNano() {
			leaves.Set(seq-1, hashers[w].HashSorted(e, params, meta), e.ReceiveTime)
			return nil
		}
		if seq > last && seq <= ls.LastSeq() {
			return nil // appended since the audit read the log: audited next time
		}
		mu.Lock()
		f.notInLogCount++
		if len(f.notInLog) < maxFindings {
			f.notInLog = append(f.notInLog, SearchedEvent{ID: strings.Clone(e.ID), Seq: seq})
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil // a record that cannot be decoded: see above
	}
	if logHashes != nil {
		size, err := ls.TreeSize()
		if err != nil {
			return nil, err
		}
		if f.deleted, err = setDeletedLeaves(leaves, min(last, size), logHashes); err != nil {
			return nil, err
		}
	}
	if k := leaves.FirstUnset(); k < last {
		return nil, readErr(k+1, k+1, errors.New("its record was not found in storage"))
	}
	slices.SortFunc(f.notInLog, func(x, y SearchedEvent) int {
		return cmp.Or(cmp.Compare(x.Seq, y.Seq), strings.Compare(x.ID, y.ID))
	})
	pos = nil
	return f, leaves.AddTo(a, last)
}

// setDeletedLeaves sets every leaf below last, which the log's tree holds,
// that leaves lacks to the log's stored leaf hash, as deleted, and returns
// their seqs.
func setDeletedLeaves(leaves *merkle.LeafTable, last uint64, logHashes tlog.HashReader) ([]SeqRange, error) {
	var deleted []SeqRange
	var idx []int64
	var at []uint64
	flush := func() error {
		if len(idx) == 0 {
			return nil
		}
		hs, err := logHashes.ReadHashes(idx)
		if err != nil {
			return fmt.Errorf("events are missing from seq %d on, and the log's leaf hashes cannot be read: %w", at[0]+1, err)
		}
		for j, i := range at {
			leaves.SetDeleted(i, hs[j])
			seq := i + 1
			if n := len(deleted); n > 0 && deleted[n-1].Last == seq-1 {
				deleted[n-1].Last = seq
			} else {
				deleted = append(deleted, SeqRange{seq, seq})
			}
		}
		idx, at = idx[:0], at[:0]
		return nil
	}
	for i := range last {
		if leaves.IsSet(i) {
			continue
		}
		idx = append(idx, tlog.StoredHashIndex(0, int64(i)))
		at = append(at, i)
		if len(idx) == auditBatchSize {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return deleted, flush()
}

// leafError narrows a failed read of [from, to] to its first unreadable
// seq (reads of [from, k] fail from some k on) and, when a checkpoint
// covers it, proves from the store's hashes what was signed there.
func (l *Log) leafError(ctx context.Context, from, to uint64, cps []*merkle.Checkpoint, err error) error {
	lo, hi := from, to // the read of [from, hi] fails; of [from, lo-1] succeeds
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, e := l.cfg.Store.EventsBySeq(ctx, from, mid); e != nil {
			hi, err = mid, e
		} else {
			lo = mid + 1
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, e := l.cfg.Store.EventsBySeq(ctx, hi, hi); e != nil {
		err = e
	}
	le := &LeafError{Leaf: hi - 1, Err: err}
	for _, c := range cps {
		if c.Size <= le.Leaf {
			continue
		}
		hs, err := l.hashReader().ReadHashes([]int64{tlog.StoredHashIndex(0, int64(le.Leaf))})
		if err != nil {
			break
		}
		p, err := merkle.InclusionProof(l.hashReader(), le.Leaf, c.Size)
		if err == nil && merkle.VerifyInclusion(c, le.Leaf, hs[0], p) == nil {
			le.Signed, le.LeafHash = c, hs[0]
		}
		break
	}
	return le
}

// checkSearch searches every event and compares each with the recomputed
// leaf at its seq. An event numbered after the audited leaves is skipped if
// the log has it by now (a store that replicas keep appending to), and
// reported otherwise.
func (r *StoreReport) checkSearch(ctx context.Context, ls audittrail.LogStore, st audittrail.Store, tree tlog.HashReader, deleted []SeqRange) error {
	r.Searched = true
	start, end := audittrail.MinEventTime, audittrail.MaxEventTime
	f := audittrail.Filter{StartTime: &start, EndTime: &end}
	q, err := f.Compile(time.Now())
	if err != nil {
		return err
	}
	seen := make([]bool, r.Leaves)
	for _, d := range deleted { // no search can show them
		for seq := d.First; seq <= d.Last; seq++ {
			seen[seq-1] = true
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan *searchPage, 8)
	go searchPages(pctx, st, q, pages)
	defer func() {
		cancel()
		for p := range pages {
			<-p.done
		}
	}()
	for p := range pages {
		<-p.done
		if p.err != nil {
			return fmt.Errorf("searching the store: %w", p.err)
		}
		for i, e := range p.evs {
			if e.Seq > r.Leaves && e.Seq <= ls.LastSeq() {
				continue // appended since the audit read the log: audited next time
			}
			if e.Seq == 0 || e.Seq > r.Leaves || seen[e.Seq-1] || !r.isLeaf(tree, e.Seq, p.hashes[i]) {
				r.NotInLogCount++
				if len(r.NotInLog) < maxFindings {
					r.NotInLog = append(r.NotInLog, SearchedEvent{ID: e.ID, Seq: e.Seq})
				}
				continue
			}
			seen[e.Seq-1] = true
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, ok := range seen {
		if !ok {
			r.UnsearchableCount++
			if len(r.Unsearchable) < maxFindings {
				r.Unsearchable = append(r.Unsearchable, uint64(i))
			}
		}
	}
	return nil
}

// isLeaf reports whether leaf, the leaf hash of a searched event with this
// seq, is the recomputed leaf at seq.
func (r *StoreReport) isLeaf(tree tlog.HashReader, seq uint64, leaf tlog.Hash) bool {
	hs, err := tree.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(seq-1))})
	return err == nil && hs[0] == leaf
}

// auditBatch is one read of the pipeline of auditLeaves: the events with
// seqs [from, to] and their leaf hashes, ready once done is closed.
type auditBatch struct {
	from, to uint64
	evs      []*audittrail.Event
	hashes   []tlog.Hash
	err      error
	done     chan struct{}
}

const (
	auditBatchSize = 10000
	auditInFlight  = 8 // batches read ahead of the auditor
)

// auditLeaves adds the events with seqs [1, last] to a, in order. GOMAXPROCS
// goroutines read batches of events with read and compute their leaf
// hashes, and the calling goroutine adds them to a in sequence order, so
// reads, hashing and the tree overlap on every core with a bounded number
// of batches in memory. A failed read of [from, to] stops the pipeline and
// returns readErr(from, to, err) (the first failed batch in order).
//
// A nil event (read is a SparseLogReader's, AuditOptions.AllowDeleted) is
// a deleted one: its leaf hash is the log's, from logHashes, added with
// AddDeleted; auditLeaves returns the ranges of such seqs.
func auditLeaves(ctx context.Context, read func(ctx context.Context, from, to uint64) ([]*audittrail.Event, error), logHashes tlog.HashReader,
	last uint64, a *merkle.Auditor, readErr func(from, to uint64, err error) error) ([]SeqRange, error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan *auditBatch, auditInFlight)
	jobs := make(chan *auditBatch)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				b.evs, b.err = read(pctx, b.from, b.to)
				if b.err == nil {
					b.hashes = leafHashes(b.evs)
					b.err = deletedLeafHashes(logHashes, b)
				}
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for from := uint64(1); from <= last; from += auditBatchSize {
			b := &auditBatch{from: from, to: min(last, from+auditBatchSize-1), done: make(chan struct{})}
			// order is sent first: it bounds the batches in flight, and a
			// batch in jobs is always awaited in order.
			select {
			case order <- b:
			case <-pctx.Done():
				return
			}
			select {
			case jobs <- b:
			case <-pctx.Done():
				b.err = pctx.Err()
				close(b.done)
				return
			}
		}
	}()
	stop := func() {
		cancel()
		for b := range order {
			<-b.done
		}
		wg.Wait()
	}
	var deleted []SeqRange
	for b := range order {
		<-b.done
		if b.err != nil {
			stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, readErr(b.from, b.to, b.err)
		}
		for i, e := range b.evs {
			var err error
			if e == nil {
				seq := b.from + uint64(i)
				err = a.AddDeleted(seq, b.hashes[i])
				if n := len(deleted); n > 0 && deleted[n-1].Last == seq-1 {
					deleted[n-1].Last = seq
				} else {
					deleted = append(deleted, SeqRange{seq, seq})
				}
			} else {
				err = a.AddHashed(e, b.hashes[i])
			}
			if err != nil {
				stop()
				return nil, err
			}
		}
		b.evs, b.hashes = nil, nil
	}
	wg.Wait()
	return deleted, ctx.Err()
}

// deletedLeafHashes sets the leaf hashes of b's deleted events (nil) to the
// log's stored ones.
func deletedLeafHashes(logHashes tlog.HashReader, b *auditBatch) error {
	var idx []int64
	for i, e := range b.evs {
		if e == nil {
			idx = append(idx, tlog.StoredHashIndex(0, int64(b.from)+int64(i)-1))
		}
	}
	if len(idx) == 0 {
		return nil
	}
	hs, err := logHashes.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("events are missing from seq %d on, and the log's leaf hashes cannot be read: %w", b.from, err)
	}
	k := 0
	for i, e := range b.evs {
		if e == nil {
			b.hashes[i] = hs[k]
			k++
		}
	}
	return nil
}

// leafHashes returns the leaf hashes of evs (nil events hash as zero).
func leafHashes(evs []*audittrail.Event) []tlog.Hash {
	hs := make([]tlog.Hash, len(evs))
	for i, e := range evs {
		if e != nil {
			hs[i] = merkle.LeafHash(e)
		}
	}
	return hs
}

// searchPage is one page of the pipeline of checkSearch, with its events'
// leaf hashes, ready once done is closed.
type searchPage struct {
	evs    []*audittrail.Event
	hashes []tlog.Hash
	err    error
	done   chan struct{}
}

// searchPages searches every event in q's order, one goroutine fetching the
// pages (each needs the previous page's cursor) while others hash the
// fetched pages' events, and sends the pages in order. It stops at the
// first error (sent as the last page) or when ctx is done.
func searchPages(ctx context.Context, st audittrail.Store, q *audittrail.Query, out chan<- *searchPage) {
	defer close(out)
	var after *audittrail.Cursor
	for {
		res, err := st.Search(ctx, audittrail.SearchRequest{Query: q, After: after, Limit: audittrail.MaxPageSize})
		p := &searchPage{err: err, done: make(chan struct{})}
		if err != nil {
			close(p.done)
		} else {
			p.evs = res.Events
			go func() {
				p.hashes = leafHashes(p.evs)
				close(p.done)
			}()
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
		if err != nil || res.Next == nil {
			return
		}
		after = res.Next
	}
}
