package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// Retention (audittrail.Expirer): deleting the events before a cutoff.
//
// The cutoff is an event time kept in cutoffKey; it only moves forward.
// Once it is set, nothing before it is shown: every search's time range
// starts at it (timeBounds), a lookup by id of an event before it finds
// nothing, the log's sparse reads (GetLogEntries, the audit) report such an
// event deleted, and the writer refuses new events before it. What is
// hidden is then deleted in the background of that promise:
//
//   - Records, with their id entries (i keys), read in the primary range up
//     to the cutoff. They are deleted by the writer goroutine between two
//     group commits, a chunk at a time: the writer is the only code that
//     writes ids, so an id can never be deleted just after a producer's
//     retry stored a new event under it. A record the verifiable log has
//     not integrated yet is kept (the integrator hashes it), and so are the
//     events at the last seq and at the tree's size, which Open and the log
//     read at start (their receive times): all three are deleted by a
//     later pass, once newer events exist.
//   - Posting blocks (p, k and the older formats' q, x, h keys) whose newest
//     posting is before the cutoff, so all of theirs are: a range deletion
//     per list that has more than a few, point deletions otherwise. No new
//     block can land there (new events are at or after the cutoff). Only the
//     lists of the records the pass deleted are visited (the writer notes
//     them while it deletes): a block before the cutoff that stays belongs
//     to a record kept for now, and the pass that deletes that record
//     visits its lists. This holds while every pass finishes; after one
//     that did not (cleanedKey lags the cutoff), on a store with postings
//     of older formats, or when a pass touches more than maxPassLists
//     lists, the pass walks every list instead (a pass with nothing to
//     delete took 218 ms walking the lists of 100,000 events, growing with
//     the store; visiting only the deleted records' lists, 1.6-4.5 ms:
//     BenchmarkExpire, BENCHMARKS.md).
//   - The value column's buckets that end at or before the cutoff.
//   - The dictionaries' values that only deleted records held (a principal,
//     a resource, a request id, seen in no event left): their posting
//     lists are empty then, and they are erased (eraseUnused); the value
//     column's prefixes no entry left refers to (expire_prefixes.go). User
//     agents have no posting lists and keep their values.
//
// Then the ranges the pass deleted from (records, column buckets) and the
// dictionaries are compacted, so that the files no longer hold what was
// deleted or erased.
//
// The posting counts (the planner's statistics) lose the deleted records'
// postings as the records go (subtractCounts). Kept: the log positions (o,
// s keys: a few bytes per event, the seq → time map the log and Open
// read). The tree keeps every leaf hash, so proofs of the remaining
// events, checkpoints and mirrors go on (docs/design/retention.md). The
// deleted ids and posting blocks (no values in them: event ids, dictionary
// ids, hashes) are spread over their whole ranges; Pebble reclaims their
// space as it compacts.

// cutoffKey holds the retention cutoff: int64 Unix nanoseconds,
// big-endian. Absent: no cutoff. cleanedKey holds the cutoff of the last
// pass whose index deletion finished, in the same form.
var (
	cutoffKey  = []byte("mcutoff")
	cleanedKey = []byte("mcleaned")
	// passingKey marks a pass in progress (its cutoff, in the same form):
	// set, synced, when a pass begins, deleted when it has finished.
	passingKey = []byte("mpassing")
)

// maxPassLists bounds the posting lists a pass notes for its targeted
// deletion (about 50 bytes of memory each); past it, the pass walks them
// all.
const maxPassLists = 1 << 20

// noCutoff is the in-memory cutoff of a store that never expired events:
// before every representable event time.
const noCutoff = math.MinInt64

// expireChunk is how many records the writer examines per chunk: the
// appends queued meanwhile wait for it, 4-8 ms at most (BenchmarkExpire;
// chunks of 4,096 took up to 35 ms, for the same rate of deletion). During
// a pass, appends are slower than that anyway: the deletions go through the
// same write-ahead log that each append syncs (the benchmark's slowest
// single append: 48-57 ms during a pass, 6-8 ms without).
const expireChunk = 1024

// expireFlush is how many deletions of postings and column keys go in one
// batch.
const expireFlush = 4096

// expireReq is one chunk of record deletions for the writer.
type expireReq struct {
	cutoff int64  // the cutoff asked for
	start  []byte // the first primary key to examine
	// lists collects the posting lists of the deleted records (their
	// prefixes), shared by the chunks of a pass; nil when the pass walks
	// every list.
	lists map[string]struct{}
	// keptLists collects the lists of the records kept before the cutoff:
	// their dictionary values stay. Nil once it overflowed.
	keptLists map[string]struct{}
	// erase, when not nil, makes the request a chunk of value erasures
	// (eraseValues): the candidates, dict<<32 | id, in order. The writer
	// sets erased to those it erased.
	erase  []uint64
	erased []uint64
	// notePrefixes, when not 0, makes the request start (1) or stop (-1)
	// the writer's noting of the column prefixes it uses (erasePrefixes).
	notePrefixes int8
	// raiseOnly makes the request move the cutoff only (RaiseCutoff).
	raiseOnly bool
	// inspect, when not nil, makes the request a look at the writer's
	// groups between group commits (tests: WriterBufferBytesForTest).
	inspect func(groups []*group)
	// Set by the writer.
	next     []byte // where the next chunk starts
	finished bool   // no record before the cutoff after next
	// firstKept is the key of the first record the chunk kept.
	firstKept []byte
	deleted   int64
	kept      int64
	err       error
	done      chan struct{}
}

// loadCutoff reads the stored cutoff at Open.
func (s *Store) loadCutoff() error {
	c, err := s.readCutoff(cutoffKey)
	s.cutoff.Store(c)
	return err
}

// Cutoff returns the retention cutoff: no event before it is shown or
// accepted. The zero time when events were never expired.
func (s *Store) Cutoff() time.Time {
	c := s.cutoff.Load()
	if c == noCutoff {
		return time.Time{}
	}
	return time.Unix(0, c).UTC()
}

// RaiseCutoff implements audittrail.Expirer: the cutoff moves as in
// Expire's first chunk (durably, on the writer goroutine, between group
// commits), and nothing is deleted.
func (s *Store) RaiseCutoff(ctx context.Context, cutoff time.Time) (time.Time, error) {
	if cutoff.Before(audittrail.MinEventTime) || !cutoff.Before(audittrail.MaxEventTime) {
		return time.Time{}, audittrail.Errorf(audittrail.EInvalid, "retention cutoff %s is out of range", cutoff.UTC().Format(time.RFC3339Nano))
	}
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	if err := s.rlock(); err != nil {
		return time.Time{}, err
	}
	cleaned, err := s.readCutoff(cleanedKey)
	s.closeMu.RUnlock()
	if err != nil {
		return time.Time{}, err
	}
	if cleaned == s.cutoff.Load() {
		s.raisedClean = true
	}
	r := &expireReq{cutoff: cutoff.UnixNano(), raiseOnly: true, done: make(chan struct{})}
	if err := s.sendExpire(ctx, r); err != nil {
		return time.Time{}, err
	}
	<-r.done
	return s.Cutoff(), r.err
}

// Expire implements audittrail.Expirer (see above).
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (audittrail.ExpireResult, error) {
	var res audittrail.ExpireResult
	if cutoff.Before(audittrail.MinEventTime) || !cutoff.Before(audittrail.MaxEventTime) {
		return res, audittrail.Errorf(audittrail.EInvalid, "retention cutoff %s is out of range", cutoff.UTC().Format(time.RFC3339Nano))
	}
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	if err := s.rlock(); err != nil {
		return res, err
	}
	cleaned, err := s.readCutoff(cleanedKey)
	var passing bool
	if err == nil {
		_, passing, err = s.readUint64(passingKey)
	}
	if err == nil && !passing {
		// Synced before anything is deleted: a pass that the process's
		// end interrupts leaves it.
		err = s.db.Set(passingKey, binary.BigEndian.AppendUint64(nil, uint64(cutoff.UnixNano())), pebble.Sync)
	}
	s.closeMu.RUnlock()
	if err != nil {
		return res, err
	}
	// RaiseCutoff may have moved the cutoff past what the last pass
	// cleaned, deleting nothing: the store is as clean as it found it.
	clean := cleaned == s.cutoff.Load() || s.raisedClean
	s.raisedClean = false
	// The first pass since Open finds the last one unfinished when the
	// process ended during it: that pass may have deleted events and
	// recorded nothing, so this one says so. The mark, not cleanedKey
	// lagging the cutoff, tells it: stores written before cleanedKey
	// existed have a cutoff without it, and cleanedKey is not synced.
	res.Resumed = !s.expired && passing
	s.expired = true
	var lists map[string]struct{}
	if clean && !s.legacyPostings.read && !s.legacyPostings.hash64 && !s.legacyPostings.unpartitioned {
		lists = map[string]struct{}{}
	}
	start := []byte{pfxEvent}
	if s.expireFrom != nil {
		start = s.expireFrom
	}
	var firstKept []byte
	keptLists := map[string]struct{}{}
	for {
		r := &expireReq{cutoff: cutoff.UnixNano(), start: start, lists: lists, keptLists: keptLists, done: make(chan struct{})}
		if err := s.sendExpire(ctx, r); err != nil {
			return res, err
		}
		<-r.done
		res.Deleted += r.deleted
		res.Kept += r.kept
		if r.err != nil {
			return res, r.err
		}
		lists, keptLists = r.lists, r.keptLists // nil once they overflowed
		if firstKept == nil {
			firstKept = r.firstKept
		}
		if r.finished {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		start = r.next
	}
	res.Cutoff = s.Cutoff()
	// Every record before the first one kept is deleted: the next pass
	// starts there instead of stepping over their deletions again.
	s.expireFrom = firstKept
	if firstKept == nil {
		s.expireFrom = eventKey(nil, s.cutoff.Load(), 0)
	}
	if err := s.rlock(); err != nil {
		return res, err
	}
	c := s.cutoff.Load()
	deletedRanges, err := s.expireIndexes(ctx, c, lists)
	s.closeMu.RUnlock()
	if err != nil {
		return res, fmt.Errorf("pebblestore: deleting the postings before the retention cutoff: %w", err)
	}
	if keptLists == nil {
		// Too many records kept to tell which values they hold: the
		// next pass walks every list and every value (cleanedKey lags).
		if err := s.rlock(); err != nil {
			return res, err
		}
		defer s.closeMu.RUnlock()
		return res, s.passFinished()
	}
	res.Erased, err = s.eraseUnused(ctx, lists, keptLists)
	if err == nil && (res.Deleted > 0 || lists == nil) {
		// A pass over the column: only when entries may have gone.
		var n int64
		n, err = s.erasePrefixes(ctx)
		res.Erased += n
	}
	if err != nil {
		return res, fmt.Errorf("pebblestore: erasing the values only deleted events held: %w", err)
	}
	if err := s.rlock(); err != nil {
		return res, err
	}
	defer s.closeMu.RUnlock()
	// What the pass deleted or erased is still in the tables, until
	// compactions reach it: the records and column entries at the bottom
	// level would stay there for months (nothing is written below the
	// cutoff any more), and so would the dictionaries' keys, written once
	// when new. Compacting those ranges takes the deletions down and drops
	// the data now (TestExpireErasesFromFiles): the expired ranges' tables
	// (the first pass on a store with a backlog rewrites what shares tables
	// with it; an hourly pass, the tables holding its hour) and the
	// dictionaries' range (tens of MB at most). So are the posting lists'
	// epochs deleted whole (expireIndexes).
	var compact []keyRange
	if res.Deleted > 0 {
		compact = append(compact, keyRange{[]byte{pfxEvent}, eventKey(nil, c, 0)})
	}
	compact = append(compact, deletedRanges...)
	if res.Erased > 0 {
		compact = append(compact, keyRange{[]byte{pfxDict}, []byte{pfxDict + 1}})
	}
	for _, r := range compact {
		if err := s.db.Compact(ctx, r.lo, r.hi, false); err != nil {
			return res, fmt.Errorf("pebblestore: compacting what retention deleted: %w", err)
		}
	}
	// Not synced: if it is lost, the next pass walks every list.
	if err := s.db.Set(cleanedKey, binary.BigEndian.AppendUint64(nil, uint64(c)), pebble.NoSync); err != nil {
		return res, err
	}
	return res, s.passFinished()
}

// passFinished clears the mark of a pass in progress (passingKey), once the
// pass has deleted all it had to; its caller holds closeMu. Synced (once an
// hour), so that a power cut does not bring the mark back for a pass that
// deleted nothing and so wrote no self-audit event, whose sync would have
// carried the deletion. A pass that fails
// keeps the mark: its caller records the failure, and the first pass after
// a restart reports itself resumed.
func (s *Store) passFinished() error {
	return s.db.Delete(passingKey, pebble.Sync)
}

// keyRange is a range of keys, [lo, hi).
type keyRange struct{ lo, hi []byte }

// eraseChunk is how many candidate values the writer examines per turn
// (one seek each in the posting lists, then one synced commit): appends
// wait for one chunk. BenchmarkExpire, 140,478 values erased: the slowest
// append during the pass 144-170 ms with chunks of 4,096, 56 ms with 1,024,
// the pass as long.
const eraseChunk = 1024

// eraseUnused erases the dictionary values that no stored event holds any
// more, among the values of lists (the lists of the records this pass
// deleted; every value when lists is nil) but not of keptLists (the
// records before the cutoff kept for now, whose postings the pass may have
// deleted). Every record refers to its dictionary values through their
// posting lists (groupWriter.post), so a value whose list is empty once
// the blocks before the cutoff are deleted is held by no record left but
// the kept ones. A value is erased in the database (erasedValue, its count
// deleted) and forgotten by the dictionary's lookup, by the writer between
// group commits, so that no append can take its id meanwhile; if it comes
// back, it gets a new id. It returns how many values it erased.
func (s *Store) eraseUnused(ctx context.Context, lists, keptLists map[string]struct{}) (int64, error) {
	var cands []uint64
	if lists != nil {
		for l := range lists {
			if len(l) != 6 || l[0] != pfxPacked || !indexedDict(dictID(l[1])) {
				continue // inline values' lists: no dictionary value
			}
			if _, kept := keptLists[l]; !kept {
				cands = append(cands, uint64(l[1])<<32|uint64(binary.BigEndian.Uint32([]byte(l[2:]))))
			}
		}
	} else {
		var k [6]byte
		k[0] = pfxPacked
		s.dicts.mu.RLock()
		for d := range dictID(numDicts) {
			if !indexedDict(d) {
				continue
			}
			dd := &s.dicts.d[d]
			k[1] = byte(d)
			for id := range uint32(dd.vals.len()) {
				binary.BigEndian.PutUint32(k[2:], id)
				if _, kept := keptLists[string(k[:])]; !kept && !dd.erased[id] {
					cands = append(cands, uint64(d)<<32|uint64(id))
				}
			}
		}
		s.dicts.mu.RUnlock()
	}
	return s.sendErase(ctx, cands)
}

// indexedDict reports whether d is a dictionary whose values have posting
// lists: those of the indexed fields, and metadata pairs.
func indexedDict(d dictID) bool { return d < dictID(audittrail.NumFields) || d == dictMeta }

// sendErase hands the candidates (dict<<32 | id) to the writer's
// eraseValues in chunks, and returns how many it erased.
func (s *Store) sendErase(ctx context.Context, cands []uint64) (int64, error) {
	slices.Sort(cands)
	var erased int64
	for len(cands) > 0 {
		n := min(len(cands), eraseChunk)
		r := &expireReq{erase: cands[:n], done: make(chan struct{})}
		if err := s.sendExpire(ctx, r); err != nil {
			return erased, err
		}
		<-r.done
		erased += int64(len(r.erased))
		if r.err != nil {
			return erased, r.err
		}
		cands = cands[n:]
	}
	return erased, nil
}

// expireTurn runs r on the writer goroutine, between group commits.
func (s *Store) expireTurn(r *expireReq) {
	switch {
	case r.notePrefixes != 0:
		s.prefixUse = nil
		if r.notePrefixes > 0 {
			s.prefixUse = map[uint32]struct{}{}
		}
		close(r.done)
	case r.erase != nil:
		s.eraseValues(r)
	default:
		s.expireRecords(r)
	}
}

// notePrefixUse notes that a group uses column prefix id, while
// erasePrefixes needs to know. Writer goroutine only.
func (s *Store) notePrefixUse(id uint32) {
	if s.prefixUse != nil {
		s.prefixUse[id] = struct{}{}
	}
}

// eraseValues runs one chunk of erasures on the writer goroutine (see
// eraseUnused, erasePrefixes): the candidates whose posting lists are
// empty (column prefixes: that no group used since erasePrefixes began)
// are erased, durably, then forgotten in memory.
func (s *Store) eraseValues(r *expireReq) {
	defer close(r.done)
	if r.err = s.failure(); r.err != nil {
		return
	}
	// The candidates that may be erased, then those of them no list holds,
	// looked for one place after another, so that the seeks in each go
	// forward (the candidates are sorted).
	r.erased = r.erased[:0]
	for _, c := range r.erase {
		d, id := dictID(c>>32), uint32(c)
		// The writer is the only goroutine that changes erased.
		if s.dicts.d[d].erased[id] {
			continue
		}
		if d == dictColPrefix {
			if _, used := s.prefixUse[id]; used || s.prefixUse == nil {
				continue
			}
		} else if !indexedDict(d) {
			continue // no way to tell (user agents)
		}
		r.erased = append(r.erased, c)
	}
	// Where a value's postings may be: its list in each epoch, newest
	// first, then its lists of earlier formats.
	var bases [][]byte
	epochs := s.epochs.load()
	for i := len(epochs) - 1; i >= 0; i-- {
		bases = append(bases, epochListPrefix(nil, pfxEpochPacked, epochs[i], nil))
	}
	if s.legacyPostings.unpartitioned {
		bases = append(bases, []byte{pfxPacked})
	}
	if s.legacyPostings.read {
		bases = append(bases, []byte{pfxPost})
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		r.err = err
		return
	}
	var key []byte
	for _, base := range bases {
		kept := r.erased[:0]
		for _, c := range r.erased {
			if d := dictID(c >> 32); d != dictColPrefix { // a prefix has no list: prefixUse said
				key = binary.BigEndian.AppendUint32(append(append(key[:0], base...), byte(d)), uint32(c))
				if it.SeekGE(key) && bytes.HasPrefix(it.Key(), key) {
					continue // a record holds it
				}
				if r.err = it.Error(); r.err != nil {
					break
				}
			}
			kept = append(kept, c)
		}
		r.erased = kept
		if r.err != nil || len(kept) == 0 {
			break
		}
	}
	if err := it.Close(); r.err == nil {
		r.err = err
	}
	if r.err != nil {
		r.erased = nil
		return
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, c := range r.erased {
		d, id := dictID(c>>32), uint32(c)
		if r.err = b.Set(dictKey(nil, d, id), erasedValue, nil); r.err != nil {
			r.erased = nil
			return
		}
		writeCount(b, d, id, 0)
	}
	if len(r.erased) == 0 {
		return
	}
	if r.err = b.Commit(pebble.Sync); r.err != nil {
		r.erased = nil
		return
	}
	s.dicts.erase(r.erased)
}

// readCutoff reads a cutoff kept in key (noCutoff when absent).
func (s *Store) readCutoff(key []byte) (int64, error) {
	v, ok, err := s.readUint64(key)
	if !ok || err != nil {
		return noCutoff, err
	}
	return int64(v), nil
}

// readUint64 reads the 8-byte big-endian value of a metadata key, and
// whether it is there. It takes no closeMu: the writer's goroutine, which
// Close waits for, reads with it.
func (s *Store) readUint64(key []byte) (uint64, bool, error) {
	v, closer, err := s.db.Get(key)
	if err == pebble.ErrNotFound {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("pebblestore: corrupt %s %x", key, v)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// sendExpire hands r to the writer. The channel is unbuffered and the send
// holds closeMu, so the writer has taken r before Close can stop it.
func (s *Store) sendExpire(ctx context.Context, r *expireReq) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	select {
	case s.expires <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// expireRecords runs one chunk of r on the writer goroutine, after the last
// group commit is done: it moves the cutoff forward (durably, before any
// deletion, so that nothing deleted could show again after a crash), then
// deletes up to expireChunk records before it with their id entries.
func (s *Store) expireRecords(r *expireReq) {
	defer close(r.done)
	if err := s.failure(); err != nil {
		r.err = err
		return
	}
	if r.cutoff > s.cutoff.Load() {
		if r.err = s.db.Set(cutoffKey, binary.BigEndian.AppendUint64(nil, uint64(r.cutoff)), pebble.Sync); r.err != nil {
			return
		}
		s.cutoff.Store(r.cutoff)
	}
	if r.raiseOnly {
		return
	}
	cutoff := s.cutoff.Load()
	tree, err := s.readTreeSize()
	if err != nil {
		r.err = err
		return
	}
	last := s.lastSeq.Load()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: r.start, UpperBound: eventKey(nil, cutoff, 0)})
	if err != nil {
		r.err = err
		return
	}
	b := s.db.NewBatch()
	defer b.Close()
	var v recView
	dec := map[uint64]uint64{} // postings deleted, by dict<<32 | id
	n := 0
	ok := it.First()
	for ; ok && n < expireChunk; ok = it.Next() {
		k := it.Key()
		n++
		if len(k) != 17 {
			r.err = fmt.Errorf("pebblestore: corrupt event key %x", k)
			break
		}
		seq := binary.BigEndian.Uint64(k[9:])
		if seq > tree || seq == tree || seq == last {
			r.kept++
			if r.firstKept == nil {
				r.firstKept = bytes.Clone(k)
			}
			if r.keptLists != nil {
				if err := v.parse(it.Value()); err != nil {
					r.err = fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
					break
				}
				r.keptLists = noteLists(r.keptLists, &v)
			}
			continue
		}
		if err := v.parse(it.Value()); err != nil {
			r.err = fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
			break
		}
		if r.lists != nil {
			r.lists = noteLists(r.lists, &v)
		}
		dec = noteRefs(dec, &v)
		var id [16]byte
		copy(id[:], v.tail[:16])
		if err := firstErr(b.Delete(k, nil), b.Delete(idKey(nil, id), nil)); err != nil {
			r.err = err
			break
		}
		r.deleted++
	}
	r.finished = !ok
	if ok {
		r.next = bytes.Clone(it.Key())
	}
	if err := firstErr(it.Error(), it.Close()); r.err == nil {
		r.err = err
	}
	if r.err != nil {
		r.deleted = 0
		return
	}
	// Not synced: a deletion lost in a crash is done again by the next
	// pass (the cutoff, which hides the events, was synced above).
	if r.err = b.Commit(pebble.NoSync); r.err != nil {
		r.deleted = 0
		return
	}
	r.err = s.subtractCounts(dec)
}

// noteRefs adds one to dec for each dictionary value the parsed record v
// refers to (inline values have no count), and returns dec.
func noteRefs(dec map[uint64]uint64, v *recView) map[uint64]uint64 {
	for i := range v.fields {
		if v.fieldIn[i] == nil {
			dec[uint64(i)<<32|uint64(v.fields[i])]++
		}
	}
	for _, id := range v.meta {
		dec[uint64(dictMeta)<<32|uint64(id)]++
	}
	return dec
}

// subtractCounts takes the postings of deleted records off the posting
// counts (dec: by dict<<32 | id), in memory and in the database, so that
// the planner's estimates count the events stored, not every event ever
// stored. Not synced, as the committer's saves are not: after a crash the
// counts can be off by the last second's changes.
func (s *Store) subtractCounts(dec map[uint64]uint64) error {
	if len(dec) == 0 {
		return nil
	}
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	s.dicts.mu.Lock()
	for k, n := range dec {
		d, id := dictID(k>>32), uint32(k)
		dd := &s.dicts.d[d]
		n = min(n, dd.counts[id]) // a count can be low after a crash
		dd.counts[id] -= n
		dd.total -= n
		writeCount(b, d, id, dd.counts[id])
	}
	s.dicts.mu.Unlock()
	return b.Commit(pebble.NoSync)
}

// readTreeSize reads the log's tree size (0 when none) without closeMu.
func (s *Store) readTreeSize() (uint64, error) {
	size, _, err := s.readUint64(treeSizeKey)
	return size, err
}

// noteLists adds the posting lists of the parsed record v to lists, as
// groupWriter.post wrote them, and returns nil once there are more than
// maxPassLists.
func noteLists(lists map[string]struct{}, v *recView) map[string]struct{} {
	var k [6]byte
	note := func(d dictID, id uint32, in []byte) {
		k[0], k[1] = pfxPacked, byte(d)
		if in != nil {
			k[0], id = pfxPackedHashed, fold32(fnv64a(in))
		}
		binary.BigEndian.PutUint32(k[2:], id)
		lists[string(k[:])] = struct{}{}
	}
	for i := range v.fields {
		note(dictID(i), v.fields[i], v.fieldIn[i])
	}
	for _, id := range v.meta {
		note(dictMeta, id, nil)
	}
	for _, in := range v.metaIn {
		note(dictMeta, 0, in)
	}
	if len(lists) > maxPassLists {
		return nil
	}
	return lists
}

// expireIndexes deletes the posting blocks and the value column's buckets
// before cutoff: of the given lists, or of every list when lists is nil
// (lists are named as noteLists does). The epochs of posting lists below
// the cutoff's go whole, one range deletion per kind; in the cutoff's epoch
// each list's blocks before it go. It returns the ranges deleted whole,
// which nothing is written to any more. The caller holds closeMu.
func (s *Store) expireIndexes(ctx context.Context, cutoff int64, lists map[string]struct{}) (deleted []keyRange, err error) {
	if cutoff == noCutoff {
		return nil, nil
	}
	d := &deleter{s: s}
	defer d.close()
	// Lists are named by their kind without epoch (noteLists): their
	// prefixes in the cutoff's epoch, sorted.
	ec := epochOf(sortTime(cutoff))
	var only []string
	if lists != nil {
		only = make([]string, 0, len(lists))
		for l := range lists {
			only = append(only, string(epochListPrefix(nil, epochKind(l[0]), ec, []byte(l[1:]))))
		}
		slices.Sort(only)
	}
	held := s.epochs.load()
	epochsBelow := len(held) > 0 && held[0] < ec
	for _, kind := range []byte{pfxEpochPacked, pfxEpochHashed} {
		from := binary.BigEndian.AppendUint32([]byte{kind}, ec) // the cutoff's epoch
		to, _ := prefixSuccessor(from)
		if epochsBelow {
			whole := []byte{kind}
			if err := d.add(func(b *pebble.Batch) error { return b.DeleteRange(whole, from, nil) }); err != nil {
				return nil, err
			}
			d.ranges = append(d.ranges, keyRange{whole, from})
		}
		var these []string
		if only != nil {
			i, _ := slices.BinarySearch(only, string(from))
			j, _ := slices.BinarySearch(only, string(to))
			these = only[i:j:j]
		}
		if err := d.postings(ctx, from, to, cutoff, these); err != nil {
			return nil, err
		}
	}
	if lists == nil {
		for _, pfx := range []byte{pfxPacked, pfxPackedHashed, pfxPackedHash64, pfxPost, pfxHash} {
			if err := d.postings(ctx, []byte{pfx}, []byte{pfx + 1}, cutoff, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := d.column(cutoff); err != nil {
		return nil, err
	}
	if err := d.flush(); err != nil {
		return nil, err
	}
	// Deleted: searches need not seek them any more.
	s.epochs.dropBelow(ec)
	return d.ranges, nil
}

// deleter batches deletions.
type deleter struct {
	s      *Store
	b      *pebble.Batch
	n      int
	ranges []keyRange // deleted whole: the column's, the posting lists' epochs
}

func (d *deleter) add(del func(b *pebble.Batch) error) error {
	if d.b == nil {
		d.b = d.s.db.NewBatch()
	}
	if err := del(d.b); err != nil {
		return err
	}
	if d.n++; d.n >= expireFlush {
		return d.flush()
	}
	return nil
}

func (d *deleter) flush() error {
	if d.b == nil {
		return nil
	}
	err := d.b.Commit(pebble.NoSync)
	d.b.Close()
	d.b, d.n = nil, 0
	return err
}

func (d *deleter) close() {
	if d.b != nil {
		d.b.Close()
	}
}

// expirePointDeletes is how many blocks of a list are deleted one by one
// before the rest of its blocks before the cutoff go in one range deletion:
// most lists of inline values hold a block or two, and a range tombstone
// for each would cost more than the keys.
const expirePointDeletes = 8

// postings deletes the blocks of the lists in [lo, hi) whose newest
// posting is before cutoff: of only (list prefixes, sorted) when it is not
// nil, else of every list. A posting key is the list's prefix, then (time,
// seq): 16 bytes.
func (d *deleter) postings(ctx context.Context, lo, hi []byte, cutoff int64, only []string) error {
	it, err := d.s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	bound := binary.BigEndian.AppendUint64(nil, sortTime(cutoff))
	var list []byte
	before := func(k []byte) bool {
		return len(k) == len(list)+16 && bytes.HasPrefix(k, list) && bytes.Compare(k[len(list):len(list)+8], bound) < 0
	}
	lists := 0
	ok := it.First()
	if only != nil {
		if len(only) == 0 {
			return it.Close()
		}
		ok = it.SeekGE([]byte(only[0]))
	}
	for ok {
		k := it.Key()
		if len(k) < 17 {
			return firstErr(fmt.Errorf("pebblestore: corrupt posting key %x", k), it.Close())
		}
		list = append(list[:0], k[:len(k)-16]...)
		if lists++; lists%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return firstErr(err, it.Close())
			}
		}
		n := 0
		for ; ok && n < expirePointDeletes && before(it.Key()); ok = it.Next() {
			key := bytes.Clone(it.Key())
			if err := d.add(func(b *pebble.Batch) error { return b.Delete(key, nil) }); err != nil {
				return firstErr(err, it.Close())
			}
			n++
		}
		if ok && before(it.Key()) {
			lo, hi := bytes.Clone(it.Key()), append(bytes.Clone(list), bound...)
			if err := d.add(func(b *pebble.Batch) error { return b.DeleteRange(lo, hi, nil) }); err != nil {
				return firstErr(err, it.Close())
			}
		}
		if only != nil {
			// The next list asked for after this one.
			i, found := slices.BinarySearch(only, string(list))
			if found {
				i++
			}
			if i == len(only) {
				break
			}
			ok = it.SeekGE([]byte(only[i]))
			continue
		}
		// The next list: its prefix is the smallest key above every key
		// of this one.
		next, more := prefixSuccessor(list)
		if !more {
			break
		}
		ok = it.SeekGE(next)
	}
	return firstErr(it.Error(), it.Close())
}

// column deletes the value column's buckets that end at or before cutoff,
// for every field: one range deletion each, up to the cutoff's bucket.
func (d *deleter) column(cutoff int64) error {
	it, err := d.s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxColumn}, UpperBound: []byte{pfxColumn + 1}})
	if err != nil {
		return err
	}
	bucket := colBucket(cutoff)
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 2 {
			return firstErr(fmt.Errorf("pebblestore: corrupt column key %x", k), it.Close())
		}
		f := dictID(k[1])
		hi := colBucketPrefix(nil, f, bucket)
		if bytes.Compare(k, hi) < 0 {
			lo := bytes.Clone(k)
			if err := d.add(func(b *pebble.Batch) error { return b.DeleteRange(lo, hi, nil) }); err != nil {
				return firstErr(err, it.Close())
			}
			d.ranges = append(d.ranges, keyRange{lo, hi})
		}
		if f == 0xff {
			break
		}
		ok = it.SeekGE([]byte{pfxColumn, byte(f) + 1})
	}
	return firstErr(it.Error(), it.Close())
}

// prefixSuccessor returns the smallest key greater than every key starting
// with p, and false when there is none (p is all 0xff).
func prefixSuccessor(p []byte) ([]byte, bool) {
	out := bytes.Clone(p)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] != 0xff {
			out[i]++
			return out[:i+1], true
		}
	}
	return nil, false
}

// cutoffError is the error of an event before the retention cutoff.
func (s *Store) cutoffError(e *audittrail.Event) error {
	return audittrail.BeforeCutoffError(e.EventTime, s.Cutoff())
}
