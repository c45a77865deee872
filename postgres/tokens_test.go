package postgres_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
)

func TestTokenStore(t *testing.T) {
	url := pgtest.Start(t)
	ctx := t.Context()
	s := mustOpen(t, url)
	now := time.Now().UTC().Truncate(time.Microsecond)
	tok, secret, err := audittrail.NewAPIToken(audittrail.NewTokenRequest{Principal: "users/w", Roles: []audittrail.Role{"workspace_auditor"},
		Workspaces: []string{"w1"}, TTL: time.Hour, Description: "d"}, "users/admin", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok); audittrail.ErrorCode(err) != audittrail.EConflict {
		t.Errorf("duplicate: %v", err)
	}
	got, err := s.TokenByDigest(ctx, audittrail.TokenDigest(secret))
	if err != nil || got.ID != tok.ID || got.Principal != "users/w" || got.Workspaces[0] != "workspaces/w1" ||
		!got.ExpireTime.Equal(tok.ExpireTime) || got.Creator != "users/admin" || got.Roles[0] != audittrail.RoleWorkspaceAuditor {
		t.Fatalf("by digest: %+v, %v", got, err)
	}
	if _, err := s.TokenByDigest(ctx, audittrail.TokenDigest("x")); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("unknown digest: %v", err)
	}
	if _, err := s.RevokeToken(ctx, "nope", now); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("revoke unknown: %v", err)
	}
	if r, err := s.RevokeToken(ctx, tok.ID, now.Add(time.Minute)); err != nil || !r.RevokeTime.Equal(now.Add(time.Minute)) {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if r, _ := s.RevokeToken(ctx, tok.ID, now.Add(time.Hour)); !r.RevokeTime.Equal(now.Add(time.Minute)) {
		t.Errorf("a second revocation moved the time")
	}
	if err := s.SetLoginName(ctx, "users/w", "wendy"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Another replica (store) sees the revocation and the name.
	s2 := mustOpen(t, url)
	defer s2.Close()
	list, err := s2.ListTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Active(now) {
		t.Errorf("list: %+v %v", list, err)
	}
	if names, err := s2.LoginNames(ctx, []string{"users/w", "users/x"}); err != nil || names["users/w"] != "wendy" || len(names) != 1 {
		t.Errorf("login names: %v %v", names, err)
	}
	if byID, err := s2.TokenByID(ctx, tok.ID); err != nil || byID.Digest != tok.Digest {
		t.Errorf("by id: %v", err)
	}
}

// TestTokensAndLoginNamesWithNUL: PostgreSQL text cannot hold the byte
// 0x00, which the API allows in principals and descriptions: the strings of
// api_tokens and login_names are stored escaped, as the events' are
// (text.go). One principal with a NUL among those of a page must not cost
// the page the names of the others, which PostgreSQL would refuse with it.
// Strings without 0x00 and 0x01 are stored as they are.
func TestTokensAndLoginNamesWithNUL(t *testing.T) {
	url := pgtest.Start(t)
	ctx := t.Context()
	s := mustOpen(t, url)
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tok, secret, err := audittrail.NewAPIToken(audittrail.NewTokenRequest{Principal: "users/b", Roles: []audittrail.Role{"workspace_auditor"},
		Workspaces: []string{"w1"}, Description: "ci\x00key"}, "users/admin", now)
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps whatever strings it is given.
	tok.ID, tok.Principal, tok.Creator = "tok\x00\x01en", "users/b\x00b", "users/ad\x00min"
	tok.Workspaces = []string{"workspaces/w\x001", "workspaces/w\x01"}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	same := func(label string, got *audittrail.APIToken, err error) {
		t.Helper()
		if err != nil || got.ID != tok.ID || got.Principal != tok.Principal || !slices.Equal(got.Workspaces, tok.Workspaces) ||
			!slices.Equal(got.Roles, tok.Roles) || got.Description != tok.Description || got.Creator != tok.Creator || got.Digest != tok.Digest {
			t.Errorf("%s: %+v, %v; want %+v", label, got, err, tok)
		}
	}
	got, err := s.TokenByDigest(ctx, audittrail.TokenDigest(secret))
	same("by digest", got, err)
	got, err = s.TokenByID(ctx, tok.ID)
	same("by id", got, err)
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	same("listed", list[0], nil)
	revoked, err := s.RevokeToken(ctx, tok.ID, now)
	if err == nil && !revoked.RevokeTime.Equal(now) {
		t.Errorf("revoked at %v, want %v", revoked.RevokeTime, now)
	}
	same("revoked", revoked, err)

	names := map[string]string{"users/alice": "Alice Example", "users/a\x00b": "A\x00B", "users/\x01": "One"}
	for p, n := range names {
		if err := s.SetLoginName(ctx, p, n); err != nil {
			t.Fatalf("SetLoginName(%q): %v", p, err)
		}
	}
	got2, err := s.LoginNames(ctx, []string{"users/alice", "users/a\x00b", "users/\x01", "users/a", "users/nobody"})
	if err != nil || !maps.Equal(got2, names) {
		t.Errorf("login names: %q, %v; want %q", got2, err, names)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored string
	if err := conn.QueryRow(ctx, "SELECT name FROM login_names WHERE principal = 'users/alice'").Scan(&stored); err != nil || stored != "Alice Example" {
		t.Errorf("the stored name of a principal without NUL: %q, %v; want it as it is", stored, err)
	}
}
