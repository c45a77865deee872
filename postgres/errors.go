package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audittrail/audittrail"
)

// errUnavailable is what callers see when the database cannot serve them.
// The cause goes to the log only.
var errUnavailable = audittrail.Errorf(audittrail.EUnavailable,
	"the event database (PostgreSQL) is unavailable; try again shortly")

// fail turns the error of operation op into what the Store returns: the
// caller's own context error as it is, EUnavailable for failures of the
// database or the connection to it (logged as warnings), and an internal
// error (logged) for anything else.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	var ae *audittrail.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isCanceled(err)):
		return ctx.Err()
	case unavailable(err):
		s.warnUnavailable(op, err)
		return errUnavailable
	}
	s.log.Error("postgres: operation failed", "op", op, "err", err)
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// warnUnavailable logs a failure of the database, at most once every 5
// seconds (an outage fails every request), with the number of failures not
// logged since.
func (s *Store) warnUnavailable(op string, err error) {
	s.warnMu.Lock()
	now := time.Now()
	if now.Sub(s.lastWarn) < 5*time.Second {
		s.unlogged++
		s.warnMu.Unlock()
		return
	}
	n := s.unlogged
	s.lastWarn, s.unlogged = now, 0
	s.warnMu.Unlock()
	s.log.Warn("postgres: database unavailable", "op", op, "err", err, "failures_not_logged", n)
}

// isCanceled reports a statement cancelled on request (by a context) or by
// statement_timeout.
func isCanceled(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

// unavailable reports whether err means that the database cannot serve the
// request now, but may later: the connection failed or broke, the server
// is shutting down or starting, out of resources, or a lock or statement
// timed out.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources (too many connections, disk full)
			strings.HasPrefix(pe.Code, "58"),       // system error (I/O)
			pe.Code == "57P01",                     // admin_shutdown
			pe.Code == "57P02",                     // crash_shutdown
			pe.Code == "57P03",                     // cannot_connect_now (starting up, recovery)
			pe.Code == "57P05",                     // idle_session_timeout
			pe.Code == "57014",                     // query_canceled (statement_timeout)
			pe.Code == "55P03",                     // lock_not_available (lock_timeout)
			pe.Code == "25006",                     // read_only_sql_transaction: a standby, or a primary being demoted
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	// A connection that broke earlier ("conn closed", "conn busy") or a
	// pool being closed.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool")
}

// broken reports whether err means that a connection died (the server
// restarted, the network broke), so that the pool's other idle connections
// are probably dead too.
func broken(err error) bool {
	var ae *audittrail.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ae) || errors.As(err, &ce) {
		return false // no connection was made
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || strings.HasPrefix(pe.Code, "08")
	}
	return unavailable(err)
}

// recoverFrom prepares a retry after err: when a connection broke, the pool
// drops its idle connections (they were opened before the failure), so that
// the next attempt gets a fresh one.
func (s *Store) recoverFrom(err error) {
	if broken(err) {
		s.pool.Reset()
	}
}

// retryable reports whether an operation that failed with err may run
// again at once on another connection: the connection broke (a pooled
// connection that outlived a server restart), as opposed to the server
// refusing new connections, where retrying only delays the answer.
func retryable(err error) bool {
	var ae *audittrail.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ae) || errors.As(err, &ce) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "40001" || pe.Code == "40P01" || strings.HasPrefix(pe.Code, "08")
	}
	return unavailable(err)
}
