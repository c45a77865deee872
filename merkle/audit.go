package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditReport is the outcome of a full audit.
type AuditReport struct {
	// Leaves is the number of events audited, Root the recomputed root of
	// their tree.
	Leaves uint64
	Root   tlog.Hash
	// Checked counts the checkpoints compared with the recomputed tree;
	// Unchecked those larger than the audited log.
	Checked, Unchecked int
	// Divergence is the first disagreement between the events and the
	// checkpoints, nil when every checked checkpoint agrees.
	Divergence *Divergence
	// Disagreeing counts the checked checkpoints whose root is not the
	// recomputed one.
	Disagreeing int
	// Horizon lists leaves that contradict a checkpoint's ReceivedBefore
	// (at most 100; HorizonCount has the total).
	Horizon      []HorizonViolation
	HorizonCount int
	// ReceiveOrder is the index of the first leaf received before the leaf
	// preceding it (the log promises ReceiveTime nondecreasing in Seq), or
	// -1 when there is none.
	ReceiveOrder int64
	// Deleted counts the leaves added with AddDeleted: their events are
	// gone, so only their place in the signed trees was checked.
	Deleted uint64
}

// OK reports whether the audit found nothing wrong.
func (r *AuditReport) OK() bool {
	return r.Divergence == nil && r.HorizonCount == 0 && r.ReceiveOrder < 0
}

// Divergence locates the first disagreement between the audited events and
// the log's signed checkpoints.
type Divergence struct {
	// Checkpoint is the smallest checkpoint whose root differs from Root,
	// the root recomputed from the first Checkpoint.Size events.
	Checkpoint *Checkpoint
	Root       tlog.Hash
	// FirstLeaf is the index (Seq-1) of the first divergent leaf when Exact,
	// else a lower bound: the first divergent leaf lies in
	// [FirstLeaf, Checkpoint.Size), FirstLeaf being the size of the largest
	// agreeing checkpoint below.
	FirstLeaf uint64
	// Exact is set when the log's hashes proved the position: the log's
	// first FirstLeaf leaves are the audited ones (consistency proof against
	// Checkpoint) and its leaf FirstLeaf is LogLeaf (inclusion proof against
	// Checkpoint), not Leaf, the hash of the audited event.
	Exact   bool
	LogLeaf tlog.Hash
	Leaf    tlog.Hash
	// Note says why the position is not exact, when it is not.
	Note string
}

// HorizonViolation is a leaf on the wrong side of a checkpoint's horizon:
// inside the tree but received at or after ReceivedBefore, or outside it but
// received before.
type HorizonViolation struct {
	Checkpoint  *Checkpoint
	LeafIndex   uint64
	ReceiveTime time.Time
}

const maxHorizonReports = 100

// Auditor recomputes the log's tree from its events, in sequence order, and
// compares it with signed checkpoints. Add every event, then call Finish.
type Auditor struct {
	tree    HashStore
	size    uint64 // leaves added
	tsize   uint64 // leaves integrated into tree
	pending []tlog.Hash

	cps  []*Checkpoint // sorted by size
	next int           // first checkpoint not yet compared

	lastRT    time.Time
	maxRT     time.Time
	maxRTLeaf uint64
	floorRT   time.Time   // largest horizon of the compared checkpoints
	floorCP   *Checkpoint // the checkpoint with that horizon
	agreeSize uint64      // size of the largest agreeing checkpoint before the divergence
	report    AuditReport
}

// NewAuditor returns an auditor for verified checkpoints of one log. tree
// receives the recomputed hashes; it must be empty, and nil means a new
// MemStore (about 64 bytes per event).
func NewAuditor(checkpoints []*Checkpoint, tree HashStore) (*Auditor, error) {
	if tree == nil {
		tree = &MemStore{}
	}
	cps := slices.Clone(checkpoints)
	for _, c := range cps {
		if !c.Verified() {
			return nil, errNotVerified
		}
		if c.Origin != cps[0].Origin {
			return nil, fmt.Errorf("merkle: checkpoints of different logs (%q, %q)", cps[0].Origin, c.Origin)
		}
	}
	slices.SortStableFunc(cps, func(a, b *Checkpoint) int {
		switch {
		case a.Size < b.Size:
			return -1
		case a.Size > b.Size:
			return 1
		}
		return a.ReceivedBefore.Compare(b.ReceivedBefore)
	})
	a := &Auditor{tree: tree, cps: cps, report: AuditReport{ReceiveOrder: -1}}
	if err := a.compare(); err != nil {
		return nil, err
	}
	return a, nil
}

// Add audits the next event. Its Seq must be one more than the previous
// event's (1 for the first): the audit needs the whole log, in order.
func (a *Auditor) Add(e *audittrail.Event) error {
	if e == nil {
		return errors.New("merkle: audit: nil event")
	}
	return a.AddHashed(e, LeafHash(e))
}

// AddHashed is Add for an event whose leaf hash, LeafHash(e), the caller
// has computed already (for instance on other goroutines, so that hashing
// runs in parallel while the auditor consumes events in order). leaf must
// be LeafHash(e): the audit trusts it.
func (a *Auditor) AddHashed(e *audittrail.Event, leaf tlog.Hash) error {
	if e == nil {
		return errors.New("merkle: audit: nil event")
	}
	if a.size >= MaxTreeSize || e.Seq != a.size+1 {
		return fmt.Errorf("merkle: audit: event %s has seq %d, want %d (events must be complete and in sequence order)", e.ID, e.Seq, a.size+1)
	}
	return a.AddLeaf(e.Seq, e.ReceiveTime, leaf)
}

// AddLeaf is AddHashed for an event known by what the audit uses of it: its
// seq, receive time and leaf hash (LeafHash of the event, trusted).
func (a *Auditor) AddLeaf(seq uint64, rt time.Time, leaf tlog.Hash) error {
	if a.size >= MaxTreeSize || seq != a.size+1 {
		return fmt.Errorf("merkle: audit: leaf of seq %d, want %d (leaves must be complete and in sequence order)", seq, a.size+1)
	}
	i := a.size
	if i > 0 && rt.Before(a.lastRT) && a.report.ReceiveOrder < 0 {
		a.report.ReceiveOrder = int64(i)
	}
	a.lastRT = rt
	if a.floorCP != nil && rt.Before(a.floorRT) {
		a.horizon(a.floorCP, i, rt)
	}
	if i == 0 || rt.After(a.maxRT) {
		a.maxRT, a.maxRTLeaf = rt, i
	}
	return a.push(leaf)
}

// push adds the next leaf's hash to the recomputed tree and compares the
// checkpoints of the new size.
func (a *Auditor) push(leaf tlog.Hash) error {
	a.pending = append(a.pending, leaf)
	a.size++
	if len(a.pending) >= 4096 {
		if err := a.flush(); err != nil {
			return err
		}
	}
	return a.compare()
}

// AddDeleted audits the next leaf when its event no longer exists (a
// retention policy deleted it): leaf is the log's stored leaf hash, which
// the recomputed roots compare with the signed checkpoints like any other,
// so a deleted event's leaf still proves that the signed history was not
// rewritten around it. Its receive time is unknown, so the horizons and the
// receive order are not checked for it (they are for the leaves around it).
func (a *Auditor) AddDeleted(seq uint64, leaf tlog.Hash) error {
	if a.size >= MaxTreeSize || seq != a.size+1 {
		return fmt.Errorf("merkle: audit: leaf of seq %d, want %d (leaves must be complete and in sequence order)", seq, a.size+1)
	}
	a.report.Deleted++
	return a.push(leaf)
}

func (a *Auditor) horizon(c *Checkpoint, leaf uint64, rt time.Time) {
	a.report.HorizonCount++
	if len(a.report.Horizon) < maxHorizonReports {
		a.report.Horizon = append(a.report.Horizon, HorizonViolation{Checkpoint: c, LeafIndex: leaf, ReceiveTime: rt})
	}
}

func (a *Auditor) flush() error {
	if len(a.pending) == 0 {
		return nil
	}
	if fs, ok := a.tree.(*FlatStore); ok {
		if err := fs.appendLeaves(a.tsize, a.pending); err != nil {
			return err
		}
	} else if _, err := Integrate(a.tree, a.tsize, a.pending); err != nil {
		return err
	}
	a.tsize += uint64(len(a.pending))
	a.pending = a.pending[:0]
	return nil
}

// compare checks the checkpoints of the current size.
func (a *Auditor) compare() error {
	for a.next < len(a.cps) && a.cps[a.next].Size == a.size {
		c := a.cps[a.next]
		a.next++
		if err := a.flush(); err != nil {
			return err
		}
		root, err := TreeRoot(a.tree, a.size)
		if err != nil {
			return err
		}
		a.report.Checked++
		if root != c.Root {
			a.report.Disagreeing++
			if a.report.Divergence == nil {
				a.report.Divergence = &Divergence{Checkpoint: c, Root: root, FirstLeaf: a.agreeSize}
			}
		} else if a.report.Divergence == nil {
			a.agreeSize = a.size
		}
		// Every leaf so far must precede the horizon...
		if a.size > 0 && !a.maxRT.Before(c.ReceivedBefore) {
			a.horizon(c, a.maxRTLeaf, a.maxRT)
		}
		// ...and every later leaf must not (checked in Add).
		if a.floorCP == nil || c.ReceivedBefore.After(a.floorRT) {
			a.floorRT, a.floorCP = c.ReceivedBefore, c
		}
	}
	return nil
}

// Finish ends the audit and returns its report. When a checkpoint disagrees
// and logHashes (the log's stored hashes, as served by the log, untrusted)
// is not nil, Finish uses proofs built from them, each checked against the
// disagreeing checkpoint, to find the exact first divergent leaf.
func (a *Auditor) Finish(logHashes tlog.HashReader) (*AuditReport, error) {
	if err := a.flush(); err != nil {
		return nil, err
	}
	root, err := TreeRoot(a.tree, a.size)
	if err != nil {
		return nil, err
	}
	r := a.report
	r.Leaves, r.Root = a.size, root
	r.Unchecked = len(a.cps) - a.next
	if d := r.Divergence; d != nil {
		d2 := *d
		r.Divergence = &d2
		if logHashes == nil {
			r.Divergence.Note = "no log hashes given: the first divergent leaf is in [FirstLeaf, Checkpoint.Size)"
		} else {
			a.pinpoint(r.Divergence, logHashes)
		}
	}
	return &r, nil
}

// pinpoint narrows d to one leaf: the largest k for which the log proves
// that its first k leaves are the audited ones, then the log's leaf k.
func (a *Auditor) pinpoint(d *Divergence, log tlog.HashReader) {
	c := d.Checkpoint
	agrees := func(k uint64) bool {
		if k == 0 {
			return true
		}
		ours, err := TreeRoot(a.tree, k)
		if err != nil {
			return false
		}
		p, err := ConsistencyProof(log, k, c.Size)
		if err != nil {
			return false
		}
		if k == c.Size {
			return ours == c.Root
		}
		return tlog.CheckTree(p.Hashes, int64(c.Size), c.Root, int64(k), ours) == nil
	}
	lo, hi := d.FirstLeaf, c.Size // agrees(lo) is known true; agrees(hi) false
	if !agrees(lo) {
		d.Note = "the log's hashes do not prove the agreeing prefix: they do not match its own checkpoint"
		return
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if agrees(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	ours, err := a.tree.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(lo))})
	if err != nil {
		d.Note = "reading the recomputed leaf: " + err.Error()
		return
	}
	theirs, err := log.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(lo))})
	if err != nil || len(theirs) != 1 {
		d.Note = "the log's hashes lack leaf " + fmt.Sprint(lo)
		return
	}
	p, err := InclusionProof(log, lo, c.Size)
	if err != nil || tlog.CheckRecord(p.Hashes, int64(c.Size), c.Root, int64(lo), theirs[0]) != nil {
		d.Note = "the log's hashes do not prove its leaf " + fmt.Sprint(lo) + " against its checkpoint"
		return
	}
	if theirs[0] == ours[0] {
		d.Note = "the log's hashes are inconsistent: no divergent leaf could be proven"
		return
	}
	d.FirstLeaf, d.Exact, d.LogLeaf, d.Leaf, d.Note = lo, true, theirs[0], ours[0], ""
}

// Audit is Add for each event and Finish: it recomputes the tree of events
// (complete, in sequence order) and compares it with the verified
// checkpoints; logHashes, optional, lets it prove the first divergent leaf.
func Audit(events []*audittrail.Event, checkpoints []*Checkpoint, logHashes tlog.HashReader) (*AuditReport, error) {
	a, err := NewAuditor(checkpoints, nil)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := a.Add(e); err != nil {
			return nil, err
		}
	}
	return a.Finish(logHashes)
}

// LeafHasher computes leaf hashes like LeafHash, reusing its buffers: once
// they have grown, hashing an event allocates nothing. It is not safe for
// concurrent use; give each goroutine its own.
type LeafHasher struct {
	buf  []byte
	keys []mapEntry
}

// Hash returns LeafHash(e).
func (h *LeafHasher) Hash(e *audittrail.Event) tlog.Hash {
	h.buf = appendLeafData(append(h.buf[:0], 0x00), e, &h.keys) // RFC 6962 leaf prefix, then the leaf data
	return sha256.Sum256(h.buf)
}

// MapEntry is one entry of an event's map, for HashSorted.
type MapEntry struct{ Key, Value string }

// HashSorted returns the leaf hash of e with its maps given as entries
// instead (e.RequestParameters and e.Metadata are ignored): params and meta
// sorted by key, each key once. A reader that decodes the maps of stored
// events straight into sorted entries (pebblestore's storage-order scan)
// spares building maps only to iterate and sort them again.
func (h *LeafHasher) HashSorted(e *audittrail.Event, params, meta []MapEntry) tlog.Hash {
	b := appendLeafHead(append(h.buf[:0], 0x00), e)
	b = appendEntries(b, params)
	b = appendEntries(b, meta)
	h.buf = appendLeafTail(b, e)
	return sha256.Sum256(h.buf)
}

func appendEntries(b []byte, es []MapEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(es)))
	for _, e := range es {
		b = appendString(b, e.Key)
		b = appendString(b, e.Value)
	}
	return b
}

// LeafTable holds the leaf hash and receive time of each leaf of a log of
// known size, set in any order, for an audit that reads the events in
// another order than their seqs (a store's storage order) and then adds
// them to an Auditor in sequence order (AddTo). Set may run concurrently
// for distinct leaves. On Unix a large table is mapped outside the Go heap;
// call Release when done with it.
type LeafTable struct {
	n uint64
	// hashes holds leaf i at index i, or, when inTree, at its storage index
	// in the room of the Auditor's empty FlatStore.
	hashes  []tlog.Hash
	inTree  bool
	rts     []int64 // receive time, Unix ns; wideRT when out of that range
	set     []bool
	release []func()

	mu   sync.Mutex
	wide map[uint64]time.Time // receive times that Unix ns cannot hold
}

// Markers in LeafTable.rts: a receive time kept in wide, and a deleted
// leaf (SetDeleted).
const (
	wideRT    = math.MinInt64
	deletedRT = math.MinInt64 + 1
)

// The receive times a LeafTable holds as Unix ns (the markers excluded).
var minNanoTime, maxNanoTime = time.Unix(0, deletedRT+1), time.Unix(0, math.MaxInt64)

// NewLeafTable returns a table of n leaves (indexes 0 to n-1), none set:
// 41 bytes per leaf. When tree, optional, is the empty FlatStore that the
// Auditor given to AddTo integrates the leaves into, and has room for n
// leaves, the table keeps the leaf hashes in that room, where the Auditor
// writes them again (each at its own place), and costs 9 bytes per leaf;
// nothing else may then write to tree before AddTo.
func NewLeafTable(n uint64, tree *FlatStore) *LeafTable {
	if n > MaxTreeSize {
		n = 0
	}
	t := &LeafTable{n: n}
	var r1, r2, r3 func()
	if tree != nil {
		t.hashes, t.inTree = tree.leafRoom(n)
	}
	if !t.inTree {
		t.hashes, r1 = allocMapped[tlog.Hash](int64(n))
	}
	t.rts, r2 = allocMapped[int64](int64(n))
	t.set, r3 = allocMapped[bool](int64(n))
	t.release = []func(){r1, r2, r3}
	return t
}

// at is the index of leaf i in t.hashes.
func (t *LeafTable) at(i uint64) int64 {
	if t.inTree {
		return leafStorageIndex(i)
	}
	return int64(i)
}

// Len is the number of leaves of the table.
func (t *LeafTable) Len() uint64 { return t.n }

// Set records leaf i: the leaf hash and receive time of the event of seq
// i+1. i must be below Len.
func (t *LeafTable) Set(i uint64, leaf tlog.Hash, receiveTime time.Time) {
	if i >= t.n {
		panic(fmt.Sprintf("merkle: LeafTable: leaf %d of %d", i, t.n))
	}
	t.hashes[t.at(i)] = leaf
	// Unix ns covers the years 1678 to 2262, every receive time a store
	// accepts; other times (a tampered record's) are kept aside.
	if !receiveTime.Before(minNanoTime) && !receiveTime.After(maxNanoTime) {
		t.rts[i] = receiveTime.UnixNano()
	} else {
		t.rts[i] = wideRT
		t.mu.Lock()
		if t.wide == nil {
			t.wide = map[uint64]time.Time{}
		}
		t.wide[i] = receiveTime
		t.mu.Unlock()
	}
	t.set[i] = true
}

// SetDeleted records leaf i as the log's stored hash of a deleted event
// (retention): AddTo adds it with Auditor.AddDeleted.
func (t *LeafTable) SetDeleted(i uint64, leaf tlog.Hash) {
	if i >= t.n {
		panic(fmt.Sprintf("merkle: LeafTable: leaf %d of %d", i, t.n))
	}
	t.hashes[t.at(i)] = leaf
	t.rts[i] = deletedRT
	t.set[i] = true
}

// IsSet reports whether leaf i was set.
func (t *LeafTable) IsSet(i uint64) bool { return i < t.n && t.set[i] }

// FirstUnset returns the index of the first leaf not set, or Len when every
// leaf is.
func (t *LeafTable) FirstUnset() uint64 {
	for i, ok := range t.set[:t.n] {
		if !ok {
			return uint64(i)
		}
	}
	return t.n
}

// AddTo adds the first n leaves to a, in order (seq i+1 for leaf i); they
// must all be set, and every Set must have returned.
func (t *LeafTable) AddTo(a *Auditor, n uint64) error {
	if n > t.Len() {
		return fmt.Errorf("merkle: LeafTable: %d leaves of %d", n, t.Len())
	}
	for i := range n {
		if !t.set[i] {
			return fmt.Errorf("merkle: LeafTable: leaf %d is not set", i)
		}
		var rt time.Time
		switch ns := t.rts[i]; ns {
		case deletedRT:
			if err := a.AddDeleted(i+1, t.hashes[t.at(i)]); err != nil {
				return err
			}
			continue
		case wideRT:
			rt = t.wide[i]
		default:
			rt = time.Unix(0, ns)
		}
		if err := a.AddLeaf(i+1, rt, t.hashes[t.at(i)]); err != nil {
			return err
		}
	}
	return nil
}

// Release frees the memory of the table, which must not be used after.
func (t *LeafTable) Release() {
	for _, r := range t.release {
		if r != nil {
			r()
		}
	}
	t.n, t.hashes, t.rts, t.set, t.release = 0, nil, nil, nil, nil
}
