package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/testserver"
)

// TestServePostgresReplicas runs two server replicas on one PostgreSQL
// database: events created through one are found through the other, and a
// page token issued by one replica continues on the other (the replicas share
// the page-token key through the database).
func TestServePostgresReplicas(t *testing.T) {
	url := pgtest.Start(t)
	a := testserver.Start(t, "--store", url)
	b := testserver.Start(t, "--store", url)

	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var reqs []map[string]any
	want := map[string]bool{}
	for i := range 25 {
		id := uuid.NewString()
		want["events/"+id] = true
		reqs = append(reqs, map[string]any{"eventId": id, "event": map[string]any{
			"eventTime": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), "eventSource": "svc",
			"action": "actions/x/y/CREATE", "principal": "users/replica-test", "sourceIpAddress": "1.2.3.4",
			"status": map[string]any{"code": 0},
		}})
	}
	var created struct{ Events []struct{ Name string } }
	postJSON(t, a.InternalURL+"/v1/events:batchCreate", a.ProducerToken, map[string]any{"requests": reqs}, &created)
	if len(created.Events) != len(reqs) {
		t.Fatalf("created %d events through replica A, want %d", len(created.Events), len(reqs))
	}

	filter := map[string]any{"principalExact": "users/replica-test", "startEventTime": base.Format(time.RFC3339)}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		srv := []*testserver.Server{b, a}[page%2] // alternate replicas page by page
		var resp struct {
			Events        []struct{ Name string }
			NextPageToken string
		}
		postJSON(t, srv.PublicURL+"/v1/events:search", srv.ReaderToken, map[string]any{"filter": filter, "pageSize": 7, "pageToken": token}, &resp)
		for _, e := range resp.Events {
			if seen[e.Name] {
				t.Fatalf("event %s returned twice across replicas", e.Name)
			}
			seen[e.Name] = true
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
		if page > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("paging across replicas found %d events, want %d", len(seen), len(want))
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("event %s created on replica A not found", name)
		}
	}
	res, err := http.Get(b.PublicURL + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz of a replica on a live database: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
}

func postJSON(t *testing.T, url, token string, body, out any) {
	t.Helper()
	code, answer := post(t, url, token, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, code, answer)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		t.Fatal(fmt.Errorf("decoding %s: %w", answer, err))
	}
}

// post posts body as JSON with the bearer token and returns the status and
// the answer.
func post(t *testing.T, url, token string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	return res.StatusCode, buf.Bytes()
}
