package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/wire"
)

// Authenticator turns the bearer token of a request into the caller. It
// returns an *audittrail.Error with code EUnauthenticated when the token is
// not valid. Implementations must be safe for concurrent use.
//
// It is the only thing the transport knows about credentials, so OIDC access
// tokens, API tokens or policies replace StaticTokens without touching the
// handlers, which see only the *audittrail.Principal in the context.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error)
}

// Principals of the static tokens.
const (
	ReaderPrincipal   = "users/reader"
	ProducerPrincipal = "services/producer"
)

// StaticTokens authenticates two fixed tokens: Reader is the auditor
// ("users/reader", may search) and Producer the producing service
// ("services/producer", may create). It is the authenticator of a single
// deployment without an identity provider.
type StaticTokens struct {
	reader, producer [sha256.Size]byte
	hasReader        bool
	hasProducer      bool
}

// NewStaticTokens returns the authenticator of the two tokens. An empty token
// authenticates nobody.
func NewStaticTokens(reader, producer string) *StaticTokens {
	a := &StaticTokens{hasReader: reader != "", hasProducer: producer != ""}
	a.reader = sha256.Sum256([]byte(reader))
	a.producer = sha256.Sum256([]byte(producer))
	return a
}

var errUnauthenticated = audittrail.Errorf(audittrail.EUnauthenticated, "missing or invalid bearer token")

// Authenticate compares the token with both tokens in constant time (over
// their SHA-256 digests, so neither the content nor the length of a token
// leaks through timing).
func (a *StaticTokens) Authenticate(_ context.Context, bearer string) (*audittrail.Principal, error) {
	d := sha256.Sum256([]byte(bearer))
	isReader := subtle.ConstantTimeCompare(d[:], a.reader[:]) == 1 && a.hasReader
	isProducer := subtle.ConstantTimeCompare(d[:], a.producer[:]) == 1 && a.hasProducer
	switch {
	case isReader:
		return &audittrail.Principal{Name: ReaderPrincipal, Roles: []audittrail.Role{audittrail.RoleAuditor}}, nil
	case isProducer:
		return &audittrail.Principal{Name: ProducerPrincipal, Roles: []audittrail.Role{audittrail.RoleProducer}}, nil
	}
	return nil, errUnauthenticated
}

// authInterceptor authenticates every call: it reads the one "authorization"
// metadata value ("Bearer <token>"), asks the Authenticator, and puts the
// principal in the context. Without a bearer token, a verified client
// certificate of the connection (internal listener with mutual TLS) names
// the caller when certs maps it. Every method of the services needs a
// caller, so a call without valid credentials ends here with
// UNAUTHENTICATED; what the caller may do is decided by the handlers
// (audittrail.CanSearch, audittrail.CanCreate, audittrail.CanManageTokens).
// The caller's rate limit is applied here too (RESOURCE_EXHAUSTED).
//
// REST requests arrive here too: the gateway passes the Authorization header
// as the "authorization" metadata (see the package documentation).
//
// The credentials are usually checked before the request was decoded, by
// the gate of the listener (auth_early.go), whose decision this takes from
// the context; the effects of the decision (the failed attempt counted,
// the caller noted, the caller's rate limit) are all here, once per call.
func authInterceptor(a *authCheck) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		d, ok := takeDecision(ctx)
		if !ok {
			d = a.check(ctx, metadata.ValueFromIncomingContext(ctx, "authorization"))
		}
		if d.over {
			return nil, exhausted(ctx, "callers from this address, after too many failed authentications", d.wait)
		}
		p, err := d.p, d.err
		if err != nil {
			switch audittrail.ErrorCode(err) {
			case audittrail.EUnauthenticated:
				// Failed attempts are limited per source address.
				if ok, wait := a.lim.allow(failedAuthKey(ctx)); !ok {
					return nil, exhausted(ctx, "unauthenticated callers from this address", wait)
				}
			case audittrail.EInternal:
				noteInternal(ctx, err)
			}
			// Other errors (an identity provider or a store that cannot
			// be reached: UNAVAILABLE) are not the caller's fault, and do
			// not count as failed attempts.
			return nil, wire.ToStatus(err)
		}
		noteAuthenticated(ctx, p)
		if ok, wait := a.lim.allow(p.Name); !ok {
			return nil, exhausted(ctx, p.Name, wait)
		}
		return handler(audittrail.NewContextWithPrincipal(ctx, p), req)
	}
}

// authCheck decides who the caller of a request is, on one listener.
type authCheck struct {
	auth  Authenticator
	lim   *limiter
	certs CertMapper // nil: client certificates name nobody (public listener)
}

// authDecision is what authCheck.check decided: the caller, or why not.
type authDecision struct {
	p    *audittrail.Principal // nil when err or over
	err  error                 // the credential's failure (EUnauthenticated, EUnavailable, ...)
	over bool                  // the address is over its limit of failed authentications: nothing checked
	wait time.Duration         // over: until the address may try again
}

// authenticated reports whether the caller is known, so that its request
// may be read.
func (d authDecision) authenticated() bool { return d.p != nil }

// check decides the caller of the request of ctx from its "authorization"
// values (the metadata, or the REST request's Authorization headers) or,
// without any, from the verified client certificate of its connection. It
// has no effect: authInterceptor counts the failed attempt, notes the
// caller and applies its rate limit.
func (a *authCheck) check(ctx context.Context, authorization []string) authDecision {
	// An address over its limit of failed authentications is refused
	// before its credential is checked: were it checked, the right guess
	// would still be told apart from the wrong ones (an answer against
	// RESOURCE_EXHAUSTED), and guessing would not be slowed.
	if a.lim != nil { // not even the key's string without a limit (every call passes here)
		if over, wait := a.lim.over(failedAuthKey(ctx)); over {
			return authDecision{over: true, wait: wait}
		}
	}
	var p *audittrail.Principal
	var err error
	if n := len(authorization); n > 1 {
		err = audittrail.Errorf(audittrail.EUnauthenticated, "%d Authorization headers: send exactly one (a proxy in between may have added its own)", n)
	} else if token, ok := bearerToken(authorization); ok {
		p, err = a.auth.Authenticate(ctx, token)
	} else if m := metaFrom(ctx); a.certs != nil && m.tls != nil && len(m.tls.VerifiedChains) > 0 {
		p, err = a.certs(m.tls.VerifiedChains[0][0])
	} else {
		err = errUnauthenticated
	}
	if err == nil && p == nil {
		err = errUnauthenticated
	}
	if err != nil {
		return authDecision{err: err}
	}
	return authDecision{p: p}
}

// bearerToken returns the token of the single "authorization: Bearer <token>"
// value. Several values are refused rather than guessed between.
func bearerToken(vals []string) (string, bool) {
	if len(vals) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
