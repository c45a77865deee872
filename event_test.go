package audittrail_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
)

const validID = "b096430b-c7a8-47f2-a129-d9ae58cf454f"

var received = time.Date(2025, 8, 1, 12, 0, 0, 987654321, time.UTC)

// validEvent is an event that PrepareNewEvent accepts.
func validEvent() audittrail.NewEvent {
	return audittrail.NewEvent{Event: audittrail.Event{
		EventTime:   time.Date(2025, 8, 1, 11, 59, 59, 123456789, time.UTC),
		EventSource: "h2oai-enginemanager-server",
		Action:      "actions/enginemanager/daiEngines/CREATE",
		Principal:   "users/a2b3b8a6-05c6-47d1-8ae1-774113404975",
		SourceIP:    "1.1.1.1",
		Resource:    "//engine-manager/workspaces/w1/daiEngines/e1",
		Status:      &audittrail.Status{Code: 3, Message: "bad"},
		Metadata:    map[string]string{"env": "prod"},
		Type:        audittrail.TypeAPI,
	}}
}

func TestPrepareNewEvent(t *testing.T) {
	in := validEvent()
	in.Event.ID = "ignored"
	in.Event.Workspace = "workspaces/ignored"
	in.Event.ReceiveTime = time.Unix(1, 0)
	in.Event.LoginPrincipal = "someone"
	in.Event.Seq = 42
	in.Event.RequestParameters = map[string]string{"q": "1"}
	in.Event.EventTime = in.Event.EventTime.In(time.FixedZone("X", 3600))
	recv := received.In(time.FixedZone("Y", -3600))
	got, err := audittrail.PrepareNewEvent(strings.ToUpper(validID), in, recv, false)
	if err != nil {
		t.Fatal(err)
	}
	want := validEvent().Event
	want.ID = validID
	want.Workspace = "workspaces/w1"
	want.ReceiveTime = received
	want.RequestParameters = map[string]string{"q": "1"}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("PrepareNewEvent (-want +got):\n%s", diff)
	}
	if got.EventTime.Location() != time.UTC || got.ReceiveTime.Location() != time.UTC {
		t.Errorf("times are not in UTC: %v, %v", got.EventTime.Location(), got.ReceiveTime.Location())
	}
	if got.Name() != "events/"+validID {
		t.Errorf("Name() = %q", got.Name())
	}
	// The result shares nothing with the input.
	in.Event.Status.Code = 99
	in.Event.Metadata["env"] = "changed"
	in.Event.RequestParameters["q"] = "changed"
	if got.Status.Code != 3 || got.Metadata["env"] != "prod" || got.RequestParameters["q"] != "1" {
		t.Errorf("the prepared event aliases the input: %+v", got)
	}
}

func TestPrepareNewEventWorkspace(t *testing.T) {
	for _, c := range []struct {
		name     string
		resource string
		override *string
		want     string
	}{
		{"derived from a full name", "//engine-manager/workspaces/w1/daiEngines/e1", nil, "workspaces/w1"},
		{"derived from a relative name", "workspaces/w1/daiEngine/e1", nil, "workspaces/w1"},
		{"none", "//appstore/apps/a1", nil, ""},
		{"override", "//engine-manager/workspaces/w1/daiEngines/e1", ptr("workspaces/w9"), "workspaces/w9"},
		{"override with nothing", "//engine-manager/workspaces/w1/daiEngines/e1", ptr(""), ""},
	} {
		in := validEvent()
		in.Event.Resource = c.resource
		in.WorkspaceOverride = c.override
		got, err := audittrail.PrepareNewEvent(validID, in, received, false)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.Workspace != c.want {
			t.Errorf("%s: workspace %q, want %q", c.name, got.Workspace, c.want)
		}
	}
}

func TestPrepareNewEventRedaction(t *testing.T) {
	for _, c := range []struct{ ip, redacted string }{
		{"10.0.0.1", "private"},
		{"192.168.1.100", "private"},
		{"fd00::1", "private"},
		{"private", "private"},
		{"1.1.1.1", "1.1.1.1"},
		{"2001:db8::1", "2001:db8::1"},
	} {
		in := validEvent()
		in.Event.SourceIP = c.ip
		for _, redact := range []bool{false, true} {
			got, err := audittrail.PrepareNewEvent(validID, in, received, redact)
			if err != nil {
				t.Fatalf("%s: %v", c.ip, err)
			}
			want := c.ip
			if redact {
				want = c.redacted
			}
			if got.SourceIP != want {
				t.Errorf("PrepareNewEvent(%s, redact=%v): source_ip_address %q, want %q", c.ip, redact, got.SourceIP, want)
			}
		}
	}
}

// TestPrepareNewEventRules has one case per validation rule and limit: the
// case just inside the limit is accepted, the one just outside is refused
// with EInvalid and a message that names the field.
func TestPrepareNewEventRules(t *testing.T) {
	s := strings.Repeat
	manyMap := func(n int, key func(i int) string) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[key(i)] = "v"
		}
		return m
	}
	metaKey := func(i int) string { return "k" + strconv.Itoa(i) }
	type mod func(*audittrail.NewEvent)
	cases := []struct {
		name  string
		id    string // validID when empty
		mod   mod
		field string // "" when the event is valid; else a part of the message
	}{
		{"valid", "", func(*audittrail.NewEvent) {}, ""},

		{"event_id not a uuid", "invalid", nil, "event_id must be in UUIDv4 format"},
		{"event_id a hyphen", "-", nil, "event_id"},
		{"event_id version 1", "b096430b-c7a8-17f2-a129-d9ae58cf454f", nil, "event_id"},

		{"event_time missing", "", func(n *audittrail.NewEvent) { n.Event.EventTime = time.Time{} }, "event.event_time is required"},
		{"event_time at the minimum", "", func(n *audittrail.NewEvent) { n.Event.EventTime = audittrail.MinEventTime }, ""},
		{"event_time before the minimum", "", func(n *audittrail.NewEvent) { n.Event.EventTime = audittrail.MinEventTime.Add(-1) }, "event.event_time"},
		{"event_time just before the maximum", "", func(n *audittrail.NewEvent) { n.Event.EventTime = audittrail.MaxEventTime.Add(-1) }, ""},
		{"event_time at the maximum", "", func(n *audittrail.NewEvent) { n.Event.EventTime = audittrail.MaxEventTime }, "event.event_time"},
		{"event_time far out", "", func(n *audittrail.NewEvent) { n.Event.EventTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }, "event.event_time"},

		{"event_source missing", "", func(n *audittrail.NewEvent) { n.Event.EventSource = "" }, "event.event_source is required"},
		{"action missing", "", func(n *audittrail.NewEvent) { n.Event.Action = "" }, "event.action is required"},
		{"principal missing", "", func(n *audittrail.NewEvent) { n.Event.Principal = "" }, "event.principal is required"},
		{"source_ip_address missing", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "" }, "event.source_ip_address is required"},
		{"user_agent, resource, status, maps and type may be empty", "", func(n *audittrail.NewEvent) {
			n.Event.UserAgent, n.Event.Resource, n.Event.Status, n.Event.Metadata, n.Event.Type = "", "", nil, nil, 0
		}, ""},

		{"event_source at the limit", "", func(n *audittrail.NewEvent) { n.Event.EventSource = s("x", 1024) }, ""},
		{"event_source too long", "", func(n *audittrail.NewEvent) { n.Event.EventSource = s("x", 1025) }, "event.event_source is too long"},
		{"action at the limit", "", func(n *audittrail.NewEvent) { n.Event.Action = s("x", 1024) }, ""},
		{"action too long", "", func(n *audittrail.NewEvent) { n.Event.Action = s("x", 1025) }, "event.action is too long"},
		{"principal at the limit", "", func(n *audittrail.NewEvent) { n.Event.Principal = s("x", 1024) }, ""},
		{"principal too long", "", func(n *audittrail.NewEvent) { n.Event.Principal = s("x", 1025) }, "event.principal is too long"},
		{"source_ip_address too long", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = s("1", 1025) }, "event.source_ip_address is too long"},
		{"user_agent at the limit", "", func(n *audittrail.NewEvent) { n.Event.UserAgent = s("x", 1024) }, ""},
		{"user_agent too long", "", func(n *audittrail.NewEvent) { n.Event.UserAgent = s("x", 1025) }, "event.user_agent is too long"},
		{"resource at the limit", "", func(n *audittrail.NewEvent) { n.Event.Resource = s("x", 2048) }, ""},
		{"resource too long", "", func(n *audittrail.NewEvent) { n.Event.Resource = s("x", 2049) }, "event.resource is too long"},
		{"workspace_override at the limit", "", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("workspaces/" + s("x", 2048-11)) }, ""},
		{"workspace_override too long", "", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("workspaces/" + s("x", 2049-11)) }, "event.workspace_override is too long"},

		{"event_source not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.EventSource = "a\xff" }, "event.event_source is not valid UTF-8"},
		{"action not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.Action = "a\xff" }, "event.action is not valid UTF-8"},
		{"principal not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.Principal = "\xc3" }, "event.principal is not valid UTF-8"},
		{"user_agent not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.UserAgent = "\xed\xa0\x80" }, "event.user_agent is not valid UTF-8"},
		{"resource not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.Resource = "workspaces/\xff" }, "event.resource is not valid UTF-8"},
		{"workspace_override not UTF-8", "", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("workspaces/\xff") }, "event.workspace_override is not valid UTF-8"},

		{"source_ip_address IPv6", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "2001:db8::1" }, ""},
		{"source_ip_address private", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "private" }, ""},
		{"source_ip_address not an address", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "example.com" }, "event.source_ip_address"},
		{"source_ip_address with a port", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "1.1.1.1:80" }, "event.source_ip_address"},
		{"source_ip_address CIDR", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "10.0.0.0/8" }, "event.source_ip_address"},
		{"source_ip_address Private", "", func(n *audittrail.NewEvent) { n.Event.SourceIP = "Private" }, "event.source_ip_address"},

		{"workspace_override without the prefix", "", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("w1") }, "event.workspace_override"},
		{"workspace_override of another collection", "", func(n *audittrail.NewEvent) { n.WorkspaceOverride = ptr("projects/p1") }, "event.workspace_override"},

		{"type system", "", func(n *audittrail.NewEvent) { n.Event.Type = audittrail.TypeSystem }, ""},
		{"type unknown", "", func(n *audittrail.NewEvent) { n.Event.Type = 3 }, "event.type"},
		{"type negative", "", func(n *audittrail.NewEvent) { n.Event.Type = -1 }, "event.type"},

		{"status code negative", "", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Code: -5} }, ""},
		{"status message at the limit", "", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Message: s("x", 4096)} }, ""},
		{"status message too long", "", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Message: s("x", 4097)} }, "event.status.message is too long"},
		{"status message not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.Status = &audittrail.Status{Message: "\xff"} }, "event.status.message is not valid UTF-8"},

		{"metadata keys of the rule", "", func(n *audittrail.NewEvent) {
			n.Event.Metadata = map[string]string{"a": "", "a1": "", "a_b": "", "abc_123_x": "", s("a", 63): ""}
		}, ""},
		{"metadata key empty", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"": "v"} }, "event.metadata key"},
		{"metadata key upper case", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"Env": "v"} }, "event.metadata key"},
		{"metadata key starting with a digit", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"1a": "v"} }, "event.metadata key"},
		{"metadata key starting with _", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"_a": "v"} }, "event.metadata key"},
		{"metadata key ending with _", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"a_": "v"} }, "event.metadata key"},
		{"metadata key with -", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"a-b": "v"} }, "event.metadata key"},
		{"metadata key with a newline", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"ab\n": "v"} }, "event.metadata key"},
		{"metadata key too long", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{s("a", 64): "v"} }, "event.metadata key"},
		{"metadata at the entry limit", "", func(n *audittrail.NewEvent) { n.Event.Metadata = manyMap(64, metaKey) }, ""},
		{"metadata too many entries", "", func(n *audittrail.NewEvent) { n.Event.Metadata = manyMap(65, metaKey) }, "event.metadata has 65 entries"},
		{"metadata value at the limit", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"k": s("x", 4096)} }, ""},
		{"metadata value too long", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"k": s("x", 4097)} }, "event.metadata[k] is too long"},
		{"metadata value not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.Metadata = map[string]string{"k": "\xff"} }, "event.metadata[k] is not valid UTF-8"},

		{"request_parameters any key", "", func(n *audittrail.NewEvent) {
			n.Event.RequestParameters = map[string]string{"A-b c": "", "ключ": "", s("k", 256): ""}
		}, ""},
		{"request_parameters key empty", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{"": "v"} }, "event.request_parameters has an empty key"},
		{"request_parameters key too long", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{s("k", 257): "v"} }, "event.request_parameters key is too long"},
		{"request_parameters key not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{"\xff": "v"} }, "event.request_parameters key is not valid UTF-8"},
		{"request_parameters at the entry limit", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = manyMap(64, metaKey) }, ""},
		{"request_parameters too many entries", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = manyMap(65, metaKey) }, "event.request_parameters has 65 entries"},
		{"request_parameters value too long", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{"q": s("x", 4097)} }, "event.request_parameters[q] is too long"},
		{"request_parameters value not UTF-8", "", func(n *audittrail.NewEvent) { n.Event.RequestParameters = map[string]string{"q": "\xff"} }, "event.request_parameters[q] is not valid UTF-8"},

		{"event of 64 KiB", "", func(n *audittrail.NewEvent) { n.Event.Metadata = sized(t, n, audittrail.MaxEventBytes) }, ""},
		{"event over 64 KiB", "", func(n *audittrail.NewEvent) { n.Event.Metadata = sized(t, n, audittrail.MaxEventBytes+1) }, "event is too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := validEvent()
			if c.mod != nil {
				c.mod(&in)
			}
			id := c.id
			if id == "" {
				id = validID
			}
			got, err := audittrail.PrepareNewEvent(id, in, received, false)
			if c.field == "" {
				if err != nil {
					t.Fatalf("refused a valid event: %v", err)
				}
				if got == nil {
					t.Fatal("nil event and nil error")
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error naming %q", c.field)
			}
			if got != nil {
				t.Errorf("an event (%+v) with the error", got)
			}
			if code := audittrail.ErrorCode(err); code != audittrail.EInvalid {
				t.Errorf("code %q, want %q (%v)", code, audittrail.EInvalid, err)
			}
			if msg := audittrail.ErrorMessage(err); !strings.Contains(msg, c.field) {
				t.Errorf("message %q does not name %q", msg, c.field)
			}
		})
	}
}

// TestPrepareNewEventWorkspaceShape: an explicit workspace must have the form
// "workspaces/<id>" of a derived one (spec §2.1: Format "workspaces/*").
func TestPrepareNewEventWorkspaceShape(t *testing.T) {
	for _, ws := range []string{"workspaces/", "workspaces/w1/daiEngines/e1", "workspaces//"} {
		in := validEvent()
		in.WorkspaceOverride = ptr(ws)
		_, err := audittrail.PrepareNewEvent(validID, in, received, false)
		if audittrail.ErrorCode(err) != audittrail.EInvalid || !strings.Contains(audittrail.ErrorMessage(err), "event.workspace_override") {
			t.Errorf("workspace_override %q: error %v, want EInvalid naming event.workspace_override: no workspace derived from a resource has this shape", ws, err)
		}
	}
}

// sized returns metadata that brings the strings of n to exactly total bytes.
func sized(t *testing.T, n *audittrail.NewEvent, total int) map[string]string {
	e := n.Event
	used := len(e.EventSource) + len(e.Action) + len(e.Principal) + len(e.SourceIP) + len(e.UserAgent) +
		len(e.Resource) + len(audittrail.DeriveWorkspace(e.Resource)) + len(e.Status.Message)
	for k, v := range e.RequestParameters {
		used += len(k) + len(v)
	}
	m := map[string]string{}
	rest := total - used
	for i := 0; rest > 0; i++ {
		k := "k" + strconv.Itoa(i)
		v := rest - len(k)
		if v > audittrail.MaxMapValueLen {
			v = audittrail.MaxMapValueLen - 16 // leave room for the next key
		}
		m[k] = strings.Repeat("v", v)
		rest -= len(k) + v
	}
	if rest != 0 || len(m) > audittrail.MaxMapEntries {
		t.Fatalf("sized: %d bytes left, %d entries", rest, len(m))
	}
	return m
}

func TestValidateEventID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f", true},
		{"B096430B-C7A8-47F2-A129-D9AE58CF454F", true},
		{"00000000-0000-4000-8000-000000000000", true},
		{"00000000-0000-4000-b000-000000000000", true},
		{"", false},
		{"invalid", false},
		{"b096430b-c7a8-17f2-a129-d9ae58cf454f", false}, // version 1
		{"b096430b-c7a8-57f2-a129-d9ae58cf454f", false}, // version 5
		{"00000000-0000-0000-0000-000000000000", false}, // nil UUID
		{"b096430bc7a847f2a129d9ae58cf454f", false},     // no hyphens
		{"{b096430b-c7a8-47f2-a129-d9ae58cf454f}", false},
		{"urn:uuid:b096430b-c7a8-47f2-a129-d9ae58cf454f", false},
		{" b096430b-c7a8-47f2-a129-d9ae58cf454f", false},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454f ", false},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454", false},
		{"b096430b-c7a8-47f2-a129-d9ae58cf454g", false},
		{"b096430b_c7a8_47f2_a129_d9ae58cf454f", false},
	} {
		checkEventID(t, c.id, c.ok)
	}
}

// TestValidateEventIDVariant: the version field means something only in the
// RFC 4122 variant (bits 10xx in the 17th hex digit); with another variant an
// id is no UUIDv4 (RFC 9562 §4.1 and §4.2; Python's uuid.UUID(id).version is
// None for these ids).
func TestValidateEventIDVariant(t *testing.T) {
	for _, id := range []string{
		"b096430b-c7a8-47f2-0129-d9ae58cf454f", // NCS variant
		"b096430b-c7a8-47f2-7129-d9ae58cf454f", // NCS variant
		"b096430b-c7a8-47f2-c129-d9ae58cf454f", // Microsoft variant
		"b096430b-c7a8-47f2-f129-d9ae58cf454f", // reserved variant
	} {
		checkEventID(t, id, false)
	}
	for _, id := range []string{
		"b096430b-c7a8-47f2-8129-d9ae58cf454f",
		"b096430b-c7a8-47f2-9129-d9ae58cf454f",
		"b096430b-c7a8-47f2-a129-d9ae58cf454f",
		"b096430b-c7a8-47f2-b129-d9ae58cf454f",
	} {
		checkEventID(t, id, true)
	}
}

func checkEventID(t *testing.T, id string, ok bool) {
	t.Helper()
	c := struct {
		id string
		ok bool
	}{id, ok}
	{
		err := audittrail.ValidateEventID(c.id)
		if c.ok && err != nil {
			t.Errorf("ValidateEventID(%q) = %v, want nil", c.id, err)
		}
		if !c.ok {
			if err == nil {
				t.Errorf("ValidateEventID(%q) = nil, want an error", c.id)
			} else if audittrail.ErrorCode(err) != audittrail.EInvalid || audittrail.ErrorMessage(err) != "event_id must be in UUIDv4 format" {
				t.Errorf("ValidateEventID(%q) = %v, want EInvalid %q", c.id, err, "event_id must be in UUIDv4 format")
			}
		}
	}
}

func TestDeriveWorkspace(t *testing.T) {
	for _, c := range []struct{ resource, want string }{
		{"", ""},
		{"rsrc1", ""},
		{"workspaces/w1", "workspaces/w1"},
		{"workspaces/w1/daiEngine/e1", "workspaces/w1"},
		{"workspaces/w1/daiEngines/e1/workspaces/w2", "workspaces/w1"},
		{"//engine-manager/workspaces/8dcc8393-1234/daiEngines/new-dai-engine-7268", "workspaces/8dcc8393-1234"},
		{"//engine-manager/workspaces/w1/daiEngines", "workspaces/w1"},
		{"//engine-manager/workspaces/default", "workspaces/default"},
		{"//appstore/apps/a1", ""},
		{"//engine-manager/workspaces", ""},
		{"//engine-manager/workspaces/", ""},
		{"workspaces/", ""},
		{"workspaces//w1", ""},
		{"a/workspaces/w1", "workspaces/w1"},
		{"/workspaces/w1", "workspaces/w1"},
		// A service called "workspaces" is not a workspace segment.
		{"//workspaces/w1/x", ""},
		{"//workspaces/workspaces/w1", "workspaces/w1"},
		{"//workspaces/a/workspaces/w2", "workspaces/w2"},
		{"///workspaces/w1", "workspaces/w1"},
		{"Workspaces/w1", ""},
		{"workspace/w1", ""},
		{"myworkspaces/w1", ""},
		{"workspaces/w1?x=y", "workspaces/w1?x=y"},
	} {
		if got := audittrail.DeriveWorkspace(c.resource); got != c.want {
			t.Errorf("DeriveWorkspace(%q) = %q, want %q", c.resource, got, c.want)
		}
	}
}

func TestRedactIP(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"172.32.0.1", "172.32.0.1"},
		{"172.15.255.255", "172.15.255.255"},
		{"192.168.1.100", "private"},
		{"192.169.0.1", "192.169.0.1"},
		{"127.0.0.1", "private"},
		{"127.1.2.3", "private"},
		{"169.254.0.1", "private"},
		{"224.0.0.1", "private"}, // link-local multicast
		{"0.0.0.0", "private"},
		{"::1", "private"},
		{"::", "private"},
		{"fe80::1", "private"},
		{"fe80::1%eth0", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"ff02::1", "private"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:1.1.1.1", "::ffff:1.1.1.1"},
		{"1.1.1.1", "1.1.1.1"},
		{"8.8.8.8", "8.8.8.8"},
		{"100.64.0.1", "100.64.0.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"2606:4700::1111", "2606:4700::1111"},
		{"private", "private"},
		{"not an address", "not an address"},
		{"", ""},
	} {
		if got := audittrail.RedactIP(c.in); got != c.want {
			t.Errorf("RedactIP(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStatusCodeString(t *testing.T) {
	for _, c := range []struct {
		st   *audittrail.Status
		want string
	}{
		{nil, ""},
		{&audittrail.Status{}, "0"},
		{&audittrail.Status{Code: 3}, "3"},
		{&audittrail.Status{Code: 16}, "16"},
		{&audittrail.Status{Code: -7}, "-7"},
		{&audittrail.Status{Code: 2147483647}, "2147483647"},
		{&audittrail.Status{Code: -2147483648}, "-2147483648"},
	} {
		e := audittrail.Event{Status: c.st}
		if got := e.StatusCodeString(); got != c.want {
			t.Errorf("StatusCodeString(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

func TestSameContent(t *testing.T) {
	base := func() *audittrail.Event {
		e, err := audittrail.PrepareNewEvent(validID, validEvent(), received, false)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := base()
	// Server-set fields do not count; the time zone does not either.
	b := base()
	b.ReceiveTime, b.Seq, b.LoginPrincipal = b.ReceiveTime.Add(time.Hour), 7, "x"
	b.EventTime = b.EventTime.In(time.FixedZone("X", 3600))
	b.RequestParameters = map[string]string{}
	if !a.SameContent(b) || !b.SameContent(a) {
		t.Error("SameContent is false for a retry")
	}
	for name, mod := range map[string]func(*audittrail.Event){
		"id":                 func(e *audittrail.Event) { e.ID = "other" },
		"event_time":         func(e *audittrail.Event) { e.EventTime = e.EventTime.Add(1) },
		"event_source":       func(e *audittrail.Event) { e.EventSource += "x" },
		"action":             func(e *audittrail.Event) { e.Action += "x" },
		"read_only":          func(e *audittrail.Event) { e.ReadOnly = !e.ReadOnly },
		"status nil":         func(e *audittrail.Event) { e.Status = nil },
		"status code":        func(e *audittrail.Event) { e.Status = &audittrail.Status{Code: 4, Message: "bad"} },
		"status message":     func(e *audittrail.Event) { e.Status = &audittrail.Status{Code: 3, Message: "Bad"} },
		"principal":          func(e *audittrail.Event) { e.Principal += "x" },
		"source_ip_address":  func(e *audittrail.Event) { e.SourceIP = "1.1.1.2" },
		"user_agent":         func(e *audittrail.Event) { e.UserAgent = "x" },
		"resource":           func(e *audittrail.Event) { e.Resource += "x" },
		"workspace":          func(e *audittrail.Event) { e.Workspace = "" },
		"metadata value":     func(e *audittrail.Event) { e.Metadata = map[string]string{"env": "dev"} },
		"metadata key":       func(e *audittrail.Event) { e.Metadata = map[string]string{"env": "prod", "x": ""} },
		"request_parameters": func(e *audittrail.Event) { e.RequestParameters = map[string]string{"": ""} },
		"type":               func(e *audittrail.Event) { e.Type = audittrail.TypeSystem },
	} {
		b := base()
		mod(b)
		if a.SameContent(b) || b.SameContent(a) {
			t.Errorf("SameContent is true though %s differs", name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkPrepareNewEvent prepares the benchmark's generated events (the
// check and copy every ingested event goes through).
func BenchmarkPrepareNewEvent(b *testing.B) {
	g := sample.New(1, sample.Options{Events: 1_000_000})
	type in struct {
		id string
		ne audittrail.NewEvent
	}
	events := make([]in, 1000)
	for i := range events {
		events[i].id, events[i].ne = g.Next()
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := &events[i%len(events)]
		if _, err := audittrail.PrepareNewEvent(e.id, e.ne, now, true); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestNewEventID: a new id is a valid UUIDv4 whose first 48 bits are the
// time in milliseconds, so that ids made later sort after; ids made in the
// same millisecond differ.
func TestNewEventID(t *testing.T) {
	base := time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		at := base.Add(time.Duration(i/4) * time.Millisecond) // four ids per millisecond
		id := audittrail.NewEventID(at)
		if err := audittrail.ValidateEventID(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("id %s made twice", id)
		}
		seen[id] = true
		hex := strings.ReplaceAll(id[:13], "-", "")
		ms, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || int64(ms) != at.UnixMilli() {
			t.Fatalf("id %s: leading 48 bits %x, want the time %d ms", id, ms, at.UnixMilli())
		}
		if i%4 == 0 && id[:13] <= prev {
			t.Fatalf("id %s made at %v does not sort after %s made a millisecond earlier", id, at, prev)
		}
		prev = id[:13]
	}
}
