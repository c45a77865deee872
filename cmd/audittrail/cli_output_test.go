package main

import (
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
