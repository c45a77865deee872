package keycloak

import (
	"crypto/sha1"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
)

// Kind is one of the two event streams of a realm.
type Kind string

const (
	KindUser  Kind = "user"  // GET /admin/realms/{realm}/events
	KindAdmin Kind = "admin" // GET /admin/realms/{realm}/admin-events
)

// DefaultEventSource is the event_source of the H2O service's Keycloak
// events (the compatibility spec, §8).
const DefaultEventSource = "thirdparty-chainguard-bitnamikeycloak"

// UserEvent is Keycloak's EventRepresentation: a login, a logout, a token
// exchange, ... of a user or a client of the realm.
type UserEvent struct {
	ID        string            `json:"id,omitempty"`
	Time      int64             `json:"time"` // Unix milliseconds
	Type      string            `json:"type"`
	RealmID   string            `json:"realmId,omitempty"`
	ClientID  string            `json:"clientId,omitempty"`
	UserID    string            `json:"userId,omitempty"`
	SessionID string            `json:"sessionId,omitempty"`
	IPAddress string            `json:"ipAddress,omitempty"`
	Error     string            `json:"error,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// AuthDetails is who made an admin request.
type AuthDetails struct {
	RealmID   string `json:"realmId,omitempty"`
	ClientID  string `json:"clientId,omitempty"` // the client's internal id, not its clientId
	UserID    string `json:"userId,omitempty"`
	IPAddress string `json:"ipAddress,omitempty"`
}

// AdminEvent is Keycloak's AdminEventRepresentation: a change made through
// the admin API or console. Its representation (the resource's JSON, when
// the realm records it) is not forwarded: it can be large and hold
// personal data, and the resource path names what changed.
type AdminEvent struct {
	ID             string            `json:"id,omitempty"`
	Time           int64             `json:"time"` // Unix milliseconds
	RealmID        string            `json:"realmId,omitempty"`
	AuthDetails    AuthDetails       `json:"authDetails"`
	OperationType  string            `json:"operationType"`
	ResourceType   string            `json:"resourceType,omitempty"`
	ResourcePath   string            `json:"resourcePath,omitempty"`
	Representation string            `json:"representation,omitempty"`
	Error          string            `json:"error,omitempty"`
	Details        map[string]string `json:"details,omitempty"`
}

// Limits of the conversion (docs/limits.md, "Keycloak forwarding"): they
// keep every converted event within the server's limits, whatever Keycloak
// sends.
const (
	MaxDetails        = 32   // details copied into metadata, in key order; the others are counted in kc_details_dropped
	MaxDetailValueLen = 1024 // bytes of a detail's value; longer values are cut (at a character boundary)
	maxIDLen          = 255  // bytes of an id (user, client, session, event) copied into a field
)

// Codes of the status of a failed event (google.rpc.Code values).
const (
	codeUnknown          = 2
	codePermissionDenied = 7
	codeUnauthenticated  = 16
)

// namespace is the namespace of the event ids derived from Keycloak events
// (EventID). Changing it would make every re-read event a new one.
var namespace = uuid.MustParse("5d3c1f0e-8a7b-4c42-9b1e-6f2a0d4e8c71")

// EventID returns the id of the audit event of a Keycloak event: a UUID
// derived, as a version 5 UUID is, from the SHA-1 of the realm, the kind
// and key (Keycloak's event id, or the canonical JSON of an event without
// one), and then marked version 4, since the service accepts only UUIDv4
// ids. A re-read event gets the same id, so creating it again is a retry.
func EventID(realm string, kind Kind, key string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(realm))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var u uuid.UUID
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

// key returns what identifies e: its id, or its canonical JSON (encoding/json
// writes struct fields in order and map keys sorted).
func key(id string, e any) string {
	if id != "" {
		return "id:" + id
	}
	b, _ := json.Marshal(e) // strings and maps of strings: cannot fail
	return "json:" + string(b)
}

// Converter turns Keycloak events of one realm into audit events.
type Converter struct {
	Realm       string // the realm's name, as in the admin API's paths
	EventSource string // DefaultEventSource unless set
}

func (c Converter) source() string {
	if c.EventSource == "" {
		return DefaultEventSource
	}
	return c.EventSource
}

// User converts a user event. The conversion is deterministic: the same
// event gives the same request, so a re-read event is a retry.
func (c Converter) User(e UserEvent) audittrail.CreateRequest {
	md := map[string]string{
		"kc_kind":  string(KindUser),
		"kc_realm": clip(c.Realm, maxIDLen),
		"kc_type":  clip(e.Type, maxIDLen),
	}
	setID(md, "kc_event_id", e.ID)
	setID(md, "kc_client_id", e.ClientID)
	setID(md, "kc_session_id", e.SessionID)
	setID(md, "kc_user_id", e.UserID)
	ip := sourceIP(e.IPAddress, md)
	addDetails(md, e.Details)
	resource := "realms/" + c.Realm
	if e.ClientID != "" {
		resource += "/clients/" + e.ClientID
	}
	ev := audittrail.Event{
		EventTime:   time.UnixMilli(e.Time).UTC(),
		EventSource: c.source(),
		Action:      "actions/keycloak/events/" + orUnknown(e.Type),
		Status:      userStatus(e),
		Principal:   principal(e.UserID),
		SourceIP:    ip,
		Resource:    clip(resource, audittrail.MaxResourceLen),
		Metadata:    md,
		Type:        audittrail.TypeAPI,
	}
	return audittrail.CreateRequest{EventID: EventID(c.Realm, KindUser, key(e.ID, e)), Event: audittrail.NewEvent{Event: ev}}
}

// Admin converts an admin event, as User does a user event.
func (c Converter) Admin(e AdminEvent) audittrail.CreateRequest {
	md := map[string]string{
		"kc_kind":           string(KindAdmin),
		"kc_realm":          c.Realm,
		"kc_operation_type": clip(e.OperationType, maxIDLen),
	}
	if e.ResourceType != "" {
		md["kc_resource_type"] = clip(e.ResourceType, maxIDLen)
	}
	setID(md, "kc_event_id", e.ID)
	setID(md, "kc_client_id", e.AuthDetails.ClientID)
	setID(md, "kc_user_id", e.AuthDetails.UserID)
	setID(md, "kc_auth_realm_id", e.AuthDetails.RealmID)
	ip := sourceIP(e.AuthDetails.IPAddress, md)
	addDetails(md, e.Details)
	resource := "realms/" + c.Realm
	if p := strings.Trim(e.ResourcePath, "/"); p != "" {
		resource += "/" + p
	}
	var status *audittrail.Status
	if e.Error == "" {
		status = &audittrail.Status{Code: 0}
	} else {
		status = &audittrail.Status{Code: codeUnknown, Message: clip(e.Error, audittrail.MaxStatusMessage)}
	}
	ev := audittrail.Event{
		EventTime:   time.UnixMilli(e.Time).UTC(),
		EventSource: c.source(),
		Action:      "actions/keycloak/admin/" + orUnknown(e.ResourceType) + "/" + orUnknown(e.OperationType),
		Status:      status,
		Principal:   principal(e.AuthDetails.UserID),
		SourceIP:    ip,
		Resource:    clip(resource, audittrail.MaxResourceLen),
		Metadata:    md,
		Type:        audittrail.TypeAPI,
	}
	return audittrail.CreateRequest{EventID: EventID(c.Realm, KindAdmin, key(e.ID, e)), Event: audittrail.NewEvent{Event: ev}}
}

// userStatus is OK without an error; with one, UNAUTHENTICATED for the
// failures of an authentication (a login, a token request), PERMISSION_DENIED
// for a refusal of something authenticated, UNKNOWN otherwise.
func userStatus(e UserEvent) *audittrail.Status {
	if e.Error == "" {
		return &audittrail.Status{Code: 0}
	}
	code := int32(codeUnknown)
	switch {
	case e.Error == "access_denied" || e.Error == "not_allowed" || e.Error == "consent_denied" || e.Error == "user_not_allowed":
		code = codePermissionDenied
	case strings.Contains(e.Type, "LOGIN") || strings.Contains(e.Type, "TOKEN") || strings.Contains(e.Type, "AUTH"):
		code = codeUnauthenticated
	}
	return &audittrail.Status{Code: code, Message: clip(e.Error, audittrail.MaxStatusMessage)}
}

// principal names the user: Keycloak's user id is the sub of the user's
// tokens, which is how H2O names users. An event without a user (a failed
// login of an unknown user name) is users/unknown; the name tried is in
// kc_detail_username.
func principal(userID string) string {
	if userID == "" {
		return "users/unknown"
	}
	return "users/" + clip(userID, maxIDLen)
}

// sourceIP returns the event's address, or 0.0.0.0 when it has none or one
// the service does not accept (the address as sent is then in
// kc_ip_address).
func sourceIP(s string, md map[string]string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return s
	}
	if s != "" {
		md["kc_ip_address"] = clip(s, MaxDetailValueLen)
	}
	return "0.0.0.0"
}

func setID(md map[string]string, k, v string) {
	if v != "" {
		md[k] = clip(v, maxIDLen)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "UNKNOWN"
	}
	return clip(s, maxIDLen)
}

// addDetails copies details into md as kc_detail_<key>: keys in sorted
// order, each made a metadata key (lower case; a character other than a-z,
// 0-9 and _ becomes _; cut to the key limit), values cut to
// MaxDetailValueLen bytes. A key that is then empty, or the same as an
// earlier one's, and the keys past MaxDetails are dropped, and counted in
// kc_details_dropped.
func addDetails(md map[string]string, details map[string]string) {
	keys := make([]string, 0, len(details))
	for k := range details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	kept, dropped := 0, 0
	for _, k := range keys {
		mk := metadataKey("kc_detail_", k)
		if _, dup := md[mk]; mk == "" || dup || kept == MaxDetails {
			dropped++
			continue
		}
		md[mk] = clip(details[k], MaxDetailValueLen)
		kept++
	}
	if dropped > 0 {
		md["kc_details_dropped"] = strconv.Itoa(dropped)
	}
}

// metadataKey returns prefix+k made a metadata key
// (^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$), or "" when nothing of k is left.
func metadataKey(prefix, k string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range strings.ToLower(k) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	s = strings.TrimRight(s, "_")
	if len(s) <= len(prefix) {
		return ""
	}
	return s
}

// clip makes s valid UTF-8 and cuts it to at most n bytes at a character
// boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
