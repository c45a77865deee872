package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audittrail/audittrail"
)

// lookupSQL finds the stored events of ids. An id whose event is gone (its
// partition was dropped by retention) comes with NULL columns.
//
// Each id is looked up on its own, through the primary key of event_ids
// and then of the event's partition: the LATERAL subqueries with LIMIT 1
// cannot be flattened into a join the planner may run as a scan. With
// `event_ids i WHERE i.id = ANY($1)` it preferred, for a batch of 1000 ids,
// a (parallel) sequential scan of event_ids testing each row against a hash
// of the ids: its cost estimate for 1000 random index probes is higher,
// while the scan grows with the table, 21 ms per batch at 300,000 events
// and most of the database's time in ingest at 1M (TestLookupPlan,
// BenchmarkLookup).
const lookupSQL = `SELECT q.id::text, e.seq IS NOT NULL, ` + eventColumnsNullable + `
FROM unnest($1::text[]::uuid[]) AS q(id)
CROSS JOIN LATERAL (SELECT i.id, i.seq, i.event_time_ns FROM event_ids i WHERE i.id = q.id LIMIT 1) i
LEFT JOIN LATERAL (SELECT * FROM events e WHERE e.event_time_ns = i.event_time_ns AND e.seq = i.seq LIMIT 1) e ON true`

// eventColumnsNullable is eventColumns with a value in place of NULL where
// the left join finds no event.
const eventColumnsNullable = `coalesce(e.event_time_ns, 0), coalesce(e.seq, 0), i.id::text, e.receive_time_ns,
	coalesce(e.event_source, ''), coalesce(e.action, ''), coalesce(e.read_only, false),
	e.status_code, e.status_message, coalesce(e.principal, ''), coalesce(e.source_ip, ''), coalesce(e.user_agent, ''),
	coalesce(e.resource, ''), coalesce(e.workspace, ''), e.request_parameters::text, e.metadata::text, coalesce(e.type, 0)`

// insertSQL stores new events in one statement, hence one transaction: it
// takes the next $1 sequence numbers from log_head (whose row lock it keeps
// until the commit, so that transactions commit in sequence order), records
// the ids and inserts the events, numbered in array order. It returns the
// sequence number before the first new event and the stored receive times,
// and the retention cutoff it read.
//
// prev locks the row of log_head before anything reads it: FOR UPDATE waits
// for an appender in flight and then returns the row as that one committed
// it, so the seq and receive time it reads are the latest (a plain read in
// the same statement would see its older snapshot).
//
// It then locks retention's row FOR SHARE, which conflicts with the UPDATE
// of Expire (retention.go), and so reads the latest cutoff in the same way:
// when an event is before it, the statement stores nothing (new is empty,
// log_head stays) and returns no receive times. The appender checked the
// cutoff it knows before, but Expire may have moved it since, here or on
// another replica: serialised with Expire's UPDATE, no event before a
// cutoff is stored once that UPDATE has committed, and the refused append
// runs again knowing the cutoff (errCutoffRace). log_head is locked first
// (the order of the FOR clauses), so that the appenders waiting for it do
// not hold retention's row: Expire waits at most for the one in flight.
//
// Receive times strictly increase with seq (the Store contract): event k
// (k = 1..n) gets max(r_k, r'_{k-1} + 1), r'_0 being log_head's. Unrolled,
// r'_k = k + max(r'_0, max_{j<=k}(r_j - j)): a running max, one window
// function (greatest ignores the NULL of an empty log).
//
// LIMIT 1 states what the planner cannot know of log_head and retention (one
// row each; they are never analyzed, and it guesses 1810 and 2200 rows):
// with those guesses, the plan of a batch of 1000 events costs past
// jit_above_cost and the statement spends 25-50 ms compiling itself
// (measured), more than it takes to run.
//
// The guarded form (insertGuardedSQL, Store.guarded: every build from
// migration 0006 on)
// also locks schema_compat's row FOR SHARE, which conflicts with the UPDATE
// of a newer build's migration that raises min_build_version, and stores
// nothing when the minimum is above this build's schema version ($18): a
// replica left running an older build stops writing the moment a breaking
// migration commits, instead of writing rows the new schema no longer means
// (schemaguard.go).
const insertSQL = `WITH prev AS (
    SELECT h.seq, h.receive_time_ns, r.cutoff_ns, NULL::integer AS min_build_version
    FROM log_head h, retention r LIMIT 1 FOR UPDATE OF h FOR SHARE OF r
), new AS (
    SELECT prev.seq + u.ord AS seq,
           u.ord + greatest(prev.receive_time_ns, max(u.receive_time_ns - u.ord) OVER (ORDER BY u.ord)) AS receive_time_ns,
           u.id, u.event_time_ns, u.status_code, u.type, u.read_only, u.event_source, u.action, u.principal, u.source_ip,
           u.resource, u.workspace, u.user_agent, u.status_message, u.request_parameters, u.metadata
    FROM prev, unnest($2::text[]::uuid[], $3::bigint[], $4::bigint[], $5::integer[], $6::smallint[], $7::boolean[],
                      $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                      $16::text[]::jsonb[], $17::text[]::jsonb[])
         WITH ORDINALITY AS u(id, event_time_ns, receive_time_ns, status_code, type, read_only,
                              event_source, action, principal, source_ip, resource, workspace, user_agent, status_message,
                              request_parameters, metadata, ord)
    WHERE (prev.cutoff_ns IS NULL OR prev.cutoff_ns <= (SELECT min(t) FROM unnest($3::bigint[]) AS t))
      AND (prev.min_build_version IS NULL OR prev.min_build_version <= $18::integer)
), head AS (
    UPDATE log_head SET seq = seq + $1::bigint, receive_time_ns = (SELECT max(receive_time_ns) FROM new)
    WHERE EXISTS (SELECT FROM new)
), ids AS (
    INSERT INTO event_ids (id, seq, event_time_ns) SELECT id, seq, event_time_ns FROM new
), ins AS (
    INSERT INTO events (event_time_ns, seq, receive_time_ns, id, status_code, type, read_only,
                        event_source, action, principal, source_ip, resource, workspace, user_agent, status_message,
                        request_parameters, metadata)
    SELECT event_time_ns, seq, receive_time_ns, id, status_code, type, read_only,
           event_source, action, principal, source_ip, resource, workspace, user_agent, status_message,
           request_parameters, metadata
    FROM new
)
SELECT (SELECT seq FROM prev), (SELECT cutoff_ns FROM prev), (SELECT min_build_version FROM prev), array_agg(receive_time_ns ORDER BY seq) FROM new`

// insertGuardedSQL is insertSQL reading schema_compat's minimum too.
var insertGuardedSQL = strings.Replace(strings.Replace(insertSQL,
	"NULL::integer AS min_build_version", "c.min_build_version", 1),
	"FROM log_head h, retention r LIMIT 1 FOR UPDATE OF h FOR SHARE OF r", "FROM log_head h, retention r, schema_compat c LIMIT 1 FOR UPDATE OF h FOR SHARE OF r, c", 1)

// appendMode is how the two statements of an append run: prepared once per
// connection (pgx's statement cache), so that pgx knows their parameters'
// types and sends the arrays of a batch in PostgreSQL's binary format, and
// PostgreSQL keeps their plans. The store's default (pgx.QueryExecModeExec,
// store.go) does not know the types and sends every parameter as text: each
// array quoted and escaped element by element by pgx, parsed back by
// PostgreSQL, about a fifth of the CPU of Append's Go code on a batch of
// 1000 (auditbench, 300,000 events on the PostgreSQL store, two alternated
// pairs: the server's CPU 19.4 → 17.0-18.0 µs per event). Both statements'
// plans have one shape whatever the arguments (unnest, one row of
// log_head, index probes by key), so the generic plan PostgreSQL settles on
// after five executions is the right one, and a small append no longer
// pays for planning the CTE (with pgx.QueryExecModeCacheDescribe, the plan
// was made for every execution): one single-event append on 20,000 events
// 692 / 732 → 426 / 427 µs (BenchmarkAppendOne, alternated), PostgreSQL's
// CPU per append 480-580 → 220-240 µs (a scratch test summing its
// processes' CPU over 1000 appends). Batches of 1000 are unchanged (BenchmarkIngest, 300,000 events,
// alternated: 26.8k / 27.7k → 27.3k / 26.8k events/s). Searches keep the
// default: their plans must see the values (a popular principal is best
// read by time, a rare one by its index).
const appendMode = pgx.QueryExecModeCacheStatement

// errIDRace: one of the ids is stored already, by an earlier append (the
// first run does not look them up) or by another append between the lookup
// and the insert; the append runs again, looks them up and sees it.
var errIDRace = errors.New("postgres: an id was stored concurrently")

// errCutoffRace: an event is before the retention cutoff, which moved since
// the append checked it (insertSQL); the append runs again, knowing it, and
// refuses that event.
var errCutoffRace = errors.New("postgres: the retention cutoff moved concurrently")

// maxAppendAttempts bounds the runs of one Append that lose a race (for an
// id, with the cutoff).
const maxAppendAttempts = 8

// Append implements audittrail.Store. The events a call stores are
// committed together, in one transaction, on stable storage
// (synchronous_commit on), with consecutive sequence numbers; concurrent
// calls may share that transaction (group commit, group.go), never split
// one. An event before the retention cutoff is refused (its result's Err),
// also when the cutoff moved while the call ran (insertSQL).
//
// ctx ends only the waits that precede an insert: once sent, the insert runs
// to its outcome (insert, group.go), which Append reports, so that an error
// means nothing of the call was stored. When the connection breaks while the
// commit is in flight, though, the outcome is unknown; Append then runs once
// more on a new connection, where a committed first run shows as idempotent
// retries with the same result. When that is impossible (or ctx has ended)
// it fails with EUnavailable, and the producer's retry with the same ids
// resolves it the same way.
func (s *Store) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		if err := checkEvent(e); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(e.ID)
		if err != nil || id.String() != e.ID {
			return nil, audittrail.Errorf(audittrail.EInvalid, "event_id must be in UUIDv4 format")
		}
		ids[i] = id.String()
	}
	if len(events) == 0 {
		return []audittrail.AppendResult{}, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	var err error
	for attempt := 1; ; attempt++ {
		var res []audittrail.AppendResult
		// The first run inserts without looking the ids up: new ids are
		// the common case, and a stored one fails the insert (errIDRace)
		// before anything commits, so that the next run looks them up.
		res, err = s.appendOnce(ctx, events, ids, attempt > 1)
		if err == nil {
			return res, nil // stored, whether or not ctx has ended meanwhile
		}
		if ex := s.excluded.Load(); ex != nil {
			return nil, *ex // (also when the group's statement found it)
		}
		again := errors.Is(err, errIDRace) || errors.Is(err, errCutoffRace) || errors.Is(err, errGroupFailed)
		if ctx.Err() != nil && again && !unavailable(err) {
			// The run stored nothing, and the caller no longer waits
			// for the next one.
			return nil, ctx.Err()
		}
		if ctx.Err() != nil || attempt == maxAppendAttempts {
			break
		}
		if again {
			continue
		}
		s.recoverFrom(err)
		if attempt == 1 && retryable(err) {
			continue
		}
		break
	}
	return nil, s.fail(ctx, "append", err)
}

// appendOnce runs one attempt of Append. With lookup, it first reads which
// ids are stored (retries, conflicts); without, it takes every id as new,
// and the insert fails with errIDRace if one is not.
func (s *Store) appendOnce(ctx context.Context, events []*audittrail.Event, ids []string, lookup bool) ([]audittrail.AppendResult, error) {
	var (
		stored map[string]*audittrail.Event
		used   map[string]bool
	)
	if lookup {
		var err error
		if stored, used, err = s.lookup(ctx, ids); err != nil {
			return nil, err
		}
	}
	res := make([]audittrail.AppendResult, len(events))
	pending := map[string]*audittrail.Event{} // new in this call, by id
	var fresh []*audittrail.Event
	type ref struct {
		i  int
		st *audittrail.Event
	}
	var refs []ref // results that get their event once seqs are known
	// The cutoff as this replica knows it refuses old events before the
	// insert; the insert checks them against the stored one (insertSQL).
	cutoff := s.cutoff.Load()
	for i, e := range events {
		id := ids[i]
		if e.EventTime.UnixNano() < cutoff {
			res[i].Err = s.cutoffError(e)
			continue
		}
		if prev := pending[id]; prev != nil {
			if prev.SameContent(e) {
				refs = append(refs, ref{i, prev})
			} else {
				res[i].Err = conflict(e.ID)
			}
			continue
		}
		if prev := stored[id]; prev != nil {
			if prev.SameContent(e) {
				res[i].Event = prev.Clone()
			} else {
				res[i].Err = conflict(e.ID)
			}
			continue
		}
		if used[id] {
			res[i].Err = conflict(e.ID)
			continue
		}
		st := e.Clone()
		pending[id] = st
		fresh = append(fresh, st)
		refs = append(refs, ref{i, st})
	}
	if len(fresh) > 0 {
		var err error
		if lookup {
			err = s.insert(fresh)
		} else {
			err = s.insertGrouped(ctx, fresh) // group.go
		}
		if err != nil {
			return nil, err
		}
	}
	for _, r := range refs {
		res[r.i].Event = r.st.Clone()
	}
	return res, nil
}

func conflict(id string) error {
	return audittrail.Errorf(audittrail.EConflict, "event_id %s is already used by another event", id)
}

// lookup returns the stored events of ids, and the ids that are used
// (with or without a stored event).
func (s *Store) lookup(ctx context.Context, ids []string) (map[string]*audittrail.Event, map[string]bool, error) {
	s.lookups.Add(1)
	rows, err := s.pool.Query(ctx, lookupSQL, appendMode, ids)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	stored := map[string]*audittrail.Event{}
	used := map[string]bool{}
	var (
		id      string
		present bool
		r       eventRow
	)
	dests := append([]any{&id, &present}, r.targets()...)
	for rows.Next() {
		if err := rows.Scan(dests...); err != nil {
			return nil, nil, err
		}
		used[id] = true
		if !present {
			continue
		}
		e, err := r.event()
		if err != nil {
			return nil, nil, err
		}
		stored[id] = e
	}
	return stored, used, rows.Err()
}

// insert stores fresh (new events, in order) in one transaction, and sets
// the Seq and ReceiveTime of each as stored.
//
// The statement runs under none of the callers' contexts, for at most
// insertTimeout: one cancelled with its caller may have committed already,
// or commit after the cancellation was sent, and the caller would report an
// error for events that are stored (the Store contract says an error means
// nothing stored). Waiting for the outcome lets Append report it.
func (s *Store) insert(fresh []*audittrail.Event) error {
	ctx, cancel := context.WithTimeout(s.life, insertTimeout)
	defer cancel()
	base, receives, err := s.insertRows(ctx, fresh)
	if err != nil {
		return err
	}
	if len(receives) != len(fresh) {
		return fmt.Errorf("postgres: %d receive times stored for %d events", len(receives), len(fresh))
	}
	for k, st := range fresh {
		st.Seq = uint64(base) + uint64(k) + 1
		st.ReceiveTime = time.Unix(0, receives[k]).UTC()
	}
	s.leaves.add(fresh)
	return nil
}

// insertRows runs insertSQL for fresh and returns the sequence number
// before the first of them and their receive times as stored.
func (s *Store) insertRows(ctx context.Context, fresh []*audittrail.Event) (int64, []int64, error) {
	n := len(fresh)
	var (
		ids       = make([]string, n)
		times     = make([]int64, n)
		receives  = make([]int64, n)
		codes     = make([]*int32, n)
		types     = make([]int16, n)
		readOnly  = make([]bool, n)
		sources   = make([]string, n)
		actions   = make([]string, n)
		princs    = make([]string, n)
		ips       = make([]string, n)
		resources = make([]string, n)
		workspace = make([]string, n)
		agents    = make([]string, n)
		messages  = make([]*string, n)
		params    = make([]*string, n)
		metadata  = make([]*string, n)
	)
	for i, e := range fresh {
		ids[i] = e.ID
		times[i] = e.EventTime.UnixNano()
		receives[i] = e.ReceiveTime.UnixNano()
		if e.Status != nil {
			code, msg := e.Status.Code, encodeText(e.Status.Message)
			codes[i], messages[i] = &code, &msg
		}
		types[i] = int16(e.Type)
		readOnly[i] = e.ReadOnly
		sources[i] = encodeText(e.EventSource)
		actions[i] = encodeText(e.Action)
		princs[i] = encodeText(e.Principal)
		ips[i] = encodeText(e.SourceIP)
		resources[i] = encodeText(e.Resource)
		workspace[i] = encodeText(e.Workspace)
		agents[i] = encodeText(e.UserAgent)
		var err error
		if params[i], err = encodeMap(e.RequestParameters); err != nil {
			return 0, nil, err
		}
		if metadata[i], err = encodeMap(e.Metadata); err != nil {
			return 0, nil, err
		}
	}
	var (
		base, cutoff pgtype.Int8
		minBuild     pgtype.Int4
		stored       []int64
	)
	sql := insertSQL
	if s.guarded {
		sql = insertGuardedSQL
	}
	err := s.pool.QueryRow(ctx, sql, appendMode, int64(n), ids, times, receives, codes, types, readOnly,
		sources, actions, princs, ips, resources, workspace, agents, messages, params, metadata, int32(s.build)).
		Scan(&base, &cutoff, &minBuild, &stored)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "event_ids_pkey" {
		return 0, nil, errIDRace
	}
	if err != nil {
		return 0, nil, err
	}
	if !base.Valid {
		return 0, nil, errors.New("postgres: log_head or retention has no row")
	}
	if minBuild.Valid && int(minBuild.Int32) > s.build {
		// Nothing stored: a newer build's migration excludes this one.
		return 0, nil, s.exclude(int(minBuild.Int32))
	}
	if len(stored) == 0 {
		// Nothing stored: an event is before the cutoff the statement read.
		if cutoff.Valid {
			s.raiseCutoff(cutoff.Int64)
		}
		return 0, nil, errCutoffRace
	}
	return base.Int64, stored, nil
}
