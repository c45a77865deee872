package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/policy"
)

// DefaultAlgorithms are the signature algorithms accepted by default: every
// asymmetric one. HMAC algorithms and "none" are never accepted.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// IssuerConfig configures the verification of one OIDC issuer's tokens.
type IssuerConfig struct {
	// Issuer is the issuer URL; tokens must carry it as "iss" exactly, and
	// its discovery document must name it.
	Issuer string
	// Audiences: a token's "aud" must contain one of them. Required; the
	// single value "*" turns the check off (not recommended).
	Audiences []string
	// Algorithms allowed; nil means DefaultAlgorithms. HMAC and "none" are
	// refused even when listed.
	Algorithms []string
	// ClockSkew is the tolerance on exp, nbf and iat; 0 means 30 seconds.
	ClockSkew time.Duration
	// MinRefreshInterval bounds JWKS refreshes triggered by unknown key ids;
	// 0 means 10 seconds. KeyMaxAge is how long fetched keys are used
	// without a refresh; 0 means an hour.
	MinRefreshInterval time.Duration
	KeyMaxAge          time.Duration
	// Mapping turns claims into a principal.
	Mapping Mapping
	// HTTPClient fetches the discovery document and the JWKS; nil means a
	// client with a 10 second timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// keys, when set, replaces discovery and the remote JWKS (the built-in
	// issuer verifies its own tokens with its own keys).
	keys oidc.KeySet
}

// Mapping turns the claims of a verified token into a principal.
type Mapping struct {
	// LoginClaims are tried in order for the login name; nil means
	// preferred_username, then email.
	LoginClaims []string
	// GroupsClaim holds the caller's groups (for policy bindings); "" means
	// "groups".
	GroupsClaim string
	// ServiceClaim, when set, makes a token whose claim of that name is a
	// non-empty string a service token, named by that value. When unset, a
	// token is a service (client-credentials) token when its subject is its
	// client (client_id or azp equal to sub), or its preferred_username is
	// "service-account-<client>" (Keycloak), or its gty is
	// "client-credentials".
	ServiceClaim string
	// Policy grants the roles; nil grants none.
	Policy func() *policy.Policy
}

// Verifier verifies the tokens of one issuer.
type Verifier struct {
	cfg      IssuerConfig
	algs     []string
	skew     time.Duration
	now      func() time.Time
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *remoteKeySet
	lastErr  time.Time
}

// NewVerifier returns the verifier of one issuer. Discovery happens at the
// first token (and again after a failure, at most every few seconds), so a
// server starts while its identity provider is down.
func NewVerifier(cfg IssuerConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("token: IssuerConfig.Issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return nil, fmt.Errorf("token: issuer %s: an audience is required (\"*\" accepts any, not recommended)", cfg.Issuer)
	}
	v := &Verifier{cfg: cfg, skew: cfg.ClockSkew, now: cfg.Now}
	if v.skew == 0 {
		v.skew = 30 * time.Second
	}
	if v.now == nil {
		v.now = time.Now
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		if isHMAC(a) || strings.EqualFold(a, "none") || !slices.Contains(DefaultAlgorithms, a) {
			return nil, fmt.Errorf("token: issuer %s: algorithm %q is not allowed (allowed: %s)", cfg.Issuer, a, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	v.algs = algs
	if cfg.HTTPClient == nil {
		v.cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.keys != nil {
		v.verifier = oidc.NewVerifier(cfg.Issuer, cfg.keys, v.oidcConfig())
	}
	return v, nil
}

// Issuer returns the issuer URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

func (v *Verifier) oidcConfig() *oidc.Config {
	// Expiry is checked below, with the configured skew (go-oidc has none
	// on exp); the audience too, against a list.
	return &oidc.Config{SkipClientIDCheck: true, SkipExpiryCheck: true, SupportedSigningAlgs: v.algs}
}

func (v *Verifier) joseAlgs() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(v.algs))
	for i, a := range v.algs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

var errIdPUnavailable = audittrail.Errorf(audittrail.EUnavailable, "the identity provider cannot be reached to verify the token; try again later")

// idTokenVerifier discovers the issuer on first use.
func (v *Verifier) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	if !v.lastErr.IsZero() && v.now().Sub(v.lastErr) < 5*time.Second {
		return nil, errIdPUnavailable
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), v.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.cfg.Issuer)
	if err != nil {
		v.lastErr = v.now()
		return nil, fmt.Errorf("%w: discovery of %s: %v", errIdPUnavailable, v.cfg.Issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		v.lastErr = v.now()
		return nil, fmt.Errorf("%w: the discovery document of %s has no jwks_uri", errIdPUnavailable, v.cfg.Issuer)
	}
	minRefresh, maxAge := v.cfg.MinRefreshInterval, v.cfg.KeyMaxAge
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	if maxAge == 0 {
		maxAge = time.Hour
	}
	v.keys = &remoteKeySet{url: meta.JWKS, client: v.cfg.HTTPClient, minRefresh: minRefresh, maxAge: maxAge, now: v.now, algs: v.joseAlgs()}
	v.verifier = oidc.NewVerifier(v.cfg.Issuer, v.keys, v.oidcConfig())
	return v.verifier, nil
}

// Claims are the verified claims of a token.
type Claims map[string]any

func unauthenticated(format string, args ...any) error {
	return audittrail.Errorf(audittrail.EUnauthenticated, "invalid bearer token: "+format, args...)
}

// Verify checks raw and returns its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if alg := headerAlg(raw); alg == "" || strings.EqualFold(alg, "none") || isHMAC(alg) || !slices.Contains(v.algs, alg) {
		return nil, unauthenticated("signature algorithm %q is not accepted", alg)
	}
	iv, err := v.idTokenVerifier(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := iv.Verify(ctx, raw)
	if err != nil {
		if v.keys != nil && strings.Contains(err.Error(), "fetching the JWKS") {
			return nil, errIdPUnavailable
		}
		return nil, unauthenticated("%s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return nil, unauthenticated("claims are not a JSON object")
	}
	now := v.now()
	exp, ok := numericDate(c, "exp")
	if !ok {
		return nil, unauthenticated("the token has no expiry (exp)")
	}
	if !now.Before(exp.Add(v.skew)) {
		return nil, unauthenticated("the token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := numericDate(c, "nbf"); ok && now.Add(v.skew).Before(nbf) {
		return nil, unauthenticated("the token is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if iat, ok := numericDate(c, "iat"); ok && now.Add(v.skew).Before(iat) {
		return nil, unauthenticated("the token was issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	if !(len(v.cfg.Audiences) == 1 && v.cfg.Audiences[0] == "*") {
		ok := false
		for _, a := range tok.Audience {
			if slices.Contains(v.cfg.Audiences, a) {
				ok = true
			}
		}
		if !ok {
			return nil, unauthenticated("the token is not meant for this service (audience %q)", tok.Audience)
		}
	}
	return c, nil
}

// Authenticate verifies raw and maps it to a principal.
func (v *Verifier) Authenticate(ctx context.Context, raw string) (*audittrail.Principal, error) {
	c, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	return v.cfg.Mapping.principal(c)
}

func numericDate(c Claims, name string) (time.Time, bool) {
	switch x := c[name].(type) {
	case float64:
		sec := int64(x)
		return time.Unix(sec, int64((x-float64(sec))*1e9)), true
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(int64(f), 0), true
	}
	return time.Time{}, false
}

// headerAlg returns the alg of a compact JWS's header, "" when unreadable.
func headerAlg(raw string) string {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return ""
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	b, err := b64(h)
	if err != nil || json.Unmarshal(b, &hdr) != nil {
		return ""
	}
	return hdr.Alg
}

func (m *Mapping) principal(c Claims) (*audittrail.Principal, error) {
	str := func(name string) string { s, _ := c[name].(string); return s }
	sub := str("sub")
	name := ""
	if m.ServiceClaim != "" {
		if s := str(m.ServiceClaim); s != "" {
			name = "services/" + s
		}
	} else {
		client := str("client_id")
		if client == "" {
			client = str("azp")
		}
		switch {
		case client != "" && client == sub:
			name = "services/" + client
		case strings.HasPrefix(str("preferred_username"), "service-account-"):
			name = "services/" + strings.TrimPrefix(str("preferred_username"), "service-account-")
		case str("gty") == "client-credentials" && client != "":
			name = "services/" + client
		}
	}
	if name == "" {
		if sub == "" {
			return nil, unauthenticated("the token has no subject (sub)")
		}
		name = "users/" + sub
	}
	if err := audittrail.ValidatePrincipalName(name); err != nil {
		return nil, unauthenticated("the token's subject cannot name a principal")
	}
	p := &audittrail.Principal{Name: name, Method: "oidc", Issuer: str("iss")}
	logins := m.LoginClaims
	if logins == nil {
		logins = []string{"preferred_username", "email"}
	}
	for _, lc := range logins {
		if s := str(lc); s != "" {
			p.LoginName = s
			break
		}
	}
	groupsClaim := m.GroupsClaim
	if groupsClaim == "" {
		groupsClaim = "groups"
	}
	if m.Policy != nil {
		p.Roles, p.Workspaces = m.Policy().Grant(policy.Identity{
			Principal: name,
			Groups:    policy.ClaimStrings(c, groupsClaim),
			Claims:    c,
		})
	}
	return p, nil
}
