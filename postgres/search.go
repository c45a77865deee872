package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
)

// A search is one SQL statement, read through a cursor in growing batches:
//
//	SELECT pass, rn, <event> FROM (
//	    SELECT c.*, <pushed-down conditions> AS pass,
//	           row_number() OVER (ORDER BY event_time_ns DESC, seq DESC) AS rn
//	    FROM (SELECT * FROM events
//	          WHERE <time range> AND <after the cursor> AND <exact filters>
//	          ORDER BY event_time_ns DESC, seq DESC
//	          LIMIT maxScan + 1) c
//	) e
//	WHERE pass OR rn >= maxScan
//
// The inner query is the candidate scan: an ordered index scan (the primary
// key, or the index of an exact filter) cut at MaxScan candidates, which is
// the work bound of the request; the candidates are what the embedded store
// calls examined events. Every other condition (regex-derived LIKE patterns,
// metadata, status, types, read_only) is evaluated on the server for each
// candidate, and only the candidates that pass it travel to the store,
// which applies Query.Match to them (the reference semantics, with RE2).
// The candidate number maxScan comes back whatever it is, as the position
// of the last examined event, and candidate maxScan+1 tells that more
// remain: so a page that runs out of budget ends where the embedded store's
// would, without shipping the rows that fail.

// Search implements audittrail.Store.
func (s *Store) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	q := req.Query
	maxScan, err := req.Check()
	if err != nil {
		return nil, err
	}
	maxScan = min(maxScan, 1<<62) // maxScan+1 must fit a bigint
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	plan, ok := buildSearch(q, req.After, maxScan, s.cutoff.Load())
	if !ok {
		return &audittrail.SearchResult{}, nil
	}
	var res *audittrail.SearchResult
	for attempt := 1; attempt <= 2; attempt++ {
		res, err = s.search(ctx, q, plan, req.Limit, maxScan)
		if err == nil || ctx.Err() != nil {
			break
		}
		s.recoverFrom(err)
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return nil, s.fail(ctx, "search", err)
	}
	return res, nil
}

// errSearchTimeout: the search ran out of time before examining anything.
var errSearchTimeout = audittrail.Errorf(audittrail.EUnavailable,
	"the search took too long: the event database is overloaded; narrow the time range or the filter, or try again shortly")

// ctxCheckRows is how many rows go between two looks at the search's
// deadline while a batch is read.
const ctxCheckRows = 16

// Batches of rows read from the cursor: the first is enough for a page when
// the database filters exactly; the next grow to cut round trips when Go's
// regular expressions reject rows.
const maxFetch = 8192

func (s *Store) search(ctx context.Context, q *audittrail.Query, plan searchPlan, limit, maxScan int) (*audittrail.SearchResult, error) {
	// The time bound of the request: the context (the client gives up
	// when it expires), and statement_timeout (the server gives up even if
	// the client vanished).
	tctx, cancel := context.WithTimeout(ctx, s.searchTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(tctx)
	if err != nil {
		return nil, s.timedOut(ctx, tctx, err)
	}
	defer conn.Release()
	// One round trip opens the transaction, declares the cursor and reads
	// the first batch, which is the whole search for most pages.
	fetchLen := limit + 3
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
	b.Queue("SET LOCAL statement_timeout = " + strconv.FormatInt((s.searchTimeout+time.Second).Milliseconds(), 10))
	// Every search is served in order by an index; never sort a range.
	b.Queue("SET LOCAL enable_sort = off")
	// The estimated cost of a cursor over a large range passes the JIT
	// threshold, and compiling takes longer (~15ms) than a page takes.
	b.Queue("SET LOCAL jit = off")
	b.Queue("DECLARE c NO SCROLL CURSOR FOR "+plan.sql, plan.args...)
	b.Queue("FETCH " + strconv.Itoa(fetchLen) + " FROM c")
	br := conn.SendBatch(tctx, b)
	defer func() {
		// Read-only: rolling back ends the transaction and the cursor. A
		// connection left in a transaction is dropped by the pool.
		if conn.Conn().PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			conn.Exec(rctx, "ROLLBACK") //nolint:errcheck // see above
			cancel()
		}
	}()
	for range 5 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, s.timedOut(ctx, tctx, err)
		}
	}
	rows, err := br.Query()
	// done releases the rows and the batch (a batch must be closed before
	// the connection runs anything else).
	done := func() error {
		if rows != nil {
			rows.Close()
		}
		if br == nil {
			return nil
		}
		err := br.Close()
		br = nil
		return err
	}
	defer done() //nolint:errcheck // on early returns
	res := &audittrail.SearchResult{}
	var (
		last  *audittrail.Cursor // the last examined candidate
		r     eventRow
		pass  bool
		rn    int64
		dests = append([]any{&pass, &rn}, r.targets()...)
		more  bool // a candidate beyond maxScan exists
	)
	for {
		if err != nil {
			return s.partial(ctx, tctx, res, last, err)
		}
		n := 0
		for rows.Next() {
			n++
			if n%ctxCheckRows == 0 && tctx.Err() != nil {
				// Go's regexes (q.Match, below) may cost milliseconds a
				// row: stop at the deadline, not at the batch's end.
				rows.Close()
				return s.partial(ctx, tctx, res, last, tctx.Err())
			}
			if err := rows.Scan(dests...); err != nil {
				return nil, err
			}
			if rn > int64(maxScan) {
				more = true
				continue
			}
			last = &audittrail.Cursor{Time: r.ns, Seq: uint64(r.seq)}
			if !pass {
				continue
			}
			e, err := r.event()
			if err != nil {
				return nil, err
			}
			if !q.Match(e) {
				continue
			}
			if len(res.Events) == limit {
				// The look-ahead found another match: resume after the
				// last returned event.
				l := res.Events[limit-1]
				res.Next = &audittrail.Cursor{Time: l.EventTime.UnixNano(), Seq: l.Seq}
				return res, nil
			}
			res.Events = append(res.Events, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.partial(ctx, tctx, res, last, err)
		}
		if err := done(); err != nil {
			return s.partial(ctx, tctx, res, last, err)
		}
		if more {
			// MaxScan candidates examined, and more remain.
			res.Next = last
			return res, nil
		}
		if n < fetchLen {
			return res, nil // the range is exhausted
		}
		fetchLen = min(fetchLen*4, maxFetch)
		rows, err = conn.Query(tctx, "FETCH "+strconv.Itoa(fetchLen)+" FROM c")
	}
}

// partial handles an error while reading: when the search ran out of time
// after examining some events, the page so far is the result, with Next at
// the last examined event (as when MaxScan runs out).
func (s *Store) partial(ctx, tctx context.Context, res *audittrail.SearchResult, last *audittrail.Cursor, err error) (*audittrail.SearchResult, error) {
	if ctx.Err() == nil && tctx.Err() != nil && last != nil {
		s.log.Info("postgres: search ran out of time; returning a partial page", "timeout", s.searchTimeout, "events", len(res.Events))
		res.Next = last
		return res, nil
	}
	return nil, s.timedOut(ctx, tctx, err)
}

// timedOut turns an error after the search's own deadline into
// errSearchTimeout.
func (s *Store) timedOut(ctx, tctx context.Context, err error) error {
	if ctx.Err() == nil && (tctx.Err() != nil || isCanceled(err)) {
		s.log.Warn("postgres: search timed out", "timeout", s.searchTimeout, "err", err)
		return errSearchTimeout
	}
	return err
}

// searchPlan is the SQL of a search and its arguments.
type searchPlan struct {
	sql  string
	args []any
}

type sqlArgs struct{ args []any }

// add returns the placeholder of a new argument.
func (a *sqlArgs) add(v any) string {
	a.args = append(a.args, v)
	return "$" + strconv.Itoa(len(a.args))
}

// indexPrefix is the length (in characters) of the resource and workspace
// values their indexes keep (migration 0001).
const indexPrefix = 512

var fieldColumns = [audittrail.NumFields]string{
	audittrail.FieldEventSource: "event_source",
	audittrail.FieldResource:    "resource",
	audittrail.FieldPrincipal:   "principal",
	audittrail.FieldSourceIP:    "source_ip",
	audittrail.FieldWorkspace:   "workspace",
	audittrail.FieldAction:      "action",
}

// buildSearch returns the statement of a search, and false when nothing can
// match (an empty range after the cursor or the retention cutoff, or no
// admitted type).
func buildSearch(q *audittrail.Query, after *audittrail.Cursor, maxScan int, cutoff int64) (searchPlan, bool) {
	var a sqlArgs
	start, end := max(q.Start.UnixNano(), cutoff), q.End.UnixNano()
	if start >= end || q.Types == 0 {
		return searchPlan{}, false
	}
	cand := []string{"e.event_time_ns >= " + a.add(start), "e.event_time_ns < " + a.add(end)}
	if after != nil {
		switch {
		case after.Time < start || (after.Time == start && after.Seq == 0):
			return searchPlan{}, false
		case after.Seq > math.MaxInt64:
			// Every stored seq is below: the whole of after.Time remains.
			cand = append(cand, "e.event_time_ns <= "+a.add(after.Time))
		default:
			cand = append(cand, "(e.event_time_ns, e.seq) < ("+a.add(after.Time)+", "+a.add(int64(after.Seq))+")")
		}
	}
	for f := range audittrail.NumFields {
		v := q.Exact[f]
		if v == nil {
			continue
		}
		col, p := fieldColumns[f], a.add(encodeText(*v))
		if f == audittrail.FieldResource || f == audittrail.FieldWorkspace {
			// The index holds a prefix; recheck the whole value.
			cand = append(cand, fmt.Sprintf("left(e.%s, %d) = left(%s, %d)", col, indexPrefix, p, indexPrefix))
		}
		cand = append(cand, "e."+col+" = "+p)
	}

	var pass []string
	if q.Types != allTypes {
		var ts []string
		for t := audittrail.TypeUnspecified; t <= audittrail.TypeSystem; t++ {
			if q.Types&(1<<uint(t)) != 0 {
				ts = append(ts, strconv.Itoa(int(t)))
			}
		}
		pass = append(pass, "c.type IN ("+strings.Join(ts, ", ")+")")
	}
	if q.ReadOnly != nil {
		if *q.ReadOnly {
			pass = append(pass, "c.read_only")
		} else {
			pass = append(pass, "NOT c.read_only")
		}
	}
	// regexCond returns the condition pushed down for a regex on the
	// value v, or "".
	regexCond := func(v, expr string) string {
		if set, ok := exactSet(expr); ok {
			return v + " = ANY(" + a.add(set) + "::text[])"
		}
		if p, ok := likePattern(expr); ok {
			return v + " LIKE " + a.add(p)
		}
		return ""
	}
	for f := range audittrail.NumFields {
		if re := q.Regex[f]; re != nil {
			if c := regexCond("c."+fieldColumns[f], re.String()); c != "" {
				pass = append(pass, c)
			}
		}
	}
	if q.Status != nil {
		if c := regexCond("coalesce(c.status_code::text, '')", q.Status.String()); c != "" {
			pass = append(pass, c)
		}
	}
	if len(q.MetadataExact) > 0 {
		m, _ := encodeMap(q.MetadataExact) // a map of strings always encodes
		pass = append(pass, "c.metadata @> "+a.add(*m)+"::jsonb")
	}
	keys := make([]string, 0, len(q.MetadataRegex))
	for k := range q.MetadataRegex {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same filter gives the same statement
	for _, k := range keys {
		v := "(c.metadata ->> " + a.add(encodeText(k)) + "::text)"
		if c := regexCond(v, q.MetadataRegex[k].String()); c != "" {
			pass = append(pass, c)
		} else {
			pass = append(pass, v+" IS NOT NULL")
		}
	}
	passSQL := "true"
	if len(pass) > 0 {
		// NULL (a missing metadata key, no metadata) is false.
		passSQL = "coalesce(" + strings.Join(pass, " AND ") + ", false)"
	}
	sql := `SELECT e.pass, e.rn, ` + eventColumns + `
FROM (
    SELECT c.*, (` + passSQL + `) AS pass, row_number() OVER (ORDER BY c.event_time_ns DESC, c.seq DESC) AS rn
    FROM (
        SELECT * FROM events e
        WHERE ` + strings.Join(cand, " AND ") + `
        ORDER BY e.event_time_ns DESC, e.seq DESC
        LIMIT ` + a.add(int64(maxScan)+1) + `
    ) c
) e
WHERE e.pass OR e.rn >= ` + a.add(int64(maxScan))
	return searchPlan{sql: sql, args: a.args}, true
}

const allTypes = 1<<uint(audittrail.TypeUnspecified) | 1<<uint(audittrail.TypeAPI) | 1<<uint(audittrail.TypeSystem)
