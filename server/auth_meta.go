package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// requestMeta is what the HTTP layer knows of a request that the interceptor
// chain needs: when it arrived, from where, with which user agent, and the
// TLS state (client certificate) of its connection. The listener's handler
// puts it in the request's context before gRPC or the gateway see it, so
// both paths find it.
type requestMeta struct {
	arrival   time.Time
	remote    string // host:port
	userAgent string
	tls       *tls.ConnectionState
	listener  string
}

type metaKey struct{}

// withRequestMeta returns r with its requestMeta in the context.
func withRequestMeta(listener string, r *http.Request) *http.Request {
	m := &requestMeta{
		arrival:   time.Now(),
		remote:    r.RemoteAddr,
		userAgent: r.Header.Get("User-Agent"),
		tls:       r.TLS,
		listener:  listener,
	}
	return r.WithContext(context.WithValue(r.Context(), metaKey{}, m))
}

// metaFrom returns the requestMeta of ctx, filled from the gRPC peer and
// metadata when the call did not come through a listener's handler.
func metaFrom(ctx context.Context) *requestMeta {
	if m, ok := ctx.Value(metaKey{}).(*requestMeta); ok {
		return m
	}
	return grpcMeta(ctx, time.Now())
}

// grpcMeta fills a requestMeta from the gRPC peer and metadata of ctx.
func grpcMeta(ctx context.Context, arrival time.Time) *requestMeta {
	m := &requestMeta{arrival: arrival}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		m.remote = p.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ua := md.Get("user-agent"); len(ua) > 0 {
			m.userAgent = ua[0]
		}
	}
	return m
}
