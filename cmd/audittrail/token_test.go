package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestTokenCommand runs serve --dev in process, then the token subcommands
// against it with the printed admin token.
func TestTokenCommand(t *testing.T) {
	m, out := startDev(t)
	admin := m.Config.Auth.AdminToken
	if len(admin) < 32 || !strings.Contains(out.String(), admin) || !strings.Contains(out.String(), "audittrail token create") {
		t.Fatalf("dev mode prints no admin token:\n%s", out)
	}
	cli := func(args ...string) (string, int) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append(args, "--addr", m.InternalURL, "--token", admin), &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	o, code := cli("token", "create", "--principal", "users/alice", "--role", "auditor", "--ttl", "90d", "-o", "json")
	if code != 0 {
		t.Fatalf("create: %d %s", code, o)
	}
	var created struct {
		ApiToken struct{ Id, Principal string }
		Secret   string
	}
	if err := json.Unmarshal([]byte(o), &created); err != nil || created.Secret == "" || created.ApiToken.Principal != "users/alice" {
		t.Fatalf("create output %q: %v", o, err)
	}
	search := func(tok string) int {
		req, _ := http.NewRequest("POST", m.PublicURL+"/v1/events:search", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := search(created.Secret); c != http.StatusOK {
		t.Errorf("search with the new token: %d", c)
	}
	if o, code := cli("token", "list"); code != 0 || !strings.Contains(o, created.ApiToken.Id) || !strings.Contains(o, "active") {
		t.Errorf("list: %d %s", code, o)
	}
	if o, code := cli("token", "revoke", created.ApiToken.Id); code != 0 || !strings.Contains(o, "revoked") {
		t.Errorf("revoke: %d %s", code, o)
	}
	if c := search(created.Secret); c != http.StatusUnauthorized {
		t.Errorf("search with the revoked token: %d", c)
	}
	if o, code := cli("token", "create", "--principal", "users/bob", "--role", "producer"); code != 1 || !strings.Contains(o, "service principals") {
		t.Errorf("user producer: %d %s", code, o)
	}
	if o, code := cli("token", "create", "--principal", "users/bob"); code != 2 {
		t.Errorf("no role: %d %s", code, o)
	}
	// A non-admin token is refused.
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"token", "list", "--addr", m.InternalURL, "--token", m.Config.ReaderToken}, &stdout, &stdout); code != 1 || !strings.Contains(stdout.String(), "admin role") {
		t.Errorf("reader listing tokens: %d %s", code, stdout.String())
	}
}
