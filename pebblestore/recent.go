package pebblestore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// The recent-events window: the encoded records of the most recently
// committed events, kept in memory so that the verifiable log's integrator
// (EventsBySeq, called every 200 ms for the events committed since) does
// not read back from the database what the writer has just written
// (docs/design/storage.md, "Recent events window").
//
// The committer adds each successfully committed group's records, copied
// from the exact bytes written to the batch, before it publishes lastSeq:
// so a range up to LastSeq that starts inside the window is entirely in it.
// Records are decoded on demand with the same decoder and dictionaries as a
// read from disk, so the answer is the same event for event. Ranges not
// entirely inside the window (after a restart, or for an integrator lagging
// more than the window) are read from the database as before.
//
// The window keeps at most maxRecentEvents events and maxRecentBytes bytes
// of records, evicting the oldest first: with the defaults, at most 64 MB
// of records plus about 40 bytes per event (a few MB).
var (
	maxRecentEvents = 64 << 10
	maxRecentBytes  = 64 << 20
)

// recentEvent is a committed event's record, as stored under eventKey(ns,
// seq), with the verifiable log's leaf hash of the stored event and its
// receive time (Unix ns). rec is immutable.
type recentEvent struct {
	ns      int64
	seq     uint64
	rec     []byte
	leaf    tlog.Hash
	receive int64
}

type recentWindow struct {
	mu    sync.RWMutex
	ents  []recentEvent // ents[head:] are the window, seqs contiguous
	head  int
	bytes int // record bytes in ents[head:]
}

func (s *Store) window() *recentWindow { return s.recent }

// add appends the records of a committed group, whose seqs must follow the
// window's last one (otherwise the window restarts with them), and evicts
// the oldest records over the bounds.
func (w *recentWindow) add(evs []recentEvent) {
	if len(evs) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.ents); n > w.head && w.ents[n-1].seq+1 != evs[0].seq {
		clear(w.ents)
		w.ents, w.head, w.bytes = w.ents[:0], 0, 0
	}
	for _, e := range evs {
		w.ents = append(w.ents, e)
		w.bytes += len(e.rec)
	}
	for len(w.ents)-w.head > maxRecentEvents || (w.bytes > maxRecentBytes && len(w.ents)-w.head > 0) {
		w.bytes -= len(w.ents[w.head].rec)
		w.ents[w.head] = recentEvent{}
		w.head++
	}
	if w.head > 1024 && w.head >= len(w.ents)/2 {
		n := copy(w.ents, w.ents[w.head:])
		clear(w.ents[n:])
		w.ents, w.head = w.ents[:n], 0
	}
}

// get appends to dst the records of seqs from..to when all are in the
// window, and reports whether they were.
func (w *recentWindow) get(dst []recentEvent, from, to uint64) ([]recentEvent, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	live := w.ents[w.head:]
	if len(live) == 0 || from < live[0].seq || to > live[len(live)-1].seq || to < from {
		return dst, false
	}
	first := live[0].seq
	return append(dst, live[from-first:to-first+1]...), true
}

// RecentLeafHashes appends to dst the leaf hashes (merkle.LeafHash) of the
// events of seqs from..to and returns the receive time of the last one,
// when all of them are in the recent-events window; ok is false otherwise,
// and the caller reads the events (EventsBySeq) instead.
//
// The writer hashes each event as it stores it, from the very event it
// encodes into the record, so the verifiable log's integrator neither reads
// nor decodes what was just written (docs/design/verifiable-log.md,
// "Integrator and signer"). TestRecentLeafHashesMatchStoredEvents checks that these hashes
// equal the hashes of the events read back from disk.
func (s *Store) RecentLeafHashes(ctx context.Context, from, to uint64, dst []tlog.Hash) (hashes []tlog.Hash, lastReceive time.Time, ok bool, err error) {
	if from == 0 || to < from {
		return dst, time.Time{}, false, fmt.Errorf("pebblestore: bad seq range [%d, %d]", from, to)
	}
	if err := s.rlock(); err != nil {
		return dst, time.Time{}, false, err
	}
	defer s.closeMu.RUnlock()
	if err := ctx.Err(); err != nil {
		return dst, time.Time{}, false, err
	}
	win := s.window()
	if win == nil {
		return dst, time.Time{}, false, nil
	}
	win.mu.RLock()
	defer win.mu.RUnlock()
	live := win.ents[win.head:]
	if len(live) == 0 || from < live[0].seq || to > live[len(live)-1].seq {
		return dst, time.Time{}, false, nil
	}
	first := live[0].seq
	for _, e := range live[from-first : to-first+1] {
		dst = append(dst, e.leaf)
	}
	return dst, time.Unix(0, live[to-first].receive).UTC(), true, nil
}
