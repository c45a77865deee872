package audittrail

import (
	"maps"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// EventType classifies events. The values are those of the wire enum.
type EventType int32

const (
	TypeUnspecified EventType = 0
	TypeAPI         EventType = 1
	TypeSystem      EventType = 2
)

// Valid reports whether t is one of the known types.
func (t EventType) Valid() bool { return t >= TypeUnspecified && t <= TypeSystem }

// Status is the outcome of the audited request.
type Status struct {
	Code    int32 // a google.rpc.Code value by convention
	Message string
}

// Event is one audited action. Fields marked "server" are set by the service,
// whatever a producer sent.
type Event struct {
	ID                string    // UUIDv4; the resource name is "events/" + ID
	EventTime         time.Time // when it happened
	ReceiveTime       time.Time // server: when the server received it
	EventSource       string
	Action            string
	ReadOnly          bool
	Status            *Status // nil: the event carries no status (matches status_code_regex "^$")
	Principal         string
	LoginPrincipal    string // server: resolved at search time
	SourceIP          string
	UserAgent         string
	Resource          string
	Workspace         string // server: the override if given, else derived from Resource
	RequestParameters map[string]string
	Metadata          map[string]string
	Type              EventType
	// Seq is the event's position in the log: gap-free and increasing in
	// commit order, starting at 1. Set by the store.
	Seq uint64
}

// Clone returns a deep copy of e: the copy shares no status or map with e.
func (e *Event) Clone() *Event {
	c := *e
	if e.Status != nil {
		st := *e.Status
		c.Status = &st
	}
	c.RequestParameters = maps.Clone(e.RequestParameters)
	c.Metadata = maps.Clone(e.Metadata)
	return &c
}

// Name returns the resource name of the event.
func (e *Event) Name() string { return "events/" + e.ID }

// StatusCodeString is what status_code_regex matches: the decimal code, or
// "" when the event has no status.
func (e *Event) StatusCodeString() string {
	if e.Status == nil {
		return ""
	}
	return itoa(int64(e.Status.Code))
}

// SameContent reports whether e and o describe the same event, ignoring the
// fields the server sets on receipt (ReceiveTime, Seq, LoginPrincipal). It
// decides whether a create with a used id is an idempotent retry.
func (e *Event) SameContent(o *Event) bool {
	if (e.Status == nil) != (o.Status == nil) || (e.Status != nil && *e.Status != *o.Status) {
		return false
	}
	return e.ID == o.ID && e.EventTime.Equal(o.EventTime) && e.EventSource == o.EventSource &&
		e.Action == o.Action && e.ReadOnly == o.ReadOnly && e.Principal == o.Principal &&
		e.SourceIP == o.SourceIP && e.UserAgent == o.UserAgent && e.Resource == o.Resource &&
		e.Workspace == o.Workspace && e.Type == o.Type &&
		mapsEqual(e.RequestParameters, o.RequestParameters) && mapsEqual(e.Metadata, o.Metadata)
}

func mapsEqual(a, b map[string]string) bool { return len(a) == len(b) && maps.Equal(a, b) }

// Limits on what an event may hold. They keep one event small enough to index
// and return in a page of 1000, and are documented in docs/limits.md.
const (
	MaxFieldLen        = 1024      // event_source, action, principal, source_ip_address, user_agent
	MaxResourceLen     = 2048      // resource and workspace
	MaxMapEntries      = 64        // metadata and request_parameters, each
	MaxMapKeyLen       = 256       // request_parameters keys (metadata keys are limited to 63 by their rule)
	MaxMapValueLen     = 4096      // metadata and request_parameters values
	MaxStatusMessage   = 4096      // status.message
	MaxEventBytes      = 64 << 10  // all strings of one event together
	MaxBatch           = 1000      // requests in one BatchCreateEvents
	MaxRequestBodySize = 100 << 20 // bytes of one HTTP or gRPC request (a full batch of large events fits)
)

// Times outside this range cannot be stored (they do not fit the 64-bit
// nanosecond clock the storage orders by).
var (
	MinEventTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxEventTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	// MaxReceiveTime bounds the receive times a store accepts. The server
	// sets them from its clock; the bound (a little before the end of
	// 64-bit Unix nanoseconds) leaves room for raising them one
	// nanosecond per event (Store.Append).
	MaxReceiveTime = time.Date(2262, 4, 1, 0, 0, 0, 0, time.UTC)
)

// The checks of event ids, metadata keys and workspace names below are
// written out rather than done with uuid.Parse and regexps: every ingested
// event goes through them, and in a profile of the server's batch ingest
// the regexps and the id's parse-and-format round trip were a third of
// PrepareNewEvent. FuzzValidationRules compares them with the regexps and
// the uuid package.

// isWorkspaceName reports whether s matches ^workspaces/[^/]+$.
func isWorkspaceName(s string) bool {
	const prefix = "workspaces/"
	return len(s) > len(prefix) && s[:len(prefix)] == prefix && strings.IndexByte(s[len(prefix):], '/') < 0
}

// isMetadataKey reports whether k matches ^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$.
func isMetadataKey(k string) bool {
	if len(k) == 0 || len(k) > 63 || k[0] < 'a' || k[0] > 'z' || k[len(k)-1] == '_' {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidateEventID checks that id is a UUIDv4 in its canonical text form
// (hex digits in either case): 8-4-4-4-12 hex digits, version 4, the RFC
// 4122 variant.
func ValidateEventID(id string) error {
	if !isUUIDv4(id) {
		return Errorf(EInvalid, "event_id must be in UUIDv4 format")
	}
	return nil
}

// NewEventID returns a new event id for an event created at t: a UUIDv4 in
// form (version 4, the RFC 4122 variant, 74 random bits), whose first 48
// bits are t's Unix time in milliseconds, as a UUIDv7's are. Ids made one
// after the other then sort by time, so that a store's id index (the
// embedded store keys it by id) receives them at one end instead of
// scattered over its whole range, whose compactions then rewrite it all:
// the server's own events (the self-audit event of every search) are most
// of a read-heavy server's writes. BenchmarkSelfAuditWrites (pebblestore:
// 1,000,000 self-audit events, one per call from 16 writers, into a copy
// of a 10M-event store, the compactions they cause included) measures the
// CPU per event and the bytes Pebble writes for both kinds of ids. The id
// stays a valid UUIDv4 for every client (74 of its bits random); producers
// may send any UUIDv4.
func NewEventID(t time.Time) string {
	u := uuid.New() // random, version 4, RFC 4122 variant
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return u.String()
}

func isUUIDv4(id string) bool {
	if len(id) != 36 || id[14] != '4' {
		return false
	}
	switch id[19] {
	case '8', '9', 'a', 'b', 'A', 'B':
	default:
		return false
	}
	for i := range len(id) {
		c := id[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// NewEvent is what a producer sends: the event and, optionally, an explicit
// workspace that overrides the derivation from the resource.
type NewEvent struct {
	Event             Event
	WorkspaceOverride *string
}

// PrepareNewEvent validates a producer's event and returns the event to store:
// server-set fields are overwritten (ID, Workspace, ReceiveTime; LoginPrincipal
// and Seq cleared), and private source addresses are redacted when asked.
func PrepareNewEvent(id string, in NewEvent, receivedAt time.Time, redactPrivateIPs bool) (*Event, error) {
	if err := ValidateEventID(id); err != nil {
		return nil, err
	}
	e := in.Event
	e.ID = strings.ToLower(id)
	e.ReceiveTime = receivedAt.UTC()
	e.LoginPrincipal = ""
	e.Seq = 0
	if in.WorkspaceOverride != nil {
		e.Workspace = *in.WorkspaceOverride
	} else {
		e.Workspace = DeriveWorkspace(e.Resource)
	}
	e = *e.Clone()
	if err := validateEvent(&e); err != nil {
		return nil, err
	}
	if redactPrivateIPs {
		e.SourceIP = RedactIP(e.SourceIP)
	}
	e.EventTime = e.EventTime.UTC()
	return &e, nil
}

// EventTimeOutOfRange is the error of an event time outside [MinEventTime,
// MaxEventTime). The transport uses it for 0001-01-01T00:00:00Z, which it
// cannot hand on: as a time.Time it is the zero time, "no event_time".
func EventTimeOutOfRange(t time.Time) error {
	return Errorf(EInvalid, "event.event_time %s is out of range: it must be from %s to before %s",
		t.UTC().Format(time.RFC3339Nano), MinEventTime.Format(time.RFC3339), MaxEventTime.Format(time.RFC3339))
}

func validateEvent(e *Event) error {
	if e.EventTime.IsZero() {
		return Errorf(EInvalid, "event.event_time is required")
	}
	if e.EventTime.Before(MinEventTime) || !e.EventTime.Before(MaxEventTime) {
		return EventTimeOutOfRange(e.EventTime)
	}
	required := []struct{ name, value string }{
		{"event.event_source", e.EventSource},
		{"event.action", e.Action},
		{"event.principal", e.Principal},
		{"event.source_ip_address", e.SourceIP},
	}
	for _, f := range required {
		if f.value == "" {
			return Errorf(EInvalid, "%s is required", f.name)
		}
	}
	strs := []struct {
		name, value string
		max         int
	}{
		{"event.event_source", e.EventSource, MaxFieldLen},
		{"event.action", e.Action, MaxFieldLen},
		{"event.principal", e.Principal, MaxFieldLen},
		{"event.source_ip_address", e.SourceIP, MaxFieldLen},
		{"event.user_agent", e.UserAgent, MaxFieldLen},
		{"event.resource", e.Resource, MaxResourceLen},
		{"event.workspace_override", e.Workspace, MaxResourceLen},
	}
	total := 0
	for _, f := range strs {
		if err := checkString(f.name, f.value, f.max); err != nil {
			return err
		}
		total += len(f.value)
	}
	if e.SourceIP != "private" {
		if _, err := netip.ParseAddr(e.SourceIP); err != nil {
			return Errorf(EInvalid, "event.source_ip_address %q is not an IPv4 or IPv6 address (or \"private\")", clip(e.SourceIP))
		}
	}
	if e.Workspace != "" && !isWorkspaceName(e.Workspace) {
		return Errorf(EInvalid, "event.workspace_override %q must have the form \"workspaces/*\"", clip(e.Workspace))
	}
	if !e.Type.Valid() {
		return Errorf(EInvalid, "event.type %d is not a known event type", e.Type)
	}
	if e.Status != nil {
		if err := checkString("event.status.message", e.Status.Message, MaxStatusMessage); err != nil {
			return err
		}
		total += len(e.Status.Message)
	}
	n, err := checkMap("event.metadata", e.Metadata, func(k string) error {
		if !isMetadataKey(k) {
			return Errorf(EInvalid, "event.metadata key %q is invalid: keys have 1-63 characters of a-z, 0-9 and _, start with a letter and end with a letter or digit", clip(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	total += n
	n, err = checkMap("event.request_parameters", e.RequestParameters, func(k string) error {
		if k == "" {
			return Errorf(EInvalid, "event.request_parameters has an empty key")
		}
		return checkString("event.request_parameters key", k, MaxMapKeyLen)
	})
	if err != nil {
		return err
	}
	total += n
	if total > MaxEventBytes {
		return Errorf(EInvalid, "event is too large: its strings add up to %d bytes, the limit is %d", total, MaxEventBytes)
	}
	return nil
}

func checkMap(name string, m map[string]string, checkKey func(string) error) (int, error) {
	if len(m) > MaxMapEntries {
		return 0, Errorf(EInvalid, "%s has %d entries, the limit is %d", name, len(m), MaxMapEntries)
	}
	n := 0
	for k, v := range m {
		if err := checkKey(k); err != nil {
			return 0, err
		}
		if len(v) > MaxMapValueLen || !utf8.ValidString(v) {
			// The name is built only for the error: per entry it was an
			// allocation for every ingested event.
			return 0, checkString(name+"["+clip(k)+"]", v, MaxMapValueLen)
		}
		n += len(k) + len(v)
	}
	return n, nil
}

func checkString(name, v string, max int) error {
	if len(v) > max {
		return Errorf(EInvalid, "%s is too long: %d bytes, the limit is %d", name, len(v), max)
	}
	if !utf8.ValidString(v) {
		return Errorf(EInvalid, "%s is not valid UTF-8", name)
	}
	return nil
}

// clip shortens s for quoting in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "..."
}

// DeriveWorkspace returns "workspaces/<id>" for the first "workspaces/<id>"
// segment pair of a resource name, or "" when there is none. Both relative
// names ("workspaces/w1/daiEngines/e1") and full names
// ("//engine-manager/workspaces/w1/daiEngines/e1") are understood.
func DeriveWorkspace(resource string) string {
	full := strings.HasPrefix(resource, "//")
	// Segment i is resource[start:end]; walked without splitting the
	// resource (no allocation per event).
	for i, start := 0, 0; ; i++ {
		end := strings.IndexByte(resource[start:], '/')
		if end < 0 {
			return "" // the last segment: no segment follows it
		}
		end += start
		// In "//service/..." the first two segments are empty and the
		// third is the service name; a service called "workspaces" is not
		// a workspace segment.
		if resource[start:end] == "workspaces" && !(full && i == 2) {
			next := end + 1
			nextEnd := strings.IndexByte(resource[next:], '/')
			if nextEnd < 0 {
				nextEnd = len(resource)
			} else {
				nextEnd += next
			}
			if nextEnd > next {
				return resource[start:nextEnd] // "workspaces/" + the next segment
			}
		}
		start = end + 1
	}
}

// RedactIP returns "private" for private (RFC 1918) and unique local (RFC
// 4193), loopback, link-local (unicast and multicast) and unspecified
// addresses, and the address unchanged otherwise.
func RedactIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	a = a.Unmap()
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() {
		return "private"
	}
	return s
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
