package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
)

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

var errInvalidToken = audittrail.Errorf(audittrail.EUnauthenticated, "missing or invalid bearer token")

// APITokens authenticates server-issued API tokens against a TokenStore. A
// token is looked up by its digest on every request, so a revocation takes
// effect at once.
type APITokens struct {
	Store audittrail.TokenStore
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authenticate implements the server's Authenticator.
func (a *APITokens) Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error) {
	t, err := a.lookup(ctx, bearer)
	if err != nil {
		return nil, err
	}
	return t.AsPrincipal("api-token"), nil
}

// lookup returns the active token of the secret.
func (a *APITokens) lookup(ctx context.Context, secret string) (*audittrail.APIToken, error) {
	if a == nil || a.Store == nil || !strings.HasPrefix(secret, audittrail.APITokenPrefix) {
		return nil, errInvalidToken
	}
	t, err := a.Store.TokenByDigest(ctx, audittrail.TokenDigest(secret))
	switch {
	case audittrail.ErrorCode(err) == audittrail.ENotFound:
		return nil, errInvalidToken
	case err != nil:
		return nil, err
	}
	if !t.Active(a.now()) {
		return nil, audittrail.Errorf(audittrail.EUnauthenticated, "invalid bearer token: the API token %s is revoked or expired", t.ID)
	}
	return t, nil
}

// active returns the active token of the id (for access tokens of the
// built-in issuer).
func (a *APITokens) active(ctx context.Context, id string) (*audittrail.APIToken, error) {
	if a == nil || a.Store == nil {
		return nil, errInvalidToken
	}
	t, err := a.Store.TokenByID(ctx, id)
	switch {
	case audittrail.ErrorCode(err) == audittrail.ENotFound:
		return nil, errInvalidToken
	case err != nil:
		return nil, err
	}
	if !t.Active(a.now()) {
		return nil, audittrail.Errorf(audittrail.EUnauthenticated, "invalid bearer token: the API token %s behind it is revoked or expired", t.ID)
	}
	return t, nil
}

func (a *APITokens) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Static authenticates fixed tokens given at start (serve --reader-token,
// --producer-token, --admin-token), each naming one principal. Tokens are
// compared in constant time over their SHA-256 digests.
type Static struct {
	entries []staticEntry
}

type staticEntry struct {
	digest [32]byte
	p      audittrail.Principal
}

// Add registers token for p; an empty token is ignored.
func (s *Static) Add(token string, p audittrail.Principal) {
	if token == "" {
		return
	}
	p.Method = "static"
	s.entries = append(s.entries, staticEntry{digest: sha256.Sum256([]byte(token)), p: p})
}

// Authenticate implements the server's Authenticator.
func (s *Static) Authenticate(_ context.Context, bearer string) (*audittrail.Principal, error) {
	d := sha256.Sum256([]byte(bearer))
	var found *audittrail.Principal
	for i := range s.entries {
		if subtle.ConstantTimeCompare(d[:], s.entries[i].digest[:]) == 1 {
			p := s.entries[i].p
			found = &p
		}
	}
	if found == nil {
		return nil, errInvalidToken
	}
	return found, nil
}
