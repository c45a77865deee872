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

// recentLeavesSize bounds the leaf hashes kept in memory: about 7 MB, a few
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
	ents []leafEntry // ents[seq % recentLeavesSize], allocated with the first event
}

type leafEntry struct {
	seq     uint64 // 0: empty
	leaf    tlog.Hash
	receive int64
}

// add records the leaves of stored events (Seq and ReceiveTime set). An
// entry is replaced only by a later seq, so a late add of older events
// (a concurrent append's) never hides newer ones.
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
	if r.ents == nil {
		r.ents = make([]leafEntry, recentLeavesSize)
	}
	for i, e := range events {
		if slot := &r.ents[e.Seq%recentLeavesSize]; slot.seq < e.Seq {
			*slot = leafEntry{seq: e.Seq, leaf: leaves[i], receive: e.ReceiveTime.UnixNano()}
		}
	}
}

// get appends the leaves of from..to to dst when every one is kept.
func (r *recentLeaves) get(from, to uint64, dst []tlog.Hash) ([]tlog.Hash, int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ents == nil || to-from >= recentLeavesSize {
		return dst, 0, false
	}
	for seq := from; seq <= to; seq++ {
		if r.ents[seq%recentLeavesSize].seq != seq {
			return dst, 0, false
		}
	}
	for seq := from; seq <= to; seq++ {
		dst = append(dst, r.ents[seq%recentLeavesSize].leaf)
	}
	return dst, r.ents[to%recentLeavesSize].receive, true
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
	hashes, receive, ok := s.leaves.get(from, to, dst)
	if !ok {
		return dst, time.Time{}, false, nil
	}
	return hashes, time.Unix(0, receive).UTC(), true, nil
}
