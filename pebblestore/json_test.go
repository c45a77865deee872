package pebblestore_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// mustJSON renders e roughly as the REST API does (camelCase fields, RFC
// 3339 times), to size the generated events.
func mustJSON(t testing.TB, e *audittrail.Event) []byte {
	type status struct {
		Code    int32  `json:"code"`
		Message string `json:"message,omitempty"`
	}
	v := struct {
		Name              string            `json:"name"`
		EventTime         string            `json:"eventTime"`
		ReceiveTime       string            `json:"receiveTime"`
		EventSource       string            `json:"eventSource"`
		Action            string            `json:"action"`
		ReadOnly          bool              `json:"readOnly"`
		Status            *status           `json:"status,omitempty"`
		Principal         string            `json:"principal"`
		LoginPrincipal    string            `json:"loginPrincipal"`
		SourceIP          string            `json:"sourceIpAddress"`
		UserAgent         string            `json:"userAgent"`
		Resource          string            `json:"resource"`
		Workspace         string            `json:"workspace"`
		RequestParameters map[string]string `json:"requestParameters,omitempty"`
		Metadata          map[string]string `json:"metadata,omitempty"`
		Type              string            `json:"type"`
	}{
		Name: e.Name(), EventTime: e.EventTime.Format(time.RFC3339Nano), ReceiveTime: e.ReceiveTime.Format(time.RFC3339Nano),
		EventSource: e.EventSource, Action: e.Action, ReadOnly: e.ReadOnly, Principal: e.Principal, LoginPrincipal: e.Principal,
		SourceIP: e.SourceIP, UserAgent: e.UserAgent, Resource: e.Resource, Workspace: e.Workspace,
		RequestParameters: e.RequestParameters, Metadata: e.Metadata, Type: "API",
	}
	if e.Status != nil {
		v.Status = &status{e.Status.Code, e.Status.Message}
	}
	_ = audittrail.TypeAPI
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
