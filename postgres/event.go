package postgres

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audittrail/audittrail"
)

// eventColumns are the columns of an event as searches and lookups read
// them, qualified by the alias e; eventRow scans them.
const eventColumns = `e.event_time_ns, e.seq, e.id::text, e.receive_time_ns, e.event_source, e.action, e.read_only,
	e.status_code, e.status_message, e.principal, e.source_ip, e.user_agent, e.resource, e.workspace,
	e.request_parameters::text, e.metadata::text, e.type`

// eventRow is the destination of eventColumns.
type eventRow struct {
	ns, seq    int64
	id         string
	receiveNS  pgtype.Int8
	source     string
	action     string
	readOnly   bool
	statusCode pgtype.Int4
	statusMsg  pgtype.Text
	principal  string
	sourceIP   string
	userAgent  string
	resource   string
	workspace  string
	reqParams  pgtype.Text
	metadata   pgtype.Text
	typ        int16
	dests      []any
}

func (r *eventRow) targets() []any {
	if r.dests == nil {
		r.dests = []any{&r.ns, &r.seq, &r.id, &r.receiveNS, &r.source, &r.action, &r.readOnly,
			&r.statusCode, &r.statusMsg, &r.principal, &r.sourceIP, &r.userAgent, &r.resource, &r.workspace,
			&r.reqParams, &r.metadata, &r.typ}
	}
	return r.dests
}

// event builds the stored event.
func (r *eventRow) event() (*audittrail.Event, error) {
	e := &audittrail.Event{
		ID:          r.id,
		EventTime:   time.Unix(0, r.ns).UTC(),
		EventSource: decodeText(r.source),
		Action:      decodeText(r.action),
		ReadOnly:    r.readOnly,
		Principal:   decodeText(r.principal),
		SourceIP:    decodeText(r.sourceIP),
		UserAgent:   decodeText(r.userAgent),
		Resource:    decodeText(r.resource),
		Workspace:   decodeText(r.workspace),
		Type:        audittrail.EventType(r.typ),
		Seq:         uint64(r.seq),
	}
	if r.receiveNS.Valid {
		e.ReceiveTime = time.Unix(0, r.receiveNS.Int64).UTC()
	}
	if r.statusCode.Valid {
		e.Status = &audittrail.Status{Code: r.statusCode.Int32, Message: decodeText(r.statusMsg.String)}
	}
	var err error
	if r.reqParams.Valid {
		if e.RequestParameters, err = decodeMap(&r.reqParams.String); err != nil {
			return nil, fmt.Errorf("event %s: request_parameters: %w", r.id, err)
		}
	}
	if r.metadata.Valid {
		if e.Metadata, err = decodeMap(&r.metadata.String); err != nil {
			return nil, fmt.Errorf("event %s: metadata: %w", r.id, err)
		}
	}
	return e, nil
}

// checkEvent rejects what the store cannot represent, with the messages of
// the embedded store. Events are normally validated by
// audittrail.PrepareNewEvent already.
func checkEvent(e *audittrail.Event) error {
	if e == nil {
		return audittrail.Errorf(audittrail.EInvalid, "event is missing")
	}
	if e.EventTime.Before(audittrail.MinEventTime) || !e.EventTime.Before(audittrail.MaxEventTime) {
		return audittrail.Errorf(audittrail.EInvalid, "event.event_time is out of range")
	}
	// Receive times are required (the verifiable log's horizons are made of
	// them) and stored as Unix nanoseconds too; the store raises them by up
	// to a nanosecond per event (Append), which MaxReceiveTime leaves room
	// for.
	if e.ReceiveTime.Before(audittrail.MinEventTime) || !e.ReceiveTime.Before(audittrail.MaxReceiveTime) {
		return audittrail.Errorf(audittrail.EInvalid, "event.receive_time is missing or out of range")
	}
	if !e.Type.Valid() {
		return audittrail.Errorf(audittrail.EInvalid, "event.type %d is not a known event type", e.Type)
	}
	for _, f := range []struct{ name, v string }{
		{"event.event_source", e.EventSource}, {"event.action", e.Action}, {"event.principal", e.Principal},
		{"event.source_ip_address", e.SourceIP}, {"event.user_agent", e.UserAgent}, {"event.resource", e.Resource},
		{"event.workspace_override", e.Workspace},
	} {
		if !utf8.ValidString(f.v) {
			return audittrail.Errorf(audittrail.EInvalid, "%s is not valid UTF-8", f.name)
		}
	}
	if e.Status != nil && !utf8.ValidString(e.Status.Message) {
		return audittrail.Errorf(audittrail.EInvalid, "event.status.message is not valid UTF-8")
	}
	for name, m := range map[string]map[string]string{"event.metadata": e.Metadata, "event.request_parameters": e.RequestParameters} {
		for k, v := range m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return audittrail.Errorf(audittrail.EInvalid, "%s is not valid UTF-8", name)
			}
		}
	}
	return nil
}
