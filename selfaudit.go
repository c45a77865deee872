package audittrail

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Self-audit: the service records its own security-relevant calls as events
// in its own store, searchable like any other (spec §6.4).
const (
	// DefaultSelfAuditSource is the event_source of self-audit events.
	DefaultSelfAuditSource = "h2oai-audittrail-server"
	// ActionSearchEvents is the action of the event recorded for every
	// SearchEvents call.
	ActionSearchEvents = "actions/audittrail/events/SEARCH"
	// ActionCreateToken and ActionRevokeToken are recorded when an API
	// token is created or revoked (or the attempt is refused).
	ActionCreateToken = "actions/audittrail/apiTokens/CREATE"
	ActionRevokeToken = "actions/audittrail/apiTokens/REVOKE"
	// ActionCreateBackup is recorded when a backup is taken (or refused);
	// its resource is BackupResourcePrefix + the backup's name.
	ActionCreateBackup   = "actions/audittrail/backups/CREATE"
	BackupResourcePrefix = "//audittrail/backups/"
	// SearchResource is the resource of search events; token events have
	// TokenResourcePrefix + the token id.
	SearchResource      = "//audittrail/events"
	TokenResourcePrefix = "//audittrail/apiTokens/"
	// AnonymousPrincipal is the principal of an audit record for a caller
	// that did not authenticate.
	AnonymousPrincipal = "anonymous"
)

// AuditRecord is one call to record.
type AuditRecord struct {
	// Time is when the request arrived; the event_time of the event is
	// never earlier (the time of writing when Time is zero).
	Time time.Time
	// Principal is the caller's name; "" records AnonymousPrincipal.
	Principal string
	// SourceIP is the caller's address ("1.2.3.4", "::1"; a host:port is
	// accepted); an unknown address is recorded as "0.0.0.0".
	SourceIP  string
	UserAgent string
	Action    string
	Resource  string
	ReadOnly  bool
	// Status is the outcome: a google.rpc.Code value and its message.
	Status Status
	// Parameters go to request_parameters (see SearchParameters).
	Parameters map[string]string
	// Metadata goes to metadata (keys must follow the metadata key rule).
	Metadata map[string]string
}

// SelfAuditor writes audit records as events into the store, durably: Record
// returns only once the event is stored, so that a caller can fail closed.
type SelfAuditor struct {
	Store Store
	// Source is the event_source; "" means DefaultSelfAuditSource.
	Source string
	// RedactPrivateIPs stores private source addresses as "private", as for
	// producers' events.
	RedactPrivateIPs bool
	// FailOpen: when a record cannot be written, Record still returns nil
	// (the failure is only reported to OnFailure). The default, fail
	// closed, returns an EUnavailable error, and the caller must refuse
	// the request.
	FailOpen bool
	// OnFailure is called with every record that could not be written
	// (metrics, logs), fail open or not.
	OnFailure func(r *AuditRecord, err error)
	// Timeout bounds one write; 0 means 10 seconds. The write does not end
	// when the request's context does: a caller that hangs up is audited
	// all the same.
	Timeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

var errAuditUnavailable = Errorf(EUnavailable, "the request could not be audited, so it was refused; try again later")

// Record writes r as one event. It fails (with EUnavailable) only when the
// write failed and the auditor is not FailOpen.
func (a *SelfAuditor) Record(ctx context.Context, r AuditRecord) error {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	written := now().UTC()
	e, err := a.event(&r, written)
	if err == nil {
		timeout := a.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		var res []AppendResult
		res, err = a.Store.Append(wctx, []*Event{e})
		cancel()
		if err == nil && res[0].Err != nil {
			err = res[0].Err
		}
	}
	if err == nil {
		return nil
	}
	if a.OnFailure != nil {
		a.OnFailure(&r, err)
	}
	if a.FailOpen {
		return nil
	}
	return errAuditUnavailable
}

// event builds the event of r, valid by construction.
func (a *SelfAuditor) event(r *AuditRecord, written time.Time) (*Event, error) {
	source := a.Source
	if source == "" {
		source = DefaultSelfAuditSource
	}
	principal := r.Principal
	if principal == "" {
		principal = AnonymousPrincipal
	}
	t := r.Time
	if t.IsZero() || t.After(written) {
		t = written
	}
	status := r.Status
	status.Message = clipTo(status.Message, 1024)
	in := NewEvent{Event: Event{
		EventTime:         t,
		EventSource:       source,
		Action:            r.Action,
		ReadOnly:          r.ReadOnly,
		Status:            &status,
		Principal:         clipTo(principal, MaxFieldLen),
		SourceIP:          auditIP(r.SourceIP),
		UserAgent:         clipTo(r.UserAgent, MaxFieldLen),
		Resource:          clipTo(r.Resource, MaxResourceLen),
		RequestParameters: r.Parameters,
		Metadata:          r.Metadata,
		Type:              TypeAPI,
	}}
	empty := ""
	in.WorkspaceOverride = &empty // the audit trail's own calls belong to no workspace
	return PrepareNewEvent(NewEventID(written), in, written, a.RedactPrivateIPs)
}

// auditIP returns the address part of s ("1.2.3.4", "[::1]:80" → "::1"), or
// "0.0.0.0" when s holds no address.
func auditIP(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return "0.0.0.0"
}

// clipTo shortens s to at most n bytes of valid UTF-8.
func clipTo(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

// Bounds of the summary of a search request in request_parameters.
const (
	maxAuditParamValue = 512
	maxAuditParams     = 40
)

// SearchParameters summarises a search request for request_parameters: one
// entry per filter condition given ("filter.resource_regex", ...), the page
// size, and whether a page token was given (its content is not recorded).
// Long values are shortened, and the summary always fits an event.
func SearchParameters(f *Filter, pageSize int, pageToken string) map[string]string {
	p := map[string]string{"page_size": strconv.Itoa(pageSize)}
	if pageToken != "" {
		p["page_token"] = "present"
	}
	if f == nil {
		return p
	}
	put := func(k, v string) {
		if len(p) < maxAuditParams {
			p["filter."+k] = clipTo(v, maxAuditParamValue)
		}
	}
	if f.StartTime != nil {
		put("start_event_time", f.StartTime.UTC().Format(time.RFC3339Nano))
	}
	if f.EndTime != nil {
		put("end_event_time", f.EndTime.UTC().Format(time.RFC3339Nano))
	}
	for i := range NumFields {
		if f.Exact[i] != "" {
			put(Field(i).String()+"_exact", f.Exact[i])
		}
		if f.Regex[i] != "" {
			put(Field(i).String()+"_regex", f.Regex[i])
		}
	}
	if f.ReadOnly != nil {
		put("read_only", strconv.FormatBool(*f.ReadOnly))
	}
	if f.StatusCodeRegex != "" {
		put("status_code_regex", f.StatusCodeRegex)
	}
	for _, m := range []struct {
		name string
		m    map[string]string
	}{{"metadata_exact", f.MetadataExact}, {"metadata_regex", f.MetadataRegex}} {
		if len(m.m) == 0 {
			continue
		}
		if len(m.m) > MaxFilterMapItems {
			// Refused by the search: sorting and joining every entry,
			// to keep 512 bytes, cost a third of the server's CPU
			// for a refused search of 266,000 entries (4 MB).
			put(m.name, fmt.Sprintf("%d entries, over the limit of %d: not recorded", len(m.m), MaxFilterMapItems))
			continue
		}
		var b strings.Builder
		for i, k := range slices.Sorted(maps.Keys(m.m)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + m.m[k])
		}
		put(m.name, b.String())
	}
	for _, t := range []struct {
		name string
		ts   []EventType
	}{{"include_types", f.IncludeTypes}, {"exclude_types", f.ExcludeTypes}} {
		if len(t.ts) == 0 {
			continue
		}
		s := make([]string, len(t.ts))
		for i, x := range t.ts {
			s[i] = strconv.Itoa(int(x))
		}
		put(t.name, strings.Join(s, ","))
	}
	return p
}
