package token

import (
	"context"
	"sync"

	"github.com/audittrail/audittrail"
)

// Authenticator is the interface of the server's authenticators.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error)
}

// RecordLogins wraps an authenticator so that the login name of every
// principal it authenticates (OIDC tokens: preferred_username or email) is
// recorded in dir when it changed, for login_principal in searches.
func RecordLogins(a Authenticator, dir audittrail.LoginNames) Authenticator {
	return &loginRecorder{Authenticator: a, dir: dir, known: map[string]string{}}
}

type loginRecorder struct {
	Authenticator
	dir   audittrail.LoginNames
	mu    sync.Mutex
	known map[string]string
}

func (r *loginRecorder) Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error) {
	p, err := r.Authenticator.Authenticate(ctx, bearer)
	if err != nil || p == nil || p.LoginName == "" {
		return p, err
	}
	r.mu.Lock()
	same := r.known[p.Name] == p.LoginName
	r.mu.Unlock()
	if same {
		return p, nil
	}
	if r.dir.SetLoginName(ctx, p.Name, p.LoginName) == nil {
		r.mu.Lock()
		if len(r.known) > 100_000 {
			clear(r.known)
		}
		r.known[p.Name] = p.LoginName
		r.mu.Unlock()
	}
	return p, nil
}
