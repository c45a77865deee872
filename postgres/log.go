package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
)

// Verifiable log storage: audittrail.LogStore, and logsign.SharedStore for
// replicas sharing the database (docs/design/verifiable-log.md,
// "PostgreSQL"). Migration 0002 holds the tables:
//
//	log_tree         one row: the tree size and the log's public key
//	log_tree_hashes  idx → 32-byte hash at tlog storage index idx
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
	if from == 0 || to < from || to > 1<<62 {
		return nil, fmt.Errorf("postgres: bad seq range [%d, %d]", from, to)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	out, err := s.eventsBySeq(ctx, from, to)
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: events by seq", err)
	}
	return out, nil
}

func (s *Store) eventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	rows, err := s.pool.Query(ctx, eventsBySeqSQL, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*audittrail.Event, 0, min(to-from+1, 10000))
	next := from
	var r eventRow
	for rows.Next() {
		if err := rows.Scan(r.targets()...); err != nil {
			return nil, err
		}
		if uint64(r.seq) != next {
			return nil, audittrail.Errorf(audittrail.ENotFound, "event seq %d is missing from the store", next)
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

// ReadTreeHashes implements audittrail.LogStore.
func (s *Store) ReadTreeHashes(indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return [][32]byte{}, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT idx, hash FROM log_tree_hashes WHERE idx = ANY($1::bigint[])", indexes)
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: read tree hashes", err)
	}
	defer rows.Close()
	found := make(map[int64][]byte, len(indexes))
	var (
		idx  int64
		hash []byte
	)
	for rows.Next() {
		if err := rows.Scan(&idx, &hash); err != nil {
			return nil, s.fail(ctx, "log: read tree hashes", err)
		}
		found[idx] = hash
	}
	if err := rows.Err(); err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "log: read tree hashes", err)
	}
	out := make([][32]byte, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok {
			return nil, fmt.Errorf("postgres: tree hash %d is not stored", idx)
		}
		if len(h) != 32 {
			return nil, fmt.Errorf("postgres: corrupt tree hash %d", idx)
		}
		copy(out[i][:], h)
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
	raw := make([][]byte, len(hashes))
	for i := range hashes {
		raw[i] = hashes[i][:]
	}
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
		if len(indexes) > 0 {
			if _, err := tx.Exec(ctx, "INSERT INTO log_tree_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])", indexes, raw); err != nil {
				return err
			}
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

// Checkpoints implements audittrail.LogStore.
func (s *Store) Checkpoints(ctx context.Context) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	rows, err := s.pool.Query(ctx, "SELECT note FROM log_checkpoints ORDER BY size")
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

// LeadLog implements logsign.SharedStore: it reports whether this Store
// holds the integrator lock, taking it when no session does. The lock is a
// session-level advisory lock on a connection taken out of the pool and
// kept (one connection more than MaxConns while leading); a round trip on it
// proves that the session, hence the lock, is still there. When it broke,
// LeadLog reports false with the error, and tries again at the next call.
func (s *Store) LeadLog(ctx context.Context) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.closeMu.RUnlock()
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leadConn != nil {
		if _, err := s.leadConn.Exec(ctx, "SELECT 1"); err != nil {
			s.dropLead()
			s.recoverFrom(err)
			return false, s.fail(ctx, "log: integrator lock lost", err)
		}
		return true, nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, s.fail(ctx, "log: integrator lock", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", logLockKey).Scan(&ok); err != nil {
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
