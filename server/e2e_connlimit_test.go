package server_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/testserver"
)

// TestE2EMaxConnectionsPerIP: with --max-connections-per-ip 2, a third
// connection of the address is closed as it is accepted, before any byte,
// and counted in audittrail_connections_refused_total; the other listener
// has its own count; once one of the two is closed, the address connects
// again. The deadlines of the test only bound a hang.
func TestE2EMaxConnectionsPerIP(t *testing.T) {
	srv := testserver.Start(t, "--max-connections-per-ip", "2")
	deadline := time.Now().Add(30 * time.Second)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", srv.PublicAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The two are open on the server once it answers on them.
	for _, c := range held {
		c.SetDeadline(deadline)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if b := make([]byte, 12); mustRead(t, c, b) != "HTTP/1.1 200" {
			t.Fatalf("a connection under the limit: %q", b)
		}
	}
	third, err := net.Dial("tcp", srv.PublicAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetDeadline(deadline)
	io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	n, err := third.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection: read %d bytes, %v; want it closed at once", n, err)
	}
	if r := call(t, "GET", srv.InternalURL+"/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("the internal listener while the public one is full: %s", r)
	}
	m := call(t, "GET", srv.InternalURL+"/metrics", "", "")
	if !strings.Contains(string(m.body), `audittrail_connections_refused_total{listener="public"} 1`+"\n") {
		t.Errorf("/metrics does not count the refused connection:\n%s", grepLines(string(m.body), "connections_refused"))
	}
	// A closed connection gives its place back (the server sees the close
	// when it next reads).
	held[0].Close()
	for {
		c, err := net.Dial("tcp", srv.PublicAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(deadline)
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		b := make([]byte, 12)
		_, err = io.ReadFull(c, b)
		c.Close()
		if err == nil && string(b) == "HTTP/1.1 200" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after one of the two was closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustRead(t *testing.T, c net.Conn, b []byte) string {
	t.Helper()
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + " (" + strconv.Itoa(len(out)) + " lines)"
}
