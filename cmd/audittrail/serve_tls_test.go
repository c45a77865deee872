package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testpki"
	"github.com/audittrail/audittrail/internal/testserver"
)

// TestServeTLS runs the binary with both listeners over TLS and mutual TLS
// on the internal one: the CLI over gRPC with a token, a producer by its
// client certificate alone, REST over HTTP/1.1 and HTTP/2.
func TestServeTLS(t *testing.T) {
	ca, cert, key, policy := appstorePKI(t)
	srv := testserver.Start(t, "--public-tls-cert", cert, "--public-tls-key", key,
		"--internal-tls-cert", cert, "--internal-tls-key", key, "--internal-client-ca", ca.File, "--policy", policy)
	if !strings.HasPrefix(srv.PublicURL, "https://") || !strings.HasPrefix(srv.InternalURL, "https://") {
		t.Fatalf("ready line URLs %s, %s: want https", srv.PublicURL, srv.InternalURL)
	}

	// The CLI with a token, over gRPC on TLS.
	out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--ca-file", ca.File, "--token", srv.ProducerToken, "--sample", "5", "--batch", "5")
	if err != nil || out != "created 5 of 5 events, 0 failed\n" {
		t.Fatalf("create over TLS: %v\n%s", err, out)
	}

	// A producer authenticated by its client certificate alone (its role
	// from the policy).
	clientCert, clientKey := ca.IssueFiles(20, "appstore", true)
	kp, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.InternalAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{kp}})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ev := &pb.Event{EventTime: timestamppb.Now(), EventSource: "appstore", Action: "actions/appstore/apps/CREATE", Principal: "users/jane",
		SourceIpAddress: "1.1.1.1", Resource: "//appstore/apps/mtls"}
	got, err := pb.NewEventServiceClient(conn).CreateEvent(t.Context(), &pb.CreateEventRequest{EventId: uuid.NewString(), Event: ev})
	if err != nil {
		t.Fatalf("create with a client certificate: %v", err)
	}

	// The CLI with the certificate and no token (client.WithClientCert).
	out, _, err = runCommand(t, "create", "--addr", srv.InternalAddr, "--ca-file", ca.File, "--token", "",
		"--cert", clientCert, "--key", clientKey, "--sample", "3", "--batch", "3")
	if err != nil || out != "created 3 of 3 events, 0 failed\n" {
		t.Fatalf("create with a client certificate: %v\n%s", err, out)
	}
	if _, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--cert", clientCert, "--sample", "1"); err == nil || !strings.Contains(err.Error(), "--cert and --key go together") {
		t.Errorf("--cert without --key: %v", err)
	}

	// REST searches over both HTTP versions find it.
	for _, h2 := range []bool{false, true} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: h2}, Timeout: 30 * time.Second}
		req, _ := http.NewRequest("POST", srv.PublicURL+"/v1/events:search", strings.NewReader(`{"filter": {"resourceExact": "//appstore/apps/mtls"}}`))
		req.Header.Set("Authorization", "Bearer "+srv.ReaderToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("REST search over TLS (HTTP/2 %v): %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), got.GetEvent().GetName()) {
			t.Errorf("REST search over %s: %d %s; want the event %s", resp.Proto, resp.StatusCode, body, got.GetEvent().GetName())
		}
		if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
			t.Errorf("REST over TLS: %s, want HTTP/%d", resp.Proto, want)
		}
	}
}

// TestServeCertProducersOnly: the reader's token with producers' client
// certificates (their role from the policy) is enough to start: no
// producer token is needed when producers authenticate by certificate.
func TestServeCertProducersOnly(t *testing.T) {
	ca, cert, key, policy := appstorePKI(t)
	srv := testserver.Start(t, "--producer-token", "", "--internal-tls-cert", cert, "--internal-tls-key", key,
		"--internal-client-ca", ca.File, "--policy", policy)
	clientCert, clientKey := ca.IssueFiles(20, "appstore", true)
	out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--ca-file", ca.File, "--token", "",
		"--cert", clientCert, "--key", clientKey, "--sample", "3", "--batch", "3")
	if err != nil || out != "created 3 of 3 events, 0 failed\n" {
		t.Fatalf("create with a client certificate: %v\n%s", err, out)
	}
	if _, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--ca-file", ca.File, "--token", srv.ProducerToken, "--sample", "1"); err == nil {
		t.Errorf("create with the empty producer token succeeded")
	}
	out, _, err = runCommand(t, "search", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--since", "3650d", "-o", "json")
	if err != nil || strings.Count(out, `"name": "events/`) != 3 {
		t.Errorf("the reader's search: %v\n%s", err, out)
	}
}

// appstorePKI returns a CA, the server's certificate and key files it
// issued, and a policy file giving services/appstore (the client
// certificate ca.IssueFiles(20, "appstore", true) names) the producer role.
func appstorePKI(t *testing.T) (ca *testpki.CA, cert, key, policy string) {
	ca = testpki.New(t)
	cert, key = ca.IssueFiles(10, "server", false)
	policy = filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"bindings": [{"principals": ["services/appstore"], "roles": ["producer"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, cert, key, policy
}
