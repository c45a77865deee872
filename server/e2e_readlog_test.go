package server_test

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
)

// TestE2EReadTimeoutThroughNetHTTP: a gRPC call that net/http serves (on an
// HTTP/2 connection that began with a REST request) and whose message stops
// arriving ends at --request-read-timeout as on gRPC's own transport:
// CANCELLED, its log line at warn (a client's error). It ended UNAVAILABLE,
// logged at error as a failure of the server. The deadline of the test only
// bounds a hang.
func TestE2EReadTimeoutThroughNetHTTP(t *testing.T) {
	srv := testserver.Start(t, "--request-read-timeout", "1s")
	c := h2cClient(30 * time.Second)
	// A REST request first: the connection goes to net/http.
	if r, err := c.Get(srv.InternalURL + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", r, err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	// A message announced as 100 bytes, of which 3 come.
	go pw.Write([]byte{0, 0, 0, 0, 100, 1, 2, 3})
	req, _ := http.NewRequest("POST", srv.InternalURL+pb.EventService_SearchEvents_FullMethodName, pr)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("Authorization", "Bearer "+srv.ReaderToken)
	reused := false
	req = req.WithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if !reused {
		t.Fatal("the gRPC call did not go on the REST request's connection")
	}
	code := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status")
	if code != "1" || !strings.Contains(resp.Trailer.Get("Grpc-Message")+resp.Header.Get("Grpc-Message"), "did not arrive within 1s") {
		t.Errorf("the call whose message never came ended with grpc-status %q (%q), want 1 (CANCELLED)", code, resp.Trailer.Get("Grpc-Message"))
	}
	// The request's log line is written when it ends; the server logs
	// no line at error level.
	var line string
	for deadline := time.Now().Add(30 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(srv.Logs(), "\n") {
			if strings.Contains(l, "msg=request") && strings.Contains(l, "SearchEvents") {
				line = l
			}
		}
	}
	t.Logf("grpc-status %s; log: %s", code, line)
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "grpc_code=Canceled") {
		t.Errorf("the call's log line is not a warning of CANCELLED: %s", line)
	}
	if strings.Contains(srv.Logs(), "level=ERROR") {
		t.Errorf("the server logged an error:\n%s", srv.Logs())
	}
}
