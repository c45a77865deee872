package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
)

// SearchCommand implements "audittrail search": it searches the events of a
// server (its public listener) and prints them, newest first.
type SearchCommand struct {
	Stdout, Stderr io.Writer
}

const searchSynopsis = `usage: audittrail search [flags]

Searches the audit events of a server, newest first, and prints them.
Every filter flag narrows the search; given together they must all hold.
Regular expressions are RE2 and unanchored: use ^ and $ to match whole
values (--status-code-regex '^$' finds events without a status).

Without --all or --limit one page is printed; when more remain, the flags
for the next page are printed on stderr. Times are RFC 3339
(2026-01-02T15:04:05Z) or durations before now (30m, 24h, 7d).

With --mirror DIR and --log-key the search runs on a mirror directory
("audittrail mirror") instead of a server: every entry is read and the whole
verified against the mirror's signed checkpoint first, so the answer relies
on the log's public key alone; it covers the events received before that
checkpoint's horizon (printed on stderr).

-o csv writes a header and one row per event, the API's fields as columns
(the status in two, each map as JSON), for spreadsheets: UTF-8 without a
byte order mark (in Excel, open it with Data > From Text/CSV). The values are
producers' input, and a spreadsheet runs a cell starting with = + - @ as a
formula, so such a value gets a ' before it (shown as text), as does one
starting with ' (so any cell starting with ' is its value with one ' more);
jsonl and json carry every value unchanged.

--count-by FIELDS prints, instead of the events, how many events have each
value of the fields (comma-separated; combinations when several), most
first: principal, login_principal, action, resource, workspace,
event_source, source_ip_address, user_agent, status_code, read_only, type,
day and hour (of the event time, UTC), metadata.KEY and
request_parameters.KEY (empty when the event has none). It follows every
page (or up to --limit events) and keeps one counter per distinct value, not
the events; -o gives the counts as a table, csv, jsonl or a json array. The
number of events counted goes to stderr.

Examples:
  audittrail search --since 24h --principal users/42 -o table
  audittrail search --action-regex '/DELETE$' --status-code-regex '^(7|13)$' --all -o jsonl
  audittrail search --metadata region=eu-west-1 --type API --limit 100 -o json
  audittrail search --workspace workspaces/w1 --since 30d --all -o csv > w1.csv
  audittrail search --status-code-regex '^(7|16)$' --since 7d --count-by principal,action
  audittrail search --mirror /archive/audit --log-key log-verification.key --workspace workspaces/w1 --all -o jsonl

Environment: AUDITTRAIL_ADDR (--addr), AUDITTRAIL_TOKEN (--token).
`

// Usage returns the help text.
func (c *SearchCommand) Usage() string {
	return usageText(searchSynopsis, newSearchFlags(&searchFlags{}))
}

// searchFlags holds the flags of search as given.
type searchFlags struct {
	connFlags

	exact, regex               [audittrail.NumFields]string
	statusRegex                string
	readOnly                   optionalBool
	metadata, metadataRegex    keyValues
	includeTypes, excludeTypes eventTypes
	since, start, until        string
	pageSize, limit            int
	pageToken                  string
	all                        bool
	format                     string
	countBy                    string
	mirror, logKey             string
}

// flagNames are the names of the exact-match flags per field; the regex
// flag of each adds "-regex".
var flagNames = [audittrail.NumFields]string{
	audittrail.FieldEventSource: "event-source",
	audittrail.FieldResource:    "resource",
	audittrail.FieldPrincipal:   "principal",
	audittrail.FieldSourceIP:    "source-ip",
	audittrail.FieldWorkspace:   "workspace",
	audittrail.FieldAction:      "action",
}

func newSearchFlags(f *searchFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", envDefault("127.0.0.1:8080", "AUDITTRAIL_ADDR"), "`host:port` of the server's public listener")
	fs.StringVar(&f.token, "token", envDefault("", "AUDITTRAIL_TOKEN"), "bearer `token` of an auditor")
	f.addTLSFlags(fs)
	for _, field := range []audittrail.Field{audittrail.FieldPrincipal, audittrail.FieldAction, audittrail.FieldResource,
		audittrail.FieldWorkspace, audittrail.FieldEventSource, audittrail.FieldSourceIP} {
		name := flagNames[field]
		fs.StringVar(&f.exact[field], name, "", "events whose "+field.String()+" is exactly this `value`")
		fs.StringVar(&f.regex[field], name+"-regex", "", "events whose "+field.String()+" matches this RE2 `regex`")
	}
	fs.StringVar(&f.statusRegex, "status-code-regex", "", "events whose status code (decimal; \"\" without status) matches this `regex`")
	fs.Var(&f.readOnly, "read-only", "`true` for read-only events, false for the others")
	fs.Var(&f.metadata, "metadata", "events with metadata `key=value` (repeatable)")
	fs.Var(&f.metadataRegex, "metadata-regex", "events with a metadata value matching: `key=regex` (repeatable)")
	fs.Var(&f.includeTypes, "type", "events of this `type`: API, SYSTEM or UNSPECIFIED (repeatable: any of them)")
	fs.Var(&f.excludeTypes, "exclude-type", "events not of this `type` (repeatable)")
	fs.StringVar(&f.since, "since", "", "events of the last `duration` (24h, 7d); instead of --start")
	fs.StringVar(&f.start, "start", "", "events at or after this `time` (default 2025-07-01T00:00:00Z)")
	fs.StringVar(&f.until, "until", "", "events before this `time` (default now)")
	fs.IntVar(&f.pageSize, "page-size", 0, "events per `page` (server default 50, at most 1000; 1000 with --all or --limit)")
	fs.StringVar(&f.pageToken, "page-token", "", "continue a search from this `token` (repeat its other flags unchanged)")
	fs.BoolVar(&f.all, "all", false, "follow every page to the end")
	fs.IntVar(&f.limit, "limit", 0, "stop after `n` events, following pages as needed (0: no limit)")
	fs.StringVar(&f.format, "o", formatTable, "output `format`: table, json (the REST response), jsonl (one event per line) or csv (one row per event, for spreadsheets)")
	fs.StringVar(&f.countBy, "count-by", "", "print how many events have each value of these comma-separated `fields` (principal, action, day, metadata.KEY, ...), most first, instead of the events; follows every page")
	fs.StringVar(&f.mirror, "mirror", "", "search this mirror `directory` (audittrail mirror) instead of a server, verifying it with --log-key")
	fs.StringVar(&f.logKey, "log-key", "", "public key `file` of the log, to verify the --mirror directory")
	return fs
}

// searchPlan is what a search command line asks for, checked.
type searchPlan struct {
	conn   connFlags
	req    audittrail.SearchEventsRequest
	follow bool // fetch pages until the end or the limit
	limit  int  // 0: none
	format string
	// countBy, when set, asks for the counts of the events by these
	// fields instead of the events (countWriter).
	countBy []countField
	// resume holds the time flags that repeat this search exactly (a
	// relative time resolved to the instant used), for the next-page hint.
	resume []string
	// mirror, when set, is the mirror directory to search instead of a
	// server, verified with the public key file logKey.
	mirror, logKey string
}

// parseSearch turns the arguments of search into a plan, resolving relative
// times against now.
func parseSearch(args []string, now time.Time, stdout io.Writer) (*searchPlan, error) {
	var f searchFlags
	fs := newSearchFlags(&f)
	if err := parseFlags(fs, args, (&SearchCommand{}).Usage(), stdout); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("unexpected argument %q: search takes only flags (see -h)", fs.Arg(0))
	}
	p := &searchPlan{conn: f.connFlags, follow: f.all || f.limit > 0, limit: f.limit, format: f.format, mirror: f.mirror, logKey: f.logKey}
	switch {
	case f.mirror != "" && f.logKey == "":
		return nil, usageErrorf("--mirror needs the log's public key (--log-key) to verify the directory")
	case f.mirror != "" && f.pageToken != "":
		return nil, usageErrorf("--page-token continues a search of a server, not of a --mirror (use --limit)")
	case f.mirror == "" && f.logKey != "":
		return nil, usageErrorf("--log-key goes with --mirror")
	}
	if _, err := newEventWriter(io.Discard, f.format); err != nil {
		return nil, usageErrorf("-o: %v", err)
	}
	if f.countBy != "" {
		var err error
		if p.countBy, err = parseCountBy(f.countBy); err != nil {
			return nil, err
		}
		p.follow = true // counts of one page would mislead
	}
	filter := &p.req.Filter
	filter.Exact, filter.Regex = f.exact, f.regex
	filter.StatusCodeRegex = f.statusRegex
	filter.ReadOnly = f.readOnly.value
	filter.MetadataExact, filter.MetadataRegex = f.metadata.m, f.metadataRegex.m
	filter.IncludeTypes, filter.ExcludeTypes = f.includeTypes, f.excludeTypes

	switch {
	case f.since != "" && f.start != "":
		return nil, usageErrorf("--since and --start both give the start of the search: use one")
	case f.since != "":
		d, err := parseAgo(f.since)
		if err != nil {
			return nil, usageErrorf("--since: %v", err)
		}
		t := now.Add(-d)
		filter.StartTime = &t
		p.resume = append(p.resume, "--start", t.UTC().Format(time.RFC3339Nano))
	case f.start != "":
		t, err := parseTime(f.start, now)
		if err != nil {
			return nil, usageErrorf("--start: %v", err)
		}
		filter.StartTime = &t
		p.resume = append(p.resume, "--start", t.UTC().Format(time.RFC3339Nano))
	}
	if f.until != "" {
		t, err := parseTime(f.until, now)
		if err != nil {
			return nil, usageErrorf("--until: %v", err)
		}
		filter.EndTime = &t
		p.resume = append(p.resume, "--until", t.UTC().Format(time.RFC3339Nano))
	}
	// The server checks the filter too; checking here, with the same code,
	// turns a bad regex or an empty range into a usage error before any
	// connection is made.
	if _, err := filter.Compile(now); err != nil {
		return nil, usageErrorf("bad filter: %s", audittrail.ErrorMessage(err))
	}

	switch {
	case f.pageSize < 0 || f.pageSize > audittrail.MaxPageSize:
		return nil, usageErrorf("--page-size %d is out of range: it must be from 0 (the server default) to %d", f.pageSize, audittrail.MaxPageSize)
	case f.pageSize == 0 && p.follow:
		p.req.PageSize = audittrail.MaxPageSize
	default:
		p.req.PageSize = f.pageSize
	}
	if f.limit < 0 {
		return nil, usageErrorf("--limit %d is negative", f.limit)
	}
	p.req.PageToken = f.pageToken
	return p, nil
}

// Run runs the command with the arguments after "search".
func (c *SearchCommand) Run(ctx context.Context, args []string) error {
	p, err := parseSearch(args, time.Now(), c.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if p.mirror != "" {
		return c.searchMirror(p)
	}
	cl, err := p.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()

	out := p.output(c.Stdout, c.Stderr)
	req, n := p.req, 0
	var last *audittrail.SearchEventsResponse
	for {
		if p.limit > 0 {
			// Ask for no more than the limit leaves, so that the output
			// ends on a page boundary and the last token resumes exactly
			// after the last event printed.
			size := req.PageSize
			if size == 0 {
				size = audittrail.DefaultPageSize
			}
			req.PageSize = min(size, p.limit-n)
		}
		resp, err := cl.SearchEvents(ctx, req)
		if err != nil {
			if n > 0 && p.countBy == nil {
				// Keep what was printed readable (and a table aligned).
				// Counts of part of the events are not printed: they
				// would read as the answer.
				_ = out.close(last)
			}
			return err
		}
		last = resp
		for _, e := range resp.Events {
			if err := out.write(e); err != nil {
				return err
			}
		}
		n += len(resp.Events)
		if resp.NextPageToken == "" || !p.follow || (p.limit > 0 && n >= p.limit) {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	if err := out.close(last); err != nil {
		return err
	}
	if last.NextPageToken != "" {
		fmt.Fprintf(c.Stderr, "more events remain (searched back to %s); for the next page repeat the search with: %s--page-token %s\n",
			last.SearchedUntil.UTC().Format(time.RFC3339), resumeFlags(p.resume), last.NextPageToken)
	}
	return nil
}

// output returns the writer of the events found: the format asked for, or
// the counts of --count-by (with their summary on stderr).
func (p *searchPlan) output(stdout, stderr io.Writer) eventWriter {
	if p.countBy != nil {
		return newCountWriter(stdout, stderr, p.format, p.countBy)
	}
	out, _ := newEventWriter(stdout, p.format) // the format was checked by parseSearch
	return out
}

func resumeFlags(flags []string) string {
	var b strings.Builder
	for _, f := range flags {
		b.WriteString(f)
		b.WriteByte(' ')
	}
	return b.String()
}

// connFlags are how a client subcommand connects: where, with which token,
// over which TLS.
type connFlags struct {
	addr, token, caFile string
	certFile, keyFile   string // client certificate (mutual TLS)
}

// addTLSFlags registers --ca-file, --cert and --key.
func (c *connFlags) addTLSFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.caFile, "ca-file", "", "connect with TLS, trusting the CA certificates in this PEM `file`")
	fs.StringVar(&c.certFile, "cert", "", "client certificate PEM `file` for mutual TLS (implies TLS; with --key)")
	fs.StringVar(&c.keyFile, "key", "", "key PEM `file` of --cert")
}

// dial connects to the server for a subcommand.
func (c *connFlags) dial(ctx context.Context) (*client.Client, error) {
	var opts []client.Option
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	if c.caFile != "" {
		opts = append(opts, client.WithTLS(c.caFile))
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, usageErrorf("--cert and --key go together")
	}
	if c.certFile != "" {
		opts = append(opts, client.WithClientCert(c.certFile, c.keyFile))
	}
	cl, err := client.Dial(ctx, c.addr, opts...)
	if err != nil {
		return nil, usageErrorf("%s", audittrail.ErrorMessage(err))
	}
	return cl, nil
}

// optionalBool is a flag that may be unset, true or false.
type optionalBool struct{ value *bool }

func (o *optionalBool) String() string {
	if o == nil || o.value == nil {
		return ""
	}
	return strconv.FormatBool(*o.value)
}

func (o *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	o.value = &v
	return nil
}

// keyValues is a repeatable key=value flag.
type keyValues struct{ m map[string]string }

func (kv *keyValues) String() string {
	if kv == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kv.m)) {
		parts = append(parts, k+"="+kv.m[k])
	}
	return strings.Join(parts, ",")
}

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	if _, dup := kv.m[k]; dup {
		return fmt.Errorf("key %q given twice", k)
	}
	if kv.m == nil {
		kv.m = map[string]string{}
	}
	kv.m[k] = v
	return nil
}

// eventTypes is a repeatable event type flag.
type eventTypes []audittrail.EventType

var typeNames = map[string]audittrail.EventType{
	"UNSPECIFIED": audittrail.TypeUnspecified,
	"API":         audittrail.TypeAPI,
	"SYSTEM":      audittrail.TypeSystem,
}

func (ts *eventTypes) String() string {
	if ts == nil {
		return ""
	}
	var parts []string
	for _, t := range *ts {
		for name, v := range typeNames {
			if v == t {
				parts = append(parts, name)
			}
		}
	}
	return strings.Join(parts, ",")
}

func (ts *eventTypes) Set(s string) error {
	t, ok := typeNames[strings.TrimPrefix(strings.ToUpper(s), "TYPE_")]
	if !ok {
		return fmt.Errorf("%q is not an event type: use API, SYSTEM or UNSPECIFIED", s)
	}
	*ts = append(*ts, t)
	return nil
}
