package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// DefaultRequestReadTimeout is Config.RequestReadTimeout's default: the time a
// request may take to arrive, from its headers to the end of its body (REST)
// or message (gRPC).
//
// Without it, a request whose body never ended was held for as long as its
// connection stayed open, with what had arrived of it: requests were read
// whole before their callers were authenticated, so anyone who could
// connect could hold up to a request's limit (100 MiB on the internal
// listener) of the server's memory per request, and 250 requests per HTTP/2
// connection. (The body of a REST request whose caller did not authenticate
// is now drained, not kept, but still waited for within this timeout;
// auth_early.go.)
// ReadHeaderTimeout bounds only the headers, and http.Server.ReadTimeout
// would not do: net/http cancels a request's context when it expires, even
// after the body was read, which would end searches and appends in flight.
// The deadline here ends once the interceptors have the request (received),
// before any handler runs.
const DefaultRequestReadTimeout = time.Minute

// receiving is the read deadline of a request being received.
type receiving struct {
	once sync.Once
	stop func()
}

type receivingKey struct{}

// received ends the read deadline of ctx's request: its body or message has
// arrived whole. The first interceptor calls it.
func received(ctx context.Context) {
	if r, ok := ctx.Value(receivingKey{}).(*receiving); ok {
		r.once.Do(r.stop)
	}
}

// DefaultMaxReceiving is Config.MaxReceiving's default: the requests of one
// listener that may be arriving at once.
//
// The read timeout bounds how long a request may take to arrive, not how
// many may: one connection opens 250 HTTP/2 streams, and a client may open
// many connections, each request holding what arrived of it (up to the
// listener's request limit) until the timeout. A review held 1.1 GB of the
// server's memory with one anonymous connection of 250 gRPC calls each one
// byte short of 4 MiB, and 20 such connections would have exhausted this
// machine's 24 GiB within the minute. With the bound, the memory such
// requests can hold is at most MaxReceiving times the listener's request
// limit (public: 256 × 4 MiB = 1 GiB). A request takes a place when its
// headers arrive (with a body, for REST) and gives it back when it has
// arrived whole, so an honest client holds one for the time its body takes
// on the wire: the bound is on slowness, not on requests in progress.
const DefaultMaxReceiving = 256

// receivingSlots counts a listener's requests still arriving.
type receivingSlots struct {
	n   atomic.Int64
	max int64
}

// take takes a place, false when all are taken.
func (r *receivingSlots) take() bool {
	if r.n.Add(1) > r.max {
		r.n.Add(-1)
		return false
	}
	return true
}

func (r *receivingSlots) give() { r.n.Add(-1) }

// full is the error of a request refused for want of a place.
func (r *receivingSlots) full() error {
	return status.Errorf(codes.ResourceExhausted, "the server is receiving %d requests at once on this listener, its limit: try again in a moment", r.max)
}

// receiveTap is the InTapHandle of gRPC's own transport: a call takes a
// place among the requests arriving (refused with RESOURCE_EXHAUSTED when
// none is free), and a call whose message has not arrived timeout after its
// headers has its stream's context cancelled, which ends the transport's
// read of the message; the call ends with CANCELLED, and what arrived of
// the message is dropped. The place is given back when the message has
// arrived (received), or when the call ends without it.
func receiveTap(timeout time.Duration, slots *receivingSlots) tap.ServerInHandle {
	return func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		if !slots.take() {
			return nil, slots.full()
		}
		ctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(timeout, cancel)
		r := &receiving{stop: func() { t.Stop(); slots.give() }}
		context.AfterFunc(ctx, func() { r.once.Do(r.stop) })
		return context.WithValue(ctx, receivingKey{}, r), nil
	}
}

// receiveDeadline takes a place among the requests arriving for r, a REST
// request or a gRPC call through net/http with a body, and gives its body a
// read deadline timeout from now; received ends both, and so does done,
// which the caller defers. A read past the deadline fails (REST: 408,
// limitedBody; gRPC: the call fails). ok is false when no place is free:
// the caller answers RESOURCE_EXHAUSTED.
func receiveDeadline(w http.ResponseWriter, r *http.Request, timeout time.Duration, slots *receivingSlots) (_ *http.Request, done func(), ok bool) {
	if !slots.take() {
		return r, func() {}, false
	}
	rcv := &receiving{stop: slots.give}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
		rcv.stop = func() { _ = rc.SetReadDeadline(time.Time{}); slots.give() }
	} // else a writer that cannot: not net/http's (tests)
	done = func() { rcv.once.Do(rcv.stop) }
	return r.WithContext(context.WithValue(r.Context(), receivingKey{}, rcv)), done, true
}

// grpcBody is the body of a gRPC call served through net/http, whose read
// deadline (receiveDeadline) ends its read like the tap's on gRPC's own
// transport: the call ends CANCELLED. grpc-go's handler transport turns a
// read error into UNAVAILABLE, logged at error level as a failure of the
// server, except an HTTP/2 stream error, whose code it maps (CANCEL to
// CANCELLED).
type grpcBody struct {
	io.ReadCloser
	timeout time.Duration
}

func (b grpcBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = http2.StreamError{Code: http2.ErrCodeCancel,
			Cause: fmt.Errorf("the message did not arrive within %s of its headers: send it faster, or in smaller calls", b.timeout)}
	}
	return n, err
}

// refuseReceiving answers a request for which receiveDeadline found no
// place: RESOURCE_EXHAUSTED, as a REST answer (429, a google.rpc.Status) or a
// gRPC one (a trailers-only response).
func refuseReceiving(w http.ResponseWriter, r *http.Request, slots *receivingSlots) {
	st, _ := status.FromError(slots.full())
	w.Header().Set("Retry-After", "1")
	if isGRPC(r) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", strconv.Itoa(int(st.Code())))
		w.Header().Set("Grpc-Message", encodeGRPCMessage(st.Message()))
		w.WriteHeader(http.StatusOK)
		return
	}
	writeStatus(w, http.StatusTooManyRequests, st.Err())
}

// encodeGRPCMessage percent-encodes a grpc-message header value (the gRPC
// over HTTP/2 protocol: bytes outside printable ASCII, and '%').
func encodeGRPCMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
