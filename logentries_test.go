package audittrail_test

import (
	"testing"

	"github.com/audittrail/audittrail"
)

func TestCanReadLogEntries(t *testing.T) {
	for _, c := range []struct {
		name string
		p    *audittrail.Principal
		want string
	}{
		{"no principal", nil, audittrail.EUnauthenticated},
		{"auditor", &audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAuditor}}, ""},
		{"auditor and workspace auditor", &audittrail.Principal{Name: "users/b", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor, audittrail.RoleAuditor}, Workspaces: []string{"workspaces/w"}}, ""},
		{"workspace auditor", &audittrail.Principal{Name: "users/c", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor}, Workspaces: []string{"workspaces/w"}}, audittrail.EPermissionDenied},
		{"producer", &audittrail.Principal{Name: "services/p", Roles: []audittrail.Role{audittrail.RoleProducer}}, audittrail.EPermissionDenied},
		{"admin", &audittrail.Principal{Name: "users/d", Roles: []audittrail.Role{audittrail.RoleAdmin}}, audittrail.EPermissionDenied},
	} {
		if got := audittrail.ErrorCode(audittrail.CanReadLogEntries(c.p)); got != c.want {
			t.Errorf("%s: code %q, want %q", c.name, got, c.want)
		}
	}
}
