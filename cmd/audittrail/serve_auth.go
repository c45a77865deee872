package main

import (
	"context"
	"crypto/x509"
	"flag"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/policy"
	"github.com/audittrail/audittrail/server"
	"github.com/audittrail/audittrail/token"
)

// The security flags of serve (docs/security.md). Every one has a zero
// default meaning "the documented default", so that Config stays a plain
// comparable value.
var authEnv = map[string]string{
	"admin-token":          "AUDITTRAIL_ADMIN_TOKEN",
	"policy":               "AUDITTRAIL_POLICY",
	"oidc-issuer":          "AUDITTRAIL_OIDC_ISSUER",
	"oidc-audience":        "AUDITTRAIL_OIDC_AUDIENCE",
	"oidc-algorithms":      "AUDITTRAIL_OIDC_ALGORITHMS",
	"oidc-clock-skew":      "AUDITTRAIL_OIDC_CLOCK_SKEW",
	"oidc-service-claim":   "AUDITTRAIL_OIDC_SERVICE_CLAIM",
	"oidc-login-claims":    "AUDITTRAIL_OIDC_LOGIN_CLAIMS",
	"oidc-groups-claim":    "AUDITTRAIL_OIDC_GROUPS_CLAIM",
	"public-url":           "AUDITTRAIL_PUBLIC_URL",
	"no-issuer":            "AUDITTRAIL_NO_ISSUER",
	"issuer-client-id":     "AUDITTRAIL_ISSUER_CLIENT_ID",
	"access-token-ttl":     "AUDITTRAIL_ACCESS_TOKEN_TTL",
	"self-audit-source":    "AUDITTRAIL_SELF_AUDIT_SOURCE",
	"self-audit-fail-open": "AUDITTRAIL_SELF_AUDIT_FAIL_OPEN",
	"rate-limit":           "AUDITTRAIL_RATE_LIMIT",
	"rate-burst":           "AUDITTRAIL_RATE_BURST",
	"public-tls-cert":      "AUDITTRAIL_PUBLIC_TLS_CERT",
	"public-tls-key":       "AUDITTRAIL_PUBLIC_TLS_KEY",
	"internal-tls-cert":    "AUDITTRAIL_INTERNAL_TLS_CERT",
	"internal-tls-key":     "AUDITTRAIL_INTERNAL_TLS_KEY",
	"internal-client-ca":   "AUDITTRAIL_INTERNAL_CLIENT_CA",
	"require-client-cert":  "AUDITTRAIL_REQUIRE_CLIENT_CERT",
}

func init() {
	for k, v := range authEnv {
		serveEnv[k] = v
	}
}

// AuthConfig is the security configuration of serve.
type AuthConfig struct {
	AdminToken        string
	PolicyFile        string
	OIDCIssuers       string // comma-separated
	OIDCAudience      string // comma-separated
	OIDCAlgorithms    string // comma-separated; "" means token.DefaultAlgorithms
	OIDCClockSkew     time.Duration
	OIDCServiceClaim  string
	OIDCLoginClaims   string // comma-separated; "" means preferred_username,email
	OIDCGroupsClaim   string // "" means groups
	PublicURL         string
	NoIssuer          bool
	IssuerClientID    string
	AccessTokenTTL    time.Duration
	SelfAuditSource   string
	SelfAuditFailOpen bool
	RateLimit         float64
	RateBurst         int
	PublicTLSCert     string
	PublicTLSKey      string
	InternalTLSCert   string
	InternalTLSKey    string
	InternalClientCA  string
	RequireClientCert bool
}

// Principal of the static admin token.
const adminPrincipal = "users/admin"

// Files of the data directory used by authentication.
const issuerKeyFile = "issuer.key"

func (m *Main) authFlags(fs *flag.FlagSet, env func(name, usage string) string) {
	c := &m.Config.Auth
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, env("admin-token", "bearer `token` of the administrator (users/admin), who may create, list and revoke API tokens and take backups on the internal listener"))
	fs.StringVar(&c.PolicyFile, "policy", c.PolicyFile, env("policy", "JSON policy `file` binding principals, groups and claims of OIDC tokens and client certificates to roles; reloaded when it changes"))
	fs.StringVar(&c.OIDCIssuers, "oidc-issuer", c.OIDCIssuers, env("oidc-issuer", "comma-separated issuer `URLs` whose JWT access tokens are accepted"))
	fs.StringVar(&c.OIDCAudience, "oidc-audience", c.OIDCAudience, env("oidc-audience", "comma-separated `audiences`: an OIDC token's aud must contain one (required with --oidc-issuer; * accepts any)"))
	fs.StringVar(&c.OIDCAlgorithms, "oidc-algorithms", c.OIDCAlgorithms, env("oidc-algorithms", "comma-separated signature `algorithms` accepted (default every asymmetric one; HMAC and none are always refused)"))
	fs.DurationVar(&c.OIDCClockSkew, "oidc-clock-skew", c.OIDCClockSkew, env("oidc-clock-skew", "tolerance on the exp, nbf and iat of tokens (0: 30s)"))
	fs.StringVar(&c.OIDCServiceClaim, "oidc-service-claim", c.OIDCServiceClaim, env("oidc-service-claim", "`claim` naming the client of a client-credentials token (default: detect client_id/azp = sub, Keycloak service accounts, gty)"))
	fs.StringVar(&c.OIDCLoginClaims, "oidc-login-claims", c.OIDCLoginClaims, env("oidc-login-claims", "comma-separated `claims` tried in order for a user's login name, recorded for login_principal (default preferred_username,email)"))
	fs.StringVar(&c.OIDCGroupsClaim, "oidc-groups-claim", c.OIDCGroupsClaim, env("oidc-groups-claim", "`claim` holding the caller's groups, for the groups of policy bindings (default groups)"))
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, env("public-url", "the public listener's `URL` as clients reach it: issuer URL of the built-in issuer and base of the discovery documents (default: the listener's address)"))
	fs.BoolVar(&c.NoIssuer, "no-issuer", c.NoIssuer, env("no-issuer", "do not act as OIDC issuer for API tokens, and serve no discovery documents"))
	fs.StringVar(&c.IssuerClientID, "issuer-client-id", c.IssuerClientID, env("issuer-client-id", "OAuth `client id` of the built-in issuer's token endpoint (default audittrail)"))
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", c.AccessTokenTTL, env("access-token-ttl", "lifetime of the built-in issuer's access tokens (0: 5m)"))
	fs.StringVar(&c.SelfAuditSource, "self-audit-source", c.SelfAuditSource, env("self-audit-source", "event_source of self-audit events (default h2oai-audittrail-server)"))
	fs.BoolVar(&c.SelfAuditFailOpen, "self-audit-fail-open", c.SelfAuditFailOpen, env("self-audit-fail-open", "answer audited calls (searches, log entry reads, token and backup changes) whose self-audit event cannot be written (default: refuse them with UNAVAILABLE)"))
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, env("rate-limit", "`requests` a second per principal, and per address for failed authentications (0: no limit)"))
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, env("rate-burst", "burst of the rate limit, in `requests` (0: the rate, at least 1)"))
	fs.StringVar(&c.PublicTLSCert, "public-tls-cert", c.PublicTLSCert, env("public-tls-cert", "PEM certificate `file` of the public listener (TLS; reloaded when it changes)"))
	fs.StringVar(&c.PublicTLSKey, "public-tls-key", c.PublicTLSKey, env("public-tls-key", "PEM key `file` of the public listener"))
	fs.StringVar(&c.InternalTLSCert, "internal-tls-cert", c.InternalTLSCert, env("internal-tls-cert", "PEM certificate `file` of the internal listener (TLS; reloaded when it changes)"))
	fs.StringVar(&c.InternalTLSKey, "internal-tls-key", c.InternalTLSKey, env("internal-tls-key", "PEM key `file` of the internal listener"))
	fs.StringVar(&c.InternalClientCA, "internal-client-ca", c.InternalClientCA, env("internal-client-ca", "PEM `file` of the CAs of client certificates on the internal listener (mutual TLS): a verified certificate names services/<name> from a SPIFFE-style URI SAN, else its first DNS SAN, else its CN"))
	fs.BoolVar(&c.RequireClientCert, "require-client-cert", c.RequireClientCert, env("require-client-cert", "refuse internal connections without a client certificate"))
}

func splitList(s string) []string {
	var out []string
	for x := range strings.SplitSeq(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (c *AuthConfig) validate() error {
	switch {
	case c.OIDCIssuers != "" && c.OIDCAudience == "":
		return usageErrorf("--oidc-issuer needs --oidc-audience: the audience this service's tokens carry (or * to accept any)")
	case (c.PublicTLSCert == "") != (c.PublicTLSKey == ""):
		return usageErrorf("--public-tls-cert and --public-tls-key go together")
	case (c.InternalTLSCert == "") != (c.InternalTLSKey == ""):
		return usageErrorf("--internal-tls-cert and --internal-tls-key go together")
	case c.InternalClientCA != "" && c.InternalTLSCert == "":
		return usageErrorf("--internal-client-ca needs --internal-tls-cert and --internal-tls-key")
	case c.RequireClientCert && c.InternalClientCA == "":
		return usageErrorf("--require-client-cert needs --internal-client-ca")
	case c.RateLimit < 0 || c.RateBurst < 0:
		return usageErrorf("--rate-limit and --rate-burst must not be negative")
	case c.RateBurst > 0 && c.RateLimit == 0:
		return usageErrorf("--rate-burst needs --rate-limit: without a rate nothing is limited")
	case c.OIDCClockSkew < 0 || c.AccessTokenTTL < 0:
		return usageErrorf("--oidc-clock-skew and --access-token-ttl must not be negative")
	case c.AccessTokenTTL > 0 && c.AccessTokenTTL < time.Minute:
		// Expiry is in whole seconds, and clients refresh ahead of it:
		// shorter tokens would be refused as soon as issued.
		return usageErrorf("--access-token-ttl %v: give at least 1m, or 0 for the default (5m)", c.AccessTokenTTL)
	}
	return nil
}

// hasCredentials reports whether both readers and producers can
// authenticate: with the static tokens, or the reader's with producers'
// client certificates (which take their roles from the policy), or through
// what mints credentials (API tokens, OIDC).
func (c *Config) hasCredentials() bool {
	certProducers := c.Auth.InternalClientCA != "" && c.Auth.PolicyFile != ""
	return c.Dev || (c.ReaderToken != "" && (c.ProducerToken != "" || certProducers)) || c.Auth.AdminToken != "" || c.Auth.OIDCIssuers != ""
}

// authSetup is what authentication adds to the server's configuration.
type authSetup struct {
	auth      server.Authenticator
	tokens    audittrail.TokenStore
	routes    []server.Route
	selfAudit *audittrail.SelfAuditor
	certs     server.CertMapper
	issuer    *token.Issuer
	policy    *policy.File
	logins    audittrail.LoginNames
}

// setupAuth builds the authenticator chain, the built-in issuer and the
// self-auditor. publicURL is the public listener's URL.
func (m *Main) setupAuth(ctx context.Context, store audittrail.Store, publicURL string) (*authSetup, error) {
	c := &m.Config
	a := &c.Auth
	pol, err := policy.Load(a.PolicyFile, m.log)
	if err != nil {
		return nil, err
	}
	go pol.Watch(ctx, 2*time.Second)
	out := &authSetup{policy: pol}
	static := &token.Static{}
	static.Add(c.ReaderToken, audittrail.Principal{Name: server.ReaderPrincipal, Roles: []audittrail.Role{audittrail.RoleAuditor}})
	static.Add(c.ProducerToken, audittrail.Principal{Name: server.ProducerPrincipal, Roles: []audittrail.Role{audittrail.RoleProducer}})
	static.Add(a.AdminToken, audittrail.Principal{Name: adminPrincipal, Roles: []audittrail.Role{audittrail.RoleAdmin}})
	chain := &token.Chain{Static: static}
	if ts, ok := store.(audittrail.TokenStore); ok {
		out.tokens = ts
		chain.APITokens = &token.APITokens{Store: ts}
	} else {
		m.log.WarnContext(ctx, "the store keeps no API tokens: token create/list/revoke and API token authentication are off")
	}
	mapping := token.Mapping{ServiceClaim: a.OIDCServiceClaim, LoginClaims: splitList(a.OIDCLoginClaims),
		GroupsClaim: a.OIDCGroupsClaim, Policy: pol.Policy}
	for _, iss := range splitList(a.OIDCIssuers) {
		v, err := token.NewVerifier(token.IssuerConfig{
			Issuer:     iss,
			Audiences:  splitList(a.OIDCAudience),
			Algorithms: splitList(a.OIDCAlgorithms),
			ClockSkew:  a.OIDCClockSkew,
			Mapping:    mapping,
		})
		if err != nil {
			return nil, usageErrorf("--oidc-issuer: %v", err)
		}
		chain.Verifiers = append(chain.Verifiers, v)
	}
	if !a.NoIssuer {
		base := strings.TrimRight(a.PublicURL, "/")
		if base == "" {
			base = publicURL
		}
		// PostgreSQL replicas publish their issuers' public keys to each
		// other, so each keeps its own key file.
		peers, _ := store.(token.PeerKeys)
		iss, err := token.NewIssuer(token.BuiltinConfig{
			URL:            base,
			KeyFile:        filepath.Join(c.DataDir, issuerKeyFile),
			ClientID:       a.IssuerClientID,
			AccessTokenTTL: a.AccessTokenTTL,
			Refresh:        chain.Refresh,
			Tokens:         chain.APITokens,
			Peers:          peers,
		})
		if err != nil {
			return nil, err
		}
		if err := iss.PublishKey(ctx); err != nil {
			return nil, err
		}
		// Hourly, until the server stops: the others keep trusting this
		// key, and this replica stops trusting keys no longer published.
		go iss.KeepPublished(ctx, func(err error) {
			m.log.Warn("built-in issuer: publishing its key again failed; retried in an hour", "err", err)
		})
		chain.Issuer = iss
		out.issuer = iss
		rts := iss.Routes()
		rts = append(rts, token.DiscoveryRoutes(token.DiscoveryConfig{
			Environment:      base,
			IssuerURL:        iss.URL(),
			ServiceURL:       base,
			PlatformClientID: iss.ClientID(),
			Version:          buildVersion(),
		})...)
		for _, r := range rts {
			out.routes = append(out.routes, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
		}
	}
	out.auth = chain
	if ln, ok := store.(audittrail.LoginNames); ok {
		out.auth = token.RecordLogins(chain, ln)
		out.logins = ln
	}
	out.certs = func(cert *x509.Certificate) (*audittrail.Principal, error) {
		name, err := server.CertServicePrincipal(cert)
		if err != nil {
			return nil, audittrail.Errorf(audittrail.EUnauthenticated, "%v", err)
		}
		roles, ws := pol.Policy().Grant(policy.Identity{Principal: name})
		return &audittrail.Principal{Name: name, Roles: roles, Workspaces: ws, Method: "mtls"}, nil
	}
	out.selfAudit = &audittrail.SelfAuditor{
		Store:            store,
		Source:           a.SelfAuditSource,
		RedactPrivateIPs: c.RedactPrivateIPs,
		FailOpen:         a.SelfAuditFailOpen,
	}
	return out, nil
}

// serverAuthConfig fills the security part of the server's configuration.
func (m *Main) serverAuthConfig(cfg *server.Config, s *authSetup) {
	a := &m.Config.Auth
	cfg.Authenticator = s.auth
	if cfg.Service != nil && s.logins != nil {
		cfg.Service.Logins = s.logins
	}
	cfg.Tokens = s.tokens
	cfg.PublicRoutes = s.routes
	if cfg.Service != nil {
		s.selfAudit.Store = cfg.Service.Store // timed and counted like the producers' appends
	}
	cfg.SelfAudit = s.selfAudit
	cfg.CertPrincipal = s.certs
	cfg.RateLimit = server.RateLimit{Rate: a.RateLimit, Burst: a.RateBurst}
	if a.PublicTLSCert != "" {
		cfg.PublicTLS = &server.TLSConfig{CertFile: a.PublicTLSCert, KeyFile: a.PublicTLSKey}
	}
	if a.InternalTLSCert != "" {
		cfg.InternalTLS = &server.TLSConfig{CertFile: a.InternalTLSCert, KeyFile: a.InternalTLSKey,
			ClientCAFile: a.InternalClientCA, RequireClientCert: a.RequireClientCert}
	}
}

// schemeURL is listenerURL with https for a TLS listener.
func schemeURL(a net.Addr, tls bool) string {
	u := listenerURL(a)
	if tls {
		u = "https://" + strings.TrimPrefix(u, "http://")
	}
	return u
}
