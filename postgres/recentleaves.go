package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// recentLeavesSize bounds the leaf hashes kept in memory: about 6 MB, a few
// seconds of ingest at full speed, far more than the integrator's lag.
const recentLeavesSize = 1 << 17

// recentLeaves keeps the leaf hashes (merkle.LeafHash) and receive times of
// the events this process appended, by seq, so that the verifiable log's
// integrator, when it runs in the same process, need not read back and
// decode what was just written (logsign reads the events, EventsBySeq, for
// any range it lacks). Each event is hashed as Append returns it, which is
// the event as stored: the conformance suite holds Append's results to what
// searches return, and TestRecentLeafHashesMatchStoredEvents checks these
// hashes against the events read back.
//
// With several replicas appending, the seqs of the others' events are
// missing here: a range with one of them is read from the database.
type recentLeaves struct {
	mu   sync.Mutex
	base uint64 // seq of ents[0]; 0 before the first event
	ents []leafEntry
}

type leafEntry struct {
	leaf    tlog.Hash
	receive int64
	set     bool
}

// add records the leaves of stored events (Seq and ReceiveTime set), of
// consecutive seqs.
func (r *recentLeaves) add(events []*audittrail.Event) {
	if len(events) == 0 {
		return
	}
	var h merkle.LeafHasher
	leaves := make([]tlog.Hash, len(events))
	for i, e := range events {
		leaves[i] = h.Hash(e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	first, last := events[0].Seq, events[len(events)-1].Seq
	if last < r.base {
		return // older than what is kept (a concurrent append's, added late)
	}
	if r.ents == nil || first >= r.base+recentLeavesSize {
		// The first events, or past everything kept: start over here.
		if r.ents == nil {
			r.ents = make([]leafEntry, 0, recentLeavesSize)
		}
		clear(r.ents)
		r.base, r.ents = first, r.ents[:0]
	}
	if end := last + 1 - r.base; end > uint64(len(r.ents)) {
		if end > recentLeavesSize {
			// Slide: drop the oldest entries.
			drop := end - recentLeavesSize
			n := copy(r.ents, r.ents[drop:])
			clear(r.ents[n:])
			r.ents = r.ents[:n]
			r.base += drop
			end = recentLeavesSize
		}
		r.ents = r.ents[:end]
	}
	for i, e := range events {
		if e.Seq < r.base {
			continue // older than what is kept
		}
		r.ents[e.Seq-r.base] = leafEntry{leaf: leaves[i], receive: e.ReceiveTime.UnixNano(), set: true}
	}
}

// RecentLeafHashes appends to dst the leaf hashes of the events of seqs
// from..to and returns the receive time of the last one, when this process
// appended all of them recently; ok is false otherwise (logsign then reads
// the events).
func (s *Store) RecentLeafHashes(ctx context.Context, from, to uint64, dst []tlog.Hash) (hashes []tlog.Hash, lastReceive time.Time, ok bool, err error) {
	if from == 0 || to < from {
		return dst, time.Time{}, false, fmt.Errorf("postgres: bad seq range [%d, %d]", from, to)
	}
	if err := ctx.Err(); err != nil {
		return dst, time.Time{}, false, err
	}
	r := &s.leaves
	r.mu.Lock()
	defer r.mu.Unlock()
	if from < r.base || to >= r.base+uint64(len(r.ents)) {
		return dst, time.Time{}, false, nil
	}
	ents := r.ents[from-r.base : to-r.base+1]
	for _, e := range ents {
		if !e.set {
			return dst, time.Time{}, false, nil
		}
	}
	for _, e := range ents {
		dst = append(dst, e.leaf)
	}
	return dst, time.Unix(0, ents[len(ents)-1].receive).UTC(), true, nil
}
