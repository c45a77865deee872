package keycloak_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail/keycloak"
)

// TestState: a missing file is a new state; a saved state reads back; a
// file of another realm or Keycloak, or not a state, is refused.
func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kc.state")
	const url = "http://127.0.0.1:8080"
	s, err := keycloak.LoadState(path, url, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := &keycloak.State{URL: url, Realm: "acme", Cursors: map[keycloak.Kind]int64{}, ReadThroughAt: map[keycloak.Kind]int64{}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("new state (-want +got):\n%s", diff)
	}
	s.Cursors[keycloak.KindUser] = 1795994350075
	s.Cursors[keycloak.KindAdmin] = 1795994331627
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := keycloak.LoadState(path, url, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("saved state read back (-want +got):\n%s", diff)
	}
	if text, _ := os.ReadFile(path); !strings.Contains(string(text), `"user": 1795994350075`) {
		t.Errorf("state file:\n%s", text)
	}
	for _, tc := range []struct{ url, realm, want string }{
		{url, "other", `the state of realm "acme" at http://127.0.0.1:8080, not of realm "other"`},
		{"https://kc.example.com", "acme", `not of realm "acme" at https://kc.example.com`},
	} {
		if _, err := keycloak.LoadState(path, tc.url, tc.realm); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadState(%s, %s): %v, want an error with %q", tc.url, tc.realm, err, tc.want)
		}
	}
	if err := os.WriteFile(path, []byte("checkpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keycloak.LoadState(path, url, "acme"); err == nil || !strings.Contains(err.Error(), "not a state file of audittrail keycloak") {
		t.Errorf("LoadState of another file: %v", err)
	}
}

// TestStateReadUpTo: the time up to which everything was read is the last
// read through (less the overlap) when the state has one, the cursor for a
// state file written before it was kept, which still loads; none for a new
// state.
func TestStateReadUpTo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kc.state")
	const url = "http://127.0.0.1:8080"
	old := `{"keycloakUrl": "` + url + `", "realm": "acme", "cursors": {"user": 1795994350075}}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := keycloak.LoadState(path, url, "acme")
	if err != nil {
		t.Fatalf("a state file without readThroughAt: %v", err)
	}
	if at, ok := s.ReadUpTo(keycloak.KindUser, time.Minute); !ok || !at.Equal(time.UnixMilli(1795994350075)) {
		t.Errorf("without readThroughAt, user events read up to %s (%v), want the cursor", at, ok)
	}
	if at, ok := s.ReadUpTo(keycloak.KindAdmin, time.Minute); ok {
		t.Errorf("admin events, never read, read up to %s", at)
	}
	s.ReadThroughAt[keycloak.KindUser] = 1795999000000
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	if s, err = keycloak.LoadState(path, url, "acme"); err != nil {
		t.Fatal(err)
	}
	if at, ok := s.ReadUpTo(keycloak.KindUser, time.Minute); !ok || !at.Equal(time.UnixMilli(1795999000000).Add(-time.Minute)) {
		t.Errorf("user events read up to %s (%v), want a minute before the last read through", at, ok)
	}
}
