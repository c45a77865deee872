package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestServeOIDCAndPolicyReload runs serve with an OIDC issuer (in the test
// process) and a policy file: a user's token is refused until the policy
// binds the user, and the binding takes effect without a restart; the login
// name shows in login_principal.
func TestServeOIDCAndPolicyReload(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var idp *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL, "jwks_uri": idp.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "ES256", Use: "sig"}}})
	})
	idp = httptest.NewServer(mux)
	defer idp.Close()
	sign := func(c map[string]any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k"))
		b, _ := json.Marshal(c)
		o, _ := s.Sign(b)
		out, _ := o.CompactSerialize()
		return out
	}
	now := time.Now()
	jwt := sign(map[string]any{"iss": idp.URL, "sub": "u-123", "aud": "audittrail", "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "preferred_username": "jane.doe", "groups": []string{"staff"}})

	dir := t.TempDir()
	polFile := filepath.Join(dir, "policy.json")
	writePolicy := func(doc string) {
		if err := os.WriteFile(polFile+".tmp", []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(polFile+".tmp", polFile)
	}
	writePolicy(`{"bindings": [{"principals": ["users/someone-else"], "roles": ["auditor"]}]}`)
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--data-dir", filepath.Join(dir, "data"), "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
		"--oidc-issuer", idp.URL, "--oidc-audience", "audittrail", "--policy", polFile, "--producer-token", "p", "--reader-token", "r"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	defer m.Close()
	search := func(tok, body string) (int, string) {
		req, _ := http.NewRequest("POST", m.PublicURL+"/v1/events:search", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	if code, body := search(jwt, "{}"); code != http.StatusForbidden {
		t.Fatalf("unbound user: %d %s", code, body)
	}
	writePolicy(`{"bindings": [{"groups": ["staff"], "roles": ["auditor"]}]}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := search(jwt, "{}")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy was not reloaded: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The user's own SEARCH events carry its login name.
	code, body := search(jwt, `{"filter": {"principalExact": "users/u-123", "eventSourceExact": "h2oai-audittrail-server"}, "pageSize": 1}`)
	if code != http.StatusOK || !strings.Contains(body, `"loginPrincipal":"jane.doe"`) {
		t.Errorf("login_principal: %d %s", code, body)
	}
	// An expired token of the same issuer is refused.
	expired := sign(map[string]any{"iss": idp.URL, "sub": "u-123", "aud": "audittrail", "exp": now.Add(-time.Hour).Unix()})
	if code, _ := search(expired, "{}"); code != http.StatusUnauthorized {
		t.Errorf("expired: %d", code)
	}
}
