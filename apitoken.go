package audittrail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"strings"
	"time"
)

// APIToken is a server-issued bearer credential of a standalone deployment.
// The store keeps its digest, never the secret.
type APIToken struct {
	ID          string // public id, for listing and revoking
	Digest      [32]byte
	Principal   string
	Roles       []Role
	Workspaces  []string // for RoleWorkspaceAuditor
	Description string
	Creator     string
	CreateTime  time.Time
	ExpireTime  time.Time // zero: never expires
	RevokeTime  time.Time // zero: not revoked
}

// Active reports whether t authenticates at now: not revoked, not expired.
func (t *APIToken) Active(now time.Time) bool {
	return t.RevokeTime.IsZero() && (t.ExpireTime.IsZero() || now.Before(t.ExpireTime))
}

// AsPrincipal returns the caller that t authenticates.
func (t *APIToken) AsPrincipal(method string) *Principal {
	return &Principal{
		Name:       t.Principal,
		Roles:      slices.Clone(t.Roles),
		Workspaces: slices.Clone(t.Workspaces),
		Method:     method,
		TokenID:    t.ID,
	}
}

// TokenStore keeps API tokens. Both stores implement it (pebblestore,
// postgres); implementations must be safe for concurrent use, durable
// when a call returns, and make a revocation visible to every later
// TokenByDigest.
type TokenStore interface {
	// CreateToken stores a new token; EConflict when its ID or digest is
	// used.
	CreateToken(ctx context.Context, t *APIToken) error
	// TokenByDigest returns the token with the digest, ENotFound when none.
	TokenByDigest(ctx context.Context, digest [32]byte) (*APIToken, error)
	// TokenByID returns the token with the id, ENotFound when none.
	TokenByID(ctx context.Context, id string) (*APIToken, error)
	// ListTokens returns every token, revoked and expired ones included,
	// oldest first.
	ListTokens(ctx context.Context) ([]*APIToken, error)
	// RevokeToken sets the revocation time of the token (keeping an
	// earlier one) and returns the token; ENotFound when none.
	RevokeToken(ctx context.Context, id string, at time.Time) (*APIToken, error)
}

// APITokenPrefix starts every API token secret, so that a leaked token is
// recognisable (secret scanners) and never mistaken for a JWT.
const APITokenPrefix = "atk_"

// TokenDigest is the digest under which a token secret is stored.
func TokenDigest(secret string) [32]byte {
	return sha256.Sum256([]byte("audittrail-api-token\x00" + secret))
}

var idEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// NewTokenRequest is what an admin asks for.
type NewTokenRequest struct {
	Principal   string
	Roles       []Role
	Workspaces  []string
	TTL         time.Duration // 0: never expires
	Description string
}

// MaxTokenDescription bounds APIToken.Description.
const MaxTokenDescription = 1024

// NewAPIToken validates req and returns the token to store and its secret.
func NewAPIToken(req NewTokenRequest, creator string, now time.Time) (*APIToken, string, error) {
	if err := ValidatePrincipalName(req.Principal); err != nil {
		return nil, "", err
	}
	if len(req.Roles) == 0 {
		return nil, "", Errorf(EInvalid, "a token needs at least one role")
	}
	roles := slices.Clone(req.Roles)
	for _, r := range roles {
		if _, err := ParseRole(string(r)); err != nil || string(r) != strings.ToLower(string(r)) {
			return nil, "", Errorf(EInvalid, "unknown role %q", clip(string(r)))
		}
	}
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if slices.Contains(roles, RoleProducer) && !strings.HasPrefix(req.Principal, "services/") {
		return nil, "", Errorf(EInvalid, "the producer role is for service principals (services/...), not %q", req.Principal)
	}
	var ws []string
	for _, w := range req.Workspaces {
		n, err := NormalizeWorkspace(w)
		if err != nil {
			return nil, "", err
		}
		ws = append(ws, n)
	}
	slices.Sort(ws)
	ws = slices.Compact(ws)
	if slices.Contains(roles, RoleWorkspaceAuditor) != (len(ws) > 0) {
		return nil, "", Errorf(EInvalid, "workspaces go with the workspace_auditor role, and that role needs at least one workspace")
	}
	if req.TTL < 0 {
		return nil, "", Errorf(EInvalid, "ttl must not be negative")
	}
	if len(req.Description) > MaxTokenDescription {
		return nil, "", Errorf(EInvalid, "description is too long: the limit is %d bytes", MaxTokenDescription)
	}
	var idb [10]byte
	rand.Read(idb[:])
	var sb [32]byte
	rand.Read(sb[:])
	secret := APITokenPrefix + idEncoding.EncodeToString(sb[:])
	t := &APIToken{
		ID:          idEncoding.EncodeToString(idb[:]),
		Digest:      TokenDigest(secret),
		Principal:   req.Principal,
		Roles:       roles,
		Workspaces:  ws,
		Description: req.Description,
		Creator:     creator,
		CreateTime:  now.UTC(),
	}
	if req.TTL > 0 {
		t.ExpireTime = now.Add(req.TTL).UTC()
	}
	return t, secret, nil
}

// LoginNames keeps the login name (preferred_username, email) last seen for
// each principal that authenticated with an OIDC token, so that searches
// can fill login_principal with the name known at search time.
type LoginNames interface {
	// SetLoginName records the login name of a principal.
	SetLoginName(ctx context.Context, principal, name string) error
	// LoginNames returns the known login names of the principals.
	LoginNames(ctx context.Context, principals []string) (map[string]string, error)
}
