package pebblestore

import (
	"context"

	"github.com/audittrail/audittrail"
)

// SetRecentWindowForTest bounds the recent-events window (recent.go) and
// returns a function that restores the bounds.
func SetRecentWindowForTest(events, bytes int) (restore func()) {
	oe, ob := maxRecentEvents, maxRecentBytes
	maxRecentEvents, maxRecentBytes = events, bytes
	return func() { maxRecentEvents, maxRecentBytes = oe, ob }
}

// RecentEventsBySeqForTest answers from the window only; ok is false when
// the range is not entirely in it.
func (s *Store) RecentEventsBySeqForTest(ctx context.Context, from, to uint64) (evs []*audittrail.Event, ok bool, err error) {
	if err := s.rlock(); err != nil {
		return nil, false, err
	}
	defer s.closeMu.RUnlock()
	return s.recentEventsBySeq(ctx, from, to)
}

// DiskEventsBySeqForTest reads from the database only.
func (s *Store) DiskEventsBySeqForTest(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	return s.diskEventsBySeq(ctx, from, to, false)
}
