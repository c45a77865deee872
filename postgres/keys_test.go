package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestIssuerKeysAge: a published issuer key is returned while it was
// published within the age asked for; publishing it again renews it.
func TestIssuerKeysAge(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	s := mustOpen(t, url)
	defer s.Close()
	if err := s.PublishIssuerKey(ctx, "kid-1", []byte(`{"kid":"kid-1"}`)); err != nil {
		t.Fatal(err)
	}
	keys := func() int {
		t.Helper()
		ks, err := s.IssuerKeys(ctx, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	if n := keys(); n != 1 {
		t.Fatalf("%d keys just after publishing, want 1", n)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "UPDATE service_keys SET created_at = now() - interval '25 hours' WHERE name = 'issuer_jwk:kid-1'"); err != nil {
		t.Fatal(err)
	}
	if n := keys(); n != 0 {
		t.Fatalf("%d keys published 25 hours ago within a day, want none", n)
	}
	if err := s.PublishIssuerKey(ctx, "kid-1", []byte(`{"kid":"kid-1"}`)); err != nil {
		t.Fatal(err)
	}
	if n := keys(); n != 1 {
		t.Fatalf("%d keys after publishing again, want 1", n)
	}
}
