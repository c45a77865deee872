package postgres_test

import (
	"testing"
	"time"

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
