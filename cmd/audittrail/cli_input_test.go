package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

const inputEvent = `{"eventTime": "2026-01-02T03:04:05.123456+01:00", "eventSource": "h2oai-x-server", "action": "actions/x/y/GET",
  "readOnly": true, "status": {"code": 0}, "principal": "users/1", "sourceIpAddress": "1.2.3.4",
  "resource": "//x/workspaces/w1/y/z", "metadata": {"region": "eu"}, "requestParameters": {"a": "b"}, "type": "TYPE_SYSTEM"}`

func wantInputEvent() audittrail.NewEvent {
	return audittrail.NewEvent{Event: audittrail.Event{
		EventTime:         time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC),
		EventSource:       "h2oai-x-server",
		Action:            "actions/x/y/GET",
		ReadOnly:          true,
		Status:            &audittrail.Status{},
		Principal:         "users/1",
		SourceIP:          "1.2.3.4",
		Resource:          "//x/workspaces/w1/y/z",
		Metadata:          map[string]string{"region": "eu"},
		RequestParameters: map[string]string{"a": "b"},
		Type:              audittrail.TypeSystem,
	}}
}

func TestReadEvents(t *testing.T) {
	const id1, id2 = "b096430b-c7a8-47f2-a129-d9ae58cf454f", "5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e"
	oneLine := strings.ReplaceAll(inputEvent, "\n", "")
	tests := []struct {
		name    string
		input   string
		wantIDs []string // "" : a fresh UUIDv4
		lines   []int
	}{
		{"array", "[" + inputEvent + ",\n" + `{"eventId": "` + id1 + `", "event": ` + inputEvent + "}]", []string{"", id1}, []int{0, 0}},
		{"json lines", oneLine + "\n\n" + `{"event_id": "` + id2 + `", "event": ` + oneLine + "}\n", []string{"", id2}, []int{1, 3}},
		{"id from name", `{"name": "events/` + id1 + `", ` + oneLine[1:] + "\n", []string{id1}, []int{1}},
		{"multi-line objects", inputEvent + "\n" + inputEvent, []string{"", ""}, []int{1, 4}},
		{"empty", "  \n", nil, nil},
		{"empty array", "[]", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := readEvents(strings.NewReader(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(tt.wantIDs) {
				t.Fatalf("%d items, want %d", len(items), len(tt.wantIDs))
			}
			for i, it := range items {
				if tt.wantIDs[i] == "" {
					if err := audittrail.ValidateEventID(it.req.EventID); err != nil {
						t.Errorf("item %d: generated id %q: %v", i, it.req.EventID, err)
					}
				} else if it.req.EventID != tt.wantIDs[i] {
					t.Errorf("item %d: id %q, want %q", i, it.req.EventID, tt.wantIDs[i])
				}
				if it.line != tt.lines[i] {
					t.Errorf("item %d: line %d, want %d", i, it.line, tt.lines[i])
				}
				if diff := cmp.Diff(wantInputEvent(), it.req.Event, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
					t.Errorf("item %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestReadEventsFreshIDsDiffer(t *testing.T) {
	items, err := readEvents(strings.NewReader(inputEvent + inputEvent))
	if err != nil {
		t.Fatal(err)
	}
	if items[0].req.EventID == items[1].req.EventID {
		t.Errorf("two events without id got the same id %s", items[0].req.EventID)
	}
}

func TestReadEventsErrors(t *testing.T) {
	oneLine := strings.ReplaceAll(inputEvent, "\n", "")
	tests := []struct {
		name, input, want string
	}{
		{"syntax in lines", oneLine + "\n{\"action\": }\n", "item 1: line 2: invalid character '}'"},
		{"syntax in array", "[\n" + oneLine + ",\n{]", "not a JSON array of events: line 3"},
		{"not an object", "[1]", "item 0: not a JSON object"},
		{"unknown field", `{"principle": "users/1"}`, `item 0 (line 1): bad event: `},
		{"unknown wrapper key", `{"eventId": "x", "event": {}, "extra": 1}`, `unknown key "extra"`},
		{"bad id type", `{"eventId": 5, "event": {}}`, `eventId is not a string`},
		{"bad time", `{"eventTime": "yesterday"}`, `item 0 (line 1): bad event:`},
		{"bad type", `{"type": "TYPE_BATCH"}`, `bad event:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readEvents(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSampleItemsMatchGenerator(t *testing.T) {
	// create --sample sends exactly what the generator makes, so a test
	// (or a user) can regenerate the events from the seed and flags.
	end := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	a := sampleItems(5, sampleOptions(50, time.Hour, end), 50)
	b := sampleItems(5, sampleOptions(50, time.Hour, end), 50)
	if diff := cmp.Diff(a, b, cmp.AllowUnexported(createItem{})); diff != "" {
		t.Errorf("two runs differ:\n%s", diff)
	}
	for i, it := range a {
		if _, err := audittrail.PrepareNewEvent(it.req.EventID, it.req.Event, end, false); err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
}

// BenchmarkReadEventsJSONL reads create's input of lines (JSON Lines) of
// 1,000 and 20,000 events: the time per event should not grow with the
// input (it did, the line of each item counted from the start).
func BenchmarkReadEventsJSONL(b *testing.B) {
	one := strings.ReplaceAll(inputEvent, "\n", "") + "\n"
	for _, n := range []int{1000, 20000} {
		input := strings.Repeat(one, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(input)))
			for b.Loop() {
				items, err := readEvents(strings.NewReader(input))
				if err != nil || len(items) != n || items[n-1].line != n {
					b.Fatalf("%d items, the last at line %d: %v", len(items), items[len(items)-1].line, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}
