package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"strings"
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

// TestServePostgresIssuerKeys: replicas on one database, each with its own
// built-in issuer key (their data directories differ), accept each other's
// access tokens: each publishes its public key in the database
// (token.PeerKeys). They share the issuer URL (--public-url), as replicas
// behind one load balancer do.
func TestServePostgresIssuerKeys(t *testing.T) {
	url := pgtest.Start(t)
	a := testserver.Start(t, "--store", url, "--public-url", "http://audit.example")
	b := testserver.Start(t, "--store", url, "--public-url", "http://audit.example")
	if bytes.Equal(mustRead(t, filepath.Join(a.DataDir, "issuer.key")), mustRead(t, filepath.Join(b.DataDir, "issuer.key"))) {
		t.Fatal("the replicas share an issuer key: the test proves nothing")
	}
	// An access token from A's issuer, for A's reader token.
	res, err := http.PostForm(a.PublicURL+"/oauth2/token", neturl.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {a.ReaderToken}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token from replica A: %d %v", res.StatusCode, err)
	}
	for name, srv := range map[string]*testserver.Server{"A": a, "B": b} {
		var resp struct{ Events []struct{ Name string } }
		postJSON(t, srv.PublicURL+"/v1/events:search", tok.AccessToken, map[string]any{"pageSize": 1}, &resp)
		t.Logf("replica %s accepted A's access token", name)
	}
	// And the other way: A read the published keys before B started, and
	// reads them again when a token names a key it does not know (at most
	// once a second).
	res, err = http.PostForm(b.PublicURL+"/oauth2/token", neturl.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {b.ReaderToken}})
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("token from replica B: %d %v", res.StatusCode, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, answer := post(t, a.PublicURL+"/v1/events:search", tok.AccessToken, map[string]any{"pageSize": 1})
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica A refuses B's access token: %d %s", code, answer)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// B's keys (JWKS) list both replicas' keys.
	res, err = http.Get(b.PublicURL + "/oauth2/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct{ Keys []struct{ Kid string } }
	err = json.NewDecoder(res.Body).Decode(&jwks)
	res.Body.Close()
	if err != nil || len(jwks.Keys) != 2 || jwks.Keys[0].Kid == jwks.Keys[1].Kid {
		t.Errorf("replica B's JWKS: %+v %v, want the two replicas' keys", jwks, err)
	}
}

// TestServeDataDirOfTheOtherStore: a data directory serves one store. The
// embedded store started on a PostgreSQL replica's data directory (--store
// forgotten), or a replica on a new database given an embedded store's, is
// refused: either would start a new log signed with the other store's
// signing key (the directory's log-signing.key), two different trees under
// one key, a fork to every verifier of the first. Before, both started.
func TestServeDataDirOfTheOtherStore(t *testing.T) {
	start := func(dir string, args ...string) error {
		m, _ := newTestMain(nil)
		if err := m.ParseFlags(append([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}, args...)); err != nil {
			t.Fatal(err)
		}
		err := m.Run(t.Context())
		if cerr := m.Close(); err == nil && cerr != nil {
			t.Fatal(cerr)
		}
		return err
	}
	replicaDir := t.TempDir()
	if err := start(replicaDir, "--store", pgtest.Start(t)); err != nil {
		t.Fatal(err)
	}
	if err := start(replicaDir); err == nil || !strings.Contains(err.Error(), "no embedded store") {
		t.Errorf("the embedded store on a PostgreSQL replica's data directory: %v; want it refused", err)
	}
	embeddedDir := t.TempDir()
	if err := start(embeddedDir); err != nil {
		t.Fatal(err)
	}
	if err := start(embeddedDir, "--store", pgtest.Start(t)); err == nil || !strings.Contains(err.Error(), "holds an embedded store") {
		t.Errorf("a PostgreSQL replica on an embedded store's data directory: %v; want it refused", err)
	}
}
