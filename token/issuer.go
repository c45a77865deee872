package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
)

// Route is an HTTP route a listener should serve.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// BuiltinConfig configures the built-in issuer.
type BuiltinConfig struct {
	// URL is the issuer URL: the public base URL of the server as clients
	// reach it (no trailing slash). The issuer's endpoints are under it:
	// /.well-known/openid-configuration, /oauth2/jwks, /oauth2/token.
	URL string
	// KeyFile holds the ES256 signing key (PEM, PKCS #8); it is created
	// with mode 0600 when missing. Replicas share it, or publish their
	// public keys to each other (Peers).
	KeyFile string
	// Peers, when set, shares the issuers' public keys between the
	// replicas of one deployment (the PostgreSQL store): PublishKey records
	// this issuer's, and an access token signed by any recorded key is
	// accepted, so that replicas behind one load balancer need no shared
	// key file. Only public keys are recorded: whoever reads the store
	// cannot sign tokens.
	Peers PeerKeys
	// Audience of the access tokens; "" means "audittrail".
	Audience string
	// ClientID is the OAuth client id the token endpoint accepts (public
	// client, no secret); "" means "audittrail".
	ClientID string
	// AccessTokenTTL is the lifetime of access tokens; 0 means 5 minutes.
	AccessTokenTTL time.Duration
	// Refresh authenticates the refresh token of a token request: an API
	// token or a static token, never a JWT.
	Refresh func(ctx context.Context, secret string) (*audittrail.Principal, error)
	// Tokens checks, on every request, that the API token behind an access
	// token is still valid.
	Tokens *APITokens
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// PeerKeys keeps the public keys (JWK JSON) of the built-in issuers of a
// deployment's replicas (postgres.Store).
type PeerKeys interface {
	// PublishIssuerKey records the key, or notes that it was published
	// again now.
	PublishIssuerKey(ctx context.Context, kid string, jwk []byte) error
	// IssuerKeys returns the keys published within maxAge.
	IssuerKeys(ctx context.Context, maxAge time.Duration) ([][]byte, error)
}

// A replica publishes its key again every peerRepublish (KeepPublished) and
// reads the others' at the same time; a key not published for
// peerKeyLife (at least a day, and four access token lifetimes) is no
// longer trusted: the key of a replica whose key file was replaced, or that
// was removed, stops being accepted by itself, once every token it signed
// has expired.
const (
	peerRepublish  = time.Hour
	minPeerKeyLife = 24 * time.Hour
)

func (i *Issuer) peerKeyLife() time.Duration { return max(minPeerKeyLife, 4*i.cfg.AccessTokenTTL) }

// Issuer is the built-in OIDC issuer of a standalone deployment.
type Issuer struct {
	cfg      BuiltinConfig
	key      *ecdsa.PrivateKey
	jwk      jose.JSONWebKey // public
	signer   jose.Signer
	verifier *Verifier

	// trusted is this issuer's key, then the other replicas' published
	// ones (BuiltinConfig.Peers), built when they are read, so that a
	// verification only loads it; read again when a token names a key not
	// among them, at most once per peerRefresh.
	peersMu     sync.Mutex
	trusted     atomic.Pointer[[]jose.JSONWebKey]
	peersReadAt time.Time
}

// peerRefresh bounds how often an unknown key id makes the issuer read the
// published keys again: a flood of forged tokens costs one query per period,
// and a replica started since is known within it.
const peerRefresh = time.Second

// NewIssuer loads (or creates) the signing key and returns the issuer.
func NewIssuer(cfg BuiltinConfig) (*Issuer, error) {
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.URL == "" {
		return nil, errors.New("token: BuiltinConfig.URL is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = "audittrail"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "audittrail"
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key, err := loadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	i := &Issuer{cfg: cfg, key: key}
	i.jwk = jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := i.jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	i.jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	i.trusted.Store(&[]jose.JSONWebKey{i.jwk})
	i.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), i.jwk.KeyID))
	if err != nil {
		return nil, err
	}
	i.verifier, err = NewVerifier(IssuerConfig{
		Issuer:     cfg.URL,
		Audiences:  []string{cfg.Audience},
		Algorithms: []string{"ES256"},
		ClockSkew:  5 * time.Second,
		Now:        cfg.Now,
		keys:       &issuerKeySet{i: i, keys: staticKeySet{keys: i.keys, algs: []jose.SignatureAlgorithm{jose.ES256}}},
	})
	if err != nil {
		return nil, err
	}
	return i, nil
}

// URL returns the issuer URL.
func (i *Issuer) URL() string { return i.cfg.URL }

// ClientID returns the OAuth client id of the token endpoint.
func (i *Issuer) ClientID() string { return i.cfg.ClientID }

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	if path == "" {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		err = durablefile.Create(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateKey(path)
		}
		if err != nil {
			return nil, fmt.Errorf("issuer key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("issuer key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("issuer key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("issuer key %s: not a P-256 ECDSA key", path)
	}
	return ek, nil
}

// accessClaims are the claims of the issuer's access tokens.
type accessClaims struct {
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub"`
	Audience   []string `json:"aud"`
	Expiry     int64    `json:"exp"`
	IssuedAt   int64    `json:"iat"`
	NotBefore  int64    `json:"nbf"`
	ID         string   `json:"jti"`
	ClientID   string   `json:"client_id,omitempty"`
	TokenID    string   `json:"atid,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Workspaces []string `json:"workspaces,omitempty"`
}

// Mint returns a signed access token for p, and its lifetime.
func (i *Issuer) Mint(p *audittrail.Principal, clientID string) (string, time.Duration, error) {
	now := i.cfg.Now()
	var jti [16]byte
	rand.Read(jti[:])
	c := accessClaims{
		Issuer:    i.cfg.URL,
		Subject:   p.Name,
		Audience:  []string{i.cfg.Audience},
		Expiry:    now.Add(i.cfg.AccessTokenTTL).Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		ClientID:  clientID,
		TokenID:   p.TokenID,
	}
	if p.TokenID == "" {
		// A static credential: the token carries the roles (there is no
		// record to look them up in).
		for _, r := range p.Roles {
			c.Roles = append(c.Roles, string(r))
		}
		c.Workspaces = p.Workspaces
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", 0, err
	}
	sig, err := i.signer.Sign(payload)
	if err != nil {
		return "", 0, err
	}
	s, err := sig.CompactSerialize()
	return s, i.cfg.AccessTokenTTL, err
}

// Authenticate verifies an access token of the issuer. When it was
// exchanged for an API token, that token must still be valid, and its
// current roles apply.
func (i *Issuer) Authenticate(ctx context.Context, raw string) (*audittrail.Principal, error) {
	c, err := i.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	sub, _ := c["sub"].(string)
	if audittrail.ValidatePrincipalName(sub) != nil {
		return nil, unauthenticated("bad subject")
	}
	if id, _ := c["atid"].(string); id != "" {
		t, err := i.cfg.Tokens.active(ctx, id)
		if err != nil {
			return nil, err
		}
		if t.Principal != sub {
			return nil, unauthenticated("subject and API token disagree")
		}
		return t.AsPrincipal("issuer"), nil
	}
	p := &audittrail.Principal{Name: sub, Method: "issuer"}
	for _, r := range ClaimsStrings(c, "roles") {
		role, err := audittrail.ParseRole(r)
		if err != nil {
			return nil, unauthenticated("unknown role")
		}
		p.Roles = append(p.Roles, role)
	}
	p.Workspaces = ClaimsStrings(c, "workspaces")
	return p, nil
}

// ClaimsStrings returns the strings of an array claim.
func ClaimsStrings(c Claims, name string) []string {
	arr, _ := c[name].([]any)
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Routes returns the issuer's HTTP endpoints, for the public listener.
func (i *Issuer) Routes() []Route {
	return []Route{
		{http.MethodGet, "/.well-known/openid-configuration", http.HandlerFunc(i.serveDiscovery)},
		{http.MethodGet, "/oauth2/jwks", http.HandlerFunc(i.serveJWKS)},
		{http.MethodPost, "/oauth2/token", http.HandlerFunc(i.serveToken)},
	}
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.cfg.URL,
		"jwks_uri":                              i.cfg.URL + "/oauth2/jwks",
		"token_endpoint":                        i.cfg.URL + "/oauth2/token",
		"grant_types_supported":                 []string{"refresh_token"},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: i.keys()})
}

// keys are the keys access tokens may be signed with: this issuer's, then
// the published ones of the other replicas.
func (i *Issuer) keys() []jose.JSONWebKey { return *i.trusted.Load() }

// PublishKey records this issuer's public key for the other replicas
// (BuiltinConfig.Peers) and reads theirs; without Peers it does nothing.
func (i *Issuer) PublishKey(ctx context.Context) error {
	if i.cfg.Peers == nil {
		return nil
	}
	data, err := json.Marshal(i.jwk)
	if err != nil {
		return err
	}
	if err := i.cfg.Peers.PublishIssuerKey(ctx, i.jwk.KeyID, data); err != nil {
		return fmt.Errorf("token: publishing the built-in issuer's key: %w", err)
	}
	return i.readPeers(ctx, true)
}

// KeepPublished publishes the issuer's key again, and reads the others',
// every peerRepublish until ctx ends (a replica's own key stays trusted by
// the others; a key no longer published stops being trusted here). Errors
// go to report. Without Peers it returns at once.
func (i *Issuer) KeepPublished(ctx context.Context, report func(error)) {
	if i.cfg.Peers == nil {
		return
	}
	t := time.NewTicker(peerRepublish)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := i.PublishKey(ctx); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}

// readPeers reads the published keys, unless they were read less than
// peerRefresh ago (and force is not set).
func (i *Issuer) readPeers(ctx context.Context, force bool) error {
	i.peersMu.Lock()
	defer i.peersMu.Unlock()
	now := time.Now()
	if !force && now.Sub(i.peersReadAt) < peerRefresh {
		return nil
	}
	i.peersReadAt = now
	raw, err := i.cfg.Peers.IssuerKeys(ctx, i.peerKeyLife())
	if err != nil {
		return fmt.Errorf("token: reading the built-in issuers' keys: %w", err)
	}
	keys := make([]jose.JSONWebKey, 1, len(raw)+1)
	keys[0] = i.jwk
	for _, b := range raw {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(b); err != nil || !k.Valid() || !k.IsPublic() {
			continue // not a public key: never trusted
		}
		if _, ok := k.Key.(*ecdsa.PublicKey); !ok || k.Algorithm != string(jose.ES256) || k.KeyID == i.jwk.KeyID {
			continue
		}
		keys = append(keys, k)
	}
	i.trusted.Store(&keys)
	return nil
}

// issuerKeySet verifies access tokens with the issuer's keys; a token whose
// key id none of them has makes it read the other replicas' keys again.
type issuerKeySet struct {
	i    *Issuer
	keys staticKeySet
}

func (s *issuerKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	p, err := s.keys.VerifySignature(ctx, raw)
	if errors.Is(err, errUnknownKey) && s.i.cfg.Peers != nil {
		if rerr := s.i.readPeers(ctx, false); rerr != nil {
			return nil, rerr
		}
		p, err = s.keys.VerifySignature(ctx, raw)
	}
	return p, err
}

// MaxTokenRequestBody bounds the body of a token request (docs/limits.md).
const MaxTokenRequestBody = 64 << 10

// serveToken is the token endpoint (RFC 6749 §6): grant_type=refresh_token
// with an API token as the refresh token.
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, MaxTokenRequestBody)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			oauthError(w, http.StatusRequestEntityTooLarge, "invalid_request",
				fmt.Sprintf("the body is larger than %d bytes (an API token is about 100)", MaxTokenRequestBody))
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=refresh_token is supported")
		return
	}
	if f.Get("client_id") != i.cfg.ClientID {
		oauthError(w, http.StatusBadRequest, "invalid_client", fmt.Sprintf("unknown client_id: use %q", i.cfg.ClientID))
		return
	}
	rt := f.Get("refresh_token")
	if rt == "" || i.cfg.Refresh == nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh_token is missing")
		return
	}
	p, err := i.cfg.Refresh(r.Context(), rt)
	if err != nil {
		if code := audittrail.ErrorCode(err); code != audittrail.EUnauthenticated && code != audittrail.EPermissionDenied {
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired or revoked")
		return
	}
	if p.Method == "static" && p.TokenID != "" {
		p.TokenID = ""
	}
	at, ttl, err := i.Mint(p, i.cfg.ClientID)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "cannot sign the token")
		return
	}
	scope := f.Get("scope")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int(ttl / time.Second),
		"scope":        scope,
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Chain authenticates every kind of bearer credential: static tokens, API
// tokens, access tokens of the built-in issuer and of the configured OIDC
// issuers. The form of the token decides which check applies.
type Chain struct {
	Static    *Static
	APITokens *APITokens
	Issuer    *Issuer
	Verifiers []*Verifier
}

// Authenticate implements the server's Authenticator.
func (c *Chain) Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error) {
	if c.Static != nil {
		if p, err := c.Static.Authenticate(ctx, bearer); err == nil {
			return p, nil
		}
	}
	if strings.HasPrefix(bearer, audittrail.APITokenPrefix) {
		return c.APITokens.Authenticate(ctx, bearer)
	}
	if strings.Count(bearer, ".") == 2 {
		iss := unverifiedIssuer(bearer)
		if c.Issuer != nil && iss == c.Issuer.URL() {
			return c.Issuer.Authenticate(ctx, bearer)
		}
		for _, v := range c.Verifiers {
			if v.Issuer() == iss {
				return v.Authenticate(ctx, bearer)
			}
		}
		return nil, unauthenticated("the token's issuer is not trusted here")
	}
	return nil, errInvalidToken
}

// Refresh authenticates the refresh token of the token endpoint: a static
// or an API token.
func (c *Chain) Refresh(ctx context.Context, secret string) (*audittrail.Principal, error) {
	if c.Static != nil {
		if p, err := c.Static.Authenticate(ctx, secret); err == nil {
			return p, nil
		}
	}
	return c.APITokens.Authenticate(ctx, secret)
}

// unverifiedIssuer reads "iss" from a JWT without verifying it, only to pick
// the verifier.
func unverifiedIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := b64(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}
