package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/wire"
)

// CreateCommand implements "audittrail create": it sends events to a
// server's internal listener, from a file, standard input, or the sample
// generator.
type CreateCommand struct {
	Stdout, Stderr io.Writer
}

const createSynopsis = `usage: audittrail create [flags] [file]
       audittrail create [flags] --sample N

Creates audit events, read from the file (or standard input when there is no
file or it is "-"), in batches. The input is a JSON array of items, or JSON
Lines with one item per line. An item is an event in the JSON of the API
({"eventTime": "2026-01-02T15:04:05Z", "eventSource": ..., "action": ...,
"principal": ..., "sourceIpAddress": ..., ...}) or an object
{"eventId": "<uuid4>", "event": {...}}. An event without an id keeps the id
in its "name" ("events/<id>", as search prints it), or gets a new UUIDv4.
So "audittrail search --all -o jsonl | audittrail create" copies events, and
repeating it is harmless: a create is idempotent by event id.

With --sample N it creates N realistic demo events instead, spread over
--span up to --end.

A summary follows: how many events were created, and each failure with its
item index (0-based) and reason. The exit status is 1 when any event failed,
2 when the flags or the input are bad (then nothing was sent).

Environment: AUDITTRAIL_INTERNAL_ADDR (--addr), AUDITTRAIL_PRODUCER_TOKEN or
AUDITTRAIL_TOKEN (--token).
`

// Usage returns the help text.
func (c *CreateCommand) Usage() string {
	return usageText(createSynopsis, newCreateFlags(&createFlags{}))
}

type createFlags struct {
	connFlags
	batch  int
	sample int
	seed   int64
	span   time.Duration
	end    string
}

func newCreateFlags(f *createFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", envDefault("127.0.0.1:8081", "AUDITTRAIL_INTERNAL_ADDR"), "`host:port` of the server's internal listener")
	fs.StringVar(&f.token, "token", envDefault("", "AUDITTRAIL_PRODUCER_TOKEN", "AUDITTRAIL_TOKEN"), "bearer `token` of a producer")
	f.addTLSFlags(fs)
	fs.IntVar(&f.batch, "batch", audittrail.MaxBatch, "events per request (1 to 1000)")
	fs.IntVar(&f.sample, "sample", 0, "create `n` generated demo events instead of reading input")
	fs.Int64Var(&f.seed, "seed", 0, "seed of --sample; the same seed and flags give the same events (0: a random seed, printed)")
	fs.DurationVar(&f.span, "span", 720*time.Hour, "time covered by the --sample events")
	fs.StringVar(&f.end, "end", "", "RFC 3339 `time` after the last --sample event (default now)")
	return fs
}

// createItem is one event to create, with where it came from.
type createItem struct {
	req  audittrail.CreateRequest
	line int // line of the input where it starts; 0 when not from a line-based input
}

// Run runs the command with the arguments after "create".
func (c *CreateCommand) Run(ctx context.Context, args []string) error {
	var f createFlags
	fs := newCreateFlags(&f)
	if err := parseFlags(fs, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if f.batch < 1 || f.batch > audittrail.MaxBatch {
		return usageErrorf("--batch %d is out of range: it must be from 1 to %d", f.batch, audittrail.MaxBatch)
	}
	var items []createItem
	switch {
	case f.sample < 0:
		return usageErrorf("--sample %d is negative", f.sample)
	case f.sample > 0:
		if fs.NArg() > 0 {
			return usageErrorf("--sample generates the events: give no input file")
		}
		end := time.Now()
		if f.end != "" {
			t, err := parseRFC3339(f.end)
			if errors.Is(err, errOffset) {
				return usageErrorf("--end %v", err)
			}
			if err != nil {
				return usageErrorf("--end %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", f.end)
			}
			end = t
		}
		if f.span <= 0 {
			return usageErrorf("--span %s must be positive", f.span)
		}
		seed := f.seed
		if seed == 0 {
			seed = rand.Int64N(1<<31) + 1
		}
		fmt.Fprintf(c.Stderr, "generating %d events with --seed %d --span %s --end %s\n", f.sample, seed, f.span, end.UTC().Format(time.RFC3339Nano))
		items = sampleItems(seed, sampleOptions(f.sample, f.span, end), f.sample)
	default:
		if fs.NArg() > 1 {
			return usageErrorf("give at most one input file (got %d arguments)", fs.NArg())
		}
		in, name := io.Reader(os.Stdin), "standard input"
		if fi, err := os.Stdin.Stat(); fs.NArg() == 0 && err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(c.Stderr, "reading events from the terminal; end with Ctrl-D (or give a file, or --sample N; see -h)")
		}
		if fs.NArg() == 1 && fs.Arg(0) != "-" {
			file, err := os.Open(fs.Arg(0))
			if err != nil {
				return usageErrorf("%v", err)
			}
			defer file.Close()
			in, name = file, fs.Arg(0)
		}
		var err error
		if items, err = readEvents(in); err != nil {
			return usageErrorf("%s: %v", name, err)
		}
	}

	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()

	created, failed := 0, 0
	var callErr error
	for start := 0; start < len(items); start += f.batch {
		chunk := items[start:min(start+f.batch, len(items))]
		reqs := make([]audittrail.CreateRequest, len(chunk))
		for i := range chunk {
			reqs[i] = chunk[i].req
		}
		res, err := cl.BatchCreateEvents(ctx, reqs)
		if err != nil {
			// The client retried what can be retried; the server cannot be
			// used now, and the remaining batches would fail the same way.
			callErr = fmt.Errorf("items %d to %d and after were not created: %w", start, len(items)-1, err)
			break
		}
		created += len(res.Events)
		for i := range chunk {
			if e, ok := res.Failed[i]; ok {
				failed++
				fmt.Fprintf(c.Stdout, "failed: item %d%s (event_id %s): %s: %s\n", start+i, chunk[i].where(), chunk[i].req.EventID, e.Code, e.Message)
			}
		}
	}
	fmt.Fprintf(c.Stdout, "created %d of %d events, %d failed\n", created, len(items), failed)
	if callErr != nil {
		return &exitError{code: exitFailure, err: callErr}
	}
	if failed > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("%d of %d events failed", failed, len(items))}
	}
	return nil
}

func (it createItem) where() string {
	if it.line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", it.line)
}

// sampleOptions are the generator options of create --sample n --span span
// --end end.
func sampleOptions(n int, span time.Duration, end time.Time) sample.Options {
	return sample.Options{Events: n, Span: span, End: end}
}

func sampleItems(seed int64, opts sample.Options, n int) []createItem {
	g := sample.New(seed, opts)
	items := make([]createItem, n)
	for i := range items {
		items[i].req.EventID, items[i].req.Event = g.Next()
	}
	return items
}

// readEvents parses the input of create: a JSON array of items, or a stream
// of items (JSON Lines). The whole input is checked before anything is sent.
func readEvents(r io.Reader) ([]createItem, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var items []createItem
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, fmt.Errorf("not a JSON array of events: %v", jsonErr(err, data))
		}
		for i, raw := range raws {
			req, err := parseItem(raw)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i, err)
			}
			items = append(items, createItem{req: req})
		}
		return items, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	// line is the line of offset counted, carried from item to item:
	// counting from the start for each item made a file of n lines cost
	// n² (60,000 lines: 16 s).
	line, counted := 1, 0
	for i := 0; ; i++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("item %d: %v", i, jsonErr(err, data))
		}
		// The item starts after the whitespace before it.
		start := int(dec.InputOffset()) - len(raw)
		line += bytes.Count(data[counted:start], []byte{'\n'})
		counted = start
		req, err := parseItem(raw)
		if err != nil {
			return nil, fmt.Errorf("item %d (line %d): %v", i, line, err)
		}
		items = append(items, createItem{req: req, line: line})
	}
	return items, nil
}

// jsonErr adds the line to a JSON syntax error.
func jsonErr(err error, data []byte) error {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(data)) {
		return fmt.Errorf("line %d: %v", 1+bytes.Count(data[:se.Offset], []byte{'\n'}), err)
	}
	return err
}

// parseItem parses one item: an event, or {"eventId": ..., "event": {...}}.
func parseItem(raw json.RawMessage) (audittrail.CreateRequest, error) {
	var req audittrail.CreateRequest
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		return req, fmt.Errorf("not a JSON object")
	}
	eventJSON := []byte(raw)
	if ev, ok := keys["event"]; ok {
		eventJSON = ev
		for k, v := range keys {
			switch k {
			case "event":
			case "eventId", "event_id":
				if err := json.Unmarshal(v, &req.EventID); err != nil {
					return req, fmt.Errorf("%s is not a string", k)
				}
			default:
				return req, fmt.Errorf("unknown key %q: an item is an event, or {\"eventId\": ..., \"event\": {...}}", k)
			}
		}
	}
	p := &pb.Event{}
	if err := protojson.Unmarshal(eventJSON, p); err != nil {
		return req, fmt.Errorf("bad event: %s", strings.TrimPrefix(err.Error(), "proto: "))
	}
	ne, err := wire.EventFromProto(p)
	if err != nil {
		return req, fmt.Errorf("bad event: %s", audittrail.ErrorMessage(err))
	}
	req.Event = ne
	if req.EventID == "" {
		if id, ok := strings.CutPrefix(p.GetName(), "events/"); ok && id != "" {
			req.EventID = id
		} else {
			req.EventID = audittrail.NewEventID(time.Now())
		}
	}
	return req, nil
}
