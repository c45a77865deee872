package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
)

// Retention (audittrail.Expirer; docs/postgres.md, "Retention").
//
// The cutoff is one row (retention.cutoff_ns, migration 0004) that only
// moves forward. Every replica keeps it in memory, read at Open and every
// cutoffRefresh, and from then on shows nothing before it: searches start
// at it, a lookup by id of an older event finds nothing, the log's sparse
// reads report such events deleted, and appends of one are refused. A
// replica learns a cutoff another one moved within cutoffRefresh, but its
// appends do not wait for that: their insert reads the stored cutoff, locked
// against Expire's UPDATE (insertSQL), and stores nothing when an event is
// before it. So no replica acknowledges an event before a cutoff once Expire
// has returned (it would be hidden at once); a replica whose insert is
// refused that way learns the cutoff there and then.
//
// Deletion goes by month, as the table is partitioned: a monthly partition
// whose month ends at or before the cutoff is dropped (instant, nothing to
// vacuum) once the verifiable log has integrated all its events, and the
// ids of its events are deleted from event_ids; rows of the default
// partition before the cutoff are deleted one by one. Events of the month
// that holds the cutoff stay stored, hidden, until the whole month is
// before it: at most a month longer than the period. Deleting those rows
// one by one instead would make every event a row to delete and vacuum
// (each pass would delete the hour that just expired), which is what the
// partitions are there to avoid. One replica deletes at a time
// (retentionLockKey); the others only move the cutoff.

// retentionLockKey is the advisory lock held by the replica that deletes
// (the store's other keys: migrateLockKey, tokensLockKey, logLockKey).
const retentionLockKey int64 = 7243411203398457043

// cutoffRefresh is how often a replica reads the cutoff, which another
// replica may have moved.
const cutoffRefresh = 5 * time.Second

// noCutoff is the in-memory cutoff before any: below every event time.
const noCutoff = math.MinInt64

// loadCutoff reads the stored cutoff (it never moves back in memory).
func (s *Store) loadCutoff(ctx context.Context) error {
	var c *int64
	if err := s.pool.QueryRow(ctx, "SELECT cutoff_ns FROM retention").Scan(&c); err != nil {
		return err
	}
	if c != nil {
		s.raiseCutoff(*c)
	}
	return nil
}

// raiseCutoff sets the in-memory cutoff to c unless it is later already.
func (s *Store) raiseCutoff(c int64) {
	for {
		cur := s.cutoff.Load()
		if c <= cur || s.cutoff.CompareAndSwap(cur, c) {
			return
		}
	}
}

// Cutoff returns the retention cutoff as this replica knows it: no event
// before it is shown or accepted. The zero time when there is none.
func (s *Store) Cutoff() time.Time {
	c := s.cutoff.Load()
	if c == noCutoff {
		return time.Time{}
	}
	return time.Unix(0, c).UTC()
}

// cutoffError is the error of an event before the retention cutoff.
func (s *Store) cutoffError(e *audittrail.Event) error {
	return audittrail.BeforeCutoffError(e.EventTime, s.Cutoff())
}

// Expire implements audittrail.Expirer (see above). Kept counts the events
// before the cutoff still stored (those of the month holding the cutoff,
// those the log has not integrated), counted by the replica that deletes:
// a replica that finds another one deleting only moves the cutoff, and
// reports none deleted and none kept.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (audittrail.ExpireResult, error) {
	if cutoff.Before(audittrail.MinEventTime) || !cutoff.Before(audittrail.MaxEventTime) {
		return audittrail.ExpireResult{}, audittrail.Errorf(audittrail.EInvalid, "retention cutoff %s is out of range", cutoff.UTC().Format(time.RFC3339Nano))
	}
	if err := s.enter(); err != nil {
		return audittrail.ExpireResult{}, err
	}
	defer s.closeMu.RUnlock()
	res, err := s.expire(ctx, cutoff.UnixNano())
	if err != nil {
		s.recoverFrom(err)
		return res, s.fail(ctx, "retention", err)
	}
	return res, nil
}

// RaiseCutoff implements audittrail.Expirer: the cutoff moves in the
// database, seen by every replica within cutoffRefresh, by this one at once.
func (s *Store) RaiseCutoff(ctx context.Context, cutoff time.Time) (time.Time, error) {
	if cutoff.Before(audittrail.MinEventTime) || !cutoff.Before(audittrail.MaxEventTime) {
		return time.Time{}, audittrail.Errorf(audittrail.EInvalid, "retention cutoff %s is out of range", cutoff.UTC().Format(time.RFC3339Nano))
	}
	if err := s.enter(); err != nil {
		return time.Time{}, err
	}
	defer s.closeMu.RUnlock()
	cur, err := s.storeCutoff(ctx, cutoff.UnixNano())
	if err != nil {
		s.recoverFrom(err)
		return time.Time{}, s.fail(ctx, "retention", err)
	}
	return time.Unix(0, cur).UTC(), nil
}

// storeCutoff moves the stored cutoff forward to cutoff and returns it.
func (s *Store) storeCutoff(ctx context.Context, cutoff int64) (int64, error) {
	var cur int64
	if err := s.pool.QueryRow(ctx, "UPDATE retention SET cutoff_ns = greatest(cutoff_ns, $1) RETURNING cutoff_ns", cutoff).Scan(&cur); err != nil {
		return 0, err
	}
	s.raiseCutoff(cur)
	return cur, nil
}

func (s *Store) expire(ctx context.Context, cutoff int64) (audittrail.ExpireResult, error) {
	var res audittrail.ExpireResult
	cur, err := s.storeCutoff(ctx, cutoff)
	if err != nil {
		return res, err
	}
	res.Cutoff = time.Unix(0, cur).UTC()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", retentionLockKey).Scan(&locked); err != nil {
		return res, err
	}
	if !locked {
		return res, nil // another replica is deleting
	}
	// A pass marks itself in progress under the lock: one that finds the
	// mark set follows a pass that ended with its process, after deleting
	// and before its deletion was recorded (migration 0005).
	err = conn.QueryRow(ctx, "SELECT passing FROM retention").Scan(&res.Resumed)
	if err == nil {
		_, err = conn.Exec(ctx, "UPDATE retention SET passing = true")
	}
	if err == nil {
		err = s.deleteBefore(ctx, conn.Conn(), cur, &res)
	}
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT count(*) FROM events WHERE event_time_ns < $1", cur).Scan(&res.Kept)
	}
	if err == nil {
		// A failed pass keeps the mark: its caller records the failure,
		// and the next pass says what it finished.
		_, err = conn.Exec(context.WithoutCancel(ctx), "UPDATE retention SET passing = false")
	}
	if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", retentionLockKey); uerr != nil {
		conn.Conn().Close(context.Background()) // the session's lock goes with it
		err = errors.Join(err, uerr)
	}
	return res, err
}

// partitionName is the name audittrail_ensure_partition gives a month's
// partition.
var partitionName = regexp.MustCompile(`^events_([0-9]{4})_([0-9]{2})$`)

// deleteBefore drops the monthly partitions before cutoff whose events are
// all integrated, and deletes the default partition's integrated rows
// before it, with their ids. The event at the tree's size is never deleted
// (the log reads its receive time when a replica starts leading).
func (s *Store) deleteBefore(ctx context.Context, conn *pgx.Conn, cutoff int64, res *audittrail.ExpireResult) error {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass ORDER BY c.relname`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	// The tree only grows: what it held here is integrated for the whole
	// pass (dropMonth checks again under its partition's lock).
	var tree int64
	if err := conn.QueryRow(ctx, "SELECT size FROM log_tree").Scan(&tree); err != nil {
		return err
	}
	for _, name := range names {
		m := partitionName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		y, _ := strconv.Atoi(m[1])
		mo, _ := strconv.Atoi(m[2])
		lo := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
		hi := lo.AddDate(0, 1, 0)
		if hi.UnixNano() > cutoff || hi.After(maxPartitionMonth) {
			continue
		}
		n, err := s.dropMonth(ctx, conn, name, lo.UnixNano(), hi.UnixNano(), tree)
		if err != nil {
			return fmt.Errorf("dropping %s: %w", name, err)
		}
		if n > 0 {
			s.log.Info("postgres: retention dropped a month", "partition", name, "events", n)
		}
		res.Deleted += n
	}
	var n int64
	err = conn.QueryRow(ctx, `WITH d AS (
		DELETE FROM events_default WHERE event_time_ns < $1 AND seq < $2 RETURNING id
	), i AS (
		DELETE FROM event_ids WHERE id IN (SELECT id FROM d)
	) SELECT count(*) FROM d`, cutoff, tree).Scan(&n)
	res.Deleted += n
	return err
}

// dropMonth drops the partition name of the month [lo, hi) when the log has
// integrated all its events, and returns how many it held (0 when it was
// not dropped). The ids of its events go first, then, in a transaction
// that locks the partition and checks again, the partition itself: an
// event stored there meanwhile (by a replica of an earlier version, whose
// insert did not check the stored cutoff) is either integrated (and goes
// with the month) or keeps the month for a later pass.
func (s *Store) dropMonth(ctx context.Context, conn *pgx.Conn, name string, lo, hi, tree int64) (int64, error) {
	table := pgx.Identifier{name}.Sanitize()
	var n int64
	var maxSeq *int64
	if err := conn.QueryRow(ctx, "SELECT count(*), max(seq) FROM "+table).Scan(&n, &maxSeq); err != nil {
		return 0, err
	}
	if maxSeq != nil && *maxSeq >= tree {
		return 0, nil // not all integrated yet
	}
	if _, err := conn.Exec(ctx, "DELETE FROM event_ids WHERE event_time_ns >= $1 AND event_time_ns < $2 AND seq < $3", lo, hi, tree); err != nil {
		return 0, err
	}
	dropped := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Dropping a partition locks the whole table for a moment: give
		// up rather than queue searches and appends behind a long search.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '3s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		var tree2 int64
		if err := tx.QueryRow(ctx, "SELECT size FROM log_tree").Scan(&tree2); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*), max(seq) FROM "+table).Scan(&n, &maxSeq); err != nil {
			return err
		}
		if maxSeq != nil && *maxSeq >= tree2 {
			return nil
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+table); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if err != nil || !dropped {
		return 0, err
	}
	return n, nil
}
