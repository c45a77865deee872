package server

import (
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultResponseWriteTimeout is Config.ResponseWriteTimeout's default: the
// time a client has to take each part of an answer (responseChunk bytes)
// from the server.
//
// Without it, an answer its client did not read was held, whole, for as
// long as the connection stayed open: the answer is built in memory before
// it is written, and the write waits for the client. 100 HTTP/1.1 searches
// of a page of 1,000 events (8.5 MB of JSON) whose client never read held
// 1.26 GB of the server's heap for good (25 MB once they were cut), and an
// authenticated reader could go on until the memory ran out. 100 such gRPC
// calls on one connection had 0.85 GB in use; they are cut too, but the
// heap stayed as high after the cut, as it does when such a client closes
// its connection itself: what keeps it is not the connection (not
// explained yet). http.Server's WriteTimeout would not do: it bounds the
// whole answer, so a large page on a slow link would be cut however well it
// progressed. The bound is on progress instead: every responseChunk bytes of
// an answer must be taken within the timeout, so a reader on a slow link
// (64 KiB a minute is about 1 KiB/s) keeps its answers.
const DefaultResponseWriteTimeout = time.Minute

// responseChunk is the part of an answer that must be taken within the
// response write timeout: REST answers are written in parts of this size,
// each with its deadline; on gRPC's transport a call's answer must progress
// by this much (or end) within the timeout.
const responseChunk = 64 << 10

// deadlineWriter is the ResponseWriter of a request served by net/http
// (REST, and gRPC through net/http): each write of up to responseChunk
// bytes, and each flush, must complete within timeout. The deadline is the
// connection's on HTTP/1.1 (net/http then closes it) and the stream's on
// HTTP/2 (net/http resets the stream; its connection's other requests go
// on). Either way the handler's write fails and the request ends, releasing
// its answer.
//
// The deadline is renewed at most every eighth of the timeout, so that a
// large answer taken quickly renews it once (on HTTP/2 a renewal is a
// message to the connection's goroutine): a part has between 7/8 of the
// timeout and the timeout to go out. It is not cleared when the handler
// returns: on HTTP/1.1 net/http writes the end of the answer after that,
// under the deadline, and then clears it before it reads the connection's
// next request (TestE2EResponseWriteTimeout, "HTTP/1.1 keep-alive").
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	armed    time.Time // when the deadline was last set; zero: never
	timedOut bool      // a write failed past its deadline
	onCut    func()    // called once when timedOut becomes true
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration, onCut func()) *deadlineWriter {
	return &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, onCut: onCut}
}

// arm sets the write deadline unless it was set less than an eighth of the
// timeout ago.
func (w *deadlineWriter) arm() {
	now := time.Now()
	if !w.armed.IsZero() && now.Sub(w.armed) < w.timeout/8 {
		return
	}
	if w.rc.SetWriteDeadline(now.Add(w.timeout)) == nil {
		w.armed = now
	} // else a writer that cannot: not net/http's (tests)
}

// failed notes a failed write: past the deadline, the answer was cut.
func (w *deadlineWriter) failed() {
	if w.timedOut || w.armed.IsZero() || time.Since(w.armed) < w.timeout {
		return
	}
	w.timedOut = true
	if w.onCut != nil {
		w.onCut()
	}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		w.arm()
		m, err := w.ResponseWriter.Write(p[:min(len(p), responseChunk)])
		n += m
		if err != nil {
			w.failed()
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// Flush keeps http.Flusher, which grpc.Server's ServeHTTP requires.
func (w *deadlineWriter) Flush() {
	w.arm()
	if err := w.rc.Flush(); err != nil {
		w.failed()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HTTP/2 frame types and flags the send watch reads.
const (
	frameData      = 0x0
	frameRSTStream = 0x3
	flagEndStream  = 0x1
)

// sendWatch is a connection of gRPC's own transport whose answers must
// progress: an answer (its HEADERS written) that has not progressed by
// responseChunk bytes of DATA, or ended, within timeout closes the
// connection, and with it every call of the connection, releasing what
// gRPC's transport held for them.
//
// grpc-go offers no write deadline. A call's handler returns once its answer
// is queued; the transport then holds the answer until the client's flow
// control window lets it out, and counts the call among the connection's
// 250 concurrent streams until its trailers are written, after the answer:
// a client that never reads (or never grants window) holds 250 answers per
// connection, for good. Keepalive pings do not help: the client's transport
// answers them while its application reads nothing. So the watch reads the
// frame headers of what the transport writes (HEADERS starts an answer;
// DATA makes it progress; END_STREAM or RST_STREAM ends it) and of what the
// client sends (RST_STREAM: the client cancelled the call, and the
// transport drops its answer).
//
// Progress is counted when the kernel has taken the bytes: a write blocked
// on a client that does not read its socket makes none, and closing the
// connection ends the write.
type sendWatch struct {
	net.Conn
	timeout time.Duration
	onCut   func() // called once when the watch closes the connection

	in  frameScanner // of Read: the client's frames, the preface first
	mu  sync.Mutex
	out frameScanner          // of Write: the transport's frames
	ans map[uint32]answerProg // answers under way, by stream
	tm  *time.Timer           // runs check while ans is not empty
	on  bool                  // tm is armed
	end bool                  // closed
}

// answerProg is the progress of one answer.
type answerProg struct {
	since time.Time // the last progress (or the start)
	taken int       // bytes of DATA since then
}

func newSendWatch(c net.Conn, timeout time.Duration, onCut func()) *sendWatch {
	return &sendWatch{Conn: c, timeout: timeout, onCut: onCut, in: frameScanner{skip: len(http2Preface)}, ans: map[uint32]answerProg{}}
}

func (w *sendWatch) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.in.scan(p[:n], func(typ, _ byte, stream uint32, _ int) {
		if typ == frameRSTStream {
			w.mu.Lock()
			delete(w.ans, stream)
			w.mu.Unlock()
		}
	})
	return n, err
}

func (w *sendWatch) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	var now time.Time
	w.mu.Lock()
	w.out.scan(p[:n], func(typ, flags byte, stream uint32, length int) {
		switch typ {
		case frameHeaders:
			if flags&flagEndStream != 0 {
				delete(w.ans, stream) // trailers, or a trailers-only answer
			} else if _, ok := w.ans[stream]; !ok {
				if now.IsZero() {
					now = time.Now()
				}
				w.ans[stream] = answerProg{since: now}
			}
		case frameData:
			a, ok := w.ans[stream]
			if !ok {
				return
			}
			if flags&flagEndStream != 0 {
				delete(w.ans, stream)
				return
			}
			if a.taken += length; a.taken >= responseChunk {
				if now.IsZero() {
					now = time.Now()
				}
				a.since, a.taken = now, 0
			}
			w.ans[stream] = a
		case frameRSTStream:
			delete(w.ans, stream)
		}
	})
	if len(w.ans) > 0 && !w.on && !w.end {
		w.on = true
		if w.tm == nil {
			w.tm = time.AfterFunc(w.timeout, w.check)
		} else {
			w.tm.Reset(w.timeout)
		}
	}
	w.mu.Unlock()
	return n, err
}

// check closes the connection when an answer has not progressed within the
// timeout, and runs again when the next one could be due.
func (w *sendWatch) check() {
	w.mu.Lock()
	if w.end || len(w.ans) == 0 {
		w.on = false
		w.mu.Unlock()
		return
	}
	now := time.Now()
	oldest := now
	for _, a := range w.ans {
		if a.since.Before(oldest) {
			oldest = a.since
		}
	}
	if wait := oldest.Add(w.timeout).Sub(now); wait > 0 {
		w.tm.Reset(wait)
		w.mu.Unlock()
		return
	}
	w.end, w.on = true, false
	w.mu.Unlock()
	if w.onCut != nil {
		w.onCut()
	}
	w.Conn.Close()
}

func (w *sendWatch) Close() error {
	w.mu.Lock()
	w.end = true
	if w.tm != nil {
		w.tm.Stop()
	}
	w.mu.Unlock()
	return w.Conn.Close()
}

// frameScanner finds the frame headers in an HTTP/2 byte stream read or
// written in pieces.
type frameScanner struct {
	skip int // bytes of the current frame's payload (or of the preface) still to come
	hdr  [9]byte
	nhdr int // bytes of hdr read
}

// scan calls f with each frame header completed by p.
func (s *frameScanner) scan(p []byte, f func(typ, flags byte, stream uint32, length int)) {
	for len(p) > 0 {
		if s.skip > 0 {
			n := min(s.skip, len(p))
			s.skip -= n
			p = p[n:]
			continue
		}
		n := copy(s.hdr[s.nhdr:], p)
		s.nhdr += n
		p = p[n:]
		if s.nhdr < len(s.hdr) {
			return
		}
		s.nhdr = 0
		length := int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
		f(s.hdr[3], s.hdr[4], binary.BigEndian.Uint32(s.hdr[5:9])&(1<<31-1), length)
		s.skip = length
	}
}
