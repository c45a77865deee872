package logsign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Run integrates and signs every Interval until ctx is done. Errors are
// logged and retried at the next tick.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		if err := l.tick(ctx); err != nil && ctx.Err() == nil {
			l.failures.Add(1)
			l.errLog.log(ctx, l.cfg.Logger, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Failures is the number of Run's rounds that failed (integration, signing,
// or, on a replica, refreshing from the shared store), for monitoring: the
// errors themselves are logged, throttled.
func (l *Log) Failures() uint64 { return l.failures.Load() }

// Withheld returns how many signed checkpoints were not stored for want of
// the witnesses' quorum (Config.WitnessQuorum).
func (l *Log) Withheld() uint64 { return l.withheld.Load() }

// ErrWithheld is the error of a Flush whose checkpoint the witnesses'
// quorum did not cosign (Config.WitnessQuorum): the tree holds every
// event, the latest checkpoint is an earlier one.
var ErrWithheld = errors.New("logsign: checkpoint withheld: the witnesses' quorum did not cosign it")

// tick is one round of Run. With a SharedStore, the leader steps and the
// other replicas refresh what they serve from the store.
func (l *Log) tick(ctx context.Context) error {
	if l.shared == nil {
		if err := l.integrate(ctx); err != nil {
			return err
		}
		return l.maybeThin(ctx)
	}
	ok, err := l.lead(ctx)
	if err != nil || !ok {
		return errors.Join(err, l.refresh(ctx))
	}
	if err := l.integrate(ctx); err != nil {
		l.unsync()
		return err
	}
	return l.maybeThin(ctx)
}

// maxCatchUp bounds the time of one round's steps (integrate), so that a
// log far behind (a restart after a long outage of the integrator) still
// signs checkpoints of what it has integrated while it catches up.
const maxCatchUp = 2 * time.Second

// integrate steps until the tree holds every event committed when it
// started (or maxCatchUp has passed), and signs, when due, only after the
// last step. One step per round would cap the log at BatchSize events per
// Interval (50,000 events/s with the defaults), less than one node ingests
// in batches: past that rate the tree fell behind without bound, and the
// integrator then read back from the database, and hashed again, the
// events that the store's window of recent leaf hashes no longer held.
func (l *Log) integrate(ctx context.Context) error {
	target := l.cfg.Store.LastSeq()
	deadline := time.Now().Add(maxCatchUp)
	for {
		last := l.treeSize()+uint64(l.cfg.BatchSize) >= target || !time.Now().Before(deadline)
		mode := signLater
		if last {
			mode = signIfDue
		}
		if err := l.step(ctx, mode); err != nil {
			return err
		}
		if last {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Step integrates the committed events not yet in the tree (up to
// BatchSize) and signs a checkpoint when the tree grew past the latest
// signed one and SignInterval has passed since the last signature.
func (l *Log) Step(ctx context.Context) error {
	return l.step(ctx, signIfDue)
}

// signing says when step signs a checkpoint of the tree it grew.
type signing int

const (
	signIfDue signing = iota // when SignInterval has passed since the last signature
	signNow                  // now, even of an empty or unchanged tree without a checkpoint
	signLater                // not in this step: another follows at once
)

// Flush integrates every committed event and signs a checkpoint of them
// now (used on shutdown and in tests). With a SharedStore, only the leader
// does; another replica only refreshes what it serves.
func (l *Log) Flush(ctx context.Context) error {
	if l.shared != nil {
		ok, err := l.lead(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return l.refresh(ctx)
		}
	}
	err := l.flush(ctx)
	if err != nil && l.shared != nil {
		l.unsync()
	}
	return err
}

func (l *Log) flush(ctx context.Context) error {
	for l.cfg.Store.LastSeq() > l.treeSize() {
		if err := l.step(ctx, signLater); err != nil {
			return err
		}
	}
	return l.step(ctx, signNow)
}

func (l *Log) treeSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

type pendingHashes struct {
	l       *Log
	indexes []int64
	hashes  [][32]byte
}

func (p *pendingHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return l2t(p.l.cfg.Store.ReadTreeHashes(indexes))
}

func (p *pendingHashes) WriteHashes(indexes []int64, hashes []tlog.Hash) error {
	p.indexes = append(p.indexes, indexes...)
	for _, h := range hashes {
		p.hashes = append(p.hashes, h)
	}
	return nil
}

// reader reads the tree as the step grows it: the hashes Integrate wrote
// (one contiguous run of storage indexes from the stored tree's end), then
// the stored ones.
func (p *pendingHashes) reader() tlog.HashReader {
	base := tlog.StoredHashCount(int64(p.l.size))
	pending := make([]tlog.Hash, len(p.hashes))
	for i, h := range p.hashes {
		pending[i] = h
	}
	return merkle.Overlay(p.l.hashReader(), base, pending)
}

func l2t(hs [][32]byte, err error) ([]tlog.Hash, error) {
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, nil
}

// hashReader reads the stored tree.
func (l *Log) hashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l2t(l.cfg.Store.ReadTreeHashes(indexes))
	})
}

// recentLeafHashes is implemented by stores that hash each event as they
// append it (pebblestore): the integrator takes the hashes of just-committed
// events from memory instead of reading and hashing the events.
type recentLeafHashes interface {
	RecentLeafHashes(ctx context.Context, from, to uint64, dst []tlog.Hash) ([]tlog.Hash, time.Time, bool, error)
}

// leaves returns the leaf hashes of seqs from..to and the latest receive
// time among them.
func (l *Log) leaves(ctx context.Context, from, to uint64) ([]tlog.Hash, time.Time, error) {
	leaves := make([]tlog.Hash, 0, to-from+1)
	if r, ok := l.cfg.Store.(recentLeafHashes); ok {
		hs, rt, ok, err := r.RecentLeafHashes(ctx, from, to, leaves)
		if err != nil || ok {
			return hs, rt, err
		}
	}
	evs, err := l.cfg.Store.EventsBySeq(ctx, from, to)
	if err != nil {
		return nil, time.Time{}, err
	}
	var rt time.Time
	var h merkle.LeafHasher
	for i, e := range evs {
		if e.Seq != from+uint64(i) {
			return nil, time.Time{}, fmt.Errorf("logsign: store returned seq %d at position %d", e.Seq, from+uint64(i))
		}
		leaves = append(leaves, h.Hash(e))
		if e.ReceiveTime.After(rt) {
			rt = e.ReceiveTime
		}
	}
	return leaves, rt, nil
}

func (l *Log) step(ctx context.Context, sign signing) error {
	if l.cfg.Signer == nil {
		return errors.New("logsign: this replica has no signing key: it does not integrate")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.cfg.Store
	last := st.LastSeq()
	p := &pendingHashes{l: l}
	newSize := l.size
	lastRT := l.lastRT
	var root tlog.Hash
	haveRoot := false
	if last > l.size {
		to := min(last, l.size+uint64(l.cfg.BatchSize))
		leaves, rt, err := l.leaves(ctx, l.size+1, to)
		if err != nil {
			return err
		}
		if rt.After(lastRT) {
			lastRT = rt
		}
		r, err := merkle.Integrate(p, l.size, leaves)
		if err != nil {
			return err
		}
		root, haveRoot = r, true
		newSize = to
	}
	signed := l.signedSize()
	now := l.cfg.Now()
	var note []byte
	forceSign := sign == signNow
	// Only checkpoints the witnesses' quorum cosigned are stored.
	quorumRequired := l.cfg.Witnesses != nil && l.cfg.WitnessQuorum != nil
	// The witnesses may be asked now (WitnessInterval).
	askable := l.cfg.WitnessInterval <= 0 || now.Sub(l.lastAsk) >= l.cfg.WitnessInterval
	if sign != signLater && (newSize > signed || (forceSign && l.latestCheckpoint() == nil)) {
		due := l.latestCheckpoint() == nil || now.Sub(l.lastSign) >= l.cfg.SignInterval
		if quorumRequired {
			due = due && askable // sign when the witnesses may be asked
		}
		if forceSign || due {
			if !haveRoot {
				r, err := merkle.TreeRoot(l.hashReader(), newSize)
				if err != nil {
					return err
				}
				root = r
			}
			var err error
			if note, err = l.sign(newSize, root, lastRT); err != nil {
				return err
			}
		}
	}
	if newSize == l.size && note == nil {
		return nil
	}
	if note != nil && l.shared != nil {
		if err := l.checkStillSigner(ctx); err != nil {
			return err
		}
	}
	if note != nil && l.cfg.Witnesses != nil && (askable || forceSign) {
		l.lastAsk = now
		// Before the store: the checkpoint is stored and served once,
		// with its cosignatures. A witness shown a checkpoint that a crash
		// then loses is no harm: the events were committed before they
		// were integrated, so the log signs the same tree again.
		tree := p.reader()
		signed := note
		note = l.cfg.Witnesses.Cosign(ctx, note, newSize, func(old, new uint64) ([]tlog.Hash, error) {
			return tlog.ProveTree(int64(new), int64(old), tree)
		})
		// What is stored must open for every verifier (and for the next
		// start, which refuses a latest checkpoint that does not): a note
		// the cosignatures made unreadable (more signature lines or bytes
		// than a note may hold) is stored as the log signed it.
		if _, err := merkle.OpenCheckpoint(note, l.keyVerifier()); err != nil {
			l.cfg.Logger.WarnContext(ctx, "verifiable log: the witnesses' cosignatures make the checkpoint unreadable; stored without them", "size", newSize, "err", err)
			note = signed
		}
	}
	var withheld error
	if note != nil && quorumRequired {
		withheld = l.cfg.WitnessQuorum(note)
		if withheld != nil {
			// Not stored: the tree grows without it, and the next round
			// (SignInterval on) signs and asks again.
			l.withheld.Add(1)
			if !l.withholding {
				l.cfg.Logger.WarnContext(ctx, "verifiable log: checkpoints withheld until the witnesses' quorum cosigns one", "size", newSize, "err", withheld)
			}
			note, l.withholding, l.lastSign = nil, true, now
		} else if l.withholding {
			l.cfg.Logger.InfoContext(ctx, "verifiable log: the witnesses' quorum cosigns checkpoints again", "size", newSize)
			l.withholding = false
		}
	}
	if newSize > l.size || note != nil {
		if err := st.AppendTree(newSize, p.indexes, p.hashes, note); err != nil {
			return err
		}
	}
	l.size, l.lastRT = newSize, lastRT
	if note != nil {
		c, err := merkle.OpenCheckpoint(note, l.keyVerifier())
		if err != nil {
			return err
		}
		l.lastSign = now
		l.cpMu.Lock()
		l.latest, l.cp = note, c
		l.cpMu.Unlock()
	}
	if withheld != nil && sign == signNow {
		return fmt.Errorf("%w: %v", ErrWithheld, withheld)
	}
	return nil
}

// sign signs the checkpoint of the tree of size leaves. Its horizon is just
// after the latest receive time of its leaves, and never earlier than the
// previous checkpoint's. (Receive times are not clamped at commit yet: see
// docs/design/verifiable-log.md.)
func (l *Log) sign(size uint64, root tlog.Hash, lastRT time.Time) ([]byte, error) {
	h := merkle.MinHorizon
	if size > 0 && !lastRT.IsZero() {
		h = lastRT.Add(time.Nanosecond).UTC()
	}
	if prev := l.latestCheckpoint(); prev != nil && h.Before(prev.ReceivedBefore) {
		h = prev.ReceivedBefore
	}
	if h.Before(merkle.MinHorizon) {
		h = merkle.MinHorizon
	}
	if h.After(merkle.MaxHorizon) {
		h = merkle.MaxHorizon
	}
	c := &merkle.Checkpoint{Origin: l.cfg.Signer.Name(), Size: size, Root: root, ReceivedBefore: h}
	return merkle.Sign(c, l.cfg.Signer, l.cfg.Cosigners...)
}

func (l *Log) signedSize() uint64 {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	if l.cp == nil {
		return 0
	}
	return l.cp.Size
}

func (l *Log) latestCheckpoint() *merkle.Checkpoint {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.cp
}

// Checkpoint returns the latest signed checkpoint (note text) and its parsed
// form, or nil before the first one.
func (l *Log) Checkpoint() ([]byte, *merkle.Checkpoint) {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.latest, l.cp
}

// VerifierKey is the text of the log's public keys: the current signing
// key first, then those of a rotation in progress, one per line.
func (l *Log) VerifierKey() string {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.keys
}

// keyVerifier is the verifier of the log's keys.
func (l *Log) keyVerifier() note.Verifier {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.verifier
}

// InclusionProof proves leaf seq-1 in the tree of treeSize leaves (0: the
// latest signed checkpoint's size), from the proof cache when the tree is
// that of a signed checkpoint (GetInclusionProof).
func (l *Log) InclusionProof(seq, treeSize uint64) (*merkle.Inclusion, error) {
	p, err := l.CachedInclusionProofs([]uint64{seq}, treeSize)
	if err != nil {
		return nil, err
	}
	return p[0], nil
}

// InclusionProofs proves leaves seq-1 of several seqs in the tree of
// treeSize leaves (0: the latest signed checkpoint's size), reading each
// stored hash once: the proofs of a page of neighbouring events share most
// of their nodes (for 50 events of a tree of 100,000, about 110 distinct
// hashes instead of about 540 reads).
func (l *Log) InclusionProofs(seqs []uint64, treeSize uint64) ([]*merkle.Inclusion, error) {
	if treeSize == 0 {
		treeSize = l.signedSize()
	}
	l.catchUp(treeSize)
	if treeSize > l.treeSize() {
		return nil, audittrail.Errorf(audittrail.EInvalid, "tree_size %d is larger than the log's tree (%d leaves)", treeSize, l.treeSize())
	}
	memo := map[int64]tlog.Hash{}
	var missing []int64
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		missing = missing[:0]
		for _, i := range indexes {
			if _, ok := memo[i]; !ok {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			hs, err := l.cfg.Store.ReadTreeHashes(missing)
			if err != nil {
				return nil, err
			}
			if len(hs) != len(missing) {
				return nil, fmt.Errorf("logsign: %d tree hashes read for %d indexes", len(hs), len(missing))
			}
			for k, i := range missing {
				memo[i] = hs[k]
			}
		}
		out := make([]tlog.Hash, len(indexes))
		for k, i := range indexes {
			out[k] = memo[i]
		}
		return out, nil
	})
	out := make([]*merkle.Inclusion, len(seqs))
	for k, seq := range seqs {
		if seq == 0 || seq > treeSize {
			return nil, audittrail.Errorf(audittrail.EInvalid, "seq %d is not in a tree of %d leaves", seq, treeSize)
		}
		p, err := merkle.InclusionProof(r, seq-1, treeSize)
		if err != nil {
			return nil, err
		}
		out[k] = p
	}
	return out, nil
}

// ConsistencyProof proves the tree of first leaves a prefix of the tree of
// second leaves.
func (l *Log) ConsistencyProof(first, second uint64) (*merkle.Consistency, error) {
	l.catchUp(second)
	if first > second || second > l.treeSize() {
		return nil, audittrail.Errorf(audittrail.EInvalid, "no consistency proof from %d to %d leaves: the first size must not exceed the second, nor the second the log's tree (%d leaves)", first, second, l.treeSize())
	}
	return merkle.ConsistencyProof(l.hashReader(), first, second)
}

// LastSeq is the highest committed sequence number of the log's store.
func (l *Log) LastSeq() uint64 { return l.cfg.Store.LastSeq() }

// EventsBySeq returns the committed events with from <= Seq <= to, in
// sequence order, from the log's store.
func (l *Log) EventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return l.cfg.Store.EventsBySeq(ctx, from, to)
}

// EventsBySeqSparse is EventsBySeq with a nil event for each seq whose
// event the store no longer holds (a retention policy), when the store can
// tell (SparseLogReader); on other stores, which delete nothing, it is
// EventsBySeq. With LeafHashes it makes the Log an
// audittrail.DeletedLeafReader, so the log's entries can be served past a
// dropped month.
func (l *Log) EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	if sp, ok := l.cfg.Store.(SparseLogReader); ok {
		return sp.EventsBySeqSparse(ctx, from, to)
	}
	return l.cfg.Store.EventsBySeq(ctx, from, to)
}

// LeafHashes returns the stored leaf hashes of leaves [from, to), which must
// be integrated.
func (l *Log) LeafHashes(ctx context.Context, from, to uint64) ([][32]byte, error) {
	if size := l.treeSize(); from > to || to > size {
		return nil, audittrail.Errorf(audittrail.EUnavailable, "the leaf hashes of leaves %d..%d are not in the log's tree yet (%d leaves): try again", from, to-1, size)
	}
	idx := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		idx = append(idx, tlog.StoredHashIndex(0, int64(i)))
	}
	return l.cfg.Store.ReadTreeHashes(idx)
}

// EventByID returns the committed event with this id, or nil.
func (l *Log) EventByID(ctx context.Context, id string) (*audittrail.Event, error) {
	return l.cfg.Store.EventByID(ctx, id)
}
