package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

func TestParseCountByRefused(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"", `"" is not a field to count by`},
		{"principal,", `"" is not a field to count by`},
		{"prinicpal", `"prinicpal" is not a field to count by; give one or more, comma-separated, of principal, login_principal`},
		{"metadata.", `"metadata." is not a field`},
		{"request_parameters.", `"request_parameters." is not a field`},
		{"action, action", "action is given twice"},
		{"metadata.a,metadata.a", "metadata.a is given twice"},
	} {
		_, err := parseCountBy(tt.arg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--count-by %q: %v, want %q", tt.arg, err, tt.want)
		}
	}
}

// countOutput counts outputEvents, and two more copies of the first one,
// by fields in format.
func countOutput(t *testing.T, fields, format string) (out, summary string) {
	t.Helper()
	cf, err := parseCountBy(fields)
	if err != nil {
		t.Fatal(err)
	}
	var b, s strings.Builder
	w := newCountWriter(&b, &s, format, cf)
	events := outputEvents()
	for _, e := range append(events, events[0], events[0]) {
		if err := w.write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(nil); err != nil {
		t.Fatal(err)
	}
	return b.String(), s.String()
}

func TestCountByOutput(t *testing.T) {
	tests := []struct{ fields, format, want string }{
		{"principal", formatTable, `PRINCIPAL                                  COUNT
users/1                                    3
services/very-long-service-principal-name  1
`},
		{"day,status_code,metadata.region", formatCSV, `day,status_code,metadata.region,count
2026-01-02,3,eu,3
2026-01-02,,,1
`},
		{"hour, type, read_only, request_parameters.a", formatJSONL, `{"hour":"2026-01-02T03","type":"TYPE_API","read_only":"false","request_parameters.a":"b","count":3}
{"hour":"2026-01-02T03","type":"TYPE_UNSPECIFIED","read_only":"true","request_parameters.a":"","count":1}
`},
		{"event_source,source_ip_address", formatJSON, `[
  {"event_source":"h2oai-enginemanager-server","source_ip_address":"1.2.3.4","count":3},
  {"event_source":"keycloak","source_ip_address":"private","count":1}
]
`},
		{"login_principal,user_agent,workspace", formatTable, `LOGIN_PRINCIPAL  USER_AGENT  WORKSPACE      COUNT
-                -           workspaces/w1  3
-                -           -              1
`},
	}
	for _, tt := range tests {
		got, summary := countOutput(t, tt.fields, tt.format)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("--count-by %s -o %s (-want +got):\n%s", tt.fields, tt.format, diff)
		}
		if summary != "4 events counted, 2 distinct\n" {
			t.Errorf("--count-by %s: summary %q", tt.fields, summary)
		}
	}
}

// TestCountByTies: equal counts are ordered by their values, and values
// that would run together when joined are counted apart.
func TestCountByTies(t *testing.T) {
	cf, err := parseCountBy("principal,action")
	if err != nil {
		t.Fatal(err)
	}
	var b, s strings.Builder
	w := newCountWriter(&b, &s, formatCSV, cf)
	for _, pa := range [][2]string{{"b", "x"}, {"a", "bx"}, {"ab", "x"}, {"a", "y"}, {"a", "bx"}} {
		if err := w.write(&audittrail.Event{Principal: pa[0], Action: pa[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(nil); err != nil {
		t.Fatal(err)
	}
	want := "principal,action,count\na,bx,2\na,y,1\nab,x,1\nb,x,1\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
