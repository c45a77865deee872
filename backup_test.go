package audittrail_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func TestValidBackupName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"b1", true},
		{"before-upgrade-2.1", true},
		{"20261128T014500Z", true},
		{"A_b.c-d", true},
		{strings.Repeat("x", audittrail.MaxBackupName), true},
		{"", false},
		{strings.Repeat("x", audittrail.MaxBackupName+1), false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-rf", false},
		{"_x", false},
		{"a/b", false},
		{"../x", false},
		{`a\b`, false},
		{"a b", false},
		{"é", false},
		{"a\x00", false},
	} {
		err := audittrail.ValidBackupName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidBackupName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Errorf("ValidBackupName(%q): code %s, want %s", c.name, audittrail.ErrorCode(err), audittrail.EInvalid)
		}
	}
	if n := audittrail.BackupName(time.Date(2026, 11, 28, 1, 45, 0, 0, time.FixedZone("x", 3600))); n != "20261128T004500Z" || audittrail.ValidBackupName(n) != nil {
		t.Errorf("BackupName = %q", n)
	}
}

// TestCanBackup: only the admin role takes backups (a copy of every event);
// an auditor, who reads every event through searches, does not.
func TestCanBackup(t *testing.T) {
	for _, c := range []struct {
		p    *audittrail.Principal
		code string
	}{
		{nil, audittrail.EUnauthenticated},
		{&audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAuditor}}, audittrail.EPermissionDenied},
		{&audittrail.Principal{Name: "services/p", Roles: []audittrail.Role{audittrail.RoleProducer}}, audittrail.EPermissionDenied},
		{&audittrail.Principal{Name: "users/admin", Roles: []audittrail.Role{audittrail.RoleAdmin}}, ""},
	} {
		if got := audittrail.ErrorCode(audittrail.CanBackup(c.p)); got != c.code {
			t.Errorf("CanBackup(%v) = %q, want %q", c.p, got, c.code)
		}
	}
}

// FuzzValidBackupName: a name that passes is one path element of its own,
// never "." or "..", and cannot be read as a command-line option.
func FuzzValidBackupName(f *testing.F) {
	for _, s := range []string{"b1", "..", "a/b", "-x", ".x", "x.y-z_1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if audittrail.ValidBackupName(name) != nil {
			return
		}
		if filepath.Base(name) != name || filepath.Clean(name) != name || name == "." || name == ".." ||
			strings.ContainsAny(name, `/\`+"\x00") || name[0] == '-' || name[0] == '.' || len(name) > audittrail.MaxBackupName {
			t.Fatalf("ValidBackupName accepted %q", name)
		}
	})
}
