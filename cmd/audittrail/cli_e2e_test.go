package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/internal/wire"
)

// The tests in this file run the search and create commands against the
// real server (the audittrail binary, started by package testserver).

func TestMain(m *testing.M) { testserver.Main(m) }

// runCommand runs a client subcommand in process and returns its output.
func runCommand(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb strings.Builder
	c, ok := commands(&out, &errb)[name]
	if !ok {
		t.Fatalf("no command %q", name)
	}
	err = c.Run(t.Context(), args)
	return out.String(), errb.String(), err
}

// parseJSONL reads search -o jsonl output.
func parseJSONL(t *testing.T, out string) []*audittrail.Event {
	t.Helper()
	var events []*audittrail.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		p := &pb.Event{}
		if err := protojson.Unmarshal(sc.Bytes(), p); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		e, err := wire.EventFromOutputProto(p)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	return events
}

// parseCSV reads the rows of -o csv back into events, undoing the
// formula guard (one leading ').
func parseCSV(t *testing.T, out string) []*audittrail.Event {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) == 0 || !slices.Equal(rows[0], csvHeader) {
		t.Fatalf("-o csv: %v, header %q\n%s", err, rows[:min(1, len(rows))], out)
	}
	var events []*audittrail.Event
	for _, row := range rows[1:] {
		text := func(col string) string {
			v := row[slices.Index(csvHeader, col)]
			if unguarded, ok := strings.CutPrefix(v, "'"); ok {
				return unguarded
			}
			return v
		}
		stamp := func(col string) *timestamppb.Timestamp {
			tm, err := time.Parse(time.RFC3339Nano, text(col))
			if err != nil {
				t.Fatalf("%s: %v", col, err)
			}
			return timestamppb.New(tm)
		}
		p := &pb.Event{Name: text("name"), EventTime: stamp("event_time"), ReceiveTime: stamp("receive_time"),
			EventSource: text("event_source"), Action: text("action"), ReadOnly: text("read_only") == "true",
			Principal: text("principal"), LoginPrincipal: text("login_principal"), SourceIpAddress: text("source_ip_address"),
			UserAgent: text("user_agent"), Resource: text("resource"), Workspace: text("workspace"),
			Type: pb.EventType(pb.EventType_value[text("type")])}
		if code := text("status_code"); code != "" {
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Fatal(err)
			}
			p.Status = &pb.Status{Code: int32(n), Message: text("status_message")}
		}
		if json.Unmarshal([]byte(text("request_parameters")), &p.RequestParameters) != nil || json.Unmarshal([]byte(text("metadata")), &p.Metadata) != nil {
			t.Fatalf("maps of row %q", row)
		}
		e, err := wire.EventFromOutputProto(p)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	return events
}

// ignoreServerFields compares events as sent with events as stored: the
// receive time and sequence number are the server's, and JSON output has
// empty maps where the events sent had none.
var ignoreServerFields = cmp.Options{cmpopts.IgnoreFields(audittrail.Event{}, "ReceiveTime", "Seq"), cmpopts.EquateEmpty()}

// sampleSetup is a server holding events made by create --sample.
type sampleSetup struct {
	srv    *testserver.Server
	end    time.Time
	stored []*audittrail.Event // as the server stores them, newest first
}

func createSample(t *testing.T, n int, seed int64) *sampleSetup {
	t.Helper()
	srv := testserver.Start(t, "--redact-private-ips=true")
	// The events end in the past, and the searches end there too, so that
	// anything the server writes by itself now stays out of the results.
	end := time.Now().Add(-time.Hour).Truncate(time.Second)
	span := 240 * time.Hour
	out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken,
		"--sample", strconv.Itoa(n), "--seed", strconv.FormatInt(seed, 10), "--span", span.String(),
		"--end", end.Format(time.RFC3339), "--batch", "128")
	if err != nil {
		t.Fatalf("create --sample: %v\n%s", err, out)
	}
	if want := "created " + strconv.Itoa(n) + " of " + strconv.Itoa(n) + " events, 0 failed\n"; out != want {
		t.Fatalf("create printed %q, want %q", out, want)
	}
	// The same generator, seed and options give the same events: what the
	// server must have stored, server-set fields aside.
	g := sample.New(seed, sample.Options{Events: n, Span: span, End: end})
	s := &sampleSetup{srv: srv, end: end}
	for range n {
		id, ne := g.Next()
		e, err := audittrail.PrepareNewEvent(id, ne, time.Now(), true)
		if err != nil {
			t.Fatal(err)
		}
		s.stored = append(s.stored, e)
	}
	// Newest first: generated times never decrease, and events of the same
	// time come newest-created first.
	slices.Reverse(s.stored)
	return s
}

func (s *sampleSetup) searchArgs(extra ...string) []string {
	return append([]string{"--addr", s.srv.PublicAddr, "--token", s.srv.ReaderToken, "--until", s.end.Format(time.RFC3339)}, extra...)
}

// mostCommon returns the most frequent value of key among the events.
func mostCommon(events []*audittrail.Event, key func(*audittrail.Event) string) string {
	counts := map[string]int{}
	best := ""
	for _, e := range events {
		v := key(e)
		if counts[v]++; v != "" && counts[v] > counts[best] {
			best = v
		}
	}
	return best
}

func TestCreateSampleThenSearch(t *testing.T) {
	s := createSample(t, 500, 11)
	topPrincipal := mostCommon(s.stored, func(e *audittrail.Event) string { return e.Principal })
	topSource := mostCommon(s.stored, func(e *audittrail.Event) string { return e.EventSource })
	topWorkspace := mostCommon(s.stored, func(e *audittrail.Event) string { return e.Workspace })
	mid := s.end.Add(-120 * time.Hour)

	// Each case gives the flags and, independently, the condition the
	// events found must meet, tested by brute force over all events.
	tests := []struct {
		name  string
		flags []string
		match func(e *audittrail.Event) bool
	}{
		{"everything", nil, func(*audittrail.Event) bool { return true }},
		{"principal", []string{"--principal", topPrincipal},
			func(e *audittrail.Event) bool { return e.Principal == topPrincipal }},
		{"deletes that failed or were allowed", []string{"--action-regex", "/(DELETE|ADMIN_DELETE)$", "--status-code-regex", "^(0|7)$"},
			func(e *audittrail.Event) bool {
				return (strings.HasSuffix(e.Action, "/DELETE") || strings.HasSuffix(e.Action, "/ADMIN_DELETE")) &&
					e.Status != nil && (e.Status.Code == 0 || e.Status.Code == 7)
			}},
		{"writes of API in workspaces", []string{"--workspace-regex", ".", "--read-only", "false", "--type", "API"},
			func(e *audittrail.Event) bool {
				return e.Workspace != "" && !e.ReadOnly && e.Type == audittrail.TypeAPI
			}},
		{"one workspace", []string{"--workspace", topWorkspace},
			func(e *audittrail.Event) bool { return e.Workspace == topWorkspace }},
		{"without status", []string{"--status-code-regex", "^$"},
			func(e *audittrail.Event) bool { return e.Status == nil }},
		{"failures", []string{"--status-code-regex", "^[1-9]"},
			func(e *audittrail.Event) bool { return e.Status != nil && e.Status.Code != 0 }},
		{"metadata", []string{"--metadata", "region=eu-west-1", "--metadata-regex", "request_id=^[0-7]"},
			func(e *audittrail.Event) bool {
				id, ok := e.Metadata["request_id"]
				return e.Metadata["region"] == "eu-west-1" && ok && id[0] >= '0' && id[0] <= '7'
			}},
		{"private addresses of non-API events", []string{"--source-ip", "private", "--exclude-type", "API"},
			func(e *audittrail.Event) bool { return e.SourceIP == "private" && e.Type != audittrail.TypeAPI }},
		{"IPv6 addresses", []string{"--source-ip-regex", ":"},
			func(e *audittrail.Event) bool { return strings.Contains(e.SourceIP, ":") }},
		{"a source's events in workspaces", []string{"--event-source", topSource, "--resource-regex", "/workspaces/[0-9a-f-]{36}/"},
			func(e *audittrail.Event) bool { return e.EventSource == topSource && e.Workspace != "" }},
		{"events outside workspaces", []string{"--workspace-regex", "^$"},
			func(e *audittrail.Event) bool { return e.Workspace == "" }},
		{"read-only events of the older half", []string{"--read-only", "true", "--until", mid.Format(time.RFC3339)},
			func(e *audittrail.Event) bool { return e.ReadOnly && e.EventTime.Before(mid) }},
		{"the newer half from a start time", []string{"--start", mid.Format(time.RFC3339Nano)},
			func(e *audittrail.Event) bool { return !e.EventTime.Before(mid) }},
		{"system or unspecified in small pages", []string{"--type", "SYSTEM", "--type", "UNSPECIFIED", "--page-size", "3"},
			func(e *audittrail.Event) bool { return e.Type != audittrail.TypeAPI }},
		{"reads by action", []string{"--action-regex", "/(GET|LIST)$"},
			func(e *audittrail.Event) bool {
				return strings.HasSuffix(e.Action, "/GET") || strings.HasSuffix(e.Action, "/LIST")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []*audittrail.Event
			for _, e := range s.stored {
				if tt.match(e) {
					want = append(want, e)
				}
			}
			if len(want) == 0 {
				t.Fatal("no event matches: the case would prove nothing")
			}
			out, stderr, err := runCommand(t, "search", s.searchArgs(append(tt.flags, "--all", "-o", "jsonl")...)...)
			if err != nil {
				t.Fatalf("search: %v\n%s", err, stderr)
			}
			if stderr != "" {
				t.Errorf("search --all printed on stderr: %s", stderr)
			}
			got := parseJSONL(t, out)
			if diff := cmp.Diff(want, got, ignoreServerFields); diff != "" {
				t.Errorf("%d events found, want %d (-want +got):\n%s", len(got), len(want), diff)
			}
		})
	}

	t.Run("limit and resume", func(t *testing.T) {
		out, stderr, err := runCommand(t, "search", s.searchArgs("--since", "2000h", "--limit", "25", "--page-size", "10", "-o", "jsonl")...)
		if err != nil {
			t.Fatal(err)
		}
		first := parseJSONL(t, out)
		if diff := cmp.Diff(s.stored[:25], first, ignoreServerFields); diff != "" {
			t.Errorf("first 25 (-want +got):\n%s", diff)
		}
		// The hint gives the flags that go on exactly where the output
		// stopped, with the relative start made absolute.
		_, hint, ok := strings.Cut(stderr, "repeat the search with: ")
		if !ok {
			t.Fatalf("no resume hint on stderr: %q", stderr)
		}
		out, _, err = runCommand(t, "search", s.searchArgs(append(strings.Fields(hint), "--limit", "30", "-o", "jsonl")...)...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.stored[25:55], parseJSONL(t, out), ignoreServerFields); diff != "" {
			t.Errorf("next 30 (-want +got):\n%s", diff)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, _, err := runCommand(t, "search", s.searchArgs("--principal", topPrincipal, "--all", "-o", "json")...)
		if err != nil {
			t.Fatal(err)
		}
		var resp pb.SearchEventsResponse
		if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("-o json is not a SearchEventsResponse: %v\n%s", err, out)
		}
		var got []*audittrail.Event
		for _, p := range resp.Events {
			e, err := wire.EventFromOutputProto(p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		var want []*audittrail.Event
		for _, e := range s.stored {
			if e.Principal == topPrincipal {
				want = append(want, e)
			}
		}
		if diff := cmp.Diff(want, got, ignoreServerFields); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if resp.NextPageToken != "" || resp.SearchedUntilTime == nil {
			t.Errorf("nextPageToken %q, searchedUntilTime %v: want a finished search", resp.NextPageToken, resp.SearchedUntilTime)
		}
	})

	t.Run("csv", func(t *testing.T) {
		// Every column of every row against the same search's jsonl.
		out, _, err := runCommand(t, "search", s.searchArgs("--all", "-o", "csv")...)
		if err != nil {
			t.Fatal(err)
		}
		jsonl, _, err := runCommand(t, "search", s.searchArgs("--all", "-o", "jsonl")...)
		if err != nil {
			t.Fatal(err)
		}
		want := parseJSONL(t, jsonl)
		if len(want) != len(s.stored) {
			t.Fatalf("jsonl has %d events, want %d", len(want), len(s.stored))
		}
		if diff := cmp.Diff(want, parseCSV(t, out), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("csv against jsonl (-want +got):\n%s", diff)
		}
	})

	t.Run("count-by", func(t *testing.T) {
		// Every page is followed without --all: the counts are of every
		// stored event, by principal and day.
		out, stderr, err := runCommand(t, "search", s.searchArgs("--page-size", "7", "--count-by", "principal,day", "-o", "jsonl")...)
		if err != nil {
			t.Fatalf("search --count-by: %v\n%s", err, stderr)
		}
		want := map[[2]string]int{}
		for _, e := range s.stored {
			want[[2]string{e.Principal, e.EventTime.UTC().Format("2006-01-02")}]++
		}
		got := map[[2]string]int{}
		prev := len(s.stored) + 1
		for line := range strings.Lines(out) {
			var row struct {
				Principal, Day string
				Count          int
			}
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if row.Count > prev {
				t.Errorf("count %d after %d: not most first", row.Count, prev)
			}
			prev = row.Count
			got[[2]string{row.Principal, row.Day}] = row.Count
		}
		if len(want) < 2 {
			t.Fatalf("the stored events have %d combinations: the case would prove little", len(want))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
		if wantSummary := strconv.Itoa(len(s.stored)) + " events counted, " + strconv.Itoa(len(want)) + " distinct\n"; stderr != wantSummary {
			t.Errorf("stderr %q, want %q", stderr, wantSummary)
		}
	})

	t.Run("table", func(t *testing.T) {
		out, _, err := runCommand(t, "search", s.searchArgs("--limit", "3")...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME ") {
			t.Fatalf("table:\n%s", out)
		}
		for i, e := range s.stored[:3] {
			if f := strings.Fields(lines[i+1]); len(f) != 5 || f[1] != e.Principal || f[2] != e.Action {
				t.Errorf("row %d %q does not show %s %s", i, lines[i+1], e.Principal, e.Action)
			}
		}
	})
}

// TestCopyBetweenServers pipes search -o jsonl of one server into create on
// another: the events keep their ids and content.
func TestCopyBetweenServers(t *testing.T) {
	s := createSample(t, 120, 3)
	out, _, err := runCommand(t, "search", s.searchArgs("--all", "-o", "jsonl")...)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := testserver.Start(t, "--redact-private-ips=true")
	for range 2 { // the second run finds every event there already
		summary, _, err := runCommand(t, "create", "--addr", dst.InternalAddr, "--token", dst.ProducerToken, "--batch", "50", file)
		if err != nil || summary != "created 120 of 120 events, 0 failed\n" {
			t.Fatalf("create: %v\n%s", err, summary)
		}
	}
	out, _, err = runCommand(t, "search", "--addr", dst.PublicAddr, "--token", dst.ReaderToken, "--all", "-o", "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.stored, parseJSONL(t, out), ignoreServerFields); diff != "" {
		t.Errorf("copied events (-want +got):\n%s", diff)
	}
}

func TestCreateReportsFailures(t *testing.T) {
	srv := testserver.Start(t)
	good := `{"eventTime": "2026-01-02T03:04:05Z", "eventSource": "h2oai-x-server", "action": "actions/x/y/GET", "principal": "users/1", "sourceIpAddress": "1.2.3.4"}`
	input := good + "\n" +
		`{"eventTime": "2026-01-02T03:04:05Z", "eventSource": "h2oai-x-server", "action": "actions/x/y/GET", "sourceIpAddress": "1.2.3.4"}` + "\n" +
		`{"eventId": "not-a-uuid", "event": ` + good + "}\n" +
		good + "\n"
	file := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(file, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--batch", "3", file)
	var ee interface{ ExitCode() int }
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("error %v: want exit code 1", err)
	}
	for _, want := range []string{
		"failed: item 1 (line 2) (event_id ",
		"): invalid: event.principal is required\n",
		"failed: item 2 (line 3) (event_id not-a-uuid): invalid: event_id must be in UUIDv4 format\n",
		"created 2 of 4 events, 2 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

func TestSearchUnreachable(t *testing.T) {
	srv := testserver.Start(t)
	addr := srv.PublicAddr
	srv.Stop()
	out, _, err := runCommand(t, "search", "--addr", addr, "--token", srv.ReaderToken)
	if audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("error %v, want EUnavailable", err)
	}
	if out != "" {
		t.Errorf("printed %q on a failed search", out)
	}
}
