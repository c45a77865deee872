package audittrail

import "context"

// Role says what a principal may do.
type Role string

const (
	// RoleAuditor reads every event.
	RoleAuditor Role = "auditor"
	// RoleProducer creates events through the internal listener.
	RoleProducer Role = "producer"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is "users/<id>" or "services/<name>".
	Name string
	// Roles granted to the caller.
	Roles []Role
}

// HasRole reports whether p was granted r.
func (p *Principal) HasRole(r Role) bool {
	if p == nil {
		return false
	}
	for _, x := range p.Roles {
		if x == r {
			return true
		}
	}
	return false
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
