package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audittrail/audittrail"
)

// BaselineSchema is the conventional design the issue prescribes: one table,
// a column per field, jsonb maps, and B-tree indexes that put the newest
// events of a value first, plus GIN on metadata.
var BaselineSchema = []string{
	`CREATE TABLE events (
    id                 uuid        NOT NULL,
    event_time         timestamptz NOT NULL,
    receive_time       timestamptz NOT NULL,
    event_source       text        NOT NULL,
    action             text        NOT NULL,
    read_only          boolean     NOT NULL,
    status_code        integer,
    status_message     text,
    principal          text        NOT NULL,
    source_ip          text        NOT NULL,
    user_agent         text        NOT NULL,
    resource           text        NOT NULL,
    workspace          text,
    request_parameters jsonb,
    metadata           jsonb,
    type               smallint    NOT NULL
)`,
	`CREATE INDEX events_time      ON events (event_time DESC, id)`,
	`CREATE INDEX events_principal ON events (principal, event_time DESC)`,
	`CREATE INDEX events_workspace ON events (workspace, event_time DESC)`,
	`CREATE INDEX events_action    ON events (action, event_time DESC)`,
	`CREATE INDEX events_resource  ON events (resource, event_time DESC)`,
	`CREATE INDEX events_metadata  ON events USING gin (metadata)`,
}

var baselineColumns = []string{"id", "event_time", "receive_time", "event_source", "action", "read_only", "status_code",
	"status_message", "principal", "source_ip", "user_agent", "resource", "workspace", "request_parameters", "metadata", "type"}

// baselineRow returns the column values of an event.
func baselineRow(e *audittrail.Event) []any {
	var code *int32
	var msg *string
	if e.Status != nil {
		code, msg = &e.Status.Code, &e.Status.Message
	}
	var ws *string
	if e.Workspace != "" {
		ws = &e.Workspace
	}
	var params, meta any
	if e.RequestParameters != nil {
		params = e.RequestParameters
	}
	if e.Metadata != nil {
		meta = e.Metadata
	}
	return []any{e.ID, e.EventTime, e.ReceiveTime, e.EventSource, e.Action, e.ReadOnly, code, msg, e.Principal, e.SourceIP,
		e.UserAgent, e.Resource, ws, params, meta, int16(e.Type)}
}

// CreateBaseline creates the schema in the database of pool, with the table
// named name.
func CreateBaseline(ctx context.Context, pool *pgxpool.Pool, name string) error {
	for _, stmt := range BaselineSchema {
		stmt = strings.ReplaceAll(stmt, "events", name)
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// insertSQL returns "INSERT INTO table (cols) VALUES ($1..), ..." for n rows.
func insertSQL(table string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(baselineColumns, ", "))
	k := 1
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range baselineColumns {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", k)
			k++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// InsertRows stores rows with one multi-row INSERT (one transaction, commit
// flushed: fsync and synchronous_commit are on).
func InsertRows(ctx context.Context, pool *pgxpool.Pool, table string, events []*audittrail.Event) error {
	args := make([]any, 0, len(events)*len(baselineColumns))
	for _, e := range events {
		args = append(args, baselineRow(e)...)
	}
	_, err := pool.Exec(ctx, insertSQL(table, len(events)), args...)
	return err
}

// CopyRows stores rows with COPY FROM STDIN (one transaction).
func CopyRows(ctx context.Context, pool *pgxpool.Pool, table string, events []*audittrail.Event) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = baselineRow(e)
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{table}, baselineColumns, pgx.CopyFromRows(rows))
	return err
}

// SQLSearcher runs the suite as hand-written SQL on the baseline table: the
// query a developer would write for each filter, keyset pagination on
// (event_time, id), all columns returned.
type SQLSearcher struct {
	Label string
	Pool  *pgxpool.Pool
	Table string
}

func (s *SQLSearcher) Name() string { return s.Label }

// sqlCursor is the keyset position of the last returned row.
type sqlCursor struct {
	Time time.Time
	ID   string
	End  time.Time // the range end fixed at the first page, as page tokens do
}

// fieldColumn maps a filter field to its column.
var fieldColumn = [audittrail.NumFields]string{
	audittrail.FieldEventSource: "event_source",
	audittrail.FieldResource:    "resource",
	audittrail.FieldPrincipal:   "principal",
	audittrail.FieldSourceIP:    "source_ip",
	audittrail.FieldWorkspace:   "workspace",
	audittrail.FieldAction:      "action",
}

// BaselineSQL returns the statement and arguments of one page of q, resuming
// after cur when it is set. Only the conditions the suite uses are
// translated: exact and regex per field (= and ~, POSIX regexes, which agree
// with RE2 on the suite's patterns), metadata_exact (@>, served by the GIN
// index), and the time range.
func BaselineSQL(table string, q *Query, size int, cur *sqlCursor) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	start := audittrail.DefaultStartTime
	if q.Filter.StartTime != nil {
		start = *q.Filter.StartTime
	}
	end := cur.End
	if q.Filter.EndTime != nil {
		end = *q.Filter.EndTime
	}
	conds = append(conds, "event_time >= "+arg(start), "event_time < "+arg(end))
	for i := range audittrail.NumFields {
		if v := q.Filter.Exact[i]; v != "" {
			conds = append(conds, fieldColumn[i]+" = "+arg(v))
		}
		if v := q.Filter.Regex[i]; v != "" {
			conds = append(conds, fieldColumn[i]+" ~ "+arg(v))
		}
	}
	if len(q.Filter.MetadataExact) > 0 {
		conds = append(conds, "metadata @> "+arg(q.Filter.MetadataExact))
	}
	if !cur.Time.IsZero() {
		t := arg(cur.Time)
		conds = append(conds, "event_time <= "+t, "(event_time < "+t+" OR id > "+arg(cur.ID)+")")
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY event_time DESC, id LIMIT %d",
		strings.Join(baselineColumns, ", "), table, strings.Join(conds, " AND "), size)
	return sql, args
}

func (s *SQLSearcher) Page(ctx context.Context, q *Query, size int, cursor any) (Page, error) {
	cur := &sqlCursor{End: time.Now()}
	if cursor != nil {
		cur = cursor.(*sqlCursor)
	}
	sql, args := BaselineSQL(s.Table, q, size, cur)
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, err
	}
	defer rows.Close()
	p := Page{Requests: 1}
	var last time.Time
	for rows.Next() {
		// Every column is decoded, as an application would.
		var (
			e                   audittrail.Event
			code                *int32
			msg, ws             *string
			params, meta        map[string]string
			typ                 int16
			id                  [16]byte
			eventTime, received time.Time
		)
		if err := rows.Scan(&id, &eventTime, &received, &e.EventSource, &e.Action, &e.ReadOnly, &code, &msg, &e.Principal,
			&e.SourceIP, &e.UserAgent, &e.Resource, &ws, &params, &meta, &typ); err != nil {
			return p, err
		}
		p.IDs = append(p.IDs, uuidString(id))
		last = eventTime
	}
	if err := rows.Err(); err != nil {
		return p, err
	}
	if len(p.IDs) == size {
		p.Cursor = &sqlCursor{Time: last, ID: p.IDs[len(p.IDs)-1], End: cur.End}
	}
	return p, nil
}

func uuidString(b [16]byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}
