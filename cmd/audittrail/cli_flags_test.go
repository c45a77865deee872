package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func TestSearchFlagsToFilter(t *testing.T) {
	t.Setenv("AUDITTRAIL_ADDR", "")
	t.Setenv("AUDITTRAIL_TOKEN", "")
	fields := func(m map[audittrail.Field]string) (a [audittrail.NumFields]string) {
		for k, v := range m {
			a[k] = v
		}
		return a
	}
	tests := []struct {
		name string
		args []string
		want searchPlan
	}{
		{
			name: "defaults",
			args: nil,
			want: searchPlan{conn: connFlags{addr: "127.0.0.1:8080"}, format: "table"},
		},
		{
			name: "every field",
			args: []string{
				"--principal", "users/1", "--principal-regex", "^users/",
				"--action", "actions/a/b/GET", "--action-regex", "GET$",
				"--resource", "//r/x", "--resource-regex", "x$",
				"--workspace", "workspaces/w1", "--workspace-regex", "w[0-9]",
				"--event-source", "h2oai-a-server", "--event-source-regex", "^h2oai-",
				"--source-ip", "1.2.3.4", "--source-ip-regex", `^1\.`,
				"--status-code-regex", "^(0|3)$", "--read-only", "false",
				"--metadata", "region=eu", "--metadata", "feature=a=b",
				"--metadata-regex", "request_id=^[0-9a-f]+$",
				"--type", "API", "--type", "type_system", "--exclude-type", "unspecified",
				"--addr", "example:9", "--token", "tok", "-o", "jsonl", "--page-size", "7", "--page-token", "pt",
			},
			want: searchPlan{conn: connFlags{addr: "example:9", token: "tok"}, format: "jsonl", req: audittrail.SearchEventsRequest{
				PageSize: 7, PageToken: "pt",
				Filter: audittrail.Filter{
					Exact: fields(map[audittrail.Field]string{
						audittrail.FieldPrincipal: "users/1", audittrail.FieldAction: "actions/a/b/GET", audittrail.FieldResource: "//r/x",
						audittrail.FieldWorkspace: "workspaces/w1", audittrail.FieldEventSource: "h2oai-a-server", audittrail.FieldSourceIP: "1.2.3.4",
					}),
					Regex: fields(map[audittrail.Field]string{
						audittrail.FieldPrincipal: "^users/", audittrail.FieldAction: "GET$", audittrail.FieldResource: "x$",
						audittrail.FieldWorkspace: "w[0-9]", audittrail.FieldEventSource: "^h2oai-", audittrail.FieldSourceIP: `^1\.`,
					}),
					StatusCodeRegex: "^(0|3)$",
					ReadOnly:        ptr(false),
					MetadataExact:   map[string]string{"region": "eu", "feature": "a=b"},
					MetadataRegex:   map[string]string{"request_id": "^[0-9a-f]+$"},
					IncludeTypes:    []audittrail.EventType{audittrail.TypeAPI, audittrail.TypeSystem},
					ExcludeTypes:    []audittrail.EventType{audittrail.TypeUnspecified},
				},
			}},
		},
		{
			name: "since and until relative",
			args: []string{"--since", "7d", "--until", "1h30m"},
			want: searchPlan{conn: connFlags{addr: "127.0.0.1:8080"}, format: "table",
				req: audittrail.SearchEventsRequest{Filter: audittrail.Filter{
					StartTime: ptr(testNow.Add(-7 * 24 * time.Hour)),
					EndTime:   ptr(testNow.Add(-90 * time.Minute)),
				}},
				resume: []string{"--start", "2026-03-03T12:00:00Z", "--until", "2026-03-10T10:30:00Z"},
			},
		},
		{
			name: "start and until absolute",
			args: []string{"--start", "2026-01-01T00:00:00.5+01:00", "--until", "2026-02-01T00:00:00Z"},
			want: searchPlan{conn: connFlags{addr: "127.0.0.1:8080"}, format: "table",
				req: audittrail.SearchEventsRequest{Filter: audittrail.Filter{
					StartTime: ptr(time.Date(2025, 12, 31, 23, 0, 0, 5e8, time.UTC)),
					EndTime:   ptr(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)),
				}},
				resume: []string{"--start", "2025-12-31T23:00:00.5Z", "--until", "2026-02-01T00:00:00Z"},
			},
		},
		{
			name: "all takes big pages",
			args: []string{"--all", "-o", "json"},
			want: searchPlan{conn: connFlags{addr: "127.0.0.1:8080"}, format: "json", follow: true, req: audittrail.SearchEventsRequest{PageSize: 1000}},
		},
		{
			name: "limit follows pages",
			args: []string{"--limit", "30", "--page-size", "10"},
			want: searchPlan{conn: connFlags{addr: "127.0.0.1:8080"}, format: "table", follow: true, limit: 30, req: audittrail.SearchEventsRequest{PageSize: 10}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSearch(tt.args, testNow, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			opts := cmp.Options{cmp.AllowUnexported(searchPlan{}, connFlags{}), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}
			if diff := cmp.Diff(&tt.want, got, opts); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchEnvironment(t *testing.T) {
	t.Setenv("AUDITTRAIL_ADDR", "env-host:1")
	t.Setenv("AUDITTRAIL_TOKEN", "env-token")
	p, err := parseSearch(nil, testNow, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p.conn.addr != "env-host:1" || p.conn.token != "env-token" {
		t.Errorf("addr %q token %q, want those of the environment", p.conn.addr, p.conn.token)
	}
	p, err = parseSearch([]string{"--addr", "flag-host:2", "--token", "flag-token"}, testNow, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p.conn.addr != "flag-host:2" || p.conn.token != "flag-token" {
		t.Errorf("addr %q token %q, want those of the flags", p.conn.addr, p.conn.token)
	}
}

func TestSearchBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"--read-only", "maybe"}, `"maybe" is not true or false`},
		{[]string{"--type", "BATCH"}, `"BATCH" is not an event type`},
		{[]string{"--exclude-type", ""}, `is not an event type`},
		{[]string{"--metadata", "novalue"}, `"novalue" is not key=value`},
		{[]string{"--metadata", "=v"}, `is not key=value`},
		{[]string{"--metadata", "a=1", "--metadata", "a=2"}, `key "a" given twice`},
		{[]string{"--since", "yesterday"}, `--since: "yesterday" is not a duration`},
		{[]string{"--since", "-5h"}, `must be positive`},
		{[]string{"--since", "1h", "--start", "2026-01-01T00:00:00Z"}, `use one`},
		{[]string{"--start", "2026-13-01"}, `--start: "2026-13-01" is neither an RFC 3339 time`},
		{[]string{"--until", "soon"}, `--until: "soon" is neither`},
		{[]string{"--start", "2026-01-01T00:00:00+24:00"}, `--start: "2026-01-01T00:00:00+24:00": the UTC offset +24:00 is out of range: RFC 3339 allows -23:59 to +23:59`},
		{[]string{"--until", "2026-01-01T00:00:00.5-23:60"}, `--until: "2026-01-01T00:00:00.5-23:60": the UTC offset -23:60 is out of range`},
		{[]string{"--start", "2026-03-01T00:00:00Z", "--until", "2026-02-01T00:00:00Z"}, `must be before`},
		{[]string{"--principal-regex", "(a"}, `principal_regex is not a valid RE2 regular expression`},
		{[]string{"--metadata-regex", "k=[z-a]"}, `metadata_regex[k] is not a valid RE2`},
		{[]string{"--page-size", "-1"}, `--page-size -1 is out of range`},
		{[]string{"--page-size", "1001"}, `--page-size 1001 is out of range`},
		{[]string{"--limit", "-3"}, `--limit -3 is negative`},
		{[]string{"-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"--no-such-flag"}, `flag provided but not defined: -no-such-flag`},
		{[]string{"stray"}, `unexpected argument "stray"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseSearch(tt.args, testNow, io.Discard)
			checkUsageError(t, err, tt.want)
		})
	}
}

func checkUsageError(t *testing.T, err error, want string) {
	t.Helper()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("error %v: want one with exit code 2", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestHelp(t *testing.T) {
	for name, cmd := range map[string]interface {
		Usage() string
	}{"search": &SearchCommand{}, "create": &CreateCommand{}} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			var err error
			switch c := cmd.(type) {
			case *SearchCommand:
				c.Stdout, c.Stderr = &out, io.Discard
				err = c.Run(t.Context(), []string{"-h"})
			case *CreateCommand:
				c.Stdout, c.Stderr = &out, io.Discard
				err = c.Run(t.Context(), []string{"--help"})
			}
			if err != nil {
				t.Fatalf("-h: %v", err)
			}
			if out.String() != cmd.Usage() || !strings.Contains(out.String(), "usage: audittrail "+name) || !strings.Contains(out.String(), "-addr") {
				t.Errorf("-h printed:\n%s", out.String())
			}
		})
	}
	_, err := parseSearch([]string{"-h"}, testNow, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseSearch -h: %v, want flag.ErrHelp", err)
	}
}

func TestParseAgo(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"24h", 24 * time.Hour},
		{"90m", 90 * time.Minute},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5h", 90 * time.Minute},
	}
	for _, tt := range tests {
		got, err := parseAgo(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseAgo(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "d", "0s", "-1h", "3x", "1d-2d", "h"} {
		if _, err := parseAgo(bad); err == nil {
			t.Errorf("parseAgo(%q) succeeded", bad)
		}
	}
}

func TestCreateBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--batch", "0"}, "--batch 0 is out of range"},
		{[]string{"--batch", "1001"}, "--batch 1001 is out of range"},
		{[]string{"--sample", "-1"}, "--sample -1 is negative"},
		{[]string{"--sample", "5", "file.json"}, "give no input file"},
		{[]string{"--sample", "5", "--end", "tomorrow"}, `--end "tomorrow" is not an RFC 3339 time`},
		{[]string{"--sample", "5", "--end", "2026-01-01T00:00:00-24:00"}, `--end "2026-01-01T00:00:00-24:00": the UTC offset -24:00 is out of range: RFC 3339 allows -23:59 to +23:59`},
		{[]string{"--sample", "5", "--span", "-1h"}, "--span -1h0m0s must be positive"},
		{[]string{"a.json", "b.json"}, "at most one input file"},
		{[]string{"/does/not/exist.json"}, "no such file"},
		{[]string{"--span", "forever"}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := &CreateCommand{Stdout: io.Discard, Stderr: io.Discard}
			checkUsageError(t, c.Run(t.Context(), tt.args), tt.want)
		})
	}
}
