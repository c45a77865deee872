package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/server"
)

func TestStaticTokens(t *testing.T) {
	a := server.NewStaticTokens("reader-secret", "producer-secret")
	for _, tc := range []struct {
		token string
		name  string
		role  audittrail.Role
	}{
		{"reader-secret", server.ReaderPrincipal, audittrail.RoleAuditor},
		{"producer-secret", server.ProducerPrincipal, audittrail.RoleProducer},
	} {
		p, err := a.Authenticate(t.Context(), tc.token)
		if err != nil || p.Name != tc.name || !p.HasRole(tc.role) || len(p.Roles) != 1 {
			t.Errorf("Authenticate(%q) = %+v, %v", tc.token, p, err)
		}
	}
	for _, token := range []string{"", "reader-secre", "reader-secretx", "READER-SECRET", "producer-secret "} {
		p, err := a.Authenticate(t.Context(), token)
		if p != nil || audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
			t.Errorf("Authenticate(%q) = %+v, %v; want EUnauthenticated", token, p, err)
		}
	}
	// An empty configured token authenticates nobody, not the empty token.
	if p, err := server.NewStaticTokens("", "").Authenticate(t.Context(), ""); p != nil || err == nil {
		t.Errorf("empty tokens authenticated %+v", p)
	}
}

// blockingStore holds every Append until release is closed.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	s.entered <- struct{}{}
	<-s.release
	res := make([]audittrail.AppendResult, len(events))
	for i, e := range events {
		e.Seq = uint64(i + 1)
		res[i].Event = e
	}
	return res, nil
}

func (s *blockingStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	return &audittrail.SearchResult{}, nil
}

func (s *blockingStore) Close() error { return nil }

// startInProcess runs a server over st on loopback ports.
func startInProcess(t *testing.T, st audittrail.Store) (srv *server.Server, public, internal string) {
	t.Helper()
	return startLogging(t, st, io.Discard)
}

// startLogging is startInProcess with the log written to w.
func startLogging(t *testing.T, st audittrail.Store, w io.Writer) (srv *server.Server, public, internal string) {
	t.Helper()
	return serve(t, server.Config{
		Service:       &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version:       "test",
	}, nil)
}

// TestShutdownFinishesInFlight starts a REST and a gRPC create, shuts the
// server down while the store holds them, and checks that both succeed and
// that Shutdown waited for them.
func TestShutdownFinishesInFlight(t *testing.T) {
	st := &blockingStore{entered: make(chan struct{}, 2), release: make(chan struct{})}
	srv, _, internal := startInProcess(t, st)
	grpcClient := dialGRPC(t, internal)

	restDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+internal+"/v1/events?eventId="+newID(),
			strings.NewReader(eventBody("2026-01-01T00:00:00Z", "inflight")))
		req.Header.Set("Authorization", "Bearer p")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		restDone <- err
	}()
	grpcDone := make(chan error, 1)
	go func() {
		_, err := grpcClient.CreateEvent(withToken(t, "p"), &pb.CreateEventRequest{EventId: newID(), Event: &pb.Event{
			EventTime: timestamppb.Now(), EventSource: "s", Action: "a", Principal: "p", SourceIpAddress: "1.1.1.1"}})
		grpcDone <- err
	}()
	for range 2 {
		select {
		case <-st.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the creates did not reach the store")
		}
	}

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned (%v) while requests were in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	// No new connections are accepted meanwhile.
	if c, err := net.DialTimeout("tcp", internal, time.Second); err == nil {
		c.Close()
		t.Error("the internal listener still accepts connections during shutdown")
	}
	close(st.release)
	for name, ch := range map[string]chan error{"REST": restDone, "gRPC": grpcDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s create in flight during shutdown: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s create did not finish", name)
		}
	}
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Shutdown did not return after the requests finished")
	}
}

// TestShutdownTimeout gives up on a request that does not finish in time.
func TestShutdownTimeout(t *testing.T) {
	st := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(st.release)
	srv, _, internal := startInProcess(t, st)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+internal+"/v1/events?eventId="+newID(),
			strings.NewReader(eventBody("2026-01-01T00:00:00Z", "stuck")))
		req.Header.Set("Authorization", "Bearer p")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-st.entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want a deadline error", err)
	}
}

// TestReadyz turns 503 once shutting down, on a connection opened before.
func TestReadyz(t *testing.T) {
	st := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, public, _ := startInProcess(t, st)
	get := func() int {
		resp, err := http.Get("http://" + public + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("/readyz = %d while serving", code)
	}
	srv.Shutdown(context.Background())
	rec := httptest.NewRecorder()
	srv.PublicHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d after Shutdown, want 503", rec.Code)
	}
}

// TestReadyzStoreDown: a store that does not answer makes /readyz 503; a
// driver's own error (which names hosts) goes to the log, not to the
// unauthenticated probe, and one of ours is shown.
func TestReadyzStoreDown(t *testing.T) {
	for _, tc := range []struct {
		err       error
		want, not string
	}{
		{errors.New("dial tcp db.internal.example:5432: connection refused"), "the store does not answer; the server's log says why", "db.internal"},
		{audittrail.Errorf(audittrail.EUnavailable, "the store is closed"), "the store is closed", ""},
	} {
		var logged syncbuf.Buffer
		srv, public, _ := serve(t, server.Config{
			Service:       &audittrail.Service{Store: &blockingStore{}, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
			Authenticator: server.NewStaticTokens("r", "p"),
			Logger:        slog.New(slog.NewTextHandler(&logged, nil)),
			Ready:         func(context.Context) error { return tc.err },
		}, nil)
		resp, err := http.Get("http://" + public + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), tc.want) || (tc.not != "" && strings.Contains(string(body), tc.not)) {
			t.Errorf("/readyz with %v: %d %s", tc.err, resp.StatusCode, body)
		}
		srv.Shutdown(context.Background())
		if !strings.Contains(logged.String(), tc.err.Error()) {
			t.Errorf("the log does not hold %q:\n%s", tc.err, logged.String())
		}
	}
}

// failingStore fails every Search with an internal error, or panics.
type failingStore struct {
	blockingStore
	panics bool
}

// Append accepts the self-audit events of the failing searches.
func (s *failingStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	res := make([]audittrail.AppendResult, len(events))
	for i, e := range events {
		res[i].Event = e
	}
	return res, nil
}

func (s *failingStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	if s.panics {
		panic("the index is upside down")
	}
	return nil, errors.New("read /var/lib/secret/000123.sst: input/output error")
}

// TestInternalErrorsAreLoggedNotSent checks that the detail of an internal
// error (or a panic) goes to the log and the caller gets a generic INTERNAL,
// over REST and gRPC, and that the server keeps serving after a panic.
func TestInternalErrorsAreLoggedNotSent(t *testing.T) {
	for _, panics := range []bool{false, true} {
		var logs syncbuf.Buffer
		_, public, _ := startLogging(t, &failingStore{panics: panics}, &logs)
		detail := "/var/lib/secret"
		if panics {
			detail = "the index is upside down"
		}
		for range 2 { // the second call proves the server survived
			req, _ := http.NewRequest("POST", "http://"+public+"/v1/events:search", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer r")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(b), detail) ||
				!strings.Contains(string(b), `"internal error"`) {
				t.Errorf("panics=%v: REST answer %d %s", panics, resp.StatusCode, b)
			}
			_, err = dialGRPC(t, public).SearchEvents(withToken(t, "r"), &pb.SearchEventsRequest{})
			wantCode(t, err, codes.Internal, "internal error")
			if strings.Contains(err.Error(), detail) {
				t.Errorf("panics=%v: gRPC error %v has the detail", panics, err)
			}
		}
		if !strings.Contains(logs.String(), detail) || !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("panics=%v: the log lacks the detail at error level:\n%s", panics, logs.String())
		}
	}
}
