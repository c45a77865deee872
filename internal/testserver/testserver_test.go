package testserver_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestStartRestartStop(t *testing.T) {
	srv := testserver.Start(t)
	if !strings.HasPrefix(srv.PublicURL, "http://127.0.0.1:") || srv.PublicURL != "http://"+srv.PublicAddr ||
		srv.InternalURL != "http://"+srv.InternalAddr || srv.PublicAddr == srv.InternalAddr {
		t.Fatalf("addresses %+v", srv)
	}
	if srv.ReaderToken == "" || srv.ProducerToken == "" || srv.ReaderToken == srv.ProducerToken || srv.DataDir == "" {
		t.Fatalf("tokens and data dir %+v", srv)
	}
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(srv.PublicURL + "/readyz"); code != http.StatusOK {
		t.Errorf("public /readyz: %d", code)
	}
	srv.Restart()
	if code := get(srv.InternalURL + "/readyz"); code != http.StatusOK {
		t.Errorf("internal /readyz after Restart: %d", code)
	}
	srv.Stop()
	if !srv.Exited() {
		t.Error("the server runs after Stop")
	}
	if !strings.Contains(srv.Logs(), "stdout: audittrail: ready") || !strings.Contains(srv.Logs(), "level=INFO msg=stopped") {
		t.Errorf("logs lack the ready line or the clean stop:\n%s", srv.Logs())
	}
	srv.Stop() // a second Stop does nothing
}

// TestCrashResume: Crash kills the server without a clean stop, Resume
// starts it again on the same data directory, and an event acknowledged
// before the crash is found after it.
func TestCrashResume(t *testing.T) {
	srv := testserver.Start(t)
	dataDir, oldAddr := srv.DataDir, srv.PublicAddr
	const id = "3b241101-e2bb-4255-8caf-4136c566a962"
	post(t, srv.InternalURL+"/v1/events?eventId="+id, srv.ProducerToken, `{"eventTime": "2026-03-01T12:00:00Z",
		"eventSource": "svc", "action": "actions/x/y/CREATE", "principal": "users/crash-test", "sourceIpAddress": "1.2.3.4"}`)

	srv.Crash()
	if !srv.Exited() {
		t.Fatal("the server runs after Crash")
	}
	if logs := srv.Logs(); !strings.Contains(logs, "testserver: SIGKILL") || strings.Contains(logs, "msg=stopped") {
		t.Errorf("logs lack the kill, or show a clean stop:\n%s", logs)
	}
	srv.Crash() // a second Crash does nothing
	srv.Resume()
	if srv.DataDir != dataDir || srv.PublicAddr == oldAddr {
		t.Errorf("after Resume: data dir %s (was %s), public address %s (was %s)", srv.DataDir, dataDir, srv.PublicAddr, oldAddr)
	}
	if got := post(t, srv.PublicURL+"/v1/events:search", srv.ReaderToken, `{"filter": {"principalExact": "users/crash-test"}}`); !strings.Contains(got, id) {
		t.Errorf("the event acknowledged before the crash is not found after it: %s", got)
	}
}

// post sends a JSON body and returns the answer, failing unless it is 200.
func post(t *testing.T, url, token, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// fakeTB records failures; Fatal ends its goroutine like testing.T's.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Errorf(format, args...); runtime.Goexit() }
func (f *fakeTB) Failed() bool                      { return len(f.failures) > 0 }
func (f *fakeTB) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(string, ...any)               {}

// TestStartFailure: a server that cannot start fails the test with its
// reason instead of hanging.
func TestStartFailure(t *testing.T) {
	tb := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testserver.Start(tb, "--max-scan", "0")
	}()
	<-done
	for _, fn := range tb.cleanups {
		fn()
	}
	if len(tb.failures) != 1 || !strings.Contains(tb.failures[0], "exited before it was ready") {
		t.Errorf("failures %q, want one saying the server exited before it was ready", tb.failures)
	}
}
