package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testpki"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/server"
	"github.com/audittrail/audittrail/token"
)

// authEnv is a server in process with every credential kind: static tokens,
// API tokens in the embedded store, the built-in issuer.
type authEnv struct {
	srv              *server.Server
	public, internal string // host:port
	store            *pebblestore.Store
	reader, producer string
	admin            string
	issuer           *token.Issuer
	failAudit        atomic.Bool // make self-audit writes fail
}

type envOption func(*server.Config, *authEnv)

// auditFailStore fails the appends of self-audit events when asked.
type auditFailStore struct {
	audittrail.Store
	env *authEnv
}

func (s *auditFailStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	if s.env.failAudit.Load() && len(events) == 1 && events[0].EventSource == audittrail.DefaultSelfAuditSource {
		return nil, errors.New("disk full")
	}
	return s.Store.Append(ctx, events)
}

func startAuthEnv(t *testing.T, opts ...envOption) *authEnv {
	t.Helper()
	st, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &authEnv{store: st, reader: "reader-secret", producer: "producer-secret", admin: "admin-secret"}
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	il, _ := net.Listen("tcp", "127.0.0.1:0")
	e.public, e.internal = pl.Addr().String(), il.Addr().String()
	static := &token.Static{}
	static.Add(e.reader, audittrail.Principal{Name: server.ReaderPrincipal, Roles: []audittrail.Role{audittrail.RoleAuditor}})
	static.Add(e.producer, audittrail.Principal{Name: server.ProducerPrincipal, Roles: []audittrail.Role{audittrail.RoleProducer}})
	static.Add(e.admin, audittrail.Principal{Name: "users/admin", Roles: []audittrail.Role{audittrail.RoleAdmin}})
	chain := &token.Chain{Static: static, APITokens: &token.APITokens{Store: st}}
	e.issuer, err = token.NewIssuer(token.BuiltinConfig{URL: "http://" + e.public, Refresh: chain.Refresh, Tokens: chain.APITokens})
	if err != nil {
		t.Fatal(err)
	}
	chain.Issuer = e.issuer
	var routes []server.Route
	for _, r := range e.issuer.Routes() {
		routes = append(routes, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	store := &auditFailStore{Store: st, env: e}
	cfg := server.Config{
		Service:       &audittrail.Service{Store: store, PageTokenKey: make([]byte, audittrail.PageTokenKeySize), RedactPrivateIPs: true},
		Authenticator: chain,
		Logger:        slog.New(slog.DiscardHandler),
		Tokens:        st,
		PublicRoutes:  routes,
		SelfAudit:     &audittrail.SelfAuditor{Store: store, RedactPrivateIPs: true},
		Version:       "test",
	}
	for _, o := range opts {
		o(&cfg, e)
	}
	e.srv, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Start(pl, il)
	t.Cleanup(func() {
		e.srv.Shutdown(context.Background())
		st.Close()
	})
	return e
}

func (e *authEnv) url(internal bool) string {
	if internal {
		return "http://" + e.internal
	}
	return "http://" + e.public
}

func (e *authEnv) adminClient(t *testing.T) pb.AdminServiceClient {
	conn, err := grpc.NewClient(e.internal, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewAdminServiceClient(conn)
}

// apiToken creates an API token through the admin API.
func (e *authEnv) apiToken(t *testing.T, principal string, roles []string, ws ...string) (id, secret string) {
	t.Helper()
	resp, err := e.adminClient(t).CreateApiToken(withToken(t, e.admin), &pb.CreateApiTokenRequest{
		Principal: principal, Roles: roles, Workspaces: ws, Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetApiToken().GetId(), resp.GetSecret()
}

func (e *authEnv) seed(t *testing.T, resources ...string) []string {
	t.Helper()
	var names []string
	for _, r := range resources {
		id := newID()
		resp := call(t, "POST", e.url(true)+"/v1/events?eventId="+id, e.producer, eventBody(time.Now().UTC().Format(time.RFC3339Nano), r))
		if resp.status != http.StatusOK {
			t.Fatalf("seed: %s", resp)
		}
		names = append(names, "events/"+id)
	}
	return names
}

// search returns the names of the events found (every page) with the
// filter JSON, excluding self-audit events unless asked.
func (e *authEnv) search(t *testing.T, tok, filter string) ([]string, *response) {
	t.Helper()
	var names []string
	pageToken := ""
	for {
		body := `{"filter": ` + filter + `, "pageSize": 2, "pageToken": "` + pageToken + `"}`
		r := call(t, "POST", e.url(false)+"/v1/events:search", tok, body)
		if r.status != http.StatusOK {
			return names, r
		}
		var out struct {
			Events []struct {
				Name, EventSource, Workspace string
			}
			NextPageToken string
		}
		json.Unmarshal(r.body, &out)
		for _, ev := range out.Events {
			names = append(names, ev.Name)
		}
		if pageToken = out.NextPageToken; pageToken == "" {
			return names, r
		}
	}
}

const noSelfAudit = `{"eventSourceExact": "h2oai-enginemanager-server"}`

func TestAuthCodes(t *testing.T) {
	e := startAuthEnv(t)
	pub := e.url(false) + "/v1/events:search"
	r := call(t, "POST", pub, "", "{}")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body2(), `"code":16`) {
		t.Errorf("no token: %s", r)
	}
	for _, bad := range []string{"nope", "atk_nope", "a.b.c", e.reader + "x"} {
		if r := call(t, "POST", pub, bad, "{}"); r.status != http.StatusUnauthorized {
			t.Errorf("token %q: %s", bad, r)
		}
	}
	if r := call(t, "POST", pub, e.producer, "{}"); r.status != http.StatusForbidden || !strings.Contains(r.body2(), `"code":7`) {
		t.Errorf("producer searching: %s", r)
	}
	if r := call(t, "POST", pub, e.admin, "{}"); r.status != http.StatusForbidden {
		t.Errorf("admin searching: %s", r)
	}
	if r := call(t, "POST", pub, e.reader, "{}"); r.status != http.StatusOK {
		t.Errorf("reader: %s", r)
	}
	// The public create paths are 405 whatever the token.
	for _, tok := range []string{"", "garbage", e.reader, e.producer, e.admin} {
		for _, p := range []string{"/v1/events?eventId=" + newID(), "/v1/events:batchCreate"} {
			if r := call(t, "POST", e.url(false)+p, tok, "{}"); r.status != http.StatusMethodNotAllowed {
				t.Errorf("public create %s with %q: %s", p, tok, r)
			}
		}
	}
	// An extra route (the built-in issuer's) with another method: 405
	// naming its method, with the gateway's error body, byte for byte.
	if r := call(t, "GET", e.url(false)+"/oauth2/token", "", ""); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" ||
		string(r.body) != `{"code":12,"message":"Method Not Allowed","details":[]}` {
		t.Errorf("GET of the token endpoint: %s, Allow %q", r, r.header.Get("Allow"))
	}
	// A reader cannot create on the internal listener; a user with the
	// producer role is no producer.
	if r := call(t, "POST", e.url(true)+"/v1/events?eventId="+newID(), e.reader, eventBody("2026-01-01T00:00:00Z", "x")); r.status != http.StatusForbidden {
		t.Errorf("reader creating: %s", r)
	}
	// The admin API needs the admin role, and is not on the public listener.
	_, err := e.adminClient(t).ListApiTokens(withToken(t, e.reader), &pb.ListApiTokensRequest{})
	wantCode(t, err, codes.PermissionDenied, "admin role")
	_, err = e.adminClient(t).ListApiTokens(withToken(t, ""), &pb.ListApiTokensRequest{})
	wantCode(t, err, codes.Unauthenticated, "")
	conn, _ := grpc.NewClient(e.public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	_, err = pb.NewAdminServiceClient(conn).ListApiTokens(withToken(t, e.admin), &pb.ListApiTokensRequest{})
	wantCode(t, err, codes.Unimplemented, "")
}

func (r *response) body2() string { return strings.ReplaceAll(string(r.body), " ", "") }

func TestWorkspaceAuditorAndPageTokens(t *testing.T) {
	e := startAuthEnv(t)
	w1 := e.seed(t, "//em/workspaces/w1/engines/a", "//em/workspaces/w1/engines/b", "//em/workspaces/w1/engines/c")
	w2 := e.seed(t, "//em/workspaces/w2/engines/a", "//em/workspaces/w2/engines/b")
	none := e.seed(t, "//em/engines/x")
	_, alice := e.apiToken(t, "users/alice", []string{"auditor"})
	_, bob := e.apiToken(t, "users/bob", []string{"auditor"})
	_, wendy := e.apiToken(t, "users/wendy", []string{"workspace_auditor"}, "w1", "w9")

	got, r := e.search(t, alice, noSelfAudit)
	if r.status != http.StatusOK || len(got) != 6 {
		t.Fatalf("auditor: %d events, %s", len(got), r)
	}
	for name, c := range map[string]struct {
		filter string
		want   []string
	}{
		"everything":        {noSelfAudit, w1},
		"other workspace":   {`{"workspaceExact": "workspaces/w2"}`, nil},
		"own workspace":     {`{"workspaceExact": "workspaces/w1"}`, w1},
		"regex on both":     {`{"workspaceRegex": "w[12]", "eventSourceExact": "h2oai-enginemanager-server"}`, w1},
		"regex on other":    {`{"workspaceRegex": "w2"}`, nil},
		"no workspace":      {`{"workspaceRegex": "^$"}`, nil},
		"resource of other": {`{"resourceRegex": "w2"}`, nil},
		"resource of none":  {`{"resourceExact": "//em/engines/x"}`, nil},
		"self-audit events": {`{"eventSourceExact": "h2oai-audittrail-server"}`, nil},
	} {
		got, r := e.search(t, wendy, c.filter)
		if r.status != http.StatusOK || !sameSet(got, c.want) {
			t.Errorf("workspace auditor, %s: got %v, want %v (%s)", name, got, c.want, r)
		}
	}
	_ = none
	_ = w2
	// The same through an access token of the built-in issuer.
	resp, err := http.PostForm(e.url(false)+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {wendy}})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if got, r := e.search(t, tr.AccessToken, noSelfAudit); r.status != http.StatusOK || !sameSet(got, w1) || tr.ExpiresIn != 300 {
		t.Errorf("workspace auditor with an access token: %v, %s", got, r)
	}
	// A page token of alice is refused for bob, and for wendy.
	first := call(t, "POST", e.url(false)+"/v1/events:search", alice, `{"filter": `+noSelfAudit+`, "pageSize": 1}`)
	tok, _ := first.json(t)["nextPageToken"].(string)
	if tok == "" {
		t.Fatalf("no page token: %s", first)
	}
	for _, other := range []string{bob, wendy, e.reader} {
		r := call(t, "POST", e.url(false)+"/v1/events:search", other, `{"filter": `+noSelfAudit+`, "pageSize": 1, "pageToken": "`+tok+`"}`)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "another caller") {
			t.Errorf("page token of alice used by another: %s", r)
		}
	}
	if r := call(t, "POST", e.url(false)+"/v1/events:search", alice, `{"filter": `+noSelfAudit+`, "pageSize": 1, "pageToken": "`+tok+`"}`); r.status != http.StatusOK {
		t.Errorf("alice's own page token: %s", r)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x]--; m[x] < 0 {
			return false
		}
	}
	return true
}

// selfAuditEvents returns the self-audit events in [start, now) of action.
func (e *authEnv) selfAuditEvents(t *testing.T, start time.Time, action string) []map[string]any {
	t.Helper()
	f := `{"startEventTime": "` + start.Format(time.RFC3339Nano) + `", "endEventTime": "` + time.Now().UTC().Format(time.RFC3339Nano) +
		`", "eventSourceExact": "h2oai-audittrail-server", "actionExact": "` + action + `"}`
	r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, `{"filter": `+f+`, "pageSize": 1000}`)
	if r.status != http.StatusOK {
		t.Fatalf("audit search: %s", r)
	}
	var out struct{ Events []map[string]any }
	json.Unmarshal(r.body, &out)
	return out.Events
}

// TestSelfAudit is the self-audit test of the spec (§6.4): one search, a
// short wait, exactly one SEARCH event for that call; refusals and token
// administration are recorded too.
func TestSelfAudit(t *testing.T) {
	e := startAuthEnv(t)
	start := time.Now().UTC()
	r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, `{"filter": {"principalExact": "users/jane"}, "pageSize": 3}`)
	if r.status != http.StatusOK {
		t.Fatal(r)
	}
	time.Sleep(100 * time.Millisecond)
	got := e.selfAuditEvents(t, start, audittrail.ActionSearchEvents)
	if len(got) != 1 {
		t.Fatalf("%d SEARCH events, want exactly 1: %v", len(got), got)
	}
	ev := got[0]
	et, _ := time.Parse(time.RFC3339Nano, ev["eventTime"].(string))
	params, _ := ev["requestParameters"].(map[string]any)
	if ev["principal"] != "users/reader" || ev["readOnly"] != true || ev["sourceIpAddress"] != "private" ||
		ev["resource"] != "//audittrail/events" || ev["type"] != "TYPE_API" || et.Before(start) ||
		params["filter.principal_exact"] != "users/jane" || params["page_size"] != "3" ||
		ev["status"].(map[string]any)["code"] != float64(0) || !strings.HasPrefix(ev["userAgent"].(string), "Go-http-client") {
		t.Errorf("SEARCH event %v", ev)
	}
	if m, _ := ev["metadata"].(map[string]any); len(m) != 1 || m["auth_method"] != "static" {
		t.Errorf("SEARCH event's metadata %v, want how the caller authenticated (auth_method static)", ev["metadata"])
	}
	// A search with an API token names the token.
	start = time.Now().UTC()
	tokID, secret := e.apiToken(t, "users/carol", []string{"auditor"})
	if r := call(t, "POST", e.url(false)+"/v1/events:search", secret, `{"pageSize": 1}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	got = e.selfAuditEvents(t, start, audittrail.ActionSearchEvents)
	if len(got) != 1 {
		t.Fatalf("%d SEARCH events, want carol's: %v", len(got), got)
	}
	if m, _ := got[0]["metadata"].(map[string]any); got[0]["principal"] != "users/carol" || m["auth_method"] != "api-token" || m["api_token_id"] != tokID {
		t.Errorf("SEARCH event of an API token %v, want its id %s", got[0], tokID)
	}

	// Refused searches, over REST and gRPC.
	start = time.Now().UTC()
	call(t, "POST", e.url(false)+"/v1/events:search", "", "{}")
	call(t, "POST", e.url(false)+"/v1/events:search", e.producer, "{}")
	_, err := dialGRPC(t, e.public).SearchEvents(withToken(t, "bad"), &pb.SearchEventsRequest{})
	wantCode(t, err, codes.Unauthenticated, "")
	call(t, "POST", e.url(false)+"/v1/events:search", e.reader, `{"filter": {"actionRegex": "("}}`)
	got = e.selfAuditEvents(t, start, audittrail.ActionSearchEvents)
	codesSeen := map[string]int{}
	for _, ev := range got {
		st, _ := ev["status"].(map[string]any)
		codesSeen[ev["principal"].(string)+"/"+jsonNum(st["code"])]++
		// The request of a caller that did not authenticate is not
		// read: its parameters say so, and only that.
		params, _ := ev["requestParameters"].(map[string]any)
		if ev["principal"] == "anonymous" && (len(params) != 1 || params["request_read"] != "false") {
			t.Errorf("refused anonymous search recorded with parameters %v, want only request_read=false", params)
		}
		if ev["principal"] != "anonymous" && params["request_read"] != nil {
			t.Errorf("search of %v recorded with parameters %v: its request was read", ev["principal"], params)
		}
	}
	want := map[string]int{"anonymous/16": 2, "services/producer/7": 1, "users/reader/3": 1}
	for k, n := range want {
		if codesSeen[k] != n {
			t.Errorf("refused searches recorded: %v, want %v", codesSeen, want)
			break
		}
	}

	// Token creation and revocation.
	start = time.Now().UTC()
	id, _ := e.apiToken(t, "users/alice", []string{"auditor"})
	if _, err := e.adminClient(t).RevokeApiToken(withToken(t, e.admin), &pb.RevokeApiTokenRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	_, err = e.adminClient(t).CreateApiToken(withToken(t, e.reader), &pb.CreateApiTokenRequest{Principal: "users/x", Roles: []string{"admin"}})
	wantCode(t, err, codes.PermissionDenied, "")
	created := e.selfAuditEvents(t, start, audittrail.ActionCreateToken)
	revoked := e.selfAuditEvents(t, start, audittrail.ActionRevokeToken)
	if len(created) != 2 || len(revoked) != 1 || revoked[0]["resource"] != "//audittrail/apiTokens/"+id {
		t.Errorf("token events: created %v, revoked %v", created, revoked)
	}
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSelfAuditFailure(t *testing.T) {
	for _, open := range []bool{false, true} {
		e := startAuthEnv(t, func(c *server.Config, e *authEnv) { c.SelfAudit.FailOpen = open })
		e.failAudit.Store(true)
		r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, "{}")
		want := http.StatusServiceUnavailable
		if open {
			want = http.StatusOK
		}
		if r.status != want {
			t.Errorf("fail open %v: %s, want %d", open, r, want)
		}
		_, err := dialGRPC(t, e.public).SearchEvents(withToken(t, e.reader), &pb.SearchEventsRequest{})
		if !open {
			wantCode(t, err, codes.Unavailable, "could not be audited")
		} else if err != nil {
			t.Errorf("fail open, gRPC: %v", err)
		}
		m := call(t, "GET", e.url(true)+"/metrics", "", "")
		mode := map[bool]string{false: "closed", true: "open"}[open]
		if !strings.Contains(string(m.body), `audittrail_self_audit_failures_total{action="actions/audittrail/events/SEARCH",mode="`+mode+`"} 2`) {
			t.Errorf("fail open %v: failures not counted", open)
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := startAuthEnv(t, func(c *server.Config, e *authEnv) { c.RateLimit = server.RateLimit{Rate: 0.5, Burst: 2} })
	for i := range 2 {
		if r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, "{}"); r.status != http.StatusOK {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	req, _ := http.NewRequest("POST", e.url(false)+"/v1/events:search", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+e.reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), `"code":8`) {
		t.Errorf("third request: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var hdr metadata.MD
	_, err = dialGRPC(t, e.public).SearchEvents(withToken(t, e.reader), &pb.SearchEventsRequest{}, grpc.Header(&hdr))
	wantCode(t, err, codes.ResourceExhausted, "rate limit")
	if v := hdr.Get("retry-after"); len(v) != 1 || v[0] == "" {
		t.Errorf("gRPC retry-after header: %v", hdr)
	}
	// Another principal has its own bucket.
	if r := call(t, "POST", e.url(true)+"/v1/events?eventId="+newID(), e.producer, eventBody("2026-01-01T00:00:00Z", "x")); r.status != http.StatusOK {
		t.Errorf("producer limited by the reader's use: %s", r)
	}
	// Guessing tokens is limited per address.
	var last *response
	for range 4 {
		last = call(t, "POST", e.url(false)+"/v1/events:search", "guess", "{}")
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("failed authentications are not limited: %s", last)
	}
}

// TestRateLimitSlowsGuessing: once an address is over its limit of failed
// authentications, its next credential is not checked at all, right or
// wrong, through the API or the built-in issuer's token endpoint; otherwise
// the right guess (200) would still stand out from the wrong ones (429),
// and guessing would go on at full speed.
func TestRateLimitSlowsGuessing(t *testing.T) {
	limited := func(c *server.Config, e *authEnv) { c.RateLimit = server.RateLimit{Rate: 0.5, Burst: 2} }
	refresh := func(e *authEnv, secret string) int {
		resp, err := http.PostForm(e.url(false)+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Wrong bearer tokens, then the right one.
	e := startAuthEnv(t, limited)
	for range 3 {
		call(t, "POST", e.url(false)+"/v1/events:search", "guess", "{}")
	}
	if r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, "{}"); r.status != http.StatusTooManyRequests {
		t.Errorf("the right token after the address's failures were limited: %s", r)
	}
	if code := refresh(e, e.reader); code != http.StatusTooManyRequests {
		t.Errorf("token endpoint, the right refresh token after the address's failures were limited: %d", code)
	}
	// Its body is the gateway's error body, byte for byte (writeStatus).
	resp, err := http.PostForm(e.url(false)+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {e.reader}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := regexp.MustCompile(`^\{"code":8,"message":"rate limit exceeded for callers from this address, after too many failed authentications: retry after [0-9]+s","details":\[\]\}$`); !want.Match(b) {
		t.Errorf("token endpoint, the 429's body %#q, want %s", b, want)
	}
	// Wrong refresh tokens at the token endpoint count as failures too.
	e = startAuthEnv(t, limited)
	var codes []int
	for range 3 {
		codes = append(codes, refresh(e, "guess"))
	}
	if codes[2] != http.StatusTooManyRequests {
		t.Errorf("failed refreshes are not limited: %v", codes)
	}
	if code := refresh(e, e.reader); code != http.StatusTooManyRequests {
		t.Errorf("token endpoint, the right refresh token after failed refreshes: %d", code)
	}
	if r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, "{}"); r.status != http.StatusTooManyRequests {
		t.Errorf("the right bearer token after failed refreshes: %s", r)
	}
}

func TestAPITokenRevocationIsImmediate(t *testing.T) {
	e := startAuthEnv(t)
	id, secret := e.apiToken(t, "users/alice", []string{"auditor"})
	resp, err := http.PostForm(e.url(false)+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	for _, tok := range []string{secret, tr.AccessToken} {
		if r := call(t, "POST", e.url(false)+"/v1/events:search", tok, "{}"); r.status != http.StatusOK {
			t.Fatalf("before revocation: %s", r)
		}
	}
	list, err := e.adminClient(t).ListApiTokens(withToken(t, e.admin), &pb.ListApiTokensRequest{})
	if err != nil || len(list.GetApiTokens()) != 1 || list.GetApiTokens()[0].GetId() != id {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := e.adminClient(t).RevokeApiToken(withToken(t, e.admin), &pb.RevokeApiTokenRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{secret, tr.AccessToken} {
		if r := call(t, "POST", e.url(false)+"/v1/events:search", tok, "{}"); r.status != http.StatusUnauthorized {
			t.Errorf("after revocation: %s", r)
		}
	}
	resp, _ = http.PostForm(e.url(false)+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"audittrail"}, "refresh_token": {secret}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("exchange of a revoked token: %d", resp.StatusCode)
	}
	if list, _ := e.adminClient(t).ListApiTokens(withToken(t, e.admin), &pb.ListApiTokensRequest{}); len(list.GetApiTokens()) != 0 {
		t.Errorf("revoked token listed without show_all")
	}
	if list, _ := e.adminClient(t).ListApiTokens(withToken(t, e.admin), &pb.ListApiTokensRequest{ShowAll: true}); len(list.GetApiTokens()) != 1 || list.GetApiTokens()[0].GetRevokeTime() == nil {
		t.Errorf("show_all: %v", list)
	}
	// A token for a user cannot carry the producer role.
	_, err = e.adminClient(t).CreateApiToken(withToken(t, e.admin), &pb.CreateApiTokenRequest{Principal: "users/x", Roles: []string{"producer"}})
	wantCode(t, err, codes.InvalidArgument, "service principals")
}

// --- TLS and mutual TLS -------------------------------------------------------

// tlsEnv is an authEnv whose listeners serve TLS with the certificate of
// serial 10 (both) and ask for client certificates of the CA (internal).
type tlsEnv struct {
	*authEnv
	ca                *testpki.CA
	clientCert        tls.Certificate // "appstore", a producer by mTLS
	certFile, keyFile string
}

func startTLSEnv(t *testing.T) *tlsEnv {
	ca := testpki.New(t)
	certFile, keyFile := ca.IssueFiles(10, "server", false)
	e := startAuthEnv(t, func(c *server.Config, e *authEnv) {
		c.InternalTLS = &server.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.File}
		c.PublicTLS = &server.TLSConfig{CertFile: certFile, KeyFile: keyFile}
		c.CertPrincipal = func(cert *x509.Certificate) (*audittrail.Principal, error) {
			name, err := server.CertServicePrincipal(cert)
			if err != nil {
				return nil, audittrail.Errorf(audittrail.EUnauthenticated, "%v", err)
			}
			return &audittrail.Principal{Name: name, Roles: []audittrail.Role{audittrail.RoleProducer}, Method: "mtls"}, nil
		}
	})
	return &tlsEnv{authEnv: e, ca: ca, clientCert: ca.KeyPair(20, "appstore", true), certFile: certFile, keyFile: keyFile}
}

func TestMutualTLSAndReload(t *testing.T) {
	te := startTLSEnv(t)
	e, roots, clientCert := te.authEnv, te.ca.Pool, te.clientCert
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dial := func(withCert bool) pb.EventServiceClient {
		tc := &tls.Config{RootCAs: roots}
		if withCert {
			tc.Certificates = []tls.Certificate{clientCert}
		}
		conn, err := grpc.NewClient(e.internal, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewEventServiceClient(conn)
	}
	ev := &pb.Event{EventTime: timestamppb.Now(), EventSource: "s", Action: "a", Principal: "users/jane", SourceIpAddress: "1.1.1.1"}
	if _, err := dial(true).CreateEvent(t.Context(), &pb.CreateEventRequest{EventId: newID(), Event: ev}); err != nil {
		t.Errorf("create with a client certificate: %v", err)
	}
	_, err := dial(false).CreateEvent(t.Context(), &pb.CreateEventRequest{EventId: newID(), Event: ev})
	wantCode(t, err, codes.Unauthenticated, "")
	// Bearer tokens still work on a TLS listener without a certificate.
	if _, err := dial(false).CreateEvent(withToken(t, e.producer), &pb.CreateEventRequest{EventId: newID(), Event: ev}); err != nil {
		t.Errorf("create with a token over TLS: %v", err)
	}
	// The public listener serves REST over TLS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	serial := func() int64 {
		resp, err := hc.Get("https://" + e.public + "/version")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 10 {
		t.Fatalf("serial %d", s)
	}
	// A renewed certificate is picked up without a restart.
	sc, sk := te.ca.Issue(11, "server", false)
	write(te.certFile, sc)
	write(te.keyFile, sk)
	time.Sleep(1100 * time.Millisecond)
	hc.CloseIdleConnections()
	if s := serial(); s != 11 {
		t.Errorf("after renewal: serial %d, want 11", s)
	}
}

// TestTLSListenersSplit: on a TLS listener the splitter terminates TLS and
// splits as on a plain one; the client certificate reaches authentication
// whatever the path (gRPC's own transport, REST over HTTP/2, REST over
// HTTP/1.1), and a plain HTTP request gets a 400 that says what is wrong.
func TestTLSListenersSplit(t *testing.T) {
	te := startTLSEnv(t)
	withCert := &tls.Config{RootCAs: te.ca.Pool, Certificates: []tls.Certificate{te.clientCert}}

	// An HTTP/2 connection gets the splitter's empty SETTINGS first (Go's
	// HTTP/2 server would send its own, with parameters), inside TLS.
	for _, addr := range []string{te.public, te.internal} {
		wantSplitterSettings(t, addr+" over TLS", func() (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{RootCAs: te.ca.Pool, NextProtos: []string{"h2"}})
		})
	}

	// REST with a client certificate and no token, over both HTTP versions:
	// the producer is the certificate's service.
	for _, h2 := range []bool{false, true} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: withCert.Clone(), ForceAttemptHTTP2: h2}, Timeout: 10 * time.Second}
		id := newID()
		req, _ := http.NewRequest("POST", "https://"+te.internal+"/v1/events?eventId="+id, strings.NewReader(eventBody(time.Now().UTC().Format(time.RFC3339Nano), "//tls/"+id)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("REST create over TLS (HTTP/2 %v): %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; resp.Proto != wantProto {
			t.Errorf("REST over TLS: %s, want %s", resp.Proto, wantProto)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("REST create with a client certificate over %s: %d %s", resp.Proto, resp.StatusCode, body)
		}
		// The same without the certificate is refused: it was the
		// certificate that authenticated.
		noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: te.ca.Pool}, ForceAttemptHTTP2: h2}, Timeout: 10 * time.Second}
		req, _ = http.NewRequest("POST", "https://"+te.internal+"/v1/events?eventId="+newID(), strings.NewReader(eventBody(time.Now().UTC().Format(time.RFC3339Nano), "//tls/x")))
		req.Header.Set("Content-Type", "application/json")
		resp, err = noCert.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("REST create without a certificate over %s: %d, want 401", resp.Proto, resp.StatusCode)
		}
	}

	// gRPC with the certificate (gRPC's own transport).
	conn, err := grpc.NewClient(te.internal, grpc.WithTransportCredentials(credentials.NewTLS(withCert.Clone())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ev := &pb.Event{EventTime: timestamppb.Now(), EventSource: "s", Action: "a", Principal: "users/jane", SourceIpAddress: "1.1.1.1"}
	if _, err := pb.NewEventServiceClient(conn).CreateEvent(t.Context(), &pb.CreateEventRequest{EventId: newID(), Event: ev}); err != nil {
		t.Errorf("gRPC create with a client certificate: %v", err)
	}

	// Plain HTTP to a TLS listener: a 400 naming the mistake.
	c, err := net.Dial("tcp", te.public)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request") || !strings.Contains(string(got), "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to a TLS listener: %q", got)
	}
}

// --- OIDC through the server ------------------------------------------------------

func TestOIDCTokensThroughServer(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	var idp *httptestServer
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL, "jwks_uri": idp.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "ES256", Use: "sig"}}})
	})
	idp = newHTTPTestServer(t, mux)
	v, err := token.NewVerifier(token.IssuerConfig{Issuer: idp.URL, Audiences: []string{"audittrail"}, Mapping: token.Mapping{}})
	if err != nil {
		t.Fatal(err)
	}
	e := startAuthEnv(t, func(c *server.Config, e *authEnv) {
		ch := c.Authenticator.(*token.Chain)
		ch.Verifiers = []*token.Verifier{v}
	})
	sign := func(c map[string]any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k"))
		b, _ := json.Marshal(c)
		o, _ := s.Sign(b)
		out, _ := o.CompactSerialize()
		return out
	}
	now := time.Now()
	claims := func(exp time.Time) map[string]any {
		return map[string]any{"iss": idp.URL, "sub": "u1", "aud": "audittrail", "exp": exp.Unix(), "iat": now.Unix()}
	}
	// Valid, but the policy grants no role: 403, recorded with the issuer.
	start := time.Now().UTC()
	if r := call(t, "POST", e.url(false)+"/v1/events:search", sign(claims(now.Add(time.Minute))), "{}"); r.status != http.StatusForbidden {
		t.Errorf("valid token without a role: %s", r)
	}
	if got := e.selfAuditEvents(t, start, audittrail.ActionSearchEvents); len(got) < 1 || got[len(got)-1]["principal"] != "users/u1" ||
		got[len(got)-1]["metadata"].(map[string]any)["oidc_issuer"] != idp.URL || got[len(got)-1]["metadata"].(map[string]any)["auth_method"] != "oidc" {
		t.Errorf("the refused search's event: %v; want users/u1 with the issuer %s", got, idp.URL)
	}
	if r := call(t, "POST", e.url(false)+"/v1/events:search", sign(claims(now.Add(-time.Hour))), "{}"); r.status != http.StatusUnauthorized {
		t.Errorf("expired token: %s", r)
	}
}

// TestRateLimitIdPDown: an identity provider that cannot be reached is not
// the callers' fault: with a rate limit, its tokens keep answering 503, and
// the address is not counted as guessing (its other callers go on).
func TestRateLimitIdPDown(t *testing.T) {
	idp := newHTTPTestServer(t, http.NotFoundHandler())
	url := idp.URL
	idp.Close()
	v, err := token.NewVerifier(token.IssuerConfig{Issuer: url, Audiences: []string{"audittrail"}})
	if err != nil {
		t.Fatal(err)
	}
	e := startAuthEnv(t, func(c *server.Config, e *authEnv) {
		c.RateLimit = server.RateLimit{Rate: 0.5, Burst: 2}
		c.Authenticator.(*token.Chain).Verifiers = []*token.Verifier{v}
	})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	b, _ := json.Marshal(map[string]any{"iss": url, "sub": "u1", "aud": "audittrail", "exp": time.Now().Add(time.Minute).Unix()})
	o, _ := s.Sign(b)
	jwt, _ := o.CompactSerialize()
	for i := range 4 {
		if r := call(t, "POST", e.url(false)+"/v1/events:search", jwt, "{}"); r.status != http.StatusServiceUnavailable {
			t.Errorf("request %d while the identity provider is down: %s", i, r)
		}
	}
	if r := call(t, "POST", e.url(false)+"/v1/events:search", e.reader, "{}"); r.status != http.StatusOK {
		t.Errorf("the reader, from the same address: %s", r)
	}
}

// countingAuth counts the credentials it is asked to check.
type countingAuth struct {
	server.Authenticator
	n atomic.Int64
}

func (c *countingAuth) Authenticate(ctx context.Context, bearer string) (*audittrail.Principal, error) {
	c.n.Add(1)
	return c.Authenticator.Authenticate(ctx, bearer)
}

// TestAuthenticatedOnce: a credential is checked once per call, before the
// request is decoded, and authInterceptor acts on that decision rather than
// checking again (an OIDC verification or an API token lookup each time):
// over REST and gRPC, accepted or refused, with a body or without.
func TestAuthenticatedOnce(t *testing.T) {
	var ca *countingAuth
	e := startAuthEnv(t, func(c *server.Config, _ *authEnv) {
		ca = &countingAuth{Authenticator: c.Authenticator}
		c.Authenticator = ca
	})
	client := dialGRPC(t, e.public)
	for _, tc := range []struct {
		name string
		do   func()
	}{
		{"REST search", func() { call(t, "POST", e.url(false)+"/v1/events:search", e.reader, `{"pageSize": 1}`) }},
		{"REST search, bad token", func() { call(t, "POST", e.url(false)+"/v1/events:search", "bad", `{"pageSize": 1}`) }},
		{"REST search, no body", func() { call(t, "POST", e.url(true)+"/v1/events:search", e.reader, "") }},
		{"REST create", func() {
			call(t, "POST", e.url(true)+"/v1/events?eventId="+newID(), e.producer, eventBody("2026-01-01T00:00:00Z", "x"))
		}},
		{"gRPC search", func() { client.SearchEvents(withToken(t, e.reader), &pb.SearchEventsRequest{PageSize: 1}) }},
		{"gRPC search, bad token", func() { client.SearchEvents(withToken(t, "bad"), &pb.SearchEventsRequest{PageSize: 1}) }},
		{"gRPC admin", func() { e.adminClient(t).ListApiTokens(withToken(t, e.admin), &pb.ListApiTokensRequest{}) }},
	} {
		before := ca.n.Load()
		tc.do()
		if n := ca.n.Load() - before; n != 1 {
			t.Errorf("%s: the credential was checked %d times, want once", tc.name, n)
		}
	}
}
