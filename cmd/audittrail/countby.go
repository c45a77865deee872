package main

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// search --count-by: instead of the events, how many of them share each
// value (or combination of values) of the fields given, most first. The
// API has no aggregation, so the command follows every page and counts as
// the events go by; it keeps one counter per distinct combination, not the
// events.

// countField is a value of an event that --count-by groups by.
type countField struct {
	name  string
	value func(e *audittrail.Event) string
}

// countFields are the fields --count-by takes by name, the API's names as
// in -o csv's header, in the order the refusal of another name lists them;
// metadata.KEY and request_parameters.KEY are parsed apart.
var countFields = []countField{
	{"principal", func(e *audittrail.Event) string { return e.Principal }},
	{"login_principal", func(e *audittrail.Event) string { return e.LoginPrincipal }},
	{"action", func(e *audittrail.Event) string { return e.Action }},
	{"resource", func(e *audittrail.Event) string { return e.Resource }},
	{"workspace", func(e *audittrail.Event) string { return e.Workspace }},
	{"event_source", func(e *audittrail.Event) string { return e.EventSource }},
	{"source_ip_address", func(e *audittrail.Event) string { return e.SourceIP }},
	{"user_agent", func(e *audittrail.Event) string { return e.UserAgent }},
	{"status_code", func(e *audittrail.Event) string { return e.StatusCodeString() }},
	{"read_only", func(e *audittrail.Event) string { return strconv.FormatBool(e.ReadOnly) }},
	{"type", func(e *audittrail.Event) string { return pb.EventType(e.Type).String() }},
	// The event time's UTC day and hour, as the API writes times.
	{"day", func(e *audittrail.Event) string { return e.EventTime.UTC().Format("2006-01-02") }},
	{"hour", func(e *audittrail.Event) string { return e.EventTime.UTC().Format("2006-01-02T15") }},
}

// parseCountBy parses the comma-separated fields of --count-by.
func parseCountBy(s string) ([]countField, error) {
	var fields []countField
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		var value func(e *audittrail.Event) string
		if key, ok := strings.CutPrefix(name, "metadata."); ok && key != "" {
			value = func(e *audittrail.Event) string { return e.Metadata[key] }
		} else if key, ok := strings.CutPrefix(name, "request_parameters."); ok && key != "" {
			value = func(e *audittrail.Event) string { return e.RequestParameters[key] }
		} else if i := slices.IndexFunc(countFields, func(f countField) bool { return f.name == name }); i >= 0 {
			value = countFields[i].value
		} else {
			names := make([]string, 0, len(countFields)+2)
			for _, f := range countFields {
				names = append(names, f.name)
			}
			return nil, usageErrorf("--count-by %q: %q is not a field to count by; give one or more, comma-separated, of %s", s, name,
				strings.Join(append(names, "metadata.KEY", "request_parameters.KEY"), ", "))
		}
		if slices.ContainsFunc(fields, func(f countField) bool { return f.name == name }) {
			return nil, usageErrorf("--count-by %q: %s is given twice", s, name)
		}
		fields = append(fields, countField{name: name, value: value})
	}
	return fields, nil
}

// countWriter is the eventWriter of --count-by: it counts the events by
// their values of the fields and writes the counts at close, most first
// (ties in the order of the values), in the format asked for.
type countWriter struct {
	w, summary io.Writer
	format     string
	fields     []countField
	rows       map[string]*countRow // by the values, each after its length (values may hold any character)
	events     int
}

type countRow struct {
	values []string
	n      int
}

func newCountWriter(w, summary io.Writer, format string, fields []countField) *countWriter {
	return &countWriter{w: w, summary: summary, format: format, fields: fields, rows: map[string]*countRow{}}
}

func (c *countWriter) write(e *audittrail.Event) error {
	values := make([]string, len(c.fields))
	var key strings.Builder
	for i, f := range c.fields {
		values[i] = f.value(e)
		fmt.Fprintf(&key, "%d:%s", len(values[i]), values[i])
	}
	r := c.rows[key.String()]
	if r == nil {
		r = &countRow{values: values}
		c.rows[key.String()] = r
	}
	r.n++
	c.events++
	return nil
}

func (c *countWriter) close(*audittrail.SearchEventsResponse) error {
	rows := make([]*countRow, 0, len(c.rows))
	for _, r := range c.rows {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *countRow) int { return cmp.Or(cmp.Compare(b.n, a.n), slices.Compare(a.values, b.values)) })
	var err error
	switch c.format {
	case formatTable:
		err = c.table(rows)
	case formatCSV:
		err = c.csv(rows)
	case formatJSONL, formatJSON:
		err = c.json(rows)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.summary, "%d events counted, %d distinct\n", c.events, len(rows))
	return nil
}

func (c *countWriter) table(rows []*countRow) error {
	tw := tabwriter.NewWriter(c.w, 0, 0, 2, ' ', 0)
	for _, f := range c.fields {
		fmt.Fprintf(tw, "%s\t", strings.ToUpper(f.name))
	}
	fmt.Fprintln(tw, "COUNT")
	for _, r := range rows {
		for _, v := range r.values {
			fmt.Fprintf(tw, "%s\t", cell(v))
		}
		fmt.Fprintf(tw, "%d\n", r.n)
	}
	return tw.Flush()
}

func (c *countWriter) csv(rows []*countRow) error {
	w := csv.NewWriter(c.w)
	header := make([]string, 0, len(c.fields)+1)
	for _, f := range c.fields {
		header = append(header, f.name)
	}
	if err := w.Write(append(header, "count")); err != nil {
		return err
	}
	for _, r := range rows {
		row := make([]string, 0, len(r.values)+1)
		for _, v := range r.values {
			row = append(row, csvText(v))
		}
		if err := w.Write(append(row, strconv.Itoa(r.n))); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// json writes one object per row, the fields' names as keys in the order
// given and then "count"; -o json puts the objects in one array.
func (c *countWriter) json(rows []*countRow) error {
	var b strings.Builder
	if c.format == formatJSON {
		b.WriteString("[\n")
	}
	for i, r := range rows {
		if c.format == formatJSON {
			b.WriteString("  ")
		}
		b.WriteByte('{')
		for j, f := range c.fields {
			name, _ := json.Marshal(f.name)
			value, _ := json.Marshal(r.values[j])
			fmt.Fprintf(&b, "%s:%s,", name, value)
		}
		fmt.Fprintf(&b, `"count":%d}`, r.n)
		if c.format == formatJSON && i < len(rows)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	if c.format == formatJSON {
		b.WriteString("]\n")
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}
