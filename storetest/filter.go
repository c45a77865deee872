package storetest

import (
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

// filterEvent is one event of the filter fixture, named for the tables.
type filterEvent struct {
	name string
	in   audittrail.NewEvent
}

// filterFixture is a small set of events in which each filter condition of
// the tables below selects a known subset. Event i happens at base + i
// minutes, so the newest-first order is the reverse of the list.
func filterFixture() []filterEvent {
	ev := func(src, action, principal, ip, resource string, ro bool, status *audittrail.Status, md map[string]string, typ audittrail.EventType) audittrail.NewEvent {
		return audittrail.NewEvent{Event: audittrail.Event{
			EventSource: src, Action: action, Principal: principal, SourceIP: ip, Resource: resource,
			ReadOnly: ro, Status: status, Metadata: md, Type: typ,
		}}
	}
	st := func(code int32) *audittrail.Status { return &audittrail.Status{Code: code, Message: "m"} }
	f := []filterEvent{
		{"a", ev("h2oai-enginemanager-server", "actions/enginemanager/daiEngines/CREATE", "users/alice", "1.1.1.1",
			"//engine-manager/workspaces/w1/daiEngines/e1", false, st(0), map[string]string{"env": "prod", "team": "core"}, audittrail.TypeAPI)},
		{"b", ev("h2oai-appstore-server", "actions/appstore/apps/ADMIN_DELETE", "users/bob", "2001:db8::1",
			"//appstore/apps/a1", false, st(7), map[string]string{"env": "dev"}, audittrail.TypeAPI)},
		{"c", ev("h2oai-audittrail-server", "actions/audittrail/events/SEARCH", "users/alice", "private",
			"//audittrail/events", true, st(0), nil, audittrail.TypeAPI)},
		{"d", ev("thirdparty-chainguard-bitnamikeycloak", "LOGIN", "users/carol", "8.8.8.8",
			"", true, nil, map[string]string{"env": ""}, audittrail.TypeSystem)},
		{"e", ev("h2oai-enginemanager-server", "actions/enginemanager/daiEngines/DELETE", "services/appstore", "1.1.1.1",
			"workspaces/w2/daiEngines/e2", false, st(3), map[string]string{"team": "core-infra"}, audittrail.TypeUnspecified)},
		{"f", ev("h2oai-enginemanager-server", "actions/enginemanager/daiEngines/GET", "users/alice", "9.9.9.9",
			"//engine-manager/workspaces/w1/daiEngines/e1", true, st(13), map[string]string{"env": "prod", "region": "eu"}, audittrail.TypeAPI)},
		{"g", ev("h2oai-enginemanager-server-2", "actions/enginemanager/daiEngines/CREATE", "users/a\x00b", "1.1.1.10",
			"rsrc10", false, st(10), map[string]string{"envx": "prod"}, audittrail.TypeSystem)},
		{"h", ev("H2OAI-ENGINEMANAGER-SERVER", "create", "users/a", "1.1.1.1",
			"rsrc1", false, st(-3), map[string]string{"env": "prod\x00"}, audittrail.TypeAPI)},
	}
	f[5].in.WorkspaceOverride = ptr("workspaces/w9")
	f[7].in.Event.UserAgent = "curl"
	return f
}

type filterCase struct {
	name   string
	filter audittrail.Filter
	want   string // names of the matching events, in any order
}

func filterCases() []filterCase {
	minute := func(i int) *time.Time { return ptr(base.Add(time.Duration(i) * time.Minute)) }
	md := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	two := func(f1 audittrail.Field, v1 string, f2 audittrail.Field, v2 string) (a [audittrail.NumFields]string) {
		a[f1], a[f2] = v1, v2
		return a
	}
	const (
		src = audittrail.FieldEventSource
		res = audittrail.FieldResource
		pri = audittrail.FieldPrincipal
		ip  = audittrail.FieldSourceIP
		ws  = audittrail.FieldWorkspace
		act = audittrail.FieldAction
	)
	api, sys, unspec := audittrail.TypeAPI, audittrail.TypeSystem, audittrail.TypeUnspecified
	return []filterCase{
		{"none", audittrail.Filter{}, "abcdefgh"},
		{"empty strings and maps do not filter", audittrail.Filter{MetadataExact: md(), MetadataRegex: md(), IncludeTypes: []audittrail.EventType{}}, "abcdefgh"},

		{"event_source_exact", audittrail.Filter{Exact: exact(src, "h2oai-enginemanager-server")}, "aef"},
		{"event_source_exact is case sensitive", audittrail.Filter{Exact: exact(src, "H2OAI-ENGINEMANAGER-SERVER")}, "h"},
		{"event_source_regex unanchored", audittrail.Filter{Regex: regex(src, "enginemanager")}, "aefg"},
		{"event_source_regex anchored", audittrail.Filter{Regex: regex(src, "^h2oai-enginemanager-server$")}, "aef"},
		{"event_source_regex case-insensitive flag", audittrail.Filter{Regex: regex(src, "(?i)^h2oai-enginemanager-server$")}, "aefh"},
		{"event_source_regex alternation", audittrail.Filter{Regex: regex(src, "appstore|keycloak")}, "bd"},
		{"event_source_regex matching the empty string", audittrail.Filter{Regex: regex(src, "x*")}, "abcdefgh"},

		{"resource_exact", audittrail.Filter{Exact: exact(res, "rsrc1")}, "h"},
		{"resource_exact empty value is no filter", audittrail.Filter{Exact: exact(res, "")}, "abcdefgh"},
		{"resource_regex", audittrail.Filter{Regex: regex(res, "^(rsrc1|rsrc2)$")}, "h"},
		{"resource_regex prefix", audittrail.Filter{Regex: regex(res, "rsrc1")}, "gh"},
		{"resource_regex empty resource", audittrail.Filter{Regex: regex(res, "^$")}, "d"},
		{"resource_regex full names", audittrail.Filter{Regex: regex(res, `^//engine-manager/workspaces/[^/]+/daiEngines/`)}, "af"},

		{"principal_exact", audittrail.Filter{Exact: exact(pri, "users/alice")}, "acf"},
		{"principal_exact no prefix match", audittrail.Filter{Exact: exact(pri, "users/a")}, "h"},
		{"principal_exact with NUL", audittrail.Filter{Exact: exact(pri, "users/a\x00b")}, "g"},
		{"principal_regex", audittrail.Filter{Regex: regex(pri, "^services/")}, "e"},
		{"principal_regex dot matches NUL", audittrail.Filter{Regex: regex(pri, "^users/a.b$")}, "g"},

		{"source_ip_address_exact", audittrail.Filter{Exact: exact(ip, "1.1.1.1")}, "aeh"},
		{"source_ip_address_exact private", audittrail.Filter{Exact: exact(ip, "private")}, "c"},
		{"source_ip_address_regex ipv6", audittrail.Filter{Regex: regex(ip, ":")}, "b"},
		{"source_ip_address_regex unescaped dot", audittrail.Filter{Regex: regex(ip, "^1.1.1.1$")}, "aeh"},
		{"source_ip_address_regex prefix", audittrail.Filter{Regex: regex(ip, `^1\.1\.1\.1`)}, "aegh"},

		{"workspace_exact derived", audittrail.Filter{Exact: exact(ws, "workspaces/w1")}, "a"},
		{"workspace_exact override", audittrail.Filter{Exact: exact(ws, "workspaces/w9")}, "f"},
		{"workspace_exact relative resource", audittrail.Filter{Exact: exact(ws, "workspaces/w2")}, "e"},
		{"workspace_regex none", audittrail.Filter{Regex: regex(ws, "^$")}, "bcdgh"},
		{"workspace_regex any", audittrail.Filter{Regex: regex(ws, ".")}, "aef"},

		{"action_exact", audittrail.Filter{Exact: exact(act, "LOGIN")}, "d"},
		{"action_regex suffix", audittrail.Filter{Regex: regex(act, ".*CREATE$")}, "ag"},
		{"action_regex unanchored", audittrail.Filter{Regex: regex(act, "CREATE")}, "ag"},
		{"action_regex case", audittrail.Filter{Regex: regex(act, "^create$")}, "h"},
		{"action_regex alternation anchored", audittrail.Filter{Regex: regex(act, "^(LOGIN|create)$")}, "dh"},

		{"exact and regex on one field", audittrail.Filter{Exact: exact(src, "h2oai-enginemanager-server"), Regex: regex(src, "audittrail")}, ""},
		{"exact and regex on one field both hold", audittrail.Filter{Exact: exact(act, "LOGIN"), Regex: regex(act, "^L")}, "d"},

		{"read_only true", audittrail.Filter{ReadOnly: ptr(true)}, "cdf"},
		{"read_only false", audittrail.Filter{ReadOnly: ptr(false)}, "abegh"},

		{"status_code_regex no status", audittrail.Filter{StatusCodeRegex: "^$"}, "d"},
		{"status_code_regex OK", audittrail.Filter{StatusCodeRegex: "^0$"}, "ac"},
		{"status_code_regex OK or INVALID_ARGUMENT", audittrail.Filter{StatusCodeRegex: "^(0|3)$"}, "ace"},
		{"status_code_regex unanchored", audittrail.Filter{StatusCodeRegex: "1"}, "fg"},
		{"status_code_regex decimal", audittrail.Filter{StatusCodeRegex: "^1[0-9]$"}, "fg"},
		{"status_code_regex negative", audittrail.Filter{StatusCodeRegex: "^-"}, "h"},
		{"status_code_regex 3 at the end", audittrail.Filter{StatusCodeRegex: "3$"}, "efh"},
		{"status_code_regex any status", audittrail.Filter{StatusCodeRegex: "."}, "abcefgh"},
		{"status_code_regex matching empty", audittrail.Filter{StatusCodeRegex: "^$|^7$"}, "bd"},

		{"metadata_exact", audittrail.Filter{MetadataExact: md("env", "prod")}, "af"},
		{"metadata_exact empty value needs the key", audittrail.Filter{MetadataExact: md("env", "")}, "d"},
		{"metadata_exact all keys", audittrail.Filter{MetadataExact: md("env", "prod", "team", "core")}, "a"},
		{"metadata_exact absent key", audittrail.Filter{MetadataExact: md("missing", "")}, ""},
		{"metadata_exact no prefix match", audittrail.Filter{MetadataExact: md("team", "core-")}, ""},
		{"metadata_regex presence", audittrail.Filter{MetadataRegex: md("env", "")}, "abdfh"},
		{"metadata_regex empty value", audittrail.Filter{MetadataRegex: md("env", "^$")}, "d"},
		{"metadata_regex unanchored", audittrail.Filter{MetadataRegex: md("team", "core")}, "ae"},
		{"metadata_regex anchored", audittrail.Filter{MetadataRegex: md("team", "^core$")}, "a"},
		{"metadata_regex all keys", audittrail.Filter{MetadataRegex: md("env", "^prod", "region", ".")}, "f"},
		{"metadata_regex absent key never matches", audittrail.Filter{MetadataRegex: md("region", "x*")}, "f"},
		{"metadata_regex NUL", audittrail.Filter{MetadataRegex: md("env", "\x00$")}, "h"},
		{"metadata exact and regex", audittrail.Filter{MetadataExact: md("env", "prod"), MetadataRegex: md("team", ".")}, "a"},

		{"include_types", audittrail.Filter{IncludeTypes: []audittrail.EventType{sys}}, "dg"},
		{"include_types unspecified", audittrail.Filter{IncludeTypes: []audittrail.EventType{unspec}}, "e"},
		{"include_types two", audittrail.Filter{IncludeTypes: []audittrail.EventType{unspec, sys, sys}}, "deg"},
		{"exclude_types", audittrail.Filter{ExcludeTypes: []audittrail.EventType{api}}, "deg"},
		{"exclude_types all", audittrail.Filter{ExcludeTypes: []audittrail.EventType{api, sys, unspec}}, ""},
		{"include and exclude", audittrail.Filter{IncludeTypes: []audittrail.EventType{api, sys}, ExcludeTypes: []audittrail.EventType{api}}, "dg"},

		{"start_event_time inclusive", audittrail.Filter{StartTime: minute(5)}, "fgh"},
		{"end_event_time exclusive", audittrail.Filter{EndTime: minute(2)}, "ab"},
		{"time range", audittrail.Filter{StartTime: minute(2), EndTime: minute(4)}, "cd"},
		{"time range of one nanosecond", audittrail.Filter{StartTime: minute(3), EndTime: ptr(minute(3).Add(1))}, "d"},
		{"time range between events", audittrail.Filter{StartTime: ptr(minute(3).Add(1)), EndTime: minute(4)}, ""},

		{"combination", audittrail.Filter{Exact: exact(pri, "users/alice"), ReadOnly: ptr(true)}, "cf"},
		{"combination of everything", audittrail.Filter{
			StartTime: minute(0), EndTime: minute(6),
			Exact:           two(src, "h2oai-enginemanager-server", pri, "users/alice"),
			Regex:           two(act, "daiEngines", ws, "^workspaces/w[0-9]$"),
			ReadOnly:        ptr(true),
			StatusCodeRegex: "^1",
			MetadataExact:   md("env", "prod"),
			MetadataRegex:   md("region", "^eu$"),
			IncludeTypes:    []audittrail.EventType{api},
			ExcludeTypes:    []audittrail.EventType{sys},
		}, "f"},
		{"combination, one condition fails", audittrail.Filter{
			StartTime: minute(0), EndTime: minute(6),
			Exact:           two(src, "h2oai-enginemanager-server", pri, "users/alice"),
			Regex:           two(act, "daiEngines", ws, "^workspaces/w[0-9]$"),
			ReadOnly:        ptr(true),
			StatusCodeRegex: "^1",
			MetadataExact:   md("env", "prod"),
			MetadataRegex:   md("region", "^us$"),
		}, ""},
	}
}

func (s *suite) testFilter(t *testing.T) {
	f := s.open(t)
	fixture := filterFixture()
	var in []*audittrail.Event
	byID := map[string]string{}
	for i, fe := range fixture {
		fe.in.Event.EventTime = base.Add(time.Duration(i) * time.Minute)
		e, err := audittrail.PrepareNewEvent(idOf(uint64(i+1)), fe.in, now, false)
		if err != nil {
			t.Fatalf("fixture event %s: %v", fe.name, err)
		}
		in = append(in, e)
		byID[e.ID] = fe.name
	}
	// Two batches, to exercise more than one write.
	stored := f.append(in[:3]...)
	stored = append(stored, f.append(in[3:]...)...)
	svc := newService(f.store, key1)
	names := func(events []*audittrail.Event) string {
		var b []byte
		for _, e := range events {
			b = append(b, byID[e.ID]...)
		}
		return string(b)
	}
	for _, c := range filterCases() {
		t.Run(c.name, func(t *testing.T) {
			// The newest-first order of the wanted events.
			want := []byte(c.want)
			slices.Sort(want)
			slices.Reverse(want)
			for _, size := range []int{0, 1, 3} {
				got, pages := drainPages(t, as("users/auditor"), svc, c.filter, size)
				if d := gocmp.Diff(string(want), names(got)); d != "" {
					t.Fatalf("page size %d: events (-want +got):\n%s", size, d)
				}
				// Full pages only, and no empty page at the end: the token
				// is empty exactly when nothing remains.
				eff := cmpOr(size, audittrail.DefaultPageSize)
				if n := max(1, (len(want)+eff-1)/eff); len(pages) != n {
					t.Errorf("page size %d: %d matches came in %d pages, want %d", size, len(want), len(pages), n)
				}
				for _, e := range got {
					if d := gocmp.Diff(stored[slices.IndexFunc(stored, func(s *audittrail.Event) bool { return s.ID == e.ID })], e, eventOpts); d != "" {
						t.Fatalf("event %s differs from the stored one (-want +got):\n%s", byID[e.ID], d)
					}
				}
			}
		})
	}
}
