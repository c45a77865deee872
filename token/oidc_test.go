package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/policy"
)

// testIssuer is a real OIDC issuer in the test process: a discovery
// document, a JWKS that can be rotated, and a signer for tokens.
type testIssuer struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]any // kid -> private key (*ecdsa.PrivateKey, *rsa.PrivateKey)
	current string
	fetches int
}

func newTestIssuer(t *testing.T) *testIssuer {
	ti := &testIssuer{t: t, keys: map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                ti.srv.URL,
			"jwks_uri":                              ti.srv.URL + "/jwks",
			"authorization_endpoint":                ti.srv.URL + "/auth",
			"token_endpoint":                        ti.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256", "RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.mu.Lock()
		defer ti.mu.Unlock()
		ti.fetches++
		var set jose.JSONWebKeySet
		for kid, k := range ti.keys {
			var pub any
			alg := "ES256"
			switch x := k.(type) {
			case *ecdsa.PrivateKey:
				pub = &x.PublicKey
			case *rsa.PrivateKey:
				pub, alg = &x.PublicKey, "RS256"
			}
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	ti.rotate("k1")
	return ti
}

// rotate adds a new EC key and makes it current; the other keys are dropped
// when drop is set.
func (ti *testIssuer) rotate(kid string, drop ...bool) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if len(drop) > 0 && drop[0] {
		ti.keys = map[string]any{}
	}
	ti.keys[kid] = k
	ti.current = kid
}

func (ti *testIssuer) jwksFetches() int {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.fetches
}

// claims returns valid claims for sub, to be edited by a test.
func (ti *testIssuer) claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": ti.srv.URL, "sub": sub, "aud": []string{"audittrail", "account"},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"preferred_username": "alice@example.com",
	}
}

// sign signs claims with the key of kid ("" = current).
func (ti *testIssuer) sign(c map[string]any, kid string) string {
	ti.mu.Lock()
	if kid == "" {
		kid = ti.current
	}
	k := ti.keys[kid]
	ti.mu.Unlock()
	return signWith(ti.t, c, k, kid)
}

func signWith(t *testing.T, c map[string]any, key any, kid string) string {
	alg := jose.ES256
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = jose.RS256
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	sig, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sig.CompactSerialize()
	return out
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newTestVerifier(t *testing.T, ti *testIssuer, pol *policy.Policy) *Verifier {
	v, err := NewVerifier(IssuerConfig{
		Issuer:             ti.srv.URL,
		Audiences:          []string{"audittrail"},
		ClockSkew:          30 * time.Second,
		MinRefreshInterval: 200 * time.Millisecond,
		Mapping:            Mapping{Policy: func() *policy.Policy { return pol }},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := audittrail.ErrorCode(err); got != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func TestOIDCVerification(t *testing.T) {
	ti := newTestIssuer(t)
	pol, err := policy.Parse([]byte(`{"bindings": [
		{"principals": ["users/alice"], "roles": ["auditor"]},
		{"groups": ["ws-team"], "roles": ["workspace_auditor"], "workspaces": ["w7"]},
		{"principals": ["services/appstore"], "roles": ["producer"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, ti, pol)
	ctx := context.Background()

	p, err := v.Authenticate(ctx, ti.sign(ti.claims("alice"), ""))
	if err != nil || p.Name != "users/alice" || p.LoginName != "alice@example.com" || !p.HasRole(audittrail.RoleAuditor) || p.Method != "oidc" {
		t.Fatalf("valid token: %+v, %v", p, err)
	}
	c := ti.claims("bob")
	c["groups"] = []string{"ws-team"}
	c["email"] = "bob@example.com"
	delete(c, "preferred_username")
	if p, err := v.Authenticate(ctx, ti.sign(c, "")); err != nil || p.Name != "users/bob" || p.LoginName != "bob@example.com" ||
		!p.HasRole(audittrail.RoleWorkspaceAuditor) || len(p.Workspaces) != 1 || p.Workspaces[0] != "workspaces/w7" {
		t.Errorf("group binding: %+v, %v", p, err)
	}
	// Client-credentials tokens name services.
	for name, c := range map[string]map[string]any{
		"client_id = sub":  {"sub": "appstore", "client_id": "appstore"},
		"azp = sub":        {"sub": "appstore", "azp": "appstore"},
		"keycloak account": {"sub": "8f0c", "azp": "appstore", "preferred_username": "service-account-appstore"},
	} {
		cl := ti.claims("")
		delete(cl, "preferred_username")
		for k, x := range c {
			cl[k] = x
		}
		if p, err := v.Authenticate(ctx, ti.sign(cl, "")); err != nil || p.Name != "services/appstore" || !p.HasRole(audittrail.RoleProducer) {
			t.Errorf("%s: %+v, %v", name, p, err)
		}
	}
	// Within the skew.
	c = ti.claims("alice")
	c["exp"] = time.Now().Add(-10 * time.Second).Unix()
	if _, err := v.Authenticate(ctx, ti.sign(c, "")); err != nil {
		t.Errorf("expired 10s ago, skew 30s: %v", err)
	}
}

func TestOIDCAttacks(t *testing.T) {
	ti := newTestIssuer(t)
	v := newTestVerifier(t, ti, nil)
	ctx := context.Background()
	edit := func(f func(c map[string]any)) string {
		c := ti.claims("alice")
		f(c)
		return ti.sign(c, "")
	}
	valid := ti.sign(ti.claims("alice"), "")
	parts := strings.Split(valid, ".")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs := func(secret []byte) string {
		h := b64json(map[string]string{"alg": "HS256", "typ": "JWT", "kid": "k1"})
		p := parts[1]
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// The issuer also publishes an RSA key, to sign HMAC tokens with.
	ti.mu.Lock()
	ti.keys["rsa"] = rsaKey
	ti.mu.Unlock()
	for name, tok := range map[string]string{
		"expired":               edit(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":             edit(func(c map[string]any) { delete(c, "exp") }),
		"not yet valid":         edit(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"issued in the future":  edit(func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }),
		"wrong issuer":          edit(func(c map[string]any) { c["iss"] = "https://evil.example.com" }),
		"wrong audience":        edit(func(c map[string]any) { c["aud"] = "someone-else" }),
		"no audience":           edit(func(c map[string]any) { delete(c, "aud") }),
		"alg none":              b64json(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
		"alg None":              b64json(map[string]string{"alg": "None"}) + "." + parts[1] + ".",
		"HMAC with the PEM key": hs(pubPEM),
		"HMAC with the DER key": hs(pubDER),
		"tampered payload":      parts[0] + "." + b64json(map[string]any{"iss": ti.srv.URL, "sub": "admin", "aud": "audittrail", "exp": time.Now().Add(time.Hour).Unix()}) + "." + parts[2],
		"tampered signature":    parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"signed by another key": signWith(t, ti.claims("alice"), other, "k1"),
		"signed by unknown kid": signWith(t, ti.claims("alice"), other, "nope"),
		"garbage":               "a.b.c",
		"two parts":             parts[0] + "." + parts[1],
	} {
		_, err := v.Authenticate(ctx, tok)
		wantCode(t, name, err, audittrail.EUnauthenticated)
	}
	// Through the chain, an unknown issuer is refused before any key lookup.
	ch := &Chain{Verifiers: []*Verifier{v}}
	_, err := ch.Authenticate(ctx, edit(func(c map[string]any) { c["iss"] = "https://evil.example.com" }))
	wantCode(t, "chain: wrong issuer", err, audittrail.EUnauthenticated)
	if _, err := ch.Authenticate(ctx, valid); err != nil {
		t.Errorf("chain: valid token: %v", err)
	}
	// An HMAC algorithm cannot even be configured.
	if _, err := NewVerifier(IssuerConfig{Issuer: "x", Audiences: []string{"a"}, Algorithms: []string{"HS256"}}); err == nil {
		t.Error("HS256 accepted in the allow-list")
	}
	if _, err := NewVerifier(IssuerConfig{Issuer: "x"}); err == nil {
		t.Error("a verifier without audience")
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

// TestOIDCKeyRotation rotates the issuer's key mid-test: a token of the new
// key triggers one JWKS refresh and verifies; tokens of the dropped key stop
// verifying; tokens with made-up kids trigger at most one refresh per
// interval.
func TestOIDCKeyRotation(t *testing.T) {
	ti := newTestIssuer(t)
	v := newTestVerifier(t, ti, nil)
	ctx := context.Background()
	old := ti.sign(ti.claims("alice"), "")
	if _, err := v.Authenticate(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwksFetches(); n != 1 {
		t.Fatalf("%d JWKS fetches after the first token, want 1", n)
	}
	for range 5 {
		if _, err := v.Authenticate(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	if n := ti.jwksFetches(); n != 1 {
		t.Errorf("cached keys are fetched again: %d fetches", n)
	}
	time.Sleep(250 * time.Millisecond) // past the minimum refresh interval
	ti.rotate("k2", true)
	fresh := ti.sign(ti.claims("alice"), "")
	if _, err := v.Authenticate(ctx, fresh); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := ti.jwksFetches(); n != 2 {
		t.Errorf("%d JWKS fetches after the rotation, want 2", n)
	}
	// The old key is gone from the issuer, and from the cache.
	_, err := v.Authenticate(ctx, old)
	wantCode(t, "token of the dropped key", err, audittrail.EUnauthenticated)
	// Unknown kids: bounded refreshes.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	before := ti.jwksFetches()
	for i := range 50 {
		_, err := v.Authenticate(ctx, signWith(t, ti.claims("alice"), other, "made-up-"+string(rune('a'+i%26))))
		wantCode(t, "made-up kid", err, audittrail.EUnauthenticated)
	}
	if n := ti.jwksFetches() - before; n > 1 {
		t.Errorf("50 tokens with unknown kids caused %d JWKS fetches within the interval, want at most 1", n)
	}
}

func TestOIDCIssuerDown(t *testing.T) {
	ti := newTestIssuer(t)
	url := ti.srv.URL
	ti.srv.Close()
	v, err := NewVerifier(IssuerConfig{Issuer: url, Audiences: []string{"audittrail"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Authenticate(context.Background(), ti.sign(ti.claims("alice"), ""))
	wantCode(t, "issuer down", err, audittrail.EUnavailable)
}
