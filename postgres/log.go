package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// Verifiable log storage: audittrail.LogStore, and logsign.SharedStore for
// replicas sharing the database (docs/design/verifiable-log.md,
// "PostgreSQL"). Migrations 0002 and 0003 hold the tables:
//
//	log_tree         one row: the tree size and the log's public key
//	log_tree_hashes  idx → 32-byte hash at tlog storage index idx: the
//	                 nodes of levels 8, 16, ..., and the leaves of the
//	                 last, partial tile (every hash in trees written
//	                 before 0003)
//	log_tree_tiles   tile → the 256 leaf hashes of a complete tile
//	log_checkpoints  size → signed checkpoint (note text)
//
// Exactly one replica integrates and signs: the one whose session holds the
// advisory lock logLockKey. It takes the lock with pg_try_advisory_lock on a
// connection it then keeps out of the pool, so the lock lives as long as that
// session: when the replica dies or its connection breaks, the server ends
// the session and another replica's next LeadLog gets the lock. Every tree
// write (AppendTree) runs in a transaction that takes the same lock
// (pg_try_advisory_xact_lock, which the holding session gets again at once,
// any other fails) and checks that the stored tree is the one it extends, so
// neither a replica that lost the lock without noticing yet nor a bug can
// write a second tree.

// logLockKey is the advisory lock of the log's integrator.
const logLockKey int64 = 7243411203398457042

// logTimeout bounds the LogStore calls whose signature has no context.
const logTimeout = 10 * time.Second

var _ audittrail.LogStore = (*Store)(nil)

// errNotIntegrator: another replica holds the integrator lock.
var errNotIntegrator = audittrail.Errorf(audittrail.EConflict, "another replica integrates the verifiable log")

// LastSeq implements audittrail.LogStore: log_head.seq as committed.
// Appends commit in seq order (log_head's row lock is held to the commit,
// docs/design/postgres.md), and log_head commits with the events it
// numbers, so every seq up to it is committed and visible to any later
// snapshot: the integrator never reads past an event still in flight. When
// the database does not answer it returns the last value read, a committed
// seq still.
func (s *Store) LastSeq() uint64 {
	if err := s.enter(); err != nil {
		return s.lastSeq.Load()
	}
	defer s.closeMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	var seq int64
	if err := s.pool.QueryRow(ctx, "SELECT seq FROM log_head").Scan(&seq); err != nil {
		s.recoverFrom(err)
		_ = s.fail(ctx, "log: last seq", err) // logs it
		return s.lastSeq.Load()
	}
	s.lastSeq.Store(uint64(seq))
	return uint64(seq)
}

// eventsBySeqSQL reads events by position through the unique seq index of
// event_ids, then each row of events by its primary key: the same rows and
// columns (eventColumns, eventRow) as Search, so the same events. The LIMIT
// keeps the planner from flattening the lateral subquery into a join, which
// it may run as a hash join over a sequential scan of every partition (46
// ms for 100 events out of 64,000 when measured, and proportional to the
// whole table): as it is, each event is one primary key lookup in the
// partition of its time, pruned at run time, whatever the table's size.
const eventsBySeqSQL = `SELECT ` + eventColumns + `
FROM event_ids i CROSS JOIN LATERAL (
    SELECT * FROM events e WHERE e.event_time_ns = i.event_time_ns AND e.seq = i.seq LIMIT 1
) e
WHERE i.seq BETWEEN $1 AND $2
ORDER BY i.seq`

// EventsBySeq implements audittrail.LogStore. A missing seq (a deleted row,
// a dropped partition) fails with ENotFound naming it.
func (s *Store) EventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return s.readBySeq(ctx, from, to, false)
}

// EventsBySeqSparse implements logsign.SparseLogReader: EventsBySeq with a
// nil event for each seq whose event is not stored (its partition was
// dropped: docs/postgres.md, "Retention"), for an audit of what is left.
func (s *Store) EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return s.readBySeq(ctx, from, to, true)
}

func (s *Store) readBySeq(ctx context.Context, from, to uint64, sparse bool) ([]*audittrail.Event, error) {
	if from == 0 || to < from || to > 1<<62 {
		return nil, fmt.Errorf("postgres: bad seq range [%d, %d]", from, to)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	out, err := s.eventsBySeq(ctx, from, to, sparse)
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: events by seq", err)
	}
	return out, nil
}

// eventsBySeq reads the events with seqs [from, to]: each one, or with
// sparse a nil for each one that is missing.
func (s *Store) eventsBySeq(ctx context.Context, from, to uint64, sparse bool) ([]*audittrail.Event, error) {
	rows, err := s.pool.Query(ctx, eventsBySeqSQL, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*audittrail.Event, 0, min(to-from+1, 10000))
	cutoff := s.cutoff.Load()
	next := from
	var r eventRow
	for rows.Next() {
		if err := rows.Scan(r.targets()...); err != nil {
			return nil, err
		}
		for sparse && uint64(r.seq) > next && uint64(r.seq) <= to {
			out = append(out, nil)
			next++
		}
		if uint64(r.seq) != next {
			return nil, audittrail.Errorf(audittrail.ENotFound, "event seq %d is missing from the store", next)
		}
		if sparse && r.ns < cutoff {
			out = append(out, nil) // hidden by the retention cutoff, deleted with its month
			next++
			continue
		}
		e, err := r.event()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		next++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for sparse && next <= to {
		out = append(out, nil)
		next++
	}
	if next != to+1 {
		return nil, audittrail.Errorf(audittrail.ENotFound, "event seq %d is missing from the store", next)
	}
	return out, nil
}

const eventByIDSQL = `SELECT ` + eventColumns + `
FROM event_ids i JOIN events e ON e.event_time_ns = i.event_time_ns AND e.seq = i.seq
WHERE i.id = $1::uuid`

// EventByID implements audittrail.LogStore: the stored event with this id,
// or nil.
func (s *Store) EventByID(ctx context.Context, id string) (*audittrail.Event, error) {
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return nil, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	var r eventRow
	err := s.pool.QueryRow(ctx, eventByIDSQL, id).Scan(r.targets()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: event by id", err)
	}
	if r.ns < s.cutoff.Load() {
		return nil, nil // before the retention cutoff (retention.go)
	}
	return r.event()
}

// TreeSize implements audittrail.LogStore.
func (s *Store) TreeSize() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	var size int64
	if err := s.pool.QueryRow(ctx, "SELECT size FROM log_tree").Scan(&size); err != nil {
		s.recoverFrom(err)
		return 0, s.fail(ctx, "log: tree size", err)
	}
	return uint64(size), nil
}

// readTreeSQL reads, in one statement and so from one snapshot, what
// ReadTreeHashes needs: the leaf tiles $1 (kind 0), the leaves of those of
// them that have no row yet (a partial tile, or one written before
// migration 0003), by their storage index range $2 to $3 (kind 1; the
// range also holds nodes of other levels, skipped), and the single hashes
// $4 (kind 2). One snapshot matters: the integrator moves a tile's leaves
// into its row when it completes the tile, and reads of the two before and
// after would find neither.
const readTreeSQL = `SELECT 0, t.tile, t.leaves FROM log_tree_tiles t WHERE t.tile = ANY($1::bigint[])
UNION ALL
SELECT 1, h.idx, h.hash FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(tile, lo, hi)
    JOIN log_tree_hashes h ON h.idx >= r.lo AND h.idx < r.hi
    WHERE NOT EXISTS (SELECT 1 FROM log_tree_tiles x WHERE x.tile = r.tile)
UNION ALL
SELECT 2, h.idx, h.hash FROM log_tree_hashes h WHERE h.idx = ANY($4::bigint[])`

// ReadTreeHashes implements audittrail.LogStore. Only the nodes of levels
// 0, 8, 16, ... are stored (merkle.TileHeight); a node in between is
// recomputed from the tile of stored nodes beneath it, each tile read once
// per call.
func (s *Store) ReadTreeHashes(indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return [][32]byte{}, nil
	}
	var (
		tiles   = map[merkle.Tile][][]tlog.Hash{} // filled in below
		leafT   []int64                           // leaf tiles to read, with their leaves' index ranges
		leafLo  []int64
		leafHi  []int64
		singles []int64 // stored nodes read one by one
	)
	for _, idx := range indexes {
		if idx < 0 {
			return nil, fmt.Errorf("postgres: bad tree hash index %d", idx)
		}
		level, n := tlog.SplitStoredHashIndex(idx)
		if level > 0 && merkle.StoredLevel(level) {
			singles = append(singles, idx)
			continue
		}
		k, _, _ := merkle.TileOf(level, n)
		if _, ok := tiles[k]; ok {
			continue
		}
		tiles[k] = nil
		first := k.First()
		if k.Base == 0 {
			leafT = append(leafT, k.T)
			leafLo = append(leafLo, tlog.StoredHashIndex(0, first))
			leafHi = append(leafHi, tlog.StoredHashIndex(0, first+merkle.TileWidth))
			continue
		}
		for i := range int64(merkle.TileWidth) {
			singles = append(singles, tlog.StoredHashIndex(k.Base, first+i))
		}
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, readTreeSQL, leafT, leafLo, leafHi, singles)
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: read tree hashes", err)
	}
	defer rows.Close()
	var (
		found     = make(map[int64]tlog.Hash, len(singles))
		leafTiles = map[int64][]tlog.Hash{}
		kind      int32
		key       int64
		value     []byte
	)
	for rows.Next() {
		if err := rows.Scan(&kind, &key, &value); err != nil {
			return nil, s.fail(ctx, "log: read tree hashes", err)
		}
		if kind == 0 {
			if len(value) != merkle.TileWidth*32 {
				return nil, fmt.Errorf("postgres: corrupt leaf tile %d", key)
			}
			leaves := make([]tlog.Hash, merkle.TileWidth)
			for i := range leaves {
				leaves[i] = tlog.Hash(value[i*32:])
			}
			leafTiles[key] = leaves
			continue
		}
		if len(value) != 32 {
			return nil, fmt.Errorf("postgres: corrupt tree hash %d", key)
		}
		found[key] = tlog.Hash(value)
	}
	if err := rows.Err(); err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: read tree hashes", err)
	}
	for k := range tiles {
		stored := leafTiles[k.T]
		if k.Base > 0 || stored == nil {
			// The tile's stored nodes one by one, from its first: fewer
			// than 256 where the tree ends within it.
			stored = nil
			first := k.First()
			for i := range int64(merkle.TileWidth) {
				h, ok := found[tlog.StoredHashIndex(k.Base, first+i)]
				if !ok {
					break
				}
				stored = append(stored, h)
			}
		}
		tiles[k] = merkle.TileLevels(stored)
	}
	out := make([][32]byte, len(indexes))
	for i, idx := range indexes {
		level, n := tlog.SplitStoredHashIndex(idx)
		if level > 0 && merkle.StoredLevel(level) {
			h, ok := found[idx]
			if !ok {
				return nil, fmt.Errorf("postgres: tree hash %d is not stored", idx)
			}
			out[i] = h
			continue
		}
		k, j, m := merkle.TileOf(level, n)
		if levels := tiles[k]; m < int64(len(levels[j])) {
			out[i] = levels[j][m]
		} else {
			return nil, fmt.Errorf("postgres: tree hash %d is not stored", idx)
		}
	}
	return out, nil
}

// AppendTree implements audittrail.LogStore: one transaction, which fails
// (EConflict) unless this session may hold the integrator lock and the
// stored tree is the one the hashes extend: indexes must start at the
// stored tree's hash count and end at newSize's (so a checkpoint alone
// must be of the stored size). The interface passes no old size; the
// stored hash counts determine it, since each leaf adds at least one hash.
func (s *Store) AppendTree(newSize uint64, indexes []int64, hashes [][32]byte, checkpoint []byte) error {
	if len(indexes) != len(hashes) {
		return fmt.Errorf("postgres: %d indexes for %d hashes", len(indexes), len(hashes))
	}
	if newSize >= 1<<62 {
		return fmt.Errorf("postgres: tree size %d is too large", newSize)
	}
	for i := 1; i < len(indexes); i++ {
		if indexes[i] != indexes[i-1]+1 {
			return fmt.Errorf("postgres: tree hash indexes are not contiguous at %d", indexes[i])
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	write := func(tx pgx.Tx) error {
		var (
			locked bool
			size   int64
		)
		err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1), size FROM log_tree FOR UPDATE", logLockKey).Scan(&locked, &size)
		if err != nil {
			return err
		}
		if !locked {
			return errNotIntegrator
		}
		first := tlog.StoredHashCount(size)
		if (len(indexes) > 0 && indexes[0] != first) || tlog.StoredHashCount(int64(newSize)) != first+int64(len(indexes)) {
			return audittrail.Errorf(audittrail.EConflict,
				"the stored tree has %d leaves, not the ones this write of size %d extends (another integrator wrote it)", size, newSize)
		}
		if err := s.writeTree(ctx, tx, indexes, hashes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE log_tree SET size = $1", int64(newSize)); err != nil {
			return err
		}
		if checkpoint != nil {
			if _, err := tx.Exec(ctx, "INSERT INTO log_checkpoints (size, note) VALUES ($1, $2)", int64(newSize), string(checkpoint)); err != nil {
				return err
			}
		}
		return nil
	}
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	var err error
	if s.leadConn != nil {
		if err = pgx.BeginFunc(ctx, s.leadConn, write); err != nil && broken(err) {
			s.dropLead()
		}
	} else {
		if err = pgx.BeginFunc(ctx, s.pool, write); err != nil {
			s.recoverFrom(err)
		}
	}
	return s.fail(ctx, "log: append tree", err)
}

// writeTree stores the hashes of an AppendTree call in tx: the nodes of
// levels 8, 16, ... and the leaves of a partial tile as rows of
// log_tree_hashes, the leaves of each tile the call completes as one row of
// log_tree_tiles, whose leaves from earlier calls (rows of their own) it
// reads and deletes. The nodes of other levels are not stored
// (merkle.TileHeight).
func (s *Store) writeTree(ctx context.Context, tx pgx.Tx, indexes []int64, hashes [][32]byte) error {
	var (
		rowIdx   []int64
		rowHash  [][]byte
		tileIDs  []int64
		tileData [][]byte
		drop     []int64 // rows of leaves moved into a tile
		tile     = int64(-1)
		pending  []int // this call's leaves of tile, by position in indexes
	)
	for i, idx := range indexes {
		level, n := tlog.SplitStoredHashIndex(idx)
		if s.everyTreeLevel {
			rowIdx, rowHash = append(rowIdx, idx), append(rowHash, hashes[i][:])
			continue
		}
		if level > 0 {
			if merkle.StoredLevel(level) {
				rowIdx, rowHash = append(rowIdx, idx), append(rowHash, hashes[i][:])
			}
			continue
		}
		if t := n / merkle.TileWidth; t != tile {
			tile, pending = t, pending[:0]
		}
		pending = append(pending, i)
		if n%merkle.TileWidth != merkle.TileWidth-1 {
			continue
		}
		leaves := make([]byte, 0, merkle.TileWidth*32)
		if first, mine := tile*merkle.TileWidth, n+1-int64(len(pending)); mine > first {
			// The tile's leaves before this call's: rows of their own.
			var err error
			if leaves, drop, err = earlierLeaves(ctx, tx, leaves, drop, first, mine); err != nil {
				return err
			}
		}
		for _, p := range pending {
			leaves = append(leaves, hashes[p][:]...)
		}
		tileIDs, tileData = append(tileIDs, tile), append(tileData, leaves)
		tile, pending = -1, pending[:0]
	}
	for _, p := range pending {
		rowIdx, rowHash = append(rowIdx, indexes[p]), append(rowHash, hashes[p][:])
	}
	if len(drop) > 0 {
		if _, err := tx.Exec(ctx, "DELETE FROM log_tree_hashes WHERE idx = ANY($1::bigint[])", drop); err != nil {
			return err
		}
	}
	if len(tileIDs) > 0 {
		if _, err := tx.Exec(ctx, "INSERT INTO log_tree_tiles (tile, leaves) SELECT * FROM unnest($1::bigint[], $2::bytea[])", tileIDs, tileData); err != nil {
			return err
		}
	}
	if len(rowIdx) > 0 {
		if _, err := tx.Exec(ctx, "INSERT INTO log_tree_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])", rowIdx, rowHash); err != nil {
			return err
		}
	}
	return nil
}

// earlierLeaves appends to leaves the hashes of leaves first to end-1,
// stored as rows of log_tree_hashes, and to drop their indexes.
func earlierLeaves(ctx context.Context, tx pgx.Tx, leaves []byte, drop []int64, first, end int64) ([]byte, []int64, error) {
	rows, err := tx.Query(ctx, "SELECT idx, hash FROM log_tree_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx",
		tlog.StoredHashIndex(0, first), tlog.StoredHashIndex(0, end))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	want := first
	var (
		idx  int64
		hash []byte
	)
	for rows.Next() {
		if err := rows.Scan(&idx, &hash); err != nil {
			return nil, nil, err
		}
		if level, _ := tlog.SplitStoredHashIndex(idx); level != 0 {
			continue // a node above the leaves, stored before migration 0003
		}
		if idx != tlog.StoredHashIndex(0, want) || len(hash) != 32 {
			return nil, nil, fmt.Errorf("postgres: the tree's leaf %d is missing or corrupt (found index %d)", want, idx)
		}
		leaves, drop = append(leaves, hash...), append(drop, idx)
		want++
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if want != end {
		return nil, nil, fmt.Errorf("postgres: the tree's leaf %d is missing", want)
	}
	return leaves, drop, nil
}

// CheckpointsFrom implements audittrail.LogStore.
func (s *Store) CheckpointsFrom(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	rows, err := s.pool.Query(ctx, "SELECT note FROM log_checkpoints WHERE size >= $1 ORDER BY size LIMIT $2", int64(min(from, 1<<62)), limit)
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: checkpoints", err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: checkpoints", err)
	}
	return notes, nil
}

// DeleteCheckpoints implements audittrail.LogStore.
func (s *Store) DeleteCheckpoints(ctx context.Context, sizes []uint64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	del := make([]int64, len(sizes))
	for i, size := range sizes {
		del[i] = int64(min(size, 1<<62))
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM log_checkpoints WHERE size = ANY($1)", del); err != nil {
		s.recoverFrom(err)
		return s.fail(ctx, "log: delete checkpoints", err)
	}
	return nil
}

// Checkpoints implements audittrail.LogStore.
func (s *Store) Checkpoints(ctx context.Context) ([][]byte, error) {
	return s.CheckpointsFrom(ctx, 0, math.MaxInt64)
}

// LatestCheckpoint implements logsign.SharedStore: the stored checkpoint of
// the largest size, or nil.
func (s *Store) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	var note []byte
	err := s.pool.QueryRow(ctx, "SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1").Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: latest checkpoint", err)
	}
	return note, nil
}

// BindVerifierKey implements logsign.SharedStore: it records key as the
// log's public key when none is recorded (key "" records nothing) and
// returns the recorded one ("" when none).
func (s *Store) BindVerifierKey(ctx context.Context, key string) (string, error) {
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.closeMu.RUnlock()
	if key != "" {
		if _, err := s.pool.Exec(ctx, "UPDATE log_tree SET verifier_key = $1 WHERE verifier_key IS NULL", key); err != nil {
			s.recoverFrom(err)
			return "", s.fail(ctx, "log: bind verifier key", err)
		}
	}
	var bound pgtype.Text
	if err := s.pool.QueryRow(ctx, "SELECT verifier_key FROM log_tree").Scan(&bound); err != nil {
		s.recoverFrom(err)
		return "", s.fail(ctx, "log: verifier key", err)
	}
	return bound.String, nil
}

// ReplaceVerifierKey implements logsign.SharedStore: it records key as the
// log's public keys if old is still the recorded text, and returns the
// recorded text after.
func (s *Store) ReplaceVerifierKey(ctx context.Context, old, key string) (string, error) {
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.closeMu.RUnlock()
	var bound pgtype.Text
	err := s.pool.QueryRow(ctx, `WITH changed AS (
		UPDATE log_tree SET verifier_key = $2 WHERE verifier_key = $1 RETURNING verifier_key)
		SELECT verifier_key FROM changed UNION ALL SELECT verifier_key FROM log_tree WHERE NOT EXISTS (SELECT FROM changed)`, old, key).Scan(&bound)
	if err != nil {
		s.recoverFrom(err)
		return "", s.fail(ctx, "log: replace verifier key", err)
	}
	return bound.String, nil
}

// ResignLog implements logsign.SharedStore: it releases the integrator
// lock when this Store holds it.
func (s *Store) ResignLog() {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	s.dropLead()
}

// LeadLog implements logsign.SharedStore: it reports whether this Store
// holds the integrator lock, taking it when no session does. The lock is a
// session-level advisory lock on a connection taken out of the pool and
// kept (one connection more than MaxConns while leading); a round trip on it
// proves that the session, hence the lock, is still there. When it broke,
// LeadLog reports false with the error, and tries again at the next call.
// A round trip that does not end within leadTimeout counts as broken: a
// database that stopped answering without closing the connection (a
// network partition, a frozen server) would otherwise hold the log's
// rounds, and this Store's claim to lead, until TCP gives up, which can
// take many minutes.
func (s *Store) LeadLog(ctx context.Context) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.closeMu.RUnlock()
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	// fail is given ctx, not lctx: a round trip past leadTimeout is the
	// database's failure, not a cancelled call.
	lctx, cancel := context.WithTimeout(ctx, s.leadTimeout)
	defer cancel()
	if s.leadConn != nil {
		if _, err := s.leadConn.Exec(lctx, "SELECT 1"); err != nil {
			s.dropLead()
			s.recoverFrom(err)
			return false, s.fail(ctx, "log: integrator lock lost", err)
		}
		return true, nil
	}
	conn, err := s.pool.Acquire(lctx)
	if err != nil {
		return false, s.fail(ctx, "log: integrator lock", err)
	}
	var ok bool
	if err := conn.QueryRow(lctx, "SELECT pg_try_advisory_lock($1)", logLockKey).Scan(&ok); err != nil {
		// The outcome is unknown: the connection must not go back to the
		// pool holding the lock.
		raw := conn.Hijack()
		raw.Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing releases the lock anyway
		s.recoverFrom(err)
		return false, s.fail(ctx, "log: integrator lock", err)
	}
	if !ok {
		conn.Release()
		return false, nil
	}
	// The session holds the lock: it leaves the pool with it.
	s.leadConn = conn.Hijack()
	return true, nil
}

// dropLead closes the integrator's connection, which ends its session and
// so releases the lock. The caller holds leadMu.
func (s *Store) dropLead() {
	if s.leadConn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.leadConn.Close(ctx)
	s.leadConn = nil
}
