package audittrail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/audittrail/audittrail"
)

func TestAuthz(t *testing.T) {
	auditorP := &audittrail.Principal{Name: "users/alice", Roles: []audittrail.Role{audittrail.RoleAuditor}}
	producer := &audittrail.Principal{Name: "services/appstore", Roles: []audittrail.Role{audittrail.RoleProducer}}
	both := &audittrail.Principal{Name: "services/both", Roles: []audittrail.Role{audittrail.RoleProducer, audittrail.RoleAuditor}}
	none := &audittrail.Principal{Name: "users/nobody"}
	other := &audittrail.Principal{Name: "users/x", Roles: []audittrail.Role{"admin", "Auditor"}}
	for _, c := range []struct {
		name         string
		p            *audittrail.Principal
		search, make string // expected codes, "" for allowed
	}{
		{"no principal", nil, audittrail.EUnauthenticated, audittrail.EUnauthenticated},
		{"auditor", auditorP, "", audittrail.EPermissionDenied},
		{"producer", producer, audittrail.EPermissionDenied, ""},
		{"both roles", both, "", ""},
		{"no roles", none, audittrail.EPermissionDenied, audittrail.EPermissionDenied},
		{"other roles", other, audittrail.EPermissionDenied, audittrail.EPermissionDenied},
	} {
		for _, f := range []struct {
			op   string
			fn   func(*audittrail.Principal) error
			want string
			role string
		}{
			{"CanSearch", audittrail.CanSearch, c.search, "auditor"},
			{"CanCreate", audittrail.CanCreate, c.make, "producer"},
		} {
			err := f.fn(c.p)
			if got := audittrail.ErrorCode(err); got != f.want {
				t.Errorf("%s(%s) = %v, want code %q", f.op, c.name, err, f.want)
				continue
			}
			if f.want == audittrail.EPermissionDenied {
				msg := audittrail.ErrorMessage(err)
				if !strings.Contains(msg, fmt.Sprintf("%q", c.p.Name)) || !strings.Contains(msg, f.role) {
					t.Errorf("%s(%s): message %q should name the principal and the missing role %s", f.op, c.name, msg, f.role)
				}
			}
		}
	}
	var nilP *audittrail.Principal
	if nilP.HasRole(audittrail.RoleAuditor) {
		t.Error("a nil principal has a role")
	}
}

func TestPrincipalContext(t *testing.T) {
	if p := audittrail.PrincipalFromContext(context.Background()); p != nil {
		t.Errorf("empty context: %+v", p)
	}
	p := &audittrail.Principal{Name: "users/alice"}
	ctx := audittrail.NewContextWithPrincipal(context.Background(), p)
	if got := audittrail.PrincipalFromContext(ctx); got != p {
		t.Errorf("PrincipalFromContext = %+v, want %+v", got, p)
	}
	q := &audittrail.Principal{Name: "users/bob"}
	inner := audittrail.NewContextWithPrincipal(ctx, q)
	if audittrail.PrincipalFromContext(inner) != q || audittrail.PrincipalFromContext(ctx) != p {
		t.Error("a nested principal does not shadow the outer one, or changed it")
	}
	type otherKey struct{}
	if audittrail.PrincipalFromContext(context.WithValue(context.Background(), otherKey{}, p)) != nil {
		t.Error("a principal under another key is found")
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	e := audittrail.Errorf(audittrail.ENotFound, "event %q not found", "x")
	wrapped := fmt.Errorf("loading: %w", e)
	foreign := errors.New("pebble: /var/lib/secret/path is corrupt")
	for _, c := range []struct {
		err        error
		code, msg  string
		errorsText string
	}{
		{nil, "", "", ""},
		{e, audittrail.ENotFound, `event "x" not found`, `not_found: event "x" not found`},
		{wrapped, audittrail.ENotFound, `event "x" not found`, `loading: not_found: event "x" not found`},
		{foreign, audittrail.EInternal, "internal error", foreign.Error()},
	} {
		if got := audittrail.ErrorCode(c.err); got != c.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.code)
		}
		if got := audittrail.ErrorMessage(c.err); got != c.msg {
			t.Errorf("ErrorMessage(%v) = %q, want %q", c.err, got, c.msg)
		}
		if c.err != nil && c.err.Error() != c.errorsText {
			t.Errorf("Error() = %q, want %q", c.err.Error(), c.errorsText)
		}
	}
}
