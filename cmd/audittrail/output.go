package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// This file holds what the client subcommands (search, create) share: exit
// statuses, flag helpers and the output formats.

// Exit statuses of the client subcommands: 0 success, 1 the server refused or
// failed (part of) the work, 2 bad flags or input (nothing was sent).
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitError is an error with the exit status the command asks for. main
// finds it with errors.As and an interface{ ExitCode() int }.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status for the error.
func (e *exitError) ExitCode() int { return e.code }

// usageErrorf reports bad flags or input: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// parseFlags parses args into fs. Errors come back as usage errors, for main
// to print once (the flag package's own printing is turned off); -h prints
// the usage to stdout and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	if err != nil {
		return usageErrorf("%v (see -h)", err)
	}
	return nil
}

// parseFlagsAnywhere is parseFlags for a command whose flags may come
// before or after its positional arguments ("verify answer ANSWER.json
// --strict", "window OLDER NEWER -o jsonl"): it returns the positional
// arguments in order.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args, usage, stdout); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// usageText is the help of a command: its synopsis, then its flags.
func usageText(synopsis string, fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(synopsis)
	b.WriteString("\nFlags:\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

// envDefault returns the first non-empty of the environment variables, or def.
func envDefault(def string, vars ...string) string {
	for _, v := range vars {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return def
}

// maxAgo is the longest duration parseAgo accepts: the longest a
// time.Duration holds.
const maxAgo = time.Duration(math.MaxInt64)

// parseAgo parses a relative time such as "24h", "90m" or "7d" (days are
// 24 hours; "1d12h" works too) as a positive duration.
func parseAgo(s string) (time.Duration, error) {
	rest, days := s, int64(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 24h, 90m or 7d", s)
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 24h, 90m or 7d", s)
		}
	}
	if days < 0 || d < 0 {
		return 0, fmt.Errorf("%q: the duration must be positive", s)
	}
	// Past about 292 years the nanoseconds wrap around into another
	// period (FuzzParseAgo found 90098700d read as 466h).
	if days > int64(maxAgo/(24*time.Hour)) || d > maxAgo-time.Duration(days)*24*time.Hour {
		return 0, fmt.Errorf("%q is too long: at most %dd", s, maxAgo/(24*time.Hour))
	}
	d += time.Duration(days) * 24 * time.Hour
	if d == 0 {
		return 0, fmt.Errorf("%q: the duration must be positive", s)
	}
	return d, nil
}

// parseTime parses an RFC 3339 time, or a relative one ("24h": that long
// before now).
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := parseRFC3339(s); err == nil {
		return t, nil
	} else if errors.Is(err, errOffset) {
		return time.Time{}, err
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration before now (24h, 7d)", s)
	}
	return now.Add(-d), nil
}

// errOffset is parseRFC3339's error for an offset out of range.
var errOffset = errors.New("RFC 3339 allows -23:59 to +23:59")

// parseRFC3339 parses an RFC 3339 time, as time.Parse with RFC3339Nano
// does, but refuses a UTC offset that RFC 3339 does not allow: its hours are
// 00 to 23 and its minutes 00 to 59, and time.Parse takes +24:00 and +23:60
// too (as a day and as 23 hours 60 minutes).
func parseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, err
	}
	// time.Parse has checked the layout: the string ends in Z (or z), or
	// in a numeric offset ±hh:mm.
	if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') {
		if hh, mm := s[n-5:n-3], s[n-2:]; hh > "23" || mm > "59" {
			return time.Time{}, fmt.Errorf("%q: the UTC offset %s is out of range: %w", s, s[n-6:], errOffset)
		}
	}
	return t, nil
}

// Output formats of search.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatJSONL = "jsonl"
	formatCSV   = "csv"
)

// eventWriter writes search results in one of the formats.
type eventWriter interface {
	// write outputs one event.
	write(e *audittrail.Event) error
	// close ends the output; last is the last response of the search.
	close(last *audittrail.SearchEventsResponse) error
}

func newEventWriter(w io.Writer, format string) (eventWriter, error) {
	switch format {
	case formatTable:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tPRINCIPAL\tACTION\tRESOURCE\tSTATUS")
		return &tableWriter{tw: tw}, nil
	case formatJSONL:
		return &jsonlWriter{w: w}, nil
	case formatJSON:
		return &jsonWriter{w: w}, nil
	case formatCSV:
		cw := csv.NewWriter(w)
		return &csvWriter{w: cw}, cw.Write(csvHeader)
	}
	return nil, fmt.Errorf("unknown output format %q: use table, json, jsonl or csv", format)
}

// jsonOptions give the JSON of the REST API (server.NewJSONMarshaler):
// lowerCamelCase keys, every scalar, list and map present; unset messages
// (an event without status, a search without proofs) absent.
var jsonOptions = protojson.MarshalOptions{EmitDefaultValues: true}

// marshalEvent returns the event as one line of API JSON. protojson varies
// its spacing on purpose; compacting makes the output stable.
func marshalEvent(e *audittrail.Event) ([]byte, error) {
	raw, err := jsonOptions.Marshal(wire.EventToProto(e))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) write(e *audittrail.Event) error {
	status := "-"
	if e.Status != nil {
		status = strconv.Itoa(int(e.Status.Code))
	}
	_, err := fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\n", e.EventTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		cell(e.Principal), cell(e.Action), cell(e.Resource), status)
	return err
}

func (t *tableWriter) close(*audittrail.SearchEventsResponse) error { return t.tw.Flush() }

// cell keeps a value on one line and one column, and keeps it from
// talking to the terminal: the values are what producers sent. Tabs and
// line breaks become spaces; every other control character (C0, DEL, C1:
// ESC starts the terminal's escape sequences, \v and \f break tabwriter's
// columns and lines), the Unicode line and paragraph separators, the
// bidirectional overrides and isolates (which reorder what is displayed)
// and invalid UTF-8 are written as Go escapes (\x1b, \u2028), so that
// they show and cannot act. The JSON outputs carry values as they are.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r >= 0x80 && r <= 0x9f, r == 0x2028, r == 0x2029, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type jsonlWriter struct{ w io.Writer }

func (j *jsonlWriter) write(e *audittrail.Event) error {
	b, err := marshalEvent(e)
	if err != nil {
		return err
	}
	_, err = j.w.Write(append(b, '\n'))
	return err
}

func (j *jsonlWriter) close(*audittrail.SearchEventsResponse) error { return nil }

// csvHeader names the columns of -o csv: the API's fields in the order of
// event.proto, snake_case as in the Python client, the status in two
// columns and each map as one column of JSON.
var csvHeader = []string{"name", "event_time", "receive_time", "event_source", "action", "read_only",
	"status_code", "status_message", "principal", "login_principal", "source_ip_address", "user_agent",
	"resource", "workspace", "request_parameters", "metadata", "type"}

// csvWriter writes one row per event (RFC 4180 quoting, lines ending in
// LF), for spreadsheets and the tools that read CSV. Values are as stored,
// with one exception: the values are what producers sent, and a
// spreadsheet runs a cell that starts with =, +, -, @, tab or carriage
// return as a formula (CSV injection: =HYPERLINK(...) in a user agent
// becomes a link in an auditor's sheet), so such a value is written with a
// ' before it, which spreadsheets show as text (OWASP's advice). A value
// that starts with ' gets one more, so the output stays lossless: a cell
// that starts with ' is its value with one ' more. An event without a
// status has empty status cells; the times are the API's (RFC 3339, UTC,
// 0, 3, 6 or 9 fractional digits).
type csvWriter struct{ w *csv.Writer }

func (c *csvWriter) write(e *audittrail.Event) error {
	p := wire.EventToProto(e)
	code, message := "", ""
	if p.Status != nil {
		code, message = strconv.Itoa(int(p.Status.Code)), csvText(p.Status.Message)
	}
	params, err := json.Marshal(p.RequestParameters)
	if err != nil {
		return err
	}
	metadata, err := json.Marshal(p.Metadata)
	if err != nil {
		return err
	}
	return c.w.Write([]string{p.Name, apiTime(p.EventTime), apiTime(p.ReceiveTime), csvText(p.EventSource), csvText(p.Action),
		strconv.FormatBool(p.ReadOnly), code, message, csvText(p.Principal), csvText(p.LoginPrincipal),
		csvText(p.SourceIpAddress), csvText(p.UserAgent), csvText(p.Resource), csvText(p.Workspace),
		string(params), string(metadata), p.Type.String()})
}

func (c *csvWriter) close(*audittrail.SearchEventsResponse) error {
	c.w.Flush()
	return c.w.Error()
}

// csvText guards a producer's value against running as a spreadsheet
// formula (csvWriter). The maps' columns start with { and need no guard.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r'", rune(s[0])) {
		return "'" + s
	}
	return s
}

// apiTime formats a time as the API's JSON does (protojson's own
// formatting, so that csv and jsonl agree to the digit).
func apiTime(ts *timestamppb.Timestamp) string {
	b, err := protojson.Marshal(ts)
	if err != nil {
		return ts.AsTime().Format(time.RFC3339Nano) // a time outside protobuf's range, which the server never stores
	}
	s, _ := strconv.Unquote(string(b))
	return s
}

// jsonWriter writes one SearchEventsResponse as the REST API would return
// it, holding every event of the search, and the token and progress of the
// last page. It keeps the events until the end: use jsonl for big outputs.
type jsonWriter struct {
	w      io.Writer
	events []*pb.Event
}

func (j *jsonWriter) write(e *audittrail.Event) error {
	j.events = append(j.events, wire.EventToProto(e))
	return nil
}

func (j *jsonWriter) close(last *audittrail.SearchEventsResponse) error {
	resp := &pb.SearchEventsResponse{Events: j.events}
	if last != nil {
		resp.NextPageToken = last.NextPageToken
		resp.SearchedUntilTime = timestamppb.New(last.SearchedUntil)
	}
	raw, err := jsonOptions.Marshal(resp)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err = j.w.Write(b.Bytes())
	return err
}
