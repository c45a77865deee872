package main

import (
	"bytes"
	"context"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/flock"
	"github.com/audittrail/audittrail/internal/kctest"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/internal/testpki"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/keycloak"
)

// TestKeycloakCommand forwards the events of a realm of a real Keycloak
// (package kctest: one per test binary) to the real server with
// "audittrail keycloak --once": a password login, a failed one and the
// creation of users arrive with Keycloak's user ids, times and addresses;
// forwarding again adds nothing (every event is read again within the
// overlap); new events add exactly those; and with the server down the
// forwarder fails, keeps its state, and forwards what it could not once the
// server is back.
func TestKeycloakCommand(t *testing.T) {
	kc := kctest.Shared(t)
	t.Logf("Keycloak started in %s", kc.StartTime)
	srv := testserver.Start(t)
	realm := kc.NewRealm(t) // admin events: two clients and the user created
	began := time.Now()
	if code := realm.Login(t, realm.Username, realm.Password); code != http.StatusOK {
		t.Fatalf("login: HTTP %d", code)
	}
	if code := realm.Login(t, realm.Username, "not-the-password"); code != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: HTTP %d", code)
	}
	bobID := realm.CreateUser(t, "bob", "bob-password")

	dir := t.TempDir()
	state := filepath.Join(dir, "acme.state")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(realm.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func() []string {
		return []string{"keycloak", "--addr", srv.InternalAddr, "--token", srv.ProducerToken,
			"--keycloak-url", kc.URL, "--realm", realm.Name, "--client-id", realm.ClientID,
			"--client-secret-file", secretFile, "--state", state, "--once"}
	}
	auditor := func() *client.Client {
		cl, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	// forwarded returns the realm's events on the server by Keycloak's
	// event id, failing on one stored twice.
	forwarded := func(cl *client.Client) map[string]*audittrail.Event {
		t.Helper()
		start := began.Add(-time.Hour)
		req := audittrail.SearchEventsRequest{PageSize: 1000, Filter: audittrail.Filter{
			StartTime: &start, MetadataExact: map[string]string{"kc_realm": realm.Name},
		}}
		req.Filter.Exact[audittrail.FieldEventSource] = keycloak.DefaultEventSource
		byID := map[string]*audittrail.Event{}
		for {
			resp, err := cl.SearchEvents(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.Events {
				id := e.Metadata["kc_kind"] + "/" + e.Metadata["kc_event_id"]
				if old, dup := byID[id]; dup {
					t.Errorf("Keycloak event %s stored twice: %s and %s", id, old.Name(), e.Name())
				}
				byID[id] = e
			}
			if resp.NextPageToken == "" {
				return byID
			}
			req.PageToken = resp.NextPageToken
		}
	}
	// keycloakEvents reads the realm's events from Keycloak, by kind/id.
	reader := &keycloak.Reader{URL: kc.URL, Realm: realm.Name, ClientID: realm.ClientID, ClientSecret: realm.ClientSecret}
	keycloakEvents := func() map[string]int64 {
		t.Helper()
		times := map[string]int64{}
		users, err := reader.UserEvents(t.Context(), 0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range users {
			times["user/"+e.ID] = e.Time
		}
		admins, err := reader.AdminEvents(t.Context(), 0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range admins {
			times["admin/"+e.ID] = e.Time
		}
		return times
	}

	out := runOK(t, args()...)
	ranAt := time.Now()
	if !strings.HasPrefix(out, "forwarded ") {
		t.Errorf("output: %q", out)
	}
	cl := auditor()
	first := forwarded(cl)
	find := func(evs map[string]*audittrail.Event, action, principal string) *audittrail.Event {
		t.Helper()
		for _, e := range evs {
			if e.Action == action && (principal == "" || e.Principal == principal) {
				return e
			}
		}
		t.Fatalf("no event %s of %s among %d forwarded", action, principal, len(evs))
		return nil
	}
	alice := "users/" + realm.UserID
	login := find(first, "actions/keycloak/events/LOGIN", alice)
	if login.Status == nil || login.Status.Code != 0 || login.SourceIP != "private" ||
		login.Resource != "realms/"+realm.Name+"/clients/app" || login.Metadata["kc_detail_username"] != "alice" {
		t.Errorf("LOGIN: %+v", login)
	}
	failed := find(first, "actions/keycloak/events/LOGIN_ERROR", alice)
	if failed.Status == nil || failed.Status.Code != 16 || failed.Status.Message != "invalid_user_credentials" || failed.SourceIP != "private" {
		t.Errorf("LOGIN_ERROR: %+v", failed)
	}
	created := find(first, "actions/keycloak/admin/USER/CREATE", "")
	for _, e := range first {
		if e.Action == created.Action && e.Resource == "realms/"+realm.Name+"/users/"+bobID {
			created = e
		}
	}
	if created.Resource != "realms/"+realm.Name+"/users/"+bobID || !strings.HasPrefix(created.Principal, "users/") ||
		created.Principal == "users/unknown" || created.Status == nil || created.Status.Code != 0 {
		t.Errorf("admin CREATE of bob: %+v", created)
	}
	// Every event Keycloak held is there, at Keycloak's time. (The server
	// redacts 127.0.0.1 to "private", as it does any private address.)
	times := keycloakEvents()
	for id, ms := range times {
		e, ok := first[id]
		switch {
		case ms > ranAt.UnixMilli():
			// The token request of keycloakEvents' reader.
		case !ok:
			t.Errorf("Keycloak's event %s was not forwarded", id)
		case !e.EventTime.Equal(time.UnixMilli(ms)):
			t.Errorf("event %s: event_time %s, Keycloak's time %s", id, e.EventTime, time.UnixMilli(ms).UTC())
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Again: everything is read again (within the overlap) and nothing is
	// added. Each run's token request is a CLIENT_LOGIN of the forwarder's
	// client, which the next run forwards: added leaves those out.
	runOK(t, args()...)
	second := forwarded(cl)
	added := func(before, after map[string]*audittrail.Event) []string {
		var ids []string
		for id, e := range after {
			if old, ok := before[id]; !ok && e.Metadata["kc_type"] == "CLIENT_LOGIN" && e.Metadata["kc_client_id"] == realm.ClientID {
				continue
			} else if !ok {
				ids = append(ids, e.Metadata["kc_type"]+e.Metadata["kc_resource_type"]+e.Metadata["kc_operation_type"])
			} else if old.Name() != e.Name() || !old.SameContent(e) {
				t.Errorf("event %s changed: %+v, then %+v", id, old, e)
			}
		}
		for id := range before {
			if _, ok := after[id]; !ok {
				t.Errorf("event %s is gone", id)
			}
		}
		return ids
	}
	if ids := added(first, second); len(ids) != 0 {
		t.Errorf("forwarding again added %v, want nothing", ids)
	}

	// New events: exactly those are added.
	if code := realm.Login(t, "bob", "bob-password"); code != http.StatusOK {
		t.Fatalf("bob's login: HTTP %d", code)
	}
	realm.CreateUser(t, "carol", "carol-password")
	runOK(t, args()...)
	third := forwarded(cl)
	if ids := added(second, third); !sameSet(ids, []string{"LOGIN", "USERCREATE"}) {
		t.Errorf("forwarding new events added %v, want LOGIN and USERCREATE", ids)
	}

	// The server down: the forwarder fails, and its state is as it was.
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if code := realm.Login(t, "carol", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("carol's failed login: HTTP %d", code)
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), args(), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "user events: creating ") {
		t.Errorf("forwarding to a stopped server: exit %d, want 1 and the server's error: %s%s", code, stdout.String(), stderr.String())
	}
	if after, err := os.ReadFile(state); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the state changed while the server was down:\n%s\nthen\n%s", before, after)
	}
	srv.Resume()
	runOK(t, args()...)
	fourth := forwarded(auditor())
	if ids := added(third, fourth); !sameSet(ids, []string{"LOGIN_ERROR"}) {
		t.Errorf("after the outage, forwarding added %v, want carol's LOGIN_ERROR", ids)
	}

	// Another --event-source: every event read again is stored with other
	// content under its id. Each is reported and kept as stored; the run
	// goes on and succeeds.
	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), append(args(), "--event-source", "keycloak-renamed"), &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "is already stored with other content; kept as stored") {
		t.Errorf("forwarding with another event source: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if ids := added(fourth, forwarded(auditor())); len(ids) != 0 {
		t.Errorf("forwarding with another event source added %v", ids)
	}
}

// sameSet reports whether a and b hold the same strings as many times
// each (it sorts a).
func sameSet(a, b []string) bool {
	slices.Sort(a)
	return slices.Equal(a, slices.Sorted(slices.Values(b)))
}

// TestKeycloakCommandUsage: bad flags are refused before anything is
// read or sent, naming the flag; Keycloak's refusals are explained.
func TestKeycloakCommandUsage(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	base := []string{"keycloak", "--keycloak-url", "http://127.0.0.1:1", "--realm", "acme", "--client-id", "fwd", "--state", state}
	https := []string{"keycloak", "--keycloak-url", "https://127.0.0.1:1", "--realm", "acme", "--client-id", "fwd", "--state", state, "--client-secret", "s", "--once"}
	notPEM := filepath.Join(dir, "not-pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUDITTRAIL_KEYCLOAK_CLIENT_SECRET", "")
	t.Setenv("AUDITTRAIL_KEYCLOAK_CA_FILE", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keycloak", "--realm", "acme", "--client-id", "fwd", "--state", state, "--client-secret", "s"}, "--keycloak-url"},
		{[]string{"keycloak", "--keycloak-url", "keycloak:8080", "--realm", "acme", "--client-id", "fwd", "--state", state, "--client-secret", "s"}, "give an http or https URL"},
		{[]string{"keycloak", "--keycloak-url", "http://kc", "--client-id", "fwd", "--state", state, "--client-secret", "s"}, "--realm"},
		{[]string{"keycloak", "--keycloak-url", "http://kc", "--realm", "acme", "--state", state, "--client-secret", "s"}, "--client-id"},
		{[]string{"keycloak", "--keycloak-url", "http://kc", "--realm", "acme", "--client-id", "fwd", "--client-secret", "s"}, "--state"},
		{base, "give the client secret with"},
		{append(base, "--client-secret", "s", "--client-secret-file", state), "give the client secret once"},
		{append(base, "--client-secret-file", filepath.Join(dir, "missing")), "--client-secret-file"},
		{append(base, "--client-secret", "s", "--kinds", "user,login"), `"login" is not a kind`},
		{append(base, "--client-secret", "s", "--kinds", "user,user"), "given twice"},
		{append(base, "--client-secret", "s", "--interval", "0s"), "--interval"},
		{append(base, "--client-secret", "s", "--overlap", "-1s"), "--overlap"},
		{append(base, "--client-secret", "s", "--event-source", ""), "--event-source"},
		{append(base, "--client-secret", "s", "extra"), `unexpected argument "extra"`},
		{append(https, "--keycloak-ca-file", filepath.Join(dir, "missing")), "--keycloak-ca-file: open " + filepath.Join(dir, "missing")},
		{append(https, "--keycloak-ca-file", notPEM), "--keycloak-ca-file " + notPEM + " holds no PEM certificate"},
		// The file would be ignored: nothing of an http URL is checked.
		{append(base, "--client-secret", "s", "--keycloak-ca-file", notPEM), `--keycloak-ca-file is for a Keycloak served over https, and --keycloak-url "http://127.0.0.1:1" is not`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, %s; want 2 naming %s", c.args, code, stderr.String(), c.want)
		}
	}

	// The CA file from the environment is checked as the flag's is.
	t.Setenv("AUDITTRAIL_KEYCLOAK_CA_FILE", notPEM)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), https, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--keycloak-ca-file "+notPEM+" holds no PEM certificate") {
		t.Errorf("AUDITTRAIL_KEYCLOAK_CA_FILE of a file without a certificate: exit %d, %s; want 2 naming it", code, stderr.String())
	}
	t.Setenv("AUDITTRAIL_KEYCLOAK_CA_FILE", "")

	// A second forwarder on one state file would do the work twice.
	unlock, err := flock.Lock(state + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(t.Context(), append(base, "--client-secret", "s", "--once"), &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "another forwarder is running with this state file") {
		t.Errorf("a second forwarder on one state file: exit %d: %s", code, stderr.String())
	}
	// A state file of another realm.
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := (&keycloak.State{URL: "http://127.0.0.1:1", Realm: "other", Cursors: map[keycloak.Kind]int64{}}).Save(state); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(t.Context(), append(base, "--client-secret", "s", "--once"), &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `the state of realm "other"`) {
		t.Errorf("the state file of another realm: exit %d: %s", code, stderr.String())
	}
	// The URL with a trailing slash is the same Keycloak: the state is
	// taken (and the poll fails, since nothing listens there).
	if err := (&keycloak.State{URL: "http://127.0.0.1:1", Realm: "acme", Cursors: map[keycloak.Kind]int64{}}).Save(state); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	args := append([]string{"keycloak", "--keycloak-url", "http://127.0.0.1:1/"}, base[3:]...)
	if code := run(t.Context(), append(args, "--client-secret", "s", "--once"), &stdout, &stderr); code != 1 ||
		strings.Contains(stderr.String(), "the state of realm") || !strings.Contains(stderr.String(), "connection refused") {
		t.Errorf("the state file with the URL without its trailing slash: exit %d: %s", code, stderr.String())
	}
}

// TestKeycloakCommandHTTPS forwards from Keycloak over HTTPS, with a
// certificate of a private CA (kctest's): with --keycloak-ca-file naming
// that CA, a login and the realm's admin events arrive; without it, or with
// the file of another CA, the run fails saying which authority signed
// Keycloak's certificate and what to give, and keeps no state.
func TestKeycloakCommandHTTPS(t *testing.T) {
	kc := kctest.Shared(t)
	srv := testserver.Start(t)
	realm := kc.NewRealm(t) // admin events: the clients and the user created
	if code := realm.Login(t, realm.Username, realm.Password); code != http.StatusOK {
		t.Fatalf("login: HTTP %d", code)
	}
	t.Setenv("AUDITTRAIL_KEYCLOAK_CA_FILE", "")
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"keycloak", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--keycloak-url", kc.HTTPSURL,
		"--realm", realm.Name, "--client-id", realm.ClientID, "--client-secret", realm.ClientSecret, "--state", state, "--once"}

	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"without --keycloak-ca-file", nil, `Keycloak's TLS certificate is signed by "CN=kctest private CA", which is not a certificate authority trusted here: ` +
			"give the certificate of that authority (PEM) with --keycloak-ca-file or AUDITTRAIL_KEYCLOAK_CA_FILE"},
		{"with another CA's file", []string{"--keycloak-ca-file", testpki.New(t).File}, `Keycloak's TLS certificate is signed by "CN=kctest private CA", ` +
			"which is not a certificate authority trusted here: the file of --keycloak-ca-file"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), append(args, c.extra...), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d: %s; want 1 and %q", c.name, code, stderr.String(), c.want)
		}
		if _, err := os.Stat(state); err == nil {
			t.Fatalf("%s: a state file was written", c.name)
		}
	}

	runOK(t, append(args, "--keycloak-ca-file", kc.CAFile)...)
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	start := time.Now().Add(-time.Hour)
	resp, err := auditor.SearchEvents(t.Context(), audittrail.SearchEventsRequest{PageSize: 1000,
		Filter: audittrail.Filter{StartTime: &start, MetadataExact: map[string]string{"kc_realm": realm.Name}}})
	if err != nil {
		t.Fatal(err)
	}
	var login, userCreated bool
	for _, e := range resp.Events {
		login = login || (e.Action == "actions/keycloak/events/LOGIN" && e.Principal == "users/"+realm.UserID)
		userCreated = userCreated || (e.Action == "actions/keycloak/admin/USER/CREATE" && e.Resource == "realms/"+realm.Name+"/users/"+realm.UserID)
	}
	if !login || !userCreated {
		t.Errorf("forwarded over HTTPS: the login %v, the user's creation %v, want both among %d events", login, userCreated, len(resp.Events))
	}
}

// TestKeycloakCommandRefused: Keycloak's refusals (a wrong secret, an
// unknown realm, a client without view-events) end a --once run with a
// message that says what to fix, and leave no state.
func TestKeycloakCommandRefused(t *testing.T) {
	kc := kctest.Shared(t)
	srv := testserver.Start(t)
	realm := kc.NewRealm(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	// argsFor is a --once run of the forwarder of realmName to srv.
	argsFor := func(realmName, clientID, secret, state string) []string {
		return []string{"keycloak", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--keycloak-url", kc.URL,
			"--realm", realmName, "--client-id", clientID, "--client-secret", secret, "--state", state, "--once"}
	}
	try := func(realmName, clientID, secret, want string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := argsFor(realmName, clientID, secret, state)
		if code := run(t.Context(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), want) {
			t.Errorf("%s/%s: exit %d: %s; want 1 and %q", realmName, clientID, code, stderr.String(), want)
		}
		if _, err := os.Stat(state); err == nil {
			t.Errorf("%s/%s: a state file was written", realmName, clientID)
		}
	}
	try(realm.Name, realm.ClientID, "wrong", "the client id or secret is wrong")
	try("no-such-realm", realm.ClientID, realm.ClientSecret, "no such realm")
	// A confidential client without the role.
	kc.Admin(t, http.MethodPost, "/admin/realms/"+realm.Name+"/clients", map[string]any{
		"clientId": "no-role", "enabled": true, "publicClient": false, "secret": "no-role-secret", "serviceAccountsEnabled": true,
	}, nil)
	try(realm.Name, "no-role", "no-role-secret", "needs realm-management's view-events role")

	// A realm that saves no events: nothing to forward, and a warning
	// says what to turn on.
	kc.Admin(t, http.MethodPut, "/admin/realms/"+realm.Name, map[string]any{"eventsEnabled": false, "adminEventsEnabled": false}, nil)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), argsFor(realm.Name, realm.ClientID, realm.ClientSecret, state), &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "does not save user events") || !strings.Contains(stderr.String(), "does not save admin events") {
		t.Errorf("a realm without events: exit %d: %s%s", code, stdout.String(), stderr.String())
	}

	// A realm that deletes user events after an hour. A forwarder that read
	// them all up to more than an hour ago says that the events since may
	// be lost, from when: the last read through less the overlap (2 min),
	// or, for a state file of an older forwarder without it, the newest
	// user event forwarded. One that read them through a minute ago says
	// nothing of it, however old its newest event: the realm was idle.
	kc.Admin(t, http.MethodPut, "/admin/realms/"+realm.Name, map[string]any{
		"eventsEnabled": true, "adminEventsEnabled": true, "eventsExpiration": 3600,
	}, nil)
	now := time.Now()
	for _, c := range []struct {
		name                string
		cursor, readThrough time.Duration // before now; 0: none
		warnFrom            time.Time     // zero: no warning
	}{
		{"an older forwarder's state, cursor 2h ago", 2 * time.Hour, 0, now.Add(-2 * time.Hour)},
		{"an older forwarder's state, cursor 10m ago", 10 * time.Minute, 0, time.Time{}},
		{"an idle realm: cursor 2h ago, read through 1m ago", 2 * time.Hour, time.Minute, time.Time{}},
		{"read through 2h ago", 3 * time.Hour, 2 * time.Hour, now.Add(-2*time.Hour - keycloak.DefaultOverlap)},
		{"nothing forwarded, read through 2h ago", 0, 2 * time.Hour, now.Add(-2*time.Hour - keycloak.DefaultOverlap)},
	} {
		stale := filepath.Join(dir, strings.NewReplacer(" ", "-", ",", "", "'", "", ":", "").Replace(c.name))
		st := keycloak.State{URL: kc.URL, Realm: realm.Name, Cursors: map[keycloak.Kind]int64{}, ReadThroughAt: map[keycloak.Kind]int64{}}
		if c.cursor != 0 {
			st.Cursors[keycloak.KindUser] = now.Add(-c.cursor).UnixMilli()
		}
		if c.readThrough != 0 {
			st.ReadThroughAt[keycloak.KindUser] = now.Add(-c.readThrough).UnixMilli()
		}
		if err := st.Save(stale); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), argsFor(realm.Name, realm.ClientID, realm.ClientSecret, stale), &stdout, &stderr)
		warned := strings.Contains(stderr.String(), "realm "+realm.Name+" deletes user events after 1h0m0s, and the forwarder has read all of them only up to about ")
		want := !c.warnFrom.IsZero()
		if code != 0 || warned != want {
			t.Errorf("%s, events kept an hour: exit %d, warned %v (want %v): %s%s", c.name, code, warned, want, stdout.String(), stderr.String())
		}
		if span := "up to about " + c.warnFrom.UTC().Format(time.RFC3339) + ": the user events from then to about "; want && !strings.Contains(stderr.String(), span) {
			t.Errorf("%s: the warning does not say %q: %s", c.name, span, stderr.String())
		}
		// The span ends an hour before the check, which ran between now
		// and the run's end.
		_, rest, _ := strings.Cut(stderr.String(), "the user events from then to about ")
		end, rest, _ := strings.Cut(rest, " ")
		endTime, err := time.Parse(time.RFC3339, end)
		if want && (err != nil || endTime.Before(now.Add(-time.Hour).Truncate(time.Second)) || endTime.After(time.Now().Add(-time.Hour)) ||
			!strings.HasPrefix(rest, "may have been deleted before they were read, and are not forwarded")) {
			t.Errorf("%s: the warning does not end the span an hour ago and say the events are not forwarded: %s", c.name, stderr.String())
		}
	}
}

// TestKeycloakCommandOutage: a running forwarder whose polls fail (the
// server stopped) for longer than the realm keeps user events says, once
// per outage, that events may have been deleted before they were read: at
// the first poll that succeeds again when the expiration was set during
// the outage, and after the failed polls otherwise. The realm keeps its
// events for two seconds, and the forwarder polls every 100 ms without an
// overlap, so an outage takes seconds.
func TestKeycloakCommandOutage(t *testing.T) {
	kc := kctest.Shared(t)
	// The server listens on the same internal address after each Resume:
	// the running forwarder keeps its --addr.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internal := l.Addr().String()
	l.Close()
	srv := testserver.Start(t, "--internal-addr", internal)
	realm := kc.NewRealm(t)
	expire := func(seconds int) {
		kc.Admin(t, http.MethodPut, "/admin/realms/"+realm.Name, map[string]any{"eventsExpiration": seconds}, nil)
	}
	var stdout, stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"keycloak", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--keycloak-url", kc.URL,
			"--realm", realm.Name, "--client-id", realm.ClientID, "--client-secret", realm.ClientSecret,
			"--state", filepath.Join(t.TempDir(), "state"), "--kinds", "user", "--interval", "100ms", "--overlap", "0s"}, &stdout, &stderr)
	}()
	// Each poll reads the newest event again (at the cursor, without an
	// overlap), so each prints a line on success, and each fails while
	// the server is stopped.
	polls := func() int { return strings.Count(stdout.String(), "forwarded ") }
	failures := func() int { return strings.Count(stderr.String(), "(trying again in 100ms)") }
	warnings := func() int {
		return strings.Count(stderr.String(), "realm "+realm.Name+" deletes user events after 2s, and the forwarder has read all of them only up to about ")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			select {
			case code := <-done:
				t.Fatalf("the forwarder exited (%d) before %s: %s%s", code, what, stdout.String(), stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s after a minute: %s%s", what, stdout.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	outage := func(during func()) {
		t.Helper()
		srv.Stop()
		during()
		srv.Resume()
		n := polls()
		waitFor("poll after the outage", func() bool { return polls() > n })
	}

	// An outage while the realm keeps its events forever, which ends
	// after the expiration was set to two seconds: no failed poll knows
	// about them, the first success after them tells. (It must compare
	// with the last read through before the outage: the poll that
	// succeeds may have begun a second or more before, while the server
	// was starting.)
	waitFor("first poll", func() bool { return polls() > 0 })
	outage(func() {
		stopped := time.Now() // after the last poll that succeeded began
		waitFor("a failed poll", func() bool { return failures() >= 1 })
		expire(2)
		n := failures()
		waitFor("a failed poll", func() bool { return failures() > n })
		// The outage outlasts the two seconds that the realm keeps its
		// events for (a wait, not a measurement).
		time.Sleep(time.Until(stopped.Add(2200 * time.Millisecond)))
		if warnings() != 0 {
			t.Errorf("warned during the outage before the realm's expiration was read: %s", stderr.String())
		}
	})
	if warnings() != 1 {
		t.Errorf("%d warnings after an outage longer than the expiration set during it, want 1: %s", warnings(), stderr.String())
	}

	// Another outage, with the expiration known: the failed polls tell,
	// once, however many follow, and the success after them does not
	// tell again.
	before := warnings()
	outage(func() {
		waitFor("warning in the second outage", func() bool { return warnings() > before })
		n := failures()
		waitFor("failed polls", func() bool { return failures() >= n+2 })
	})
	n := polls()
	waitFor("polls after the second outage", func() bool { return polls() >= n+3 })
	if warnings() != before+1 {
		t.Errorf("%d warnings in the second outage and after it, want 1: %s", warnings()-before, stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("the stopped forwarder: exit %d: %s", code, stderr.String())
	}
}

// TestKeycloakForwarderPages: a poll reads page after page (here of 2
// events) until a short page, each acknowledged before the cursor moves to
// its newest event; nothing is skipped or stored twice. The last batch's
// save also records when the poll began (ReadThroughAt), and a poll that
// finds nothing new saves that once, for both kinds.
func TestKeycloakForwarderPages(t *testing.T) {
	kc := kctest.Shared(t)
	srv := testserver.Start(t)
	realm := kc.NewRealm(t)
	for range 4 {
		if code := realm.Login(t, realm.Username, realm.Password); code != http.StatusOK {
			t.Fatalf("login: HTTP %d", code)
		}
	}
	realm.Login(t, realm.Username, "wrong")
	producer, err := client.Dial(t.Context(), srv.InternalAddr, client.WithToken(srv.ProducerToken))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var batches []int
	var saved []int64
	var readThrough []map[keycloak.Kind]int64
	state := &keycloak.State{URL: kc.URL, Realm: realm.Name, Cursors: map[keycloak.Kind]int64{}}
	clock := time.Now().Add(-time.Hour) // apart from Keycloak's clock, which dates the events
	fw := &keycloak.Forwarder{
		Reader:    &keycloak.Reader{URL: kc.URL, Realm: realm.Name, ClientID: realm.ClientID, ClientSecret: realm.ClientSecret},
		Converter: keycloak.Converter{Realm: realm.Name},
		Create: func(ctx context.Context, reqs []audittrail.CreateRequest) (*audittrail.BatchResult, error) {
			batches = append(batches, len(reqs))
			return producer.BatchCreateEvents(ctx, reqs)
		},
		Kinds:    []keycloak.Kind{keycloak.KindUser},
		Overlap:  time.Minute,
		PageSize: 2,
		State:    state,
		Save: func(s *keycloak.State) error {
			saved = append(saved, s.Cursors[keycloak.KindUser])
			readThrough = append(readThrough, maps.Clone(s.ReadThroughAt))
			return nil
		},
		Now: func() time.Time { return clock },
	}
	counts, err := fw.Poll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// 4 logins, a failed one, and the forwarder's own CLIENT_LOGIN.
	users, err := fw.Reader.UserEvents(t.Context(), 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 6 || counts[keycloak.KindUser] != 6 {
		t.Fatalf("Keycloak holds %d user events, the poll forwarded %d; want 6", len(users), counts[keycloak.KindUser])
	}
	if want := []int{2, 2, 2}; !slices.Equal(batches, want) {
		t.Errorf("batches %v, want %v", batches, want)
	}
	// The third page was full: a fourth read found nothing, and the
	// read through was saved after it, with the same cursor.
	if len(saved) != 4 || saved[3] != users[5].Time || !slices.IsSorted(saved) {
		t.Errorf("cursors saved %v, want 4 rising to %d", saved, users[5].Time)
	}
	if want := []map[keycloak.Kind]int64{{}, {}, {}, {keycloak.KindUser: clock.UnixMilli()}}; !reflect.DeepEqual(readThrough, want) {
		t.Errorf("read through at %v, want the poll's start with the last save only: %v", readThrough, want)
	}

	// Nothing new after the cursors (the reader keeps its token, so no
	// CLIENT_LOGIN is added): nothing is created, and the state is saved
	// once, with the new poll's start for both kinds.
	admins, err := fw.Reader.AdminEvents(t.Context(), 0, 0, 100)
	if err != nil || len(admins) == 0 {
		t.Fatalf("admin events: %d, %v", len(admins), err)
	}
	state.Cursors[keycloak.KindAdmin] = admins[len(admins)-1].Time + 1
	state.Cursors[keycloak.KindUser] = users[5].Time + 1
	fw.Kinds, fw.Overlap = []keycloak.Kind{keycloak.KindUser, keycloak.KindAdmin}, 0
	clock = clock.Add(time.Minute)
	batches, saved, readThrough = nil, nil, nil
	if counts, err := fw.Poll(t.Context()); err != nil || counts[keycloak.KindUser]+counts[keycloak.KindAdmin] != 0 {
		t.Fatalf("a poll with nothing new: %v, %v", counts, err)
	}
	if want := []map[keycloak.Kind]int64{{keycloak.KindUser: clock.UnixMilli(), keycloak.KindAdmin: clock.UnixMilli()}}; len(batches) != 0 || !reflect.DeepEqual(readThrough, want) {
		t.Errorf("a poll with nothing new: batches %v, saved read through at %v, want no batch and one save of %v", batches, readThrough, want)
	}
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	start := time.Now().Add(-time.Hour)
	req := audittrail.SearchEventsRequest{PageSize: 100, Filter: audittrail.Filter{StartTime: &start, MetadataExact: map[string]string{"kc_realm": realm.Name}}}
	resp, err := auditor.SearchEvents(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range resp.Events {
		got[e.Metadata["kc_event_id"]] = true
	}
	for _, e := range users {
		if !got[e.ID] {
			t.Errorf("%s %s was not forwarded", e.Type, e.ID)
		}
	}
	if len(resp.Events) != len(users) {
		t.Errorf("%d events on the server, Keycloak holds %d", len(resp.Events), len(users))
	}
}

// TestKeycloakReaderToken: the reader keeps its token (a CLIENT_LOGIN
// event each) until TokenMargin before it expires, and requests another
// before it expires.
// The reader's clock is moved, not waited for.
func TestKeycloakReaderToken(t *testing.T) {
	kc := kctest.Shared(t)
	realm := kc.NewRealm(t)
	const lifespan = 300 * time.Second
	kc.Admin(t, http.MethodPut, "/admin/realms/"+realm.Name, map[string]any{"accessTokenLifespan": int(lifespan.Seconds())}, nil)
	clock := time.Now()
	r := &keycloak.Reader{URL: kc.URL, Realm: realm.Name, ClientID: realm.ClientID, ClientSecret: realm.ClientSecret,
		Now: func() time.Time { return clock }}
	tokens := func() int {
		t.Helper()
		if _, err := r.UserEvents(t.Context(), 0, 0, 1); err != nil {
			t.Fatal(err)
		}
		var evs []keycloak.UserEvent
		kc.Admin(t, http.MethodGet, "/admin/realms/"+realm.Name+"/events?type=CLIENT_LOGIN&max=100", nil, &evs)
		return len(evs)
	}
	if n := tokens(); n != 1 {
		t.Fatalf("%d tokens requested by the first read, want 1", n)
	}
	start := clock
	// Ten seconds more than the margin: Keycloak's expires_in is the
	// token's expiry less the time it answers, in whole seconds, so a
	// second boundary crossed while it builds the answer (a loaded
	// machine) makes it 299 of a lifespan of 300; with one second here
	// the test failed so once, in a loaded run.
	clock = start.Add(lifespan - keycloak.TokenMargin - 10*time.Second)
	if n := tokens(); n != 1 {
		t.Errorf("%d tokens requested with more than the margin left, want 1", n)
	}
	clock = start.Add(lifespan - time.Second) // before it expires
	if n := tokens(); n != 2 {
		t.Errorf("%d tokens requested a second before the expiry, want 2", n)
	}
}
