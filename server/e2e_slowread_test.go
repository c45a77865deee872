package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
)

// TestE2EResponseWriteTimeout: with --response-write-timeout 1s, an answer
// its client does not read (a page of 1,000 events of 8 KiB, 8.5 MB of
// JSON, larger than what the sockets' buffers take) is cut: over HTTP/1.1
// the connection is closed and the client gets a truncated body, over
// HTTP/2 (net/http) the stream is reset and the connection goes on, on gRPC's
// transport the connection is closed and the call fails UNAVAILABLE; each
// is counted in audittrail_response_write_timeouts_total. A client that
// reads gets the whole page. The deadlines of the test only bound a hang.
func TestE2EResponseWriteTimeout(t *testing.T) {
	srv := testserver.Start(t, "--response-write-timeout", "1s")
	big := strings.Repeat("x", 4000)
	for b := range 2 {
		var reqs []string
		for i := range 500 {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(b*500+i) * time.Second).Format(time.RFC3339)
			ev := strings.TrimSuffix(eventBody(at, "big"), "}") + fmt.Sprintf(`, "metadata": {"a": %q, "b": %q}}`, big, big)
			reqs = append(reqs, fmt.Sprintf(`{"eventId": %q, "event": %s}`, newID(), ev))
		}
		if r := call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(reqs, ",")+`]}`); r.status != http.StatusOK {
			t.Fatalf("batch: %s", r)
		}
	}
	const search = `{"pageSize": 1000}`
	page := searchREST(t, srv, srv.InternalURL, search)
	if n := len(names(t, page)); n != 1000 {
		t.Fatalf("a client that reads got %d events, want 1000", n)
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		// A small receive buffer: the answer waits in the server.
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		conn, err := d.Dial("tcp", srv.InternalAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		fmt.Fprintf(conn, "POST /v1/events:search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			srv.ReaderToken, len(search), search)
		waitCuts(t, srv, "http", 1, deadline)
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("reading the cut answer: %v", err)
		}
		if len(b) >= 8<<20 {
			t.Errorf("read %d bytes of the answer after the cut, want it truncated", len(b))
		}
	})

	// The write deadline of a request stays on its HTTP/1.1 connection
	// after the handler (net/http writes the end of the answer then), and
	// net/http clears it before the next request: past it, the next
	// request's "100 Continue" (which net/http writes before the handler
	// writes anything) and answer still go out.
	t.Run("HTTP/1.1 keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.InternalAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(conn)
		for i, expect := range []string{"", "Expect: 100-continue\r\n"} {
			if i > 0 {
				time.Sleep(1500 * time.Millisecond) // past the first request's deadline
			}
			body := `{"pageSize": 1}`
			fmt.Fprintf(conn, "POST /v1/events:search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n",
				srv.ReaderToken, expect, len(body))
			if expect != "" {
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusContinue {
					t.Fatalf("request %d: %v %v, want 100 Continue", i, resp, err)
				}
			}
			io.WriteString(conn, body)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on the connection: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d on the connection: %s", i, resp.Status)
			}
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		c := h2cClient(0)
		req, _ := http.NewRequest("POST", srv.InternalURL+"/v1/events:search", strings.NewReader(search))
		req.Header.Set("Authorization", "Bearer "+srv.ReaderToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
		}
		// The client's transport buffers what its stream's window lets
		// in (4 MiB); the rest waits in the server until the cut.
		waitCuts(t, srv, "http", 2, deadline)
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Error("read the whole answer after the cut, want its stream reset")
		}
		// The connection serves the next request.
		if r, err := c.Get(srv.InternalURL + "/healthz"); err != nil || r.StatusCode != http.StatusOK || r.ProtoMajor != 2 {
			t.Errorf("a request after the cut: %v %v", r, err)
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		conn, err := grpc.NewClient(srv.InternalAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithDeadline(withToken(t, srv.ReaderToken), deadline)
		defer cancel()
		// A unary call as a stream whose answer is never read.
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.EventService_SearchEvents_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(&pb.SearchEventsRequest{PageSize: 1000}); err != nil {
			t.Fatal(err)
		}
		st.CloseSend()
		waitCuts(t, srv, "grpc", 1, deadline)
		var resp pb.SearchEventsResponse
		for err == nil {
			err = st.RecvMsg(&resp)
		}
		if s, _ := status.FromError(err); s.Code() != codes.Unavailable {
			t.Errorf("the call whose answer was not read: %v, want UNAVAILABLE (its connection closed)", err)
		}
		// A call that reads its answer gets it whole.
		got, err := pb.NewEventServiceClient(conn).SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1000})
		if err != nil || len(got.Events) != 1000 {
			t.Errorf("a call that reads: %d events, %v", len(got.GetEvents()), err)
		}
	})
}

// waitCuts waits until the internal listener has cut want answers on
// transport.
func waitCuts(t *testing.T, srv *testserver.Server, transport string, want float64, deadline time.Time) {
	t.Helper()
	series := fmt.Sprintf(`audittrail_response_write_timeouts_total{listener="internal",transport=%q} `, transport)
	for {
		r := call(t, "GET", srv.InternalURL+"/metrics", "", "")
		for _, l := range strings.Split(string(r.body), "\n") {
			if v, ok := strings.CutPrefix(l, series); ok {
				if n, _ := strconv.ParseFloat(v, 64); n >= want {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer cut on %s: /metrics has no %s≥%g", transport, series, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
