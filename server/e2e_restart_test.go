package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/testserver"
)

// TestE2ERestart stops the server gracefully and starts it again on the same
// data directory: the events are there, and a page token issued before the
// restart continues the search after it.
func TestE2ERestart(t *testing.T) {
	srv := testserver.Start(t)
	var want []string
	for i := range 7 {
		id := newID()
		want = append(want, "events/"+id)
		createREST(t, srv, id, eventBody(fmt.Sprintf("2026-07-01T00:00:%02dZ", i), "restart"))
	}
	slices.Reverse(want)
	keyPath := filepath.Join(srv.DataDir, "page-token.key")
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != audittrail.PageTokenKeySize {
		t.Fatalf("page-token.key has %d bytes", len(key))
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("page-token.key mode %v, want 0600", fi.Mode().Perm())
	}

	search := `{"filter": {"resourceExact": "restart"}, "pageSize": 3, "pageToken": %q}`
	first := searchREST(t, srv, srv.PublicURL, fmt.Sprintf(search, ""))
	got := names(t, first)
	token := first["nextPageToken"].(string)
	if token == "" {
		t.Fatal("no page token after the first page")
	}

	srv.Restart()

	if again, _ := os.ReadFile(keyPath); !bytes.Equal(again, key) {
		t.Error("the page token key changed across the restart")
	}
	for token != "" {
		resp := searchREST(t, srv, srv.PublicURL, fmt.Sprintf(search, token))
		got = append(got, names(t, resp)...)
		token = resp["nextPageToken"].(string)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages across the restart: %v, want %v", got, want)
	}
	all := names(t, searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "restart"}}`))
	if !slices.Equal(all, want) {
		t.Errorf("after the restart: %v, want %v", all, want)
	}
	// A token is bound to its caller and filter, across restarts too.
	r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken,
		fmt.Sprintf(`{"filter": {"resourceExact": "other"}, "pageToken": %q}`, first["nextPageToken"]))
	wantStatus(t, r, http.StatusBadRequest, 3, "page_token was issued for a different filter")
}
