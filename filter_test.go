package audittrail_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

var compileEnd = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)

func TestFilterCompileErrors(t *testing.T) {
	long := strings.Repeat("a", audittrail.MaxRegexLen+1)
	many := map[string]string{}
	for i := range audittrail.MaxFilterMapItems + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	field := func(f audittrail.Field, v string) (a [audittrail.NumFields]string) {
		a[f] = v
		return a
	}
	at := func(y int) *time.Time { return ptr(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)) }
	for _, c := range []struct {
		name   string
		filter audittrail.Filter
		field  string // a part of the message
	}{
		{"event_source_regex", audittrail.Filter{Regex: field(audittrail.FieldEventSource, "(")}, "filter.event_source_regex is not a valid RE2 regular expression: missing closing ): `(`"},
		{"resource_regex", audittrail.Filter{Regex: field(audittrail.FieldResource, "[a")}, "filter.resource_regex"},
		{"principal_regex", audittrail.Filter{Regex: field(audittrail.FieldPrincipal, "a**")}, "filter.principal_regex"},
		{"source_ip_address_regex", audittrail.Filter{Regex: field(audittrail.FieldSourceIP, `\`)}, "filter.source_ip_address_regex"},
		{"workspace_regex", audittrail.Filter{Regex: field(audittrail.FieldWorkspace, "(?<")}, "filter.workspace_regex"},
		{"action_regex", audittrail.Filter{Regex: field(audittrail.FieldAction, "x{2,1}")}, "filter.action_regex"},
		{"action_regex backreference (not RE2)", audittrail.Filter{Regex: field(audittrail.FieldAction, `(a)\1`)}, "filter.action_regex"},
		{"action_regex lookahead (not RE2)", audittrail.Filter{Regex: field(audittrail.FieldAction, `a(?=b)`)}, "filter.action_regex"},
		{"action_regex too long", audittrail.Filter{Regex: field(audittrail.FieldAction, long)}, "filter.action_regex is too long"},
		{"action_regex repeat too large", audittrail.Filter{Regex: field(audittrail.FieldAction, "a{1001}")}, "filter.action_regex"},
		{"resource_regex too complex", audittrail.Filter{Regex: field(audittrail.FieldResource, strings.Repeat("(?:.?){1000}", 10)+"[XQ]")},
			"filter.resource_regex is too complex: it compiles to 20003 instructions, the limit is 10000"},
		{"metadata_regex too complex", audittrail.Filter{MetadataRegex: map[string]string{"env": strings.Repeat("[a-z]{1000}", 11)}},
			"filter.metadata_regex[env] is too complex"},
		{"status_code_regex", audittrail.Filter{StatusCodeRegex: "^(0|3$"}, "filter.status_code_regex"},
		{"status_code_regex too long", audittrail.Filter{StatusCodeRegex: long}, "filter.status_code_regex is too long"},
		{"metadata_regex", audittrail.Filter{MetadataRegex: map[string]string{"env": "*"}}, "filter.metadata_regex[env]"},
		{"metadata_regex too long", audittrail.Filter{MetadataRegex: map[string]string{"env": long}}, "filter.metadata_regex[env] is too long"},
		{"metadata_exact too many", audittrail.Filter{MetadataExact: many}, "filter.metadata_exact"},
		{"metadata_regex too many", audittrail.Filter{MetadataRegex: many}, "filter.metadata_regex"},
		{"include_types unknown", audittrail.Filter{IncludeTypes: []audittrail.EventType{1, 3}}, "filter.include_types"},
		{"include_types negative", audittrail.Filter{IncludeTypes: []audittrail.EventType{-1}}, "filter.include_types"},
		{"exclude_types unknown", audittrail.Filter{ExcludeTypes: []audittrail.EventType{7}}, "filter.exclude_types"},
		{"start before 1970", audittrail.Filter{StartTime: at(1969)}, "filter.start_event_time"},
		{"start after 2262", audittrail.Filter{StartTime: at(2263), EndTime: at(2264)}, "filter.start_event_time"},
		{"end after 2262", audittrail.Filter{EndTime: at(2263)}, "filter.end_event_time"},
		{"end before 1970", audittrail.Filter{StartTime: ptr(audittrail.MinEventTime), EndTime: at(1969)}, "filter.end_event_time"},
		{"start == end", audittrail.Filter{StartTime: at(2025), EndTime: at(2025)}, "filter.start_event_time"},
		{"start after end", audittrail.Filter{StartTime: at(2026), EndTime: at(2025)}, "filter.start_event_time"},
		{"default start after end", audittrail.Filter{EndTime: at(2025)}, "filter.start_event_time"},
	} {
		q, err := c.filter.Compile(compileEnd)
		if err == nil {
			t.Errorf("%s: compiled; want an error naming %q", c.name, c.field)
			continue
		}
		if q != nil {
			t.Errorf("%s: a query with the error", c.name)
		}
		if code := audittrail.ErrorCode(err); code != audittrail.EInvalid {
			t.Errorf("%s: code %q, want %q", c.name, code, audittrail.EInvalid)
		}
		if msg := audittrail.ErrorMessage(err); !strings.Contains(msg, c.field) {
			t.Errorf("%s: message %q does not contain %q", c.name, msg, c.field)
		}
	}
}

func TestFilterCompile(t *testing.T) {
	// Defaults: start 2025-07-01, end as given, all types.
	q, err := (&audittrail.Filter{}).Compile(compileEnd.In(time.FixedZone("X", 7200)))
	if err != nil {
		t.Fatal(err)
	}
	if !q.Start.Equal(time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)) || q.Start != audittrail.DefaultStartTime {
		t.Errorf("default start %v", q.Start)
	}
	if q.End != compileEnd {
		t.Errorf("end %v, want %v in UTC", q.End, compileEnd)
	}
	if q.Types != 7 {
		t.Errorf("types %b, want all", q.Types)
	}
	for i := range audittrail.NumFields {
		if q.Exact[i] != nil || q.Regex[i] != nil {
			t.Errorf("field %s filters though the filter is empty", i)
		}
	}
	if q.ReadOnly != nil || q.Status != nil || q.MetadataExact != nil || q.MetadataRegex != nil {
		t.Errorf("empty filter compiled to %+v", q)
	}

	// Limits are inclusive.
	okRegex := strings.Repeat("a", audittrail.MaxRegexLen)
	md := map[string]string{}
	for i := range audittrail.MaxFilterMapItems {
		md[strings.Repeat("k", i+1)] = ""
	}
	f := audittrail.Filter{
		StartTime:       ptr(audittrail.MinEventTime),
		EndTime:         ptr(audittrail.MaxEventTime),
		StatusCodeRegex: okRegex,
		MetadataExact:   md,
		MetadataRegex:   md,
		IncludeTypes:    []audittrail.EventType{0, 2, 2},
		ExcludeTypes:    []audittrail.EventType{2},
	}
	q, err = f.Compile(compileEnd)
	if err != nil {
		t.Fatalf("filter at the limits: %v", err)
	}
	if q.Types != 1 {
		t.Errorf("include {0, 2}, exclude {2}: types %b, want 1", q.Types)
	}
	if !q.Start.Equal(audittrail.MinEventTime) || !q.End.Equal(audittrail.MaxEventTime) {
		t.Errorf("range [%v, %v)", q.Start, q.End)
	}
	// The query does not share the caller's maps.
	f.MetadataExact["extra"] = "x"
	if _, ok := q.MetadataExact["extra"]; ok {
		t.Error("the query shares metadata_exact with the filter")
	}
}

// TestQueryMatch spot-checks the reference semantics of Query.Match; the
// conformance suite compares it with an independent oracle at scale.
func TestQueryMatch(t *testing.T) {
	e := &audittrail.Event{
		EventTime: compileEnd.Add(-time.Hour), EventSource: "h2oai-x-server", Action: "actions/x/CREATE",
		Principal: "users/alice", SourceIP: "1.1.1.1", Resource: "rsrc10", Workspace: "",
		Metadata: map[string]string{"env": ""}, Type: audittrail.TypeSystem,
	}
	for _, c := range []struct {
		name   string
		filter audittrail.Filter
		want   bool
	}{
		{"no filter", audittrail.Filter{}, true},
		{"status absent matches ^$", audittrail.Filter{StatusCodeRegex: "^$"}, true},
		{"status absent does not match 0", audittrail.Filter{StatusCodeRegex: "0"}, false},
		{"unanchored", audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldResource: "rsrc1"}}, true},
		{"anchored", audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldResource: "^rsrc1$"}}, false},
		{"empty workspace", audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldWorkspace: "^$"}}, true},
		{"metadata present and empty", audittrail.Filter{MetadataExact: map[string]string{"env": ""}}, true},
		{"metadata absent", audittrail.Filter{MetadataRegex: map[string]string{"team": ""}}, false},
		{"read_only false", audittrail.Filter{ReadOnly: ptr(false)}, true},
		{"read_only true", audittrail.Filter{ReadOnly: ptr(true)}, false},
		{"excluded type", audittrail.Filter{ExcludeTypes: []audittrail.EventType{audittrail.TypeSystem}}, false},
		{"included type", audittrail.Filter{IncludeTypes: []audittrail.EventType{audittrail.TypeSystem}}, true},
		{"end exclusive", audittrail.Filter{EndTime: ptr(e.EventTime)}, false},
		{"start inclusive", audittrail.Filter{StartTime: ptr(e.EventTime)}, true},
	} {
		q, err := c.filter.Compile(compileEnd)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := q.Match(e); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
	withStatus := *e
	withStatus.Status = &audittrail.Status{}
	q, _ := (&audittrail.Filter{StatusCodeRegex: "^0$"}).Compile(compileEnd)
	if !q.Match(&withStatus) {
		t.Error("status code 0 does not match ^0$")
	}
}

func TestFingerprint(t *testing.T) {
	tm := time.Date(2025, 8, 1, 0, 0, 0, 5, time.UTC)
	full := func() audittrail.Filter {
		return audittrail.Filter{
			StartTime:       ptr(tm),
			EndTime:         ptr(tm.Add(time.Hour)),
			Exact:           [audittrail.NumFields]string{"src", "res", "pri", "ip", "ws", "act"},
			Regex:           [audittrail.NumFields]string{"^src", "^res", "^pri", "^ip", "^ws", "^act"},
			ReadOnly:        ptr(true),
			StatusCodeRegex: "^0$",
			MetadataExact:   map[string]string{"a": "1", "b": "2"},
			MetadataRegex:   map[string]string{"c": "3"},
			IncludeTypes:    []audittrail.EventType{1, 2},
			ExcludeTypes:    []audittrail.EventType{0},
		}
	}
	ref := full()
	fp := ref.Fingerprint()
	if fp == (&audittrail.Filter{}).Fingerprint() {
		t.Fatal("a full filter has the fingerprint of the empty one")
	}

	// Stable: the same filter, however built, has the same fingerprint.
	same := map[string]func(*audittrail.Filter){
		"unchanged": func(*audittrail.Filter) {},
		"map built in another order": func(f *audittrail.Filter) {
			f.MetadataExact = map[string]string{}
			f.MetadataExact["b"] = "2"
			f.MetadataExact["a"] = "1"
		},
		"times in another zone": func(f *audittrail.Filter) {
			z := time.FixedZone("X", -5*3600)
			f.StartTime, f.EndTime = ptr(f.StartTime.In(z)), ptr(f.EndTime.In(z))
		},
		"times with a monotonic reading": func(f *audittrail.Filter) {
			n := time.Now()
			f.StartTime = ptr(n.Add(tm.Sub(n)))
		},
		"types in another order, repeated": func(f *audittrail.Filter) {
			f.IncludeTypes = []audittrail.EventType{2, 1, 2}
			f.ExcludeTypes = []audittrail.EventType{0, 0}
		},
	}
	for name, mod := range same {
		f := full()
		mod(&f)
		if got := f.Fingerprint(); got != fp {
			t.Errorf("%s: fingerprint changed", name)
		}
	}
	if (&audittrail.Filter{MetadataExact: map[string]string{}}).Fingerprint() != (&audittrail.Filter{}).Fingerprint() {
		t.Error("an empty map and a nil map have different fingerprints")
	}

	// Sensitive: every change of meaning changes the fingerprint.
	changes := map[string]func(*audittrail.Filter){
		"start +1ns":                 func(f *audittrail.Filter) { f.StartTime = ptr(tm.Add(1)) },
		"start removed":              func(f *audittrail.Filter) { f.StartTime = nil },
		"end +1ns":                   func(f *audittrail.Filter) { f.EndTime = ptr(f.EndTime.Add(1)) },
		"end removed":                func(f *audittrail.Filter) { f.EndTime = nil },
		"start and end swapped":      func(f *audittrail.Filter) { f.StartTime, f.EndTime = f.EndTime, f.StartTime },
		"exact value":                func(f *audittrail.Filter) { f.Exact[audittrail.FieldAction] = "act2" },
		"exact removed":              func(f *audittrail.Filter) { f.Exact[audittrail.FieldWorkspace] = "" },
		"exact moved to regex":       func(f *audittrail.Filter) { f.Exact[0], f.Regex[0] = "^src", "src" },
		"exact moved to next field":  func(f *audittrail.Filter) { f.Exact[0], f.Exact[1] = "res", "src" },
		"value split across fields":  func(f *audittrail.Filter) { f.Exact[0], f.Regex[0] = "src^", "src" },
		"regex value":                func(f *audittrail.Filter) { f.Regex[audittrail.FieldPrincipal] = "^pri$" },
		"read_only false":            func(f *audittrail.Filter) { f.ReadOnly = ptr(false) },
		"read_only unset":            func(f *audittrail.Filter) { f.ReadOnly = nil },
		"status_code_regex":          func(f *audittrail.Filter) { f.StatusCodeRegex = "^0" },
		"status_code_regex removed":  func(f *audittrail.Filter) { f.StatusCodeRegex = "" },
		"metadata_exact value":       func(f *audittrail.Filter) { f.MetadataExact = map[string]string{"a": "1", "b": "3"} },
		"metadata_exact key":         func(f *audittrail.Filter) { f.MetadataExact = map[string]string{"a": "1", "B": "2"} },
		"metadata_exact entry added": func(f *audittrail.Filter) { f.MetadataExact = map[string]string{"a": "1", "b": "2", "c": ""} },
		"metadata_exact key/value boundary": func(f *audittrail.Filter) {
			f.MetadataExact = map[string]string{"a1": "", "b": "2"}
		},
		"metadata maps swapped": func(f *audittrail.Filter) {
			f.MetadataExact, f.MetadataRegex = f.MetadataRegex, f.MetadataExact
		},
		"metadata_regex value":  func(f *audittrail.Filter) { f.MetadataRegex = map[string]string{"c": "4"} },
		"include_types":         func(f *audittrail.Filter) { f.IncludeTypes = []audittrail.EventType{1} },
		"include_types removed": func(f *audittrail.Filter) { f.IncludeTypes = nil },
		"exclude_types":         func(f *audittrail.Filter) { f.ExcludeTypes = []audittrail.EventType{0, 1} },
		"type lists swapped": func(f *audittrail.Filter) {
			f.IncludeTypes, f.ExcludeTypes = f.ExcludeTypes, f.IncludeTypes
		},
	}
	seen := map[[16]byte]string{fp: "reference"}
	for name, mod := range changes {
		f := full()
		mod(&f)
		got := f.Fingerprint()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: same fingerprint as %s", name, prev)
		}
		seen[got] = name
	}
}

// TestEventSetValue: SetValue writes exactly the field that Value reads.
func TestEventSetValue(t *testing.T) {
	for f := range audittrail.NumFields {
		var e audittrail.Event
		e.SetValue(f, "v-"+f.String())
		for g := range audittrail.NumFields {
			want := ""
			if g == f {
				want = "v-" + f.String()
			}
			if got := e.Value(g); got != want {
				t.Errorf("after SetValue(%s): Value(%s) = %q, want %q", f, g, got, want)
			}
		}
	}
}

// TestRegexProgramLimit: regular expressions people write, long ones too,
// stay far below MaxRegexProgram (the refusals are in TestFilterInvalid).
func TestRegexProgramLimit(t *testing.T) {
	var principals []string
	for i := 0; len(strings.Join(principals, "|")) < audittrail.MaxRegexLen-40; i++ {
		principals = append(principals, fmt.Sprintf("users/%08x-%d", i*7919, i))
	}
	for _, re := range []string{
		"^(" + strings.Join(principals, "|") + ")$", // 4,0xx bytes
		`.{0,1000}DELETE$`,
		`(?:.?){1000}[XQ]`,
		strings.Repeat(`[\p{L}\p{N}]{0,20}`, 50),
		`(?i)^actions/[a-z]+/(engines|daiEngines)/(CREATE|DELETE|UPDATE)$`,
	} {
		f := audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldResource: re}}
		if _, err := f.Compile(compileEnd); err != nil {
			t.Errorf("%.40s...: %v", re, err)
		}
	}
}

// TestRegexProgramWithoutRepetition: Compile checks the program size only
// of expressions with a counted repetition; without one, a regex of the
// longest allowed text compiles to fewer instructions than the limit
// (the reason it may skip the check), whatever it is made of.
func TestRegexProgramWithoutRepetition(t *testing.T) {
	for _, unit := range []string{"a", "a*", "a+?", "(a)", "(?:a|b)", "[a-z]", `\pL`, ".", "^", "(?i)k", "ſ", "日", "|", "(a|)", "()", "a?", "(|)"} {
		expr := strings.Repeat(unit, audittrail.MaxRegexLen/len(unit))
		if _, err := regexp.Compile(expr); err != nil {
			continue // not an expression when repeated: nothing to check
		}
		if n := audittrail.RegexProgramSizeForTest(expr); n > audittrail.MaxRegexProgram {
			t.Errorf("%d bytes of %q compile to %d instructions, more than MaxRegexProgram %d", len(expr), unit, n, audittrail.MaxRegexProgram)
		}
	}
}
