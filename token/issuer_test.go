package token

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/audittrail/audittrail"
)

// memTokens is an in-memory audittrail.TokenStore.
type memTokens struct {
	mu sync.Mutex
	ts []*audittrail.APIToken
}

func (m *memTokens) CreateToken(_ context.Context, t *audittrail.APIToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *t
	m.ts = append(m.ts, &c)
	return nil
}

func (m *memTokens) find(f func(*audittrail.APIToken) bool) (*audittrail.APIToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.ts {
		if f(t) {
			c := *t
			return &c, nil
		}
	}
	return nil, audittrail.Errorf(audittrail.ENotFound, "no token")
}

func (m *memTokens) TokenByDigest(_ context.Context, d [32]byte) (*audittrail.APIToken, error) {
	return m.find(func(t *audittrail.APIToken) bool { return t.Digest == d })
}

func (m *memTokens) TokenByID(_ context.Context, id string) (*audittrail.APIToken, error) {
	return m.find(func(t *audittrail.APIToken) bool { return t.ID == id })
}

func (m *memTokens) ListTokens(context.Context) ([]*audittrail.APIToken, error) { return m.ts, nil }

func (m *memTokens) RevokeToken(_ context.Context, id string, at time.Time) (*audittrail.APIToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.ts {
		if t.ID == id {
			t.RevokeTime = at
			return t, nil
		}
	}
	return nil, audittrail.Errorf(audittrail.ENotFound, "no token")
}

func TestIssuer(t *testing.T) {
	store := &memTokens{}
	now := time.Now()
	clock := func() time.Time { return now }
	static := &Static{}
	static.Add("reader", audittrail.Principal{Name: "users/reader", Roles: []audittrail.Role{audittrail.RoleAuditor}})
	chain := &Chain{Static: static, APITokens: &APITokens{Store: store, Now: clock}}
	keyFile := filepath.Join(t.TempDir(), "issuer.key")
	iss, err := NewIssuer(BuiltinConfig{URL: "http://audit.example/", KeyFile: keyFile, Refresh: chain.Refresh, Tokens: chain.APITokens, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	chain.Issuer = iss
	// The key survives a restart: tokens stay valid.
	again, err := NewIssuer(BuiltinConfig{URL: "http://audit.example", KeyFile: keyFile, Tokens: chain.APITokens, Now: clock})
	if err != nil || again.jwk.KeyID != iss.jwk.KeyID {
		t.Fatalf("reloaded key: %v", err)
	}
	tok, secret, _ := audittrail.NewAPIToken(audittrail.NewTokenRequest{Principal: "users/alice", Roles: []audittrail.Role{"auditor"}, TTL: time.Hour}, "", now)
	store.CreateToken(context.Background(), tok)

	mux := http.NewServeMux()
	for _, r := range iss.Routes() {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	exchange := func(rt string) (int, map[string]any) {
		resp, err := http.PostForm(srv.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {rt}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, out := exchange(secret)
	at, _ := out["access_token"].(string)
	if code != 200 || at == "" || out["token_type"] != "Bearer" || out["expires_in"] != float64(300) {
		t.Fatalf("exchange: %d %v", code, out)
	}
	p, err := chain.Authenticate(context.Background(), at)
	if err != nil || p.Name != "users/alice" || !p.HasRole(audittrail.RoleAuditor) || p.TokenID != tok.ID || p.Method != "issuer" {
		t.Fatalf("access token: %+v %v", p, err)
	}
	// A static token exchanges too; its roles travel in the token.
	code, out = exchange("reader")
	if p, err := chain.Authenticate(context.Background(), out["access_token"].(string)); code != 200 || err != nil || p.Name != "users/reader" || !p.HasRole(audittrail.RoleAuditor) {
		t.Errorf("static exchange: %d %+v %v", code, p, err)
	}
	// Another issuer's key with our issuer URL is refused.
	other, _ := NewIssuer(BuiltinConfig{URL: "http://audit.example", Tokens: chain.APITokens, Now: clock})
	forged, _, _ := other.Mint(&audittrail.Principal{Name: "users/mallory", Roles: []audittrail.Role{audittrail.RoleAuditor}}, "audittrail")
	if _, err := chain.Authenticate(context.Background(), forged); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("forged token: %v", err)
	}
	// Expiry: 5 minutes, 5 seconds of skew.
	now = now.Add(5*time.Minute + 6*time.Second)
	if _, err := chain.Authenticate(context.Background(), at); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("expired access token: %v", err)
	}
	// An expired API token neither authenticates nor exchanges.
	now = now.Add(time.Hour)
	if _, err := chain.Authenticate(context.Background(), secret); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("expired API token: %v", err)
	}
	if code, out := exchange(secret); code != 400 || out["error"] != "invalid_grant" {
		t.Errorf("exchange of an expired token: %d %v", code, out)
	}
	// A body past the limit is refused as too large (not as a malformed form).
	big := strings.NewReader("grant_type=refresh_token&client_id=audittrail&refresh_token=" + strings.Repeat("a", MaxTokenRequestBody))
	if resp, err := http.Post(srv.URL+"/oauth2/token", "application/x-www-form-urlencoded", big); err != nil {
		t.Fatal(err)
	} else {
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if desc, _ := out["error_description"].(string); resp.StatusCode != 413 || out["error"] != "invalid_request" || !strings.Contains(desc, "larger than 65536 bytes") {
			t.Errorf("a body past the limit: %d %v", resp.StatusCode, out)
		}
	}
	// JWTs are not refresh tokens.
	if code, _ := exchange(at); code != 400 {
		t.Errorf("a JWT exchanged: %d", code)
	}
	// Discovery and JWKS.
	resp, _ := http.Get(srv.URL + "/.well-known/openid-configuration")
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["issuer"] != "http://audit.example" || d["token_endpoint"] != "http://audit.example/oauth2/token" {
		t.Errorf("discovery: %v", d)
	}
	resp, _ = http.Get(srv.URL + "/oauth2/jwks")
	var jwks struct{ Keys []map[string]any }
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != iss.jwk.KeyID || jwks.Keys[0]["d"] != nil || !strings.HasPrefix(jwks.Keys[0]["alg"].(string), "ES") {
		t.Errorf("jwks: %v", jwks)
	}
}

// memPeers is token.PeerKeys in memory, with its own clock (now).
type memPeers struct {
	mu        sync.Mutex
	keys      map[string][]byte
	published map[string]time.Time
	now       time.Time
}

func (m *memPeers) PublishIssuerKey(_ context.Context, kid string, jwk []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[kid]; !ok {
		m.keys[kid] = jwk
	}
	if m.published == nil {
		m.published = map[string]time.Time{}
	}
	m.published[kid] = m.now
	return nil
}

func (m *memPeers) IssuerKeys(_ context.Context, maxAge time.Duration) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for kid, k := range m.keys {
		if m.now.Sub(m.published[kid]) < maxAge {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memPeers) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

// TestIssuerPeerKeys: replicas with their own keys accept each other's
// access tokens once their public keys are published, one started later
// included (read again on an unknown key id); a key not published, or
// published with its private part, is not trusted, nor one not published
// again for a day.
func TestIssuerPeerKeys(t *testing.T) {
	peers := &memPeers{keys: map[string][]byte{}}
	static := &Static{}
	newReplica := func() (*Issuer, *Chain) {
		chain := &Chain{Static: static, APITokens: &APITokens{Store: &memTokens{}}}
		iss, err := NewIssuer(BuiltinConfig{URL: "http://audit.example", KeyFile: filepath.Join(t.TempDir(), "issuer.key"),
			Tokens: chain.APITokens, Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		if err := iss.PublishKey(t.Context()); err != nil {
			t.Fatal(err)
		}
		chain.Issuer = iss
		return iss, chain
	}
	mint := func(iss *Issuer) string {
		tok, _, err := iss.Mint(&audittrail.Principal{Name: "users/reader", Roles: []audittrail.Role{audittrail.RoleAuditor}}, "audittrail")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, chainA := newReplica()
	b, chainB := newReplica()
	if _, err := chainB.Authenticate(t.Context(), mint(a)); err != nil {
		t.Errorf("B refuses A's token: %v", err)
	}
	time.Sleep(peerRefresh) // A read the keys before B published; the next unknown key id reads them again
	if _, err := chainA.Authenticate(t.Context(), mint(b)); err != nil {
		t.Errorf("A refuses B's token: %v", err)
	}

	unpublished, err := NewIssuer(BuiltinConfig{URL: "http://audit.example", KeyFile: filepath.Join(t.TempDir(), "issuer.key")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(peerRefresh)
	if _, err := chainA.Authenticate(t.Context(), mint(unpublished)); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("a token of an unpublished key: %v, want EUnauthenticated", err)
	}
	// Its key published with the private part: not a public key, ignored.
	private := jose.JSONWebKey{Key: unpublished.key, Algorithm: string(jose.ES256), Use: "sig", KeyID: unpublished.jwk.KeyID}
	data, err := private.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	peers.PublishIssuerKey(t.Context(), unpublished.jwk.KeyID, data)
	time.Sleep(peerRefresh)
	if _, err := chainA.Authenticate(t.Context(), mint(unpublished)); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("a token of a key published with its private part: %v, want EUnauthenticated", err)
	}
	if n := len(a.keys()); n != 2 {
		t.Errorf("A trusts %d keys, want its own and B's", n)
	}

	// B's key replaced (or B removed): A trusts it while it is recent,
	// then no longer, once A publishes its own again and reads the others
	// (KeepPublished's round); B's new key is trusted.
	peers.advance(23 * time.Hour)
	if err := a.PublishKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := chainA.Authenticate(t.Context(), mint(b)); err != nil {
		t.Errorf("A refuses B's key published 23 hours ago: %v", err)
	}
	peers.advance(2 * time.Hour)
	b2, _ := newReplica()
	if err := a.PublishKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := chainA.Authenticate(t.Context(), mint(b)); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("a token of B's key, last published 25 hours ago: %v, want EUnauthenticated", err)
	}
	if _, err := chainA.Authenticate(t.Context(), mint(b2)); err != nil {
		t.Errorf("A refuses B's new key: %v", err)
	}
	if n := len(a.keys()); n != 2 {
		t.Errorf("A trusts %d keys, want its own and B's new one", n)
	}
}
