package pebblestore

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func TestTokenStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(ctx, Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	now := time.Now().UTC().Truncate(time.Millisecond)
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
		!got.ExpireTime.Equal(tok.ExpireTime) || got.Creator != "users/admin" || got.Description != "d" {
		t.Fatalf("by digest: %+v, %v", got, err)
	}
	if _, err := s.TokenByDigest(ctx, audittrail.TokenDigest("other")); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("unknown digest: %v", err)
	}
	// Events and tokens do not mix.
	if st := s.Stats(); st.Events != 0 {
		t.Errorf("a token counts as an event: %+v", st)
	}
	if _, err := s.RevokeToken(ctx, "nope", now); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("revoke unknown: %v", err)
	}
	r, err := s.RevokeToken(ctx, tok.ID, now.Add(time.Minute))
	if err != nil || !r.RevokeTime.Equal(now.Add(time.Minute)) {
		t.Fatalf("revoke: %+v, %v", r, err)
	}
	if r, _ := s.RevokeToken(ctx, tok.ID, now.Add(time.Hour)); !r.RevokeTime.Equal(now.Add(time.Minute)) {
		t.Errorf("a second revocation moved the time: %v", r.RevokeTime)
	}
	if err := s.SetLoginName(ctx, "users/w", "wendy@example.com"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Durable across a restart.
	s = open()
	defer s.Close()
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 1 || list[0].RevokeTime.IsZero() || list[0].Active(now) {
		t.Errorf("after reopen: %+v, %v", list, err)
	}
	if byID, err := s.TokenByID(ctx, tok.ID); err != nil || byID.Digest != tok.Digest {
		t.Errorf("by id: %+v %v", byID, err)
	}
	names, err := s.LoginNames(ctx, []string{"users/w", "users/x"})
	if err != nil || len(names) != 1 || names["users/w"] != "wendy@example.com" {
		t.Errorf("login names: %v %v", names, err)
	}
	// A change is seen at once (the names are kept in memory too).
	if err := s.SetLoginName(ctx, "users/w", "wendy@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLoginName(ctx, "users/x", "xavier"); err != nil {
		t.Fatal(err)
	}
	names, err = s.LoginNames(ctx, []string{"users/w", "users/x", "users/y"})
	if err != nil || len(names) != 2 || names["users/w"] != "wendy@example.org" || names["users/x"] != "xavier" {
		t.Errorf("login names after changes: %v %v", names, err)
	}
}
