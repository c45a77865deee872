package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/internal/testpki"
)

// splitEnv serves one listener through a splitter: a gRPC server (health
// service) on its gRPC side, an http.Server answering "http <proto>" (and
// nothing else: no gRPC) on the other.
type splitEnv struct {
	addr  string
	split *splitter
	grpc  *grpc.Server
	http  *http.Server
	// grpcTLS counts the gRPC calls that found their connection's TLS
	// state, as authentication reads it (grpcMeta).
	grpcTLS atomic.Int32
	logs    syncbuf.Buffer // the splitter's log (TLS handshakes), debug and up
}

func startSplit(t *testing.T, headerWait, idleWait time.Duration) *splitEnv {
	return startSplitTLS(t, headerWait, idleWait, nil)
}

// startSplitTLS is startSplit with the splitter terminating TLS when cfg is
// set; the HTTP side's answers then end in " tls" when the request's TLS
// state reached it (withRequestMeta).
func startSplitTLS(t *testing.T, headerWait, idleWait time.Duration, cfg *tls.Config) *splitEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startSplitOn(t, ln, headerWait, idleWait, cfg)
}

// startSplitOn is startSplitTLS on the listener ln.
func startSplitOn(t *testing.T, ln net.Listener, headerWait, idleWait time.Duration, cfg *tls.Config) *splitEnv {
	t.Helper()
	e := &splitEnv{addr: ln.Addr().String(), split: newSplitter(ln, headerWait, idleWait)}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if grpcMeta(ctx, time.Now()).tls != nil {
			e.grpcTLS.Add(1)
		}
		return h(ctx, req)
	})}
	if cfg != nil {
		e.split.tls = cfg
		e.split.log = slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		opts = append(opts, grpc.Creds(splitTLSCreds{}))
	}
	e.grpc = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(e.grpc, health.NewServer())
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	e.http = &http.Server{Protocols: &protocols, ConnContext: withConnTLS, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		answer := "http " + r.Proto
		if withRequestMeta("test", cfg != nil, r).Context().Value(metaKey{}).(*requestMeta).tls != nil {
			answer += " tls"
		}
		io.WriteString(w, answer)
	})}
	go e.split.serve()
	go e.grpc.Serve(e.split.grpc)
	go e.http.Serve(e.split.http)
	t.Cleanup(func() {
		e.split.close()
		e.grpc.Stop()
		e.http.Close()
	})
	return e
}

func (e *splitEnv) routed() [2]int64 {
	e.split.mu.Lock()
	defer e.split.mu.Unlock()
	return e.split.routed
}

func h2cClient() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
}

func TestSplitRoutesByFirstRequest(t *testing.T) {
	e := startSplit(t, 5*time.Second, 5*time.Second)

	// A gRPC client reaches the gRPC server, which the HTTP side is not.
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for range 3 {
		if _, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("gRPC health check: %v", err)
		}
	}
	if got := e.routed(); got != [2]int64{routeHTTP: 0, routeGRPC: 1} {
		t.Errorf("after one gRPC connection: routed %v", got)
	}

	// REST over h2c goes to net/http, several requests on one connection:
	// the acknowledgement of the splitter's SETTINGS is not passed on, or
	// net/http would close the connection with a protocol error.
	c := h2cClient()
	for i := range 5 {
		resp, err := c.Post("http://"+e.addr+"/x", "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatalf("h2c request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "http HTTP/2.0" {
			t.Fatalf("h2c request %d: %q", i, b)
		}
	}
	// HTTP/1.1.
	resp, err := http.Get("http://" + e.addr + "/y")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "http HTTP/1.1" {
		t.Errorf("HTTP/1.1: %q", b)
	}
	if got := e.routed(); got != [2]int64{routeHTTP: 2, routeGRPC: 1} {
		t.Errorf("after an h2c and an HTTP/1.1 connection: routed %v", got)
	}
}

// TestSplitTLS: behind TLS the splitter routes as on a plain listener, and
// the connection's TLS state reaches both servers' requests.
func TestSplitTLS(t *testing.T) {
	serverCfg, roots := selfSignedTLS(t)
	e := startSplitTLS(t, 5*time.Second, 5*time.Second, serverCfg)

	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 3 {
		if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("gRPC over TLS: %v", err)
		}
	}
	if n := e.grpcTLS.Load(); n != 3 {
		t.Errorf("%d of 3 gRPC calls found the TLS state", n)
	}
	if got := e.routed(); got != [2]int64{routeHTTP: 0, routeGRPC: 1} {
		t.Errorf("after a gRPC connection over TLS: routed %v", got)
	}

	for _, h2 := range []bool{true, false} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}, Timeout: 10 * time.Second}
		want := map[bool]string{true: "http HTTP/2.0 tls", false: "http HTTP/1.1 tls"}[h2]
		for i := range 3 { // several requests on one connection
			resp, err := c.Post("https://"+e.addr+"/x", "application/json", strings.NewReader(`{"n":1}`))
			if err != nil {
				t.Fatalf("REST over TLS, request %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != want {
				t.Errorf("REST over TLS, request %d: %q, want %q", i, b, want)
			}
		}
	}
	if got := e.routed(); got != [2]int64{routeHTTP: 2, routeGRPC: 1} {
		t.Errorf("after REST over TLS with HTTP/2 and HTTP/1.1: routed %v", got)
	}

	// Without ALPN, the first bytes decide, as on a plain listener: an
	// HTTP/2 client with prior knowledge is answered over HTTP/2, an
	// HTTP/1.1 request over HTTP/1.1, both with the TLS state.
	// net/http's client speaks HTTP/2 with prior knowledge only to
	// http:// URLs; its dialer makes the connection a TLS one, without
	// ALPN (wrapped, so that the client does not look into it).
	var priorKnowledge http.Protocols
	priorKnowledge.SetUnencryptedHTTP2(true)
	noALPN := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols: &priorKnowledge,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}).DialContext(ctx, network, addr)
			return struct{ net.Conn }{c}, err
		},
	}}
	for i := range 2 {
		resp, err := noALPN.Post("http://"+e.addr+"/x", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("HTTP/2 over TLS without ALPN, request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "http HTTP/2.0 tls" {
			t.Errorf("HTTP/2 over TLS without ALPN, request %d: %q", i, b)
		}
	}
	tc, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, "GET / HTTP/1.0\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(tc), nil); err != nil {
		t.Errorf("HTTP/1.0 over TLS without ALPN: %v", err)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "http HTTP/1.0 tls" {
		t.Errorf("HTTP/1.0 over TLS without ALPN: %q", b)
	}
	tc.Close()

	// A plain HTTP request: a 400 that says why, then the connection ends.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /v1/events:search HTTP/1.1\r\nHost: x\r\n\r\n")
	got, _ := io.ReadAll(c)
	if want := "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"; string(got) != want {
		t.Errorf("plain HTTP to TLS: %q, want %q", got, want)
	}

	// A client that connects and hangs up (a load balancer's TCP probe).
	probe, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	// Failed handshakes are logged: a plain HTTP request at warn, a probe
	// at debug.
	waitFor(t, func() bool { return strings.Count(e.logs.String(), "TLS handshake failed") >= 2 })
	for _, want := range []string{
		`level=WARN msg="TLS handshake failed" remote=127.0.0.1:`,
		`err="the client sent an HTTP request to an HTTPS server"`,
		`level=DEBUG msg="TLS handshake failed" remote=127.0.0.1:`,
	} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("the splitter's log lacks %q:\n%s", want, e.logs.String())
		}
	}

	// A client that never completes its handshake is closed after the
	// header wait.
	e2 := startSplitTLS(t, 200*time.Millisecond, time.Hour, serverCfg)
	c2, err := net.Dial("tcp", e2.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if b, err := io.ReadAll(c2); err != nil || len(b) != 0 {
		t.Errorf("a silent client: read %q, %v; want EOF", b, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a silent client closed after %s", d)
	}
}

// selfSignedTLS returns a server TLS configuration for 127.0.0.1 offering
// h2 and HTTP/1.1, and the pool that trusts it.
func selfSignedTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	ca := testpki.New(t)
	return &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(2, "split", false)}, NextProtos: []string{"h2", "http/1.1"}}, ca.Pool
}

// TestSplitShortHTTP1Request: a request shorter than the HTTP/2 preface is
// answered, not held waiting for the preface's length.
func TestSplitShortHTTP1Request(t *testing.T) {
	e := startSplit(t, time.Minute, time.Minute)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n") // 18 bytes
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a short request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "http HTTP/1.0" {
		t.Errorf("answer %q", b)
	}
}

// TestSplitWaits: a connection that sends nothing, or an HTTP/2 preface and
// no request, is closed after the splitter's waits; one still being read
// when the splitter closes is closed then.
func TestSplitWaits(t *testing.T) {
	e := startSplit(t, 200*time.Millisecond, 400*time.Millisecond)
	for _, send := range []string{"", http2Preface} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, send)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		got, err := io.ReadAll(c) // the splitter's SETTINGS, then EOF
		c.Close()
		if err != nil {
			t.Errorf("after %q: %v (want EOF)", send, err)
		}
		want := ""
		if send != "" {
			want = string(emptySettings)
		}
		if string(got) != want {
			t.Errorf("after %q: read %q, want %q", send, got, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("after %q: closed after %s", send, d)
		}
	}

	e2 := startSplit(t, time.Hour, time.Hour)
	c, err := net.Dial("tcp", e2.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2Preface)
	waitFor(t, func() bool { e2.split.mu.Lock(); defer e2.split.mu.Unlock(); return len(e2.split.pending) == 1 })
	closePromptly(t, e2.split, c, "a connection that sent no request")
}

// closePromptly closes sp, which must not wait for c, and checks that c is
// closed: EOF, or a reset when what the client sent was not read.
func closePromptly(t *testing.T, sp *splitter, c net.Conn, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { sp.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("close waited for %s", what)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s: %v, want it closed", what, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
	}
}

// frame returns an HTTP/2 frame.
func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	f := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[5:], stream)
	return append(f, payload...)
}

func headerBlock(fields ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return b.Bytes()
}

var settingsAck = frame(frameSettings, flagAck, 0, nil)

// TestReadToFirstRequest covers the frame sequences a client may send before
// its first request's headers are complete.
func TestReadToFirstRequest(t *testing.T) {
	grpcBlock := headerBlock(":method", "POST", ":path", "/grpc.health.v1.Health/Check", "content-type", "application/grpc")
	restBlock := headerBlock(":method", "POST", ":path", "/v1/events:search", "content-type", "application/json")
	settings := frame(frameSettings, 0, 0, []byte{0, 4, 0, 0, 0xff, 0xff})
	window := frame(0x8, 0, 0, []byte{0, 0, 1, 0})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	padded := cat([]byte{3}, grpcBlock, []byte{0, 0, 0})
	priority := cat([]byte{0, 0, 0, 0, 16}, grpcBlock)
	for _, tc := range []struct {
		name      string
		in        []byte
		route     connRoute
		acked     bool
		wantHead  []byte // default: in without the acknowledgement
		trailing  []byte // after the first request, to be passed on
		wantAfter []byte // trailing as passed on, when it differs
	}{
		{name: "gRPC", in: cat(settings, window, frame(frameHeaders, flagEndHeaders, 1, grpcBlock)), route: routeGRPC},
		{name: "REST", in: cat(settings, frame(frameHeaders, flagEndHeaders, 1, restBlock)), route: routeHTTP},
		{name: "no content type", in: cat(settings, frame(frameHeaders, flagEndHeaders, 1, headerBlock(":method", "GET"))), route: routeHTTP},
		{name: "ack before the request", in: cat(settings, settingsAck, frame(frameHeaders, flagEndHeaders, 1, grpcBlock)),
			route: routeGRPC, acked: true, wantHead: cat(settings, frame(frameHeaders, flagEndHeaders, 1, grpcBlock))},
		{name: "ack after the request", in: cat(settings, frame(frameHeaders, flagEndHeaders, 1, grpcBlock)), route: routeGRPC,
			trailing:  cat(frame(0x0, 0, 1, []byte("data")), settingsAck, frame(0x6, 0, 0, make([]byte, 8)), settingsAck),
			wantAfter: cat(frame(0x0, 0, 1, []byte("data")), frame(0x6, 0, 0, make([]byte, 8)), settingsAck)},
		{name: "continuation", in: cat(settings, frame(frameHeaders, 0, 1, grpcBlock[:5]), frame(frameContinuation, flagEndHeaders, 1, grpcBlock[5:])), route: routeGRPC},
		{name: "padded", in: cat(settings, frame(frameHeaders, flagEndHeaders|flagPadded, 1, padded)), route: routeGRPC},
		{name: "priority", in: cat(settings, frame(frameHeaders, flagEndHeaders|flagPriority, 1, priority)), route: routeGRPC},
		{name: "interrupted header block", in: cat(settings, frame(frameHeaders, 0, 1, grpcBlock[:5]), window), route: routeHTTP,
			wantHead: cat(settings, frame(frameHeaders, 0, 1, grpcBlock[:5]))},
		{name: "frame too large", in: cat(settings, frame(0x0, 0, 1, make([]byte, maxFrameBeforeSettings+1))), route: routeHTTP,
			wantHead: settings},
		{name: "bad padding", in: cat(settings, frame(frameHeaders, flagEndHeaders|flagPadded, 1, []byte{200, 1})), route: routeHTTP},
		{name: "headers on stream 0", in: cat(settings, frame(frameHeaders, flagEndHeaders, 0, grpcBlock)), route: routeHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cat([]byte(http2Preface), tc.in, tc.trailing)
			br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
			head, acked, r, err := readToFirstRequest(br)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.wantHead
			if want == nil {
				want = bytes.Replace(tc.in, settingsAck, nil, 1)
			}
			want = cat([]byte(http2Preface), want)
			if r != tc.route || acked != tc.acked || !bytes.Equal(head, want) {
				t.Errorf("route %d acked %v head %q; want %d %v %q", r, acked, head, tc.route, tc.acked, want)
			}
			after, err := io.ReadAll(remainder(br, acked))
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAfter != nil && !bytes.Equal(after, tc.wantAfter) {
				t.Errorf("passed on after the head %q, want %q", after, tc.wantAfter)
			}
			if got, want := append(head, after...), withoutFirstAck(in); !bytes.Equal(got, want) {
				t.Errorf("passed on %q, want %q", got, want)
			}
		})
	}
}

// FuzzSplitStream: whatever a client sends after the preface, the splitter
// passes on all of it but the first empty SETTINGS acknowledgement at a frame
// boundary, in order, and never reads more than its limit before deciding.
func FuzzSplitStream(f *testing.F) {
	grpcBlock := headerBlock(":method", "POST", "content-type", "application/grpc")
	f.Add(frame(frameHeaders, flagEndHeaders, 1, grpcBlock))
	f.Add(append(append([]byte{}, settingsAck...), frame(frameHeaders, flagEndHeaders, 1, grpcBlock)...))
	f.Add(append(frame(frameHeaders, 0, 1, grpcBlock[:3]), frame(frameContinuation, flagEndHeaders, 1, grpcBlock[3:])...))
	f.Add(append(frame(frameHeaders, flagEndHeaders, 1, []byte{0xff, 0xff}), settingsAck...))
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(http2Preface), data...)
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		head, acked, _, err := readToFirstRequest(br)
		if err != nil {
			return // a truncated stream: the connection is closed
		}
		if len(head) > splitLimit+9+maxFrameBeforeSettings {
			t.Fatalf("read %d bytes before deciding", len(head))
		}
		after, err := io.ReadAll(remainder(br, acked))
		if err != nil {
			t.Fatal(err)
		}
		got := append(head, after...)
		if want := withoutFirstAck(in); !bytes.Equal(got, want) {
			t.Fatalf("passed on %q, want %q", got, want)
		}
	})
}

// withoutFirstAck is the reference: in with its first empty SETTINGS
// acknowledgement at a frame boundary removed.
func withoutFirstAck(in []byte) []byte {
	for i := len(http2Preface); i+9 <= len(in); {
		length := int(in[i])<<16 | int(in[i+1])<<8 | int(in[i+2])
		if in[i+3] == frameSettings && in[i+4]&flagAck != 0 && length == 0 {
			return append(append([]byte{}, in[:i]...), in[i+9:]...)
		}
		i += 9 + length
	}
	return in
}

// TestSplitShutdownWaitsForCalls: a server's Shutdown waits for a call in flight on gRPC's
// own transport, refuses new connections, and returns.
func TestSplitShutdownWaitsForCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{})
	g := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		close(entered)
		<-release
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(g, health.NewServer())
	sp := newSplitter(ln, time.Second, time.Second)
	go sp.serve()
	go g.Serve(sp.grpc)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	callErr := make(chan error, 1)
	go func() {
		_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		callErr <- err
	}()
	<-entered
	sp.close()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("GracefulStop returned with a call in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("a new connection was accepted after the splitter closed")
	}
	close(release)
	if err := <-callErr; err != nil {
		t.Errorf("the call in flight: %v", err)
	}
	<-stopped
}

// TestSplitCloseDropsUntakenConnection: close does not wait for a server
// that no longer takes connections; the connection it was to get is closed.
func TestSplitCloseDropsUntakenConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp := newSplitter(ln, time.Second, time.Second)
	go sp.serve() // nobody accepts from sp.http or sp.grpc
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, func() bool { sp.mu.Lock(); defer sp.mu.Unlock(); return sp.routed[routeHTTP] == 1 })
	closePromptly(t, sp, c, "a connection no server took")
}

// exhaustedListener fails its first Accepts as a process out of file
// descriptors does (EMFILE), then accepts.
type exhaustedListener struct {
	net.Listener
	failures atomic.Int32 // Accepts left to fail
}

func (l *exhaustedListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestSplitOutOfDescriptors: a listener whose Accept fails for want of file
// descriptors serves again once they are back. The splitter used to give up
// at the first such failure, and with it both servers: the port stayed
// unserved for good (found by opening connections up to the server's
// RLIMIT_NOFILE: after the client had closed them all, the public listener
// answered nothing, and net/http logged "Accept error ... retrying in 1s"
// every second).
func TestSplitOutOfDescriptors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &exhaustedListener{Listener: ln}
	el.failures.Store(5)
	e := startSplitOn(t, el, 5*time.Second, 5*time.Second, nil)
	resp, err := h2cClient().Get("http://" + e.addr + "/")
	if err != nil {
		t.Fatalf("after %d failed accepts: %v", 5, err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "http HTTP/2.0" {
		t.Errorf("got %q", b)
	}
}
