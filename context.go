package audittrail

import (
	"context"
	"slices"
	"strings"
)

// Role says what a principal may do. Authorization decisions are the plain
// functions of authz.go.
type Role string

const (
	// RoleAuditor reads every event.
	RoleAuditor Role = "auditor"
	// RoleWorkspaceAuditor reads only the events whose workspace is one of
	// the principal's Workspaces; events without a workspace are invisible
	// to it.
	RoleWorkspaceAuditor Role = "workspace_auditor"
	// RoleProducer creates events through the internal listener. Only
	// service principals ("services/...") may hold it effectively.
	RoleProducer Role = "producer"
	// RoleAdmin manages API tokens (create, list, revoke) and takes
	// backups through the internal listener. It grants no access to events
	// by itself: a backup stays on the server's file system.
	RoleAdmin Role = "admin"
)

// Roles lists the known roles.
var Roles = []Role{RoleAuditor, RoleWorkspaceAuditor, RoleProducer, RoleAdmin}

// ParseRole parses a role name. "workspace-auditor" is accepted for
// RoleWorkspaceAuditor.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"))
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", Errorf(EInvalid, "unknown role %q: the roles are auditor, workspace_auditor, producer and admin", clip(s))
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is "users/<id>" or "services/<name>".
	Name string
	// Roles granted to the caller.
	Roles []Role
	// Workspaces are the workspaces ("workspaces/<id>") a workspace auditor
	// may read. They mean nothing without RoleWorkspaceAuditor.
	Workspaces []string
	// LoginName is the caller's login name (preferred_username or email of
	// an OIDC token) when known, for logs and login_principal.
	LoginName string
	// Method says how the caller authenticated: "static", "api-token",
	// "oidc", "issuer" (an access token of the built-in issuer) or "mtls".
	Method string
	// TokenID is the id of the API token the caller authenticated with,
	// directly or through an access token of the built-in issuer.
	TokenID string
	// Issuer is the issuer ("iss") of the OIDC token the caller
	// authenticated with: with several issuers, Name alone ("users/<sub>")
	// does not say whose user the caller is.
	Issuer string
}

// HasRole reports whether p was granted r.
func (p *Principal) HasRole(r Role) bool {
	if p == nil {
		return false
	}
	return slices.Contains(p.Roles, r)
}

// IsService reports whether p is a service principal ("services/...").
func (p *Principal) IsService() bool {
	return p != nil && strings.HasPrefix(p.Name, "services/") && len(p.Name) > len("services/")
}

// NormalizeWorkspace returns "workspaces/<id>" for "workspaces/<id>" or a bare
// "<id>", and an error for anything else.
func NormalizeWorkspace(s string) (string, error) {
	w := strings.TrimSpace(s)
	if !strings.HasPrefix(w, "workspaces/") {
		w = "workspaces/" + w
	}
	if !isWorkspaceName(w) {
		return "", Errorf(EInvalid, "workspace %q must have the form \"workspaces/<id>\" or \"<id>\"", clip(s))
	}
	return w, nil
}

// ValidatePrincipalName checks the form of a principal name: "users/<id>" or
// "services/<name>", printable, at most MaxFieldLen bytes.
func ValidatePrincipalName(name string) error {
	kind, id, ok := strings.Cut(name, "/")
	if !ok || (kind != "users" && kind != "services") || id == "" || len(name) > MaxFieldLen ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Errorf(EInvalid, "principal %q must have the form \"users/<id>\" or \"services/<name>\"", clip(name))
	}
	return nil
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the caller stored in ctx, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
