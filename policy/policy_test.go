package policy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func TestParseAndGrant(t *testing.T) {
	p, err := Parse([]byte(`{"bindings": [
		{"principals": ["users/alice"], "roles": ["auditor"]},
		{"groups": ["sec"], "roles": ["workspace-auditor"], "workspaces": ["w1", "workspaces/w2"]},
		{"claims": {"realm_access.roles": "ws3", "tenant": "acme"}, "roles": ["workspace_auditor"], "workspaces": ["w3"]},
		{"principals": ["services/appstore"], "roles": ["producer"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	roles, ws := p.Grant(Identity{Principal: "users/alice", Groups: []string{"sec"}})
	if !slices.Equal(roles, []audittrail.Role{audittrail.RoleAuditor, audittrail.RoleWorkspaceAuditor}) ||
		!slices.Equal(ws, []string{"workspaces/w1", "workspaces/w2"}) {
		t.Errorf("alice in sec: %v %v", roles, ws)
	}
	claims := map[string]any{"realm_access": map[string]any{"roles": []any{"x", "ws3"}}, "tenant": "acme"}
	if roles, ws := p.Grant(Identity{Principal: "users/bob", Claims: claims}); len(roles) != 1 || !slices.Equal(ws, []string{"workspaces/w3"}) {
		t.Errorf("claims: %v %v", roles, ws)
	}
	claims["tenant"] = "other"
	if roles, _ := p.Grant(Identity{Principal: "users/bob", Claims: claims}); len(roles) != 0 {
		t.Errorf("every claim must hold: %v", roles)
	}
	if roles, _ := (*Policy)(nil).Grant(Identity{Principal: "users/alice"}); roles != nil {
		t.Error("nil policy grants")
	}

	// With several issuers, users/<sub> and groups of one can be another's:
	// a binding with an issuer applies to that issuer's tokens only, and
	// never to a certificate (no claims).
	p, err = Parse([]byte(`{"bindings": [
		{"issuer": "https://idp-a", "principals": ["users/alice"], "roles": ["auditor"]},
		{"issuer": "https://idp-a", "groups": ["sec"], "roles": ["admin"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   Identity
		want int
	}{
		{Identity{Principal: "users/alice", Claims: map[string]any{"iss": "https://idp-a"}}, 1},
		{Identity{Principal: "users/alice", Claims: map[string]any{"iss": "https://idp-b"}}, 0},
		{Identity{Principal: "users/bob", Groups: []string{"sec"}, Claims: map[string]any{"iss": "https://idp-a"}}, 1},
		{Identity{Principal: "users/bob", Groups: []string{"sec"}, Claims: map[string]any{"iss": "https://idp-b"}}, 0},
		{Identity{Principal: "users/alice"}, 0}, // a certificate
	} {
		if roles, _ := p.Grant(tc.id); len(roles) != tc.want {
			t.Errorf("%+v: roles %v, want %d", tc.id, roles, tc.want)
		}
	}
	for name, doc := range map[string]string{
		"unknown field":   `{"bindings": [], "extra": 1}`,
		"unknown role":    `{"bindings": [{"principals": ["users/a"], "roles": ["root"]}]}`,
		"no subject":      `{"bindings": [{"roles": ["auditor"]}]}`,
		"no role":         `{"bindings": [{"principals": ["users/a"]}]}`,
		"bad principal":   `{"bindings": [{"principals": ["alice"], "roles": ["auditor"]}]}`,
		"ws without role": `{"bindings": [{"principals": ["users/a"], "roles": ["auditor"], "workspaces": ["w"]}]}`,
		"role without ws": `{"bindings": [{"principals": ["users/a"], "roles": ["workspace_auditor"]}]}`,
		"not json":        `bindings:`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"bindings": [{"principals": ["users/a"], "roles": ["auditor"]}]}`)
	f, err := Load(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Watch(ctx, 10*time.Millisecond)
	has := func(p string) bool {
		r, _ := f.Policy().Grant(Identity{Principal: p})
		return len(r) > 0
	}
	if !has("users/a") || has("users/b") {
		t.Fatal("initial policy")
	}
	write(`{"bindings": [{"principals": ["users/b"], "roles": ["auditor"]}]}`)
	waitFor(t, func() bool { return has("users/b") && !has("users/a") })
	// A broken file keeps the policy in force.
	write(`{"bindings": [{"principals": ["users/c"], "roles": ["nope"]}]}`)
	time.Sleep(100 * time.Millisecond)
	if !has("users/b") || has("users/c") {
		t.Error("a broken file changed the policy")
	}
	write(`{"bindings": [{"principals": ["users/c"], "roles": ["auditor"]}]}`)
	waitFor(t, func() bool { return has("users/c") })
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json"), nil); err == nil {
		t.Error("a missing file loads")
	}
	empty, err := Load("", nil)
	if err != nil || len(empty.Policy().Bindings) != 0 {
		t.Errorf("no file: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the policy to reload")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
