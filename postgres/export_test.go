package postgres

import (
	"context"
	"math"
	"time"

	"github.com/audittrail/audittrail"
)

// Exported for the tests of package postgres_test.

// LogLockKey is the advisory lock of the log's integrator (the leader),
// RetentionLockKey the one of the replica that deletes.
const (
	LogLockKey       = logLockKey
	RetentionLockKey = retentionLockKey
)

// LikePattern is likePattern: the LIKE pattern pushed down for a regex.
var LikePattern = likePattern

// ExactSet is exactSet: the set of values pushed down for a regex.
var ExactSet = exactSet

// EncodeText is encodeText: the stored form of a string.
var EncodeText = encodeText

// SearchSQL returns the statement and arguments of a search.
func SearchSQL(q *audittrail.Query, after *audittrail.Cursor, maxScan int) (string, []any, bool) {
	p, ok := buildSearch(q, after, maxScan, math.MinInt64)
	return p.sql, p.args, ok
}

// WriteEveryTreeLevelForTest makes AppendTree store every level of the tree,
// one row per hash, as builds before migration 0003 did (on), or tiles
// (off).
func (s *Store) WriteEveryTreeLevelForTest(on bool) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	s.everyTreeLevel = on
}

// SetLeadTimeoutForTest sets the bound of LeadLog's round trips.
func (s *Store) SetLeadTimeoutForTest(d time.Duration) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	s.leadTimeout = d
}

// LeadPIDForTest is the server process of the session holding the
// integrator lock, 0 when this Store does not hold it.
func (s *Store) LeadPIDForTest() uint32 {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leadConn == nil {
		return 0
	}
	return s.leadConn.PgConn().PID()
}

// TreeRowsForTest counts the rows of log_tree_hashes and log_tree_tiles.
func (s *Store) TreeRowsForTest(ctx context.Context) (hashes, tiles int, err error) {
	err = s.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM log_tree_hashes), (SELECT count(*) FROM log_tree_tiles)").Scan(&hashes, &tiles)
	return hashes, tiles, err
}

// LookupSQL is lookupSQL: the stored events of ids.
const LookupSQL = lookupSQL

// LookupsForTest is the number of id lookups appends have made.
func (s *Store) LookupsForTest() int64 { return s.lookups.Load() }

// InsertGroupsForTest returns the number of groups of appends taken for
// insertion, of the appends they held, and of the appends waiting for a
// group.
func (s *Store) InsertGroupsForTest() (groups, taken int64, waiting int) {
	s.inserts.mu.Lock()
	defer s.inserts.mu.Unlock()
	return s.inserts.groups, s.inserts.taken, len(s.inserts.waiting)
}

// PartitionTurnForTest runs the hourly partition check of the store's
// maintenance loop once.
func (s *Store) PartitionTurnForTest() { s.partitionTurn() }

// AsBuildForTest makes Open act as a build whose newest migration is
// version: it applies migrations 1 to version only, and checks the
// database's minimum build version against it.
func AsBuildForTest(cfg Config, version int) Config {
	cfg.build = version
	return cfg
}

// ReadOnlyNeeds is readOnlyNeeds: the newest migration a read-only store
// reads.
const ReadOnlyNeeds = readOnlyNeeds
