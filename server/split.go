package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2/hpack"
)

// One port serves gRPC and REST (HTTP/1.1, and HTTP/2 with prior knowledge).
// net/http can serve both, and did: the gRPC server's ServeHTTP handled the
// calls that net/http's HTTP/2 server decoded. That path costs a goroutine
// hand-off and a flush per frame written: measured side by side
// (docs/design/performance.md), single CreateEvent calls from 64 producers
// spent 115–134 µs of the server's CPU each through it and 58–72 through
// grpc-go's own transport. So a plain listener's connections are split before
// either server sees them: an HTTP/2 connection whose first request has a
// gRPC content type goes to the gRPC server's own transport, every other
// connection to net/http, which still serves gRPC through ServeHTTP when a
// connection's later requests change protocol.
//
// On a TLS listener the splitter terminates TLS itself, so that it can read
// the first request there too: a connection that negotiates HTTP/1.1 by ALPN
// goes to net/http as the *tls.Conn (net/http fills the requests' TLS state
// from it); one that negotiates h2, or nothing, is split as above, and its
// TLS state travels with it (replayConn.tls) to gRPC's peer information and
// to the requests' context.
//
// The first request's content type is in an HPACK-encoded HEADERS frame, and
// gRPC clients send no request before they have read the server's SETTINGS.
// The splitter therefore sends an empty SETTINGS frame itself, reads the
// client's frames up to its first HEADERS, and replays them to the server it
// chose, which sends its own SETTINGS. The client acknowledges both; the
// acknowledgement of the splitter's is removed from the stream, since a
// server that receives an acknowledgement of settings it never sent (net/http)
// closes the connection with a protocol error.
//
// Rejected: routing every HTTP/2 connection to the gRPC transport (as etcd's
// cmux matcher does) would end REST over h2c, which is documented; a third
// port for gRPC would change every client's configuration.

const (
	http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// splitLimit bounds what the splitter reads before it decides: the
	// client's first frames up to its first request's headers. A client
	// whose first frames do not fit (or do not parse) goes to net/http,
	// which serves both protocols.
	splitLimit = 64 << 10
	// maxFrameBeforeSettings is HTTP/2's initial SETTINGS_MAX_FRAME_SIZE:
	// the client may not send a larger frame before it has read a SETTINGS
	// frame raising it, and the splitter's raises nothing.
	maxFrameBeforeSettings = 16384
)

const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// emptySettings is a SETTINGS frame without parameters: length 0, type 4,
// no flags, stream 0.
var emptySettings = []byte{0, 0, 0, frameSettings, 0, 0, 0, 0, 0}

// connRoute is where a connection goes.
type connRoute int

const (
	routeHTTP connRoute = iota // net/http: HTTP/1.1, REST over h2c, anything unrecognised
	routeGRPC                  // the gRPC server's own transport
)

// splitter accepts the connections of one listener and hands each to the
// gRPC server's transport or to net/http, through two queue listeners.
type splitter struct {
	ln   net.Listener
	grpc *queueListener
	http *queueListener
	// tls, when set, is the listener's TLS: the splitter completes each
	// connection's handshake (within headerWait) before it reads it.
	tls *tls.Config
	// log receives failed TLS handshakes and failed accepts (nil: not logged).
	log *slog.Logger
	// headerWait bounds the wait for an HTTP/1 connection's first bytes
	// (net/http then bounds its headers) or an HTTP/2 connection's
	// preface; idleWait an HTTP/2 connection's first request. A connection
	// that waits longer is closed, as either server would.
	headerWait, idleWait time.Duration
	// writeTimeout, when set, is the response write timeout of the
	// connections handed to gRPC's transport (sendWatch); onCut counts
	// those it closes.
	writeTimeout time.Duration
	onCut        func()
	// perAddr, when positive, bounds the open connections of one client
	// address (limitAddr); onRefuse counts the connections refused.
	perAddr  int
	onRefuse func()
	openMu   sync.Mutex     // not mu: close closes connections with mu held
	open     map[string]int // open connections by address, while perAddr > 0

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections being classified
	closed  bool
	closing chan struct{} // closed by close: a connection its server has not taken yet is dropped
	routed  [2]int64      // connections handed over, by connRoute (tests)
	wg      sync.WaitGroup
}

func newSplitter(ln net.Listener, headerWait, idleWait time.Duration) *splitter {
	return &splitter{
		ln:         ln,
		grpc:       newQueueListener(ln.Addr()),
		http:       newQueueListener(ln.Addr()),
		headerWait: headerWait,
		idleWait:   idleWait,
		pending:    map[net.Conn]struct{}{},
		closing:    make(chan struct{}),
	}
}

// serve accepts connections until the listener fails or is closed; then the
// queue listeners report the same error to their servers. A temporary
// failure (the process out of file descriptors: EMFILE, ENFILE) is waited
// out, 5 ms doubling to 1 s between tries, as net/http's Serve does. It used
// to end serve: a client that opened connections up to the descriptor limit
// left the port unserved for good, its later connections queued unanswered
// and net/http retrying the closed queue every second, after the client had
// gone.
func (s *splitter) serve() error {
	var wait time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				// Shutdown: the servers close their queues themselves.
				return nil
			}
			if temporary(err) {
				wait = min(max(2*wait, 5*time.Millisecond), time.Second)
				if s.log != nil {
					s.log.Warn("accepting a connection failed; trying again", "err", err, "wait", wait)
				}
				time.Sleep(wait)
				continue
			}
			s.grpc.fail(err)
			s.http.fail(err)
			return err
		}
		wait = 0
		if s.perAddr > 0 {
			var ok bool
			if c, ok = s.limitAddr(c); !ok {
				c.Close()
				if s.onRefuse != nil {
					s.onRefuse()
				}
				continue
			}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.pending[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.classify(c)
	}
}

// limitAddr counts c among its address's open connections and returns it
// wrapped so that closing it gives its place back; false when the address
// has perAddr open already.
//
// The connection is wrapped below everything else (TLS, replayConn,
// sendWatch), which all close it through the wrapper, as do the servers.
// A refused connection is closed at once, without an answer: the client sees
// its connection reset or closed before any byte, as when a listen queue
// overflows.
func (s *splitter) limitAddr(c net.Conn) (net.Conn, bool) {
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.open[addr] >= s.perAddr {
		return c, false
	}
	if s.open == nil {
		s.open = map[string]int{}
	}
	s.open[addr]++
	return &countedConn{Conn: c, release: func() {
		s.openMu.Lock()
		if s.open[addr]--; s.open[addr] <= 0 {
			delete(s.open, addr)
		}
		s.openMu.Unlock()
	}}, true
}

// countedConn is a connection counted among its address's; Close gives its
// place back, once.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// temporary reports whether an error of Accept passes: a timeout, or an
// error that says so (net/http's test; EMFILE, ENFILE, ECONNABORTED).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// classify reads the start of c and hands it over.
func (s *splitter) classify(c net.Conn) {
	defer s.wg.Done()
	c.SetDeadline(time.Now().Add(s.headerWait))
	r, conn, err := s.route(c)
	c.SetDeadline(time.Time{})
	s.mu.Lock()
	_, ours := s.pending[c]
	delete(s.pending, c)
	if err != nil || !ours || s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.routed[r]++
	s.mu.Unlock()
	q := s.http
	if r == routeGRPC {
		q = s.grpc
		if s.writeTimeout > 0 {
			conn = newSendWatch(conn, s.writeTimeout, s.onCut)
		}
	}
	if !q.put(conn, s.closing) {
		conn.Close()
	}
}

// route decides where c goes and returns the connection to hand over.
func (s *splitter) route(c net.Conn) (connRoute, net.Conn, error) {
	if s.tls == nil {
		return sniff(c, s.idleWait)
	}
	tc := tls.Server(c, s.tls)
	if err := tc.Handshake(); err != nil {
		s.handshakeFailed(c, err)
		return 0, nil, err
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == "http/1.1" {
		// net/http reads the TLS state from the *tls.Conn.
		return routeHTTP, tc, nil
	}
	// h2, or no ALPN at all: an HTTP/2 client with prior knowledge is
	// told from an HTTP/1 one by its first bytes, as on a plain listener.
	r, conn, err := sniff(tc, s.idleWait)
	if err != nil {
		return 0, nil, err
	}
	conn.(*replayConn).tls = &st
	return r, conn, nil
}

// handshakeFailed answers a plain HTTP request sent to a TLS listener with a
// 400 that says so, as net/http does, and logs the failure: at debug when
// the client went away (load balancers' TCP probes do that all day), at warn
// otherwise (an expired or unknown client certificate, a protocol version
// refused).
func (s *splitter) handshakeFailed(c net.Conn, err error) {
	var re tls.RecordHeaderError
	reason := err.Error()
	if errors.As(err, &re) && re.Conn != nil && recordHeaderLooksLikeHTTP(re.RecordHeader) {
		io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		reason = "the client sent an HTTP request to an HTTPS server"
	}
	if s.log == nil || errors.Is(err, net.ErrClosed) { // closed by close: shutting down
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "TLS handshake failed", "remote", c.RemoteAddr().String(), "err", reason)
}

// recordHeaderLooksLikeHTTP reports whether the first five bytes of what
// should have been a TLS record start an HTTP request.
func recordHeaderLooksLikeHTTP(h [5]byte) bool {
	switch string(h[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// close stops accepting and closes the connections not yet handed over.
// The servers' own shutdown closes the queue listeners.
func (s *splitter) close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.closing)
	}
	s.closed = true
	for c := range s.pending {
		c.Close()
		delete(s.pending, c)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// sniff decides where c goes and returns the connection to hand over: c with
// what was read replayed first.
func sniff(c net.Conn, idleWait time.Duration) (connRoute, net.Conn, error) {
	// Small: the splitter peeks at most a preface or a frame header, and
	// the reader stays under the connection for its lifetime.
	br := bufio.NewReaderSize(c, 4096)
	// HTTP/1 or HTTP/2? A request line never starts like the preface past
	// its first two bytes ("PR"), so a short HTTP/1 request is not held
	// waiting for 24 bytes.
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return 0, nil, err
		}
		if !strings.HasPrefix(http2Preface, string(b)) {
			return routeHTTP, &replayConn{Conn: c, r: br}, nil
		}
		if n == len(http2Preface) {
			break
		}
	}
	c.SetReadDeadline(time.Now().Add(idleWait))
	c.SetWriteDeadline(time.Now().Add(idleWait))
	_, err := c.Write(emptySettings)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		return 0, nil, err
	}
	head, acked, r, err := readToFirstRequest(br)
	if err != nil {
		return 0, nil, err
	}
	return r, &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(head), remainder(br, acked))}, nil
}

// remainder is what a server reads after the head: the rest of the stream,
// less the acknowledgement of the splitter's SETTINGS when the head did not
// hold it.
func remainder(br *bufio.Reader, acked bool) io.Reader {
	if acked {
		return br
	}
	return &ackFilter{r: br}
}

// readToFirstRequest reads the preface and the client's frames up to and
// including its first request's header block. It returns what the chosen
// server must read first (without the client's acknowledgement of the
// splitter's SETTINGS, when that came before the request), whether that
// acknowledgement was seen, and the route. A stream that does not parse as
// the start of an HTTP/2 client's goes to net/http, which answers it as
// HTTP/2 requires; an error is a failed read (the connection is closed).
func readToFirstRequest(br *bufio.Reader) (head []byte, acked bool, r connRoute, err error) {
	head = make([]byte, len(http2Preface), 1024)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, false, 0, err
	}
	var block []byte  // the first request's header block
	var stream uint32 // its stream, while CONTINUATION frames are due
	for len(head) <= splitLimit {
		h, err := br.Peek(9)
		if err != nil {
			return nil, false, 0, err
		}
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		typ, flags := h[3], h[4]
		id := binary.BigEndian.Uint32(h[5:9]) & (1<<31 - 1)
		if length > maxFrameBeforeSettings {
			return head, acked, routeHTTP, nil
		}
		if stream != 0 && (typ != frameContinuation || id != stream) {
			return head, acked, routeHTTP, nil // a header block must continue at once
		}
		if !acked && typ == frameSettings && flags&flagAck != 0 && length == 0 {
			br.Discard(9) // peeked: cannot fail
			acked = true
			continue
		}
		n := len(head)
		head = append(head, make([]byte, 9+length)...)
		if _, err := io.ReadFull(br, head[n:]); err != nil {
			return nil, false, 0, err
		}
		payload := head[n+9:]
		switch typ {
		case frameHeaders:
			frag, ok := headerFragment(payload, flags)
			if !ok || id == 0 || stream != 0 {
				return head, acked, routeHTTP, nil
			}
			block = append(block, frag...)
			stream = id
		case frameContinuation:
			if stream == 0 {
				return head, acked, routeHTTP, nil
			}
			block = append(block, payload...)
		default:
			continue
		}
		if flags&flagEndHeaders != 0 {
			if isGRPCContentType(contentType(block)) {
				return head, acked, routeGRPC, nil
			}
			return head, acked, routeHTTP, nil
		}
	}
	return head, acked, routeHTTP, nil
}

// headerFragment returns the header block fragment of a HEADERS frame's
// payload, without its padding and priority fields.
func headerFragment(p []byte, flags byte) ([]byte, bool) {
	pad := 0
	if flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad, p = int(p[0]), p[1:]
	}
	if flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}

// contentType decodes an HPACK header block (a first one: its dynamic table
// starts empty) and returns its content-type, or "" when it has none or does
// not decode.
func contentType(block []byte) string {
	var ct string
	d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" && ct == "" {
			ct = f.Value
		}
	})
	d.SetMaxStringLength(splitLimit)
	if _, err := d.Write(block); err != nil {
		return ""
	}
	if err := d.Close(); err != nil {
		return ""
	}
	return ct
}

// isGRPCContentType is isGRPC's test on a content type.
func isGRPCContentType(ct string) bool { return strings.HasPrefix(ct, "application/grpc") }

// ackFilter passes a client's frames through, less the first empty SETTINGS
// frame with the ACK flag: the acknowledgement of the splitter's SETTINGS,
// when it comes after the first request. Once that is removed it copies
// bytes without looking at them.
type ackFilter struct {
	r    *bufio.Reader
	done bool
	left int // bytes of the current frame not yet passed on
}

func (f *ackFilter) Read(p []byte) (int, error) {
	if f.done {
		return f.r.Read(p)
	}
	for f.left == 0 {
		h, err := f.r.Peek(9)
		if err != nil {
			if len(h) > 0 {
				// A truncated frame header: pass it on, the server
				// reports the error.
				f.done = true
				return f.r.Read(p)
			}
			return 0, err
		}
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if h[3] == frameSettings && h[4]&flagAck != 0 && length == 0 {
			if _, err := f.r.Discard(9); err != nil {
				return 0, err
			}
			f.done = true
			return f.r.Read(p)
		}
		f.left = 9 + length
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	return n, err
}

// replayConn is a connection whose first bytes, already read, come from r.
// It does not offer a ConnectionState method: net/http would then take it
// for a TLS connection and not serve HTTP/2 with prior knowledge on it.
type replayConn struct {
	net.Conn
	r   io.Reader
	tls *tls.ConnectionState // the TLS the splitter terminated; nil: none
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// queueListener is a net.Listener whose connections are handed to it.
type queueListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error // what Accept returns once done
}

func newQueueListener(addr net.Addr) *queueListener {
	return &queueListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the server's Accept; false when the listener is closed or
// abort is.
func (l *queueListener) put(c net.Conn, abort <-chan struct{}) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	case <-abort:
		return false
	}
}

func (l *queueListener) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	l.once.Do(func() { close(l.done) })
}

func (l *queueListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

func (l *queueListener) Close() error {
	l.fail(net.ErrClosed)
	return nil
}

func (l *queueListener) Addr() net.Addr { return l.addr }
