package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
)

// appendReq is one Append call queued for the writer goroutine.
type appendReq struct {
	ctx    context.Context
	events []*audittrail.Event
	ids    []uuid.UUID
	res    []audittrail.AppendResult
	err    error
	done   chan struct{}
}

// maxGroupEvents bounds the events of one group commit, so that one batch
// stays of reasonable size (tens of MB at most, with large events).
const maxGroupEvents = 8 * audittrail.MaxBatch

// countsInterval is how often the writer persists the posting counts. They
// are planner statistics: a crash loses at most this much of their
// increments, which only makes estimates a little low.
const countsInterval = time.Second

// Append implements audittrail.Store. Events go to the single writer
// goroutine, which commits everything queued in one synced batch.
func (s *Store) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	r := &appendReq{ctx: ctx, events: events, ids: make([]uuid.UUID, len(events)), done: make(chan struct{})}
	for i, e := range events {
		id, err := checkEvent(e)
		if err != nil {
			return nil, err
		}
		r.ids[i] = id
	}
	if len(events) == 0 {
		return []audittrail.AppendResult{}, nil
	}
	if s.readOnly {
		return nil, audittrail.Errorf(audittrail.EUnavailable, "the store is open for reading only")
	}
	if err := s.reserve.check(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, errClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the request is the writer's: it either drops it
	// (cancelled before its group was built) or stores it, and the caller
	// must learn which, so this wait ignores ctx. It lasts one group commit.
	<-r.done
	return r.res, r.err
}

// checkEvent rejects what the store cannot represent. Events are normally
// validated by audittrail.PrepareNewEvent already; these checks protect the
// encoding (16-byte ids, 64-bit nanosecond event times).
func checkEvent(e *audittrail.Event) (uuid.UUID, error) {
	if e == nil {
		return uuid.UUID{}, audittrail.Errorf(audittrail.EInvalid, "event is missing")
	}
	id, ok := parseCanonicalUUID(e.ID)
	if !ok {
		return uuid.UUID{}, audittrail.Errorf(audittrail.EInvalid, "event_id must be in UUIDv4 format")
	}
	if e.EventTime.Before(audittrail.MinEventTime) || !e.EventTime.Before(audittrail.MaxEventTime) {
		return id, audittrail.Errorf(audittrail.EInvalid, "event.event_time is out of range")
	}
	if e.ReceiveTime.Before(audittrail.MinEventTime) || !e.ReceiveTime.Before(audittrail.MaxReceiveTime) {
		return id, audittrail.Errorf(audittrail.EInvalid, "event.receive_time is missing or out of range")
	}
	return id, nil
}

// The writer is a two-stage pipeline, the only code that writes to the
// database. The preparer (writer) takes a request, drains whatever else is
// queued (group commit: one fsync for all of them), assigns sequence numbers,
// resolves dictionary values and builds the sorted batch; the committer
// applies it with a synced commit and acknowledges. While group N syncs,
// group N+1 is prepared, so on two cores the CPU work of building a batch
// overlaps Pebble's memtable insert and the fsync.
//
// The hand-off channel is unbuffered: when the preparer hands over group
// N+1, the committer has finished group N-1 (it takes N+1 only after N), so
// at most one prepared group is uncommitted and its ids are in the previous
// group's pending map. A failed commit stops the store (failed), so no group
// after it commits: sequence numbers stay gap-free.
func (s *Store) writer() {
	defer close(s.writerDone)
	toCommit := make(chan *group)
	committed := make(chan struct{})
	go s.committer(toCommit, committed)
	w := &groupWriter{s: s, found: map[uuid.UUID]idLoc{}, seq: s.lastSeq.Load(), receive: s.lastReceive}
	groups := [2]*group{newGroup(), newGroup()}
	var prev *group // the group handed over last: maybe not committed yet
	for n := 0; ; n++ {
		var r *appendReq
		var ok bool
		var prevDone <-chan struct{} // nil (never ready) without a previous group
		if prev != nil {
			prevDone = prev.done
		}
		select {
		case r, ok = <-s.reqs:
		case <-prevDone:
			// Nothing queued, and the last group is committed: its ids
			// are in the database, so the next group has no previous one,
			// and its events are dropped (forgetPending).
			prev.forgetPending()
			prev = nil
			shrinkGroups(&groups)
			continue
		case x := <-s.expires:
			// Deletions go between group commits (expire.go). Once the
			// last group is committed both groups are free and its ids
			// are in the database: the next group has no previous one.
			if prev != nil {
				<-prev.done
				prev.forgetPending()
				prev = nil
			}
			shrinkGroups(&groups)
			if x.inspect != nil {
				x.inspect(groups[:])
				close(x.done)
				continue
			}
			s.expireTurn(x)
			continue
		}
		if !ok {
			break
		}
		g := groups[n%2] // its previous use (two groups ago) is committed
		g.reset()
		g.reqs = append(g.reqs, r)
		events := len(r.events)
	drain:
		for events < maxGroupEvents {
			select {
			case r2, ok := <-s.reqs:
				if !ok {
					break drain
				}
				g.reqs = append(g.reqs, r2)
				events += len(r2.events)
			default:
				break drain
			}
		}
		w.prepare(g, prev)
		toCommit <- g
		if prev != nil {
			prev.forgetPending() // g is prepared: nothing reads it any more
		}
		prev = g
	}
	close(toCommit)
	<-committed
}

// group is one group commit on its way through the pipeline.
type group struct {
	reqs    []*appendReq
	live    []*appendReq                    // reqs not cancelled before preparation
	pending map[uuid.UUID]*audittrail.Event // events stored by the group, by id
	delta   postingDelta                    // postings the group adds, by dictionary value
	buf     kvBuf
	cols    colWrites     // the value column's entries (column.go)
	posts   postWrites    // the postings, written as blocks (postings.go)
	batch   *pebble.Batch // nil: nothing to write
	lastSeq uint64        // the last seq after the group
	err     error         // the group failed as a whole
	done    chan struct{} // closed when the committer is done with the group
	// The records of the group's new events, for the recent-events window
	// (recent.go): recs[i].rec is recBuf[offs[i]:offs[i+1]] until the
	// committer copies them.
	recs   []recentEvent
	offs   []int
	recBuf []byte
}

func newGroup() *group {
	return &group{pending: map[uuid.UUID]*audittrail.Event{}}
}

// release drops the group's requests once they are answered. Each holds
// its caller's context, and the group is used again only two group
// commits later (its slots past the next requests only when as many come):
// a quiet store kept them for good. The self-audit of a search appends
// under the search's context, which leads to its gRPC transport: 100
// unread answers of 8.5 MB on one connection stayed in the heap (0.79 GB)
// after the connection closed, until enough later appends took their slots
// (TestAppendReleasesContext). The committer calls it before it takes the
// next group, so the preparer, which hands that group over only then, uses
// g again only after it; the preparer reads no request of the previous
// group (only its pending map, which forgetPending drops).
func (g *group) release() {
	clear(g.reqs)
	clear(g.live)
	g.reqs, g.live = g.reqs[:0], g.live[:0]
}

// forgetPending drops the group's events once no later group's
// preparation can read them: the map held them, the very events answered
// to the group's callers, until the group was used again (two group
// commits later), so a store that went quiet kept the events of its last
// two groups for good, up to 2 × maxGroupEvents events (16,000 of up to
// 64 KiB of strings each: about 1 GiB at the event size limit, an
// estimate; TestAppendForgetsEvents). Only the preparer (writer) reads or changes
// the map, so it calls this when it hands the next group over (the group
// before is read no more) or when the group is committed and nothing is
// queued (the next group then has no previous one).
func (g *group) forgetPending() { clear(g.pending) }

// maxIdleGroupBytes bounds the reusable buffers a group keeps while the
// writer is idle (a variable for tests: SetMaxIdleGroupBytesForTest).
var maxIdleGroupBytes = 16 << 20

// bufferBytes is the size of the group's largest reusable buffers: the
// batch's keys and values and the records, which grow with the bytes of
// its events.
func (g *group) bufferBytes() int { return cap(g.buf.arena) + cap(g.recBuf) }

// shrinkGroups replaces a group whose buffers are over maxIdleGroupBytes by
// a new one, when both groups are committed (the writer is idle). A group
// keeps its buffers for the next one, so that group commits allocate them
// once; but one burst of large groups (up to 8,000 events near the event
// size limit) left them that large for good, in proportion to the groups'
// events (19-36 MB after 4,000 events of 16 KB of metadata, hundreds of MB at
// the limits). Groups of common events stay under the bound and keep
// their buffers. TestWriterShrinksBuffers.
func shrinkGroups(groups *[2]*group) {
	for i, g := range groups {
		if g.bufferBytes() > maxIdleGroupBytes {
			groups[i] = newGroup()
		}
	}
}

func (g *group) reset() {
	g.reqs, g.live = g.reqs[:0], g.live[:0]
	clear(g.pending)
	g.delta.reset()
	g.buf.reset()
	g.cols.reset()
	g.posts.reset()
	g.resetRecent()
	g.batch, g.err = nil, nil
	g.done = make(chan struct{})
}

// groupWriter is the preparer's state.
type groupWriter struct {
	s   *Store
	seq uint64 // the last seq assigned
	// receive is the receive time (Unix ns) given to the event of seq.
	// Each new event's receive time is raised to at least receive+1, so
	// receive times strictly increase with seq: a checkpoint's horizon
	// (its last leaf's receive time + 1 ns) then separates exactly the
	// events of its tree from every later one (docs/design/merkle.md,
	// "Window evidence"). The wall clock going backwards, or producers'
	// requests overtaking each other in the queue, move a receive time
	// forward by nanoseconds, never backwards.
	receive int64
	found   map[uuid.UUID]idLoc // ids of the group already stored
	// seenPrefixes holds the hashes of the value column's prefixes seen
	// once and not in its dictionary (colPrefix); cleared when it reaches
	// maxSeenPrefixes.
	seenPrefixes map[uint64]struct{}
	// published is set when the group changed the in-memory dictionaries
	// (a new value, a frozen flag); the group must then commit or the
	// store must stop, or a later group would store ids after a gap.
	published bool
	sorted    []uuid.UUID // the group's ids, for lookupIDs
	refs      recordRefs
	key, val  []byte
	rec       []byte
	pairs     []byte // backing store of refs.pairs
	leaves    merkle.LeafHasher
}

type idLoc struct {
	ns  int64
	seq uint64
}

// prepare assigns sequence numbers in queue order and builds g's batch;
// prev is the group before, whose ids may not be visible in the database
// yet.
func (w *groupWriter) prepare(g *group, prev *group) {
	s := w.s
	for _, r := range g.reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		g.live = append(g.live, r)
	}
	if len(g.live) == 0 {
		return
	}
	if g.err = s.failure(); g.err != nil {
		return
	}
	first, firstReceive := w.seq, w.receive
	w.published = false
	g.err = w.lookupIDs(g.live)
	for _, r := range g.live {
		if g.err != nil {
			break
		}
		r.res = make([]audittrail.AppendResult, len(r.events))
		for i, e := range r.events {
			if g.err = w.add(g, prev, r, i, e); g.err != nil {
				break
			}
		}
	}
	if g.err == nil && len(g.pending) > 0 {
		g.batch = s.db.NewBatchWithSize(len(g.buf.arena) + 16*g.buf.len() + g.cols.bytes() + g.posts.bytes())
		if g.err = g.buf.writeTo(g.batch); g.err == nil {
			if g.err = g.cols.writeTo(g.batch); g.err == nil {
				g.posts.epochs = &s.epochs
				g.posts.unpartitioned = s.legacyWrites.format5 || s.legacyWrites.format7
				g.err = g.posts.writeTo(g.batch)
			}
		}
		if g.err == nil && !s.legacyWrites.format5 {
			w.key = positionsKey(w.key[:0], g.recs[0].seq)
			w.val = appendPositions(w.val[:0], g.recs)
			g.err = g.batch.Set(w.key, w.val, nil) // Set copies
		}
	}
	if g.err != nil {
		w.seq, w.receive = first, firstReceive
		clear(g.pending) // nothing of the group is stored
		g.resetRecent()
		if w.published {
			s.fail(g.err)
		}
	}
	g.lastSeq = w.seq
}

// committer is the second stage: it commits each group durably, publishes
// it and acknowledges its requests. It also saves the posting counts.
func (s *Store) committer(groups <-chan *group, done chan<- struct{}) {
	defer close(done)
	dirty := map[uint64]struct{}{} // counts changed since they were last saved
	lastSave := time.Now()
	for g := range groups {
		s.commitGroup(g, dirty)
		g.release()
		close(g.done)
		if time.Since(lastSave) >= countsInterval {
			s.saveCounts(dirty, pebble.NoSync)
			lastSave = time.Now()
		}
	}
	if s.failure() == nil {
		s.saveCounts(dirty, pebble.Sync)
	}
}

// commitGroup commits g, publishes it and acknowledges its requests.
func (s *Store) commitGroup(g *group, dirty map[uint64]struct{}) {
	if len(g.live) == 0 {
		return
	}
	err := g.err
	if err == nil && g.batch != nil {
		if err = s.failure(); err == nil {
			if err = g.batch.Commit(pebble.Sync); err != nil {
				// Dictionary values of this batch are published but
				// not stored, and Pebble's state after a failed sync
				// is unknown: stop writing rather than risk a gap.
				s.fail(err)
			}
		}
	}
	if g.batch != nil {
		g.batch.Close()
	}
	if err != nil {
		s.log.Error("pebblestore: append failed", "err", err)
		err = fmt.Errorf("pebblestore: append: %w", err)
		for _, r := range g.live {
			r.res, r.err = nil, err
			close(r.done)
		}
		return
	}
	s.dicts.addCounts(&g.delta)
	for _, k := range g.delta.keys {
		dirty[k] = struct{}{}
	}
	// The window has the group's records before LastSeq covers them (see
	// recent.go).
	if win := s.window(); win != nil {
		win.add(g.committedRecords())
	}
	s.lastSeq.Store(g.lastSeq)
	for _, r := range g.live {
		close(r.done)
	}
}

// writeCount sets the count of value id of d in b, or deletes it at zero
// (retention took every posting off: expire.go).
func writeCount(b *pebble.Batch, d dictID, id uint32, c uint64) {
	var buf [14]byte
	key := countKey(buf[:0], d, id)
	if c == 0 {
		b.Delete(key, nil) // the batch copies key and value
		return
	}
	b.Set(key, binary.BigEndian.AppendUint64(key[len(key):], c), nil)
}

// saveCounts writes the current value of the dirty counts. The batch is not
// synced on its own (counts are statistics; the next group's sync makes it
// durable), except at Close.
func (s *Store) saveCounts(dirty map[uint64]struct{}, opts *pebble.WriteOptions) {
	if len(dirty) == 0 {
		return
	}
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	s.dicts.mu.RLock()
	for k := range dirty {
		d, id := dictID(k>>32), uint32(k)
		writeCount(b, d, id, s.dicts.d[d].counts[id])
	}
	s.dicts.mu.RUnlock()
	if err := b.Commit(opts); err != nil {
		s.log.Error("pebblestore: saving posting counts", "err", err)
		return
	}
	clear(dirty)
}

// lookupIDs finds which ids of the group are stored already. One iterator
// serves all lookups, in key order, each a SeekPrefixGE that the tables'
// bloom filters answer for new ids (almost all of them) without reading a
// block: much cheaper than a Get per event.
func (w *groupWriter) lookupIDs(group []*appendReq) error {
	clear(w.found)
	w.sorted = w.sorted[:0]
	for _, r := range group {
		w.sorted = append(w.sorted, r.ids...)
	}
	slices.SortFunc(w.sorted, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	// A new id is absent from every level, so each lookup is decided by
	// the levels' bloom filters, the bottom one's included: Pebble skips
	// L6's by default (tuned for lookups that hit), and then every miss
	// reads and decompresses a data block of the id range, which on a large
	// store is rarely cached.
	var it *pebble.Iterator
	// A retried batch's stored events share their groups' positions:
	// decoded once.
	pos := positionReader{s: w.s}
	defer pos.close()
	for i, id := range w.sorted {
		if i > 0 && id == w.sorted[i-1] {
			continue
		}
		if w.s.ids.absent(id) {
			w.s.idsFiltered.Add(1)
			continue // not stored: no read (idfilter.go)
		}
		if it == nil {
			var err error
			if it, err = w.s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxID}, UpperBound: []byte{pfxID + 1}, UseL6Filters: true}); err != nil {
				return err
			}
		}
		w.key = idKey(w.key[:0], id)
		if it.SeekPrefixGE(w.key) {
			loc, err := idLocation(&pos, id, it.Value())
			if err != nil {
				it.Close()
				return err
			}
			w.found[id] = loc
		}
	}
	if it == nil {
		return nil
	}
	return firstErr(it.Error(), it.Close())
}

// add resolves event i of r: a retry of a stored event (or of one in this
// group or the previous, uncommitted one), or a new event added to g's batch
// with the next seq.
func (w *groupWriter) add(g, pg *group, r *appendReq, i int, e *audittrail.Event) error {
	s := w.s
	if e.EventTime.UnixNano() < s.cutoff.Load() {
		// Checked here, on the goroutine that moves the cutoff, so that
		// no event before it is stored once it is set (expire.go).
		r.res[i].Err = s.cutoffError(e)
		return nil
	}
	b := &g.buf
	id := r.ids[i]
	prev := g.pending[id]
	if prev == nil && pg != nil && pg.pending[id] != nil {
		// A retry right behind its original, in the group being
		// committed. Its events may belong to their callers already
		// (acknowledged), so only the presence is read here: wait for the
		// commit and read what it stored.
		<-pg.done
		var err error
		if prev, err = s.eventByID(id); err != nil {
			return err
		}
	} else if prev == nil {
		if loc, ok := w.found[id]; ok {
			var err error
			if prev, err = s.eventAt(loc.ns, loc.seq); err != nil {
				return err
			}
		}
	}
	if prev != nil {
		if prev.SameContent(e) {
			r.res[i].Event = prev.Clone()
		} else {
			r.res[i].Err = audittrail.Errorf(audittrail.EConflict, "event_id %s is already used by another event", e.ID)
		}
		return nil
	}
	w.seq++
	seq := w.seq
	// A deep copy: the store keeps it (the recent window) and returns it,
	// so it must not share maps with the caller's event. Sharing them
	// saved ~1 µs of ~45 per ingested event (measured); not worth a
	// contract that callers never touch an event after Append.
	st := e.Clone()
	st.Seq = seq
	st.LoginPrincipal = "" // resolved at search time, never stored
	if st.ReceiveTime.UnixNano() <= w.receive {
		st.ReceiveTime = time.Unix(0, w.receive+1).UTC()
	}
	w.receive = st.ReceiveTime.UnixNano()
	ns := st.EventTime.UnixNano()

	ds := s.dicts
	refs := &w.refs
	var added bool
	for f := range audittrail.NumFields {
		v := st.Value(f)
		refs.fields[f], added = ds.resolve(dictID(f), bytesOf(v), b)
		w.published = w.published || added
		w.post(g, b, dictID(f), refs.fields[f], bytesOf(v), ns, seq)
	}
	refs.ua, added = ds.resolve(dictUserAgent, bytesOf(st.UserAgent), b)
	w.published = w.published || added
	refs.meta, refs.pairs = refs.meta[:0], refs.pairs[:0]
	w.pairs = w.pairs[:0]
	for k, v := range st.Metadata {
		start := len(w.pairs)
		w.pairs = append(append(append(w.pairs, k...), 0), v...)
		refs.pairs = append(refs.pairs, w.pairs[start:len(w.pairs):len(w.pairs)])
	}
	for _, p := range refs.pairs {
		ref, added := ds.resolve(dictMeta, p, b)
		w.published = w.published || added
		refs.meta = append(refs.meta, ref)
		w.post(g, b, dictMeta, ref, p, ns, seq)
	}
	w.rec = appendRecord(w.rec[:0], st, refs, id)
	w.key = eventKey(w.key[:0], ns, seq)
	b.set(w.key, w.rec)
	g.recs = append(g.recs, recentEvent{ns: ns, seq: seq, leaf: w.leaves.Hash(st), receive: w.receive})
	g.recBuf = append(g.recBuf, w.rec...)
	g.offs = append(g.offs, len(g.recBuf))
	w.key = idKey(w.key[:0], id)
	if w.s.legacyWrites.format5 {
		w.val = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(w.val[:0], seq), uint64(ns))
		b.set(w.key, w.val)
		w.key = seqKey(w.key[:0], seq)
		w.val = binary.BigEndian.AppendUint64(w.val[:0], uint64(ns))
	} else {
		w.val = idValue(w.val[:0], seq) // the time is in the group's positions (positions.go)
	}
	b.set(w.key, w.val)
	g.pending[id] = st
	w.s.ids.add(id)
	r.res[i].Event = st
	return nil
}

// maxSeenPrefixes bounds groupWriter.seenPrefixes: about 9.5 MB of map
// (measured with 262,144 hashes).
const maxSeenPrefixes = 1 << 18

// colPrefix returns the ref of v's prefix in the value column's prefix
// dictionary and the rest of v (column.go, "Prefixes"), or 0 and v whole.
// A prefix goes into the dictionary the second time it is seen, so that
// parents used once (a path with an id at every level) do not fill it and
// freeze it before the parents that repeat have come; the first value
// under a prefix is written whole.
func (w *groupWriter) colPrefix(b *kvBuf, v []byte) (uint32, []byte) {
	prefix, rest, ok := splitColValue(v)
	if !ok {
		return 0, v
	}
	ds := w.s.dicts
	vals := &ds.d[dictColPrefix].vals
	if id, ok := vals.lookup(prefix); ok {
		w.s.notePrefixUse(id)
		return id + 1, rest
	}
	if ds.d[dictColPrefix].frozen {
		w.seenPrefixes = nil
		return 0, v
	}
	h := vals.hash(prefix)
	if _, seen := w.seenPrefixes[h]; !seen {
		if w.seenPrefixes == nil || len(w.seenPrefixes) >= maxSeenPrefixes {
			w.seenPrefixes = make(map[uint64]struct{})
		}
		w.seenPrefixes[h] = struct{}{}
		return 0, v
	}
	delete(w.seenPrefixes, h)
	ref, added := ds.resolve(dictColPrefix, prefix, b)
	w.published = w.published || added
	if ref.inline {
		return 0, v // the dictionary froze now
	}
	w.s.notePrefixUse(ref.id)
	return ref.id + 1, rest
}

// post adds the posting of value v (resolved to ref) of the event at
// (ns, seq): to the id's list, or to the hashed list of an inline value,
// which also goes to the value column, split at its last '/' when its
// prefix is in the column's prefix dictionary (colPrefix, which adds a
// prefix seen for the second time, written to b).
func (w *groupWriter) post(g *group, b *kvBuf, d dictID, ref valueRef, v []byte, ns int64, seq uint64) {
	if ref.inline {
		var pref uint32
		rest := v
		switch {
		case w.s.legacyWrites.format5:
			g.cols.format = colAbsolute
		case w.s.legacyWrites.format6:
			g.cols.format = colDelta
		default:
			g.cols.format = colPrefixed
			pref, rest = w.colPrefix(b, v)
		}
		g.cols.add(d, ns, seq, pref, rest)
	} else {
		g.delta.add(d, ref.id)
	}
	if w.s.legacyWrites.unpacked {
		// A store of format 4, made by tests: one key per posting.
		if ref.inline {
			w.key = hashListPrefix(w.key[:0], d, v)
		} else {
			w.key = listPrefix(w.key[:0], d, ref.id)
		}
		g.buf.set(appendTimeSeq(w.key, ns, seq), nil)
		return
	}
	if ref.inline {
		g.posts.hash64 = w.s.legacyWrites.format5
		g.posts.addHashed(d, v, ns, seq)
	} else {
		g.posts.add(d, ref.id, ns, seq)
	}
}

// postingDelta counts the postings a group adds to each dictionary value:
// a dense counter per id and the list of the values counted, which costs an
// array increment per posting where a map of counts cost a map assignment
// (the group writes ~7 postings per event). Counters are zero again after
// reset, so only the values the group touched are cleared. Memory: 4 bytes
// per value of each dictionary up to the highest id a group posted to.
type postingDelta struct {
	n    [numDicts][]uint32 // by dictionary, by id
	keys []uint64           // dict<<32 | id of every counter that is not zero
}

func (p *postingDelta) add(d dictID, id uint32) {
	c := p.n[d]
	if int(id) >= len(c) {
		// Elements past the length were never written: they are zero.
		c = slices.Grow(c, int(id)+1-len(c))[:int(id)+1]
		p.n[d] = c
	}
	if c[id] == 0 {
		p.keys = append(p.keys, uint64(d)<<32|uint64(id))
	}
	c[id]++
}

// count returns the postings added to key (dict<<32 | id).
func (p *postingDelta) count(key uint64) uint64 { return uint64(p.n[key>>32][uint32(key)]) }

func (p *postingDelta) reset() {
	for _, k := range p.keys {
		p.n[k>>32][uint32(k)] = 0
	}
	p.keys = p.keys[:0]
}

// eventByID reads the event with the given id, or returns nil.
func (s *Store) eventByID(id uuid.UUID) (*audittrail.Event, error) {
	v, closer, err := s.db.Get(idKey(nil, id))
	if err == pebble.ErrNotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	pos := positionReader{s: s}
	loc, err := idLocation(&pos, id, v)
	closer.Close()
	if err = firstErr(err, pos.close()); err != nil {
		return nil, err
	}
	return s.eventAt(loc.ns, loc.seq)
}

// idLocation returns the primary key of the event whose i value is v: the
// seq, and the time from the value (formats 5 and earlier) or from the
// seq's log position, read with pos.
func idLocation(pos *positionReader, id uuid.UUID, v []byte) (idLoc, error) {
	seq, ns, withTime, ok := decodeIDValue(v)
	if !ok {
		return idLoc{}, fmt.Errorf("pebblestore: corrupt id entry for %s", id)
	}
	if !withTime {
		t, found, err := pos.position(seq)
		if err == nil && !found {
			err = audittrail.Errorf(audittrail.ENotFound, "pebblestore: event seq %d is missing", seq)
		}
		if err != nil {
			return idLoc{}, fmt.Errorf("pebblestore: event %s has seq %d, whose position cannot be read: %w", id, seq, err)
		}
		ns = t
	}
	return idLoc{ns: ns, seq: seq}, nil
}

// eventAt reads the event at (ns, seq).
func (s *Store) eventAt(ns int64, seq uint64) (*audittrail.Event, error) {
	rec, closer, err := s.db.Get(eventKey(nil, ns, seq))
	if err != nil {
		return nil, fmt.Errorf("pebblestore: event seq %d is indexed but not found: %w", seq, err)
	}
	defer closer.Close()
	return decodeRecord(s.dicts.snapshot(), rec, ns, seq)
}

// parseCanonicalUUID parses a UUID in its canonical form (36 characters,
// lowercase hex, dashes at 8, 13, 18, 23): the only form the store accepts,
// because it keeps the 16 bytes and returns the canonical text. It does what
// uuid.Parse and a comparison with String do, without allocating.
func parseCanonicalUUID(s string) (u uuid.UUID, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := hexDigit(s[i])
		lo, ok2 := hexDigit(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func (g *group) resetRecent() {
	clear(g.recs)
	g.recs, g.offs, g.recBuf = g.recs[:0], append(g.offs[:0], 0), g.recBuf[:0]
}

// committedRecords returns the records of the group's new events, copied
// out of the group's reused buffer into one new array that the window may
// keep.
func (g *group) committedRecords() []recentEvent {
	if len(g.recs) == 0 {
		return nil
	}
	arena := make([]byte, len(g.recBuf))
	copy(arena, g.recBuf)
	for i := range g.recs {
		a, b := g.offs[i], g.offs[i+1]
		g.recs[i].rec = arena[a:b:b]
	}
	return g.recs
}
