package pebblestore

import (
	"regexp"

	"github.com/audittrail/audittrail"
)

// SetScanChunkEventsForTest sets the chunk size of parallel scans (small
// chunks exercise them on small data sets) and returns a function that
// restores it.
//
// The sequential head before a parallel scan shrinks with them, so that
// both run on small data sets.
func SetScanChunkEventsForTest(n int) (restore func()) {
	old, oldHead := scanChunkEvents, scanHeadRecords
	scanChunkEvents, scanHeadRecords = n, n
	return func() { scanChunkEvents, scanHeadRecords = old, oldHead }
}

// EvalRegexForTest evaluates re over the dictionary of field f (or of
// metadata key metaKey when set) without the cache, as a search plans, and
// returns the number of matching values.
func (s *Store) EvalRegexForTest(f audittrail.Field, metaKey string, re *regexp.Regexp) int {
	d := dictID(f)
	if metaKey != "" {
		d = dictMeta
	}
	snap := s.dicts.snapshot()
	c := &valueCond{d: d, re: newMatcher(re), metaKey: metaKey}
	c.extend(snap, len(snap.vals[d]))
	return len(c.members())
}
