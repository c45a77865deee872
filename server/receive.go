package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/tap"
)

// DefaultRequestReadTimeout is Config.RequestReadTimeout's default: the time a
// request may take to arrive, from its headers to the end of its body (REST)
// or message (gRPC).
//
// Without it, a request whose body never ended was held for as long as its
// connection stayed open, with what had arrived of it: a request is read
// whole before its caller is authenticated, so anyone who can connect could
// hold up to a request's limit (100 MiB on the internal listener) of the
// server's memory per request, and 250 requests per HTTP/2 connection.
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

// receiveTap is the InTapHandle of gRPC's own transport: a call whose
// message has not arrived timeout after its headers has its stream's context
// cancelled, which ends the transport's read of the message; the call ends
// with CANCELLED, and what arrived of the message is dropped.
func receiveTap(timeout time.Duration) tap.ServerInHandle {
	return func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		ctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(timeout, cancel)
		return context.WithValue(ctx, receivingKey{}, &receiving{stop: func() { t.Stop() }}), nil
	}
}

// receiveDeadline gives the body of r, a REST request or a gRPC call through
// net/http, a read deadline timeout from now, which received ends. A read
// past it fails (REST: 408, limitedBody; gRPC: the call fails).
func receiveDeadline(w http.ResponseWriter, r *http.Request, timeout time.Duration) *http.Request {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(timeout)) != nil {
		return r // a writer that cannot: not net/http's (tests)
	}
	stop := func() { _ = rc.SetReadDeadline(time.Time{}) }
	return r.WithContext(context.WithValue(r.Context(), receivingKey{}, &receiving{stop: stop}))
}
