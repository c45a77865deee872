package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc/credentials"
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

// withRequestMeta returns r with its requestMeta in the context. tlsListener
// says whether r's listener serves TLS (whose HTTP/2 requests carry their
// connection's TLS state in the context rather than in r.TLS).
func withRequestMeta(listener string, tlsListener bool, r *http.Request) *http.Request {
	m := &requestMeta{
		arrival:   time.Now(),
		remote:    r.RemoteAddr,
		userAgent: r.Header.Get("User-Agent"),
		tls:       r.TLS,
		listener:  listener,
	}
	if m.tls == nil && tlsListener {
		// An HTTP/2 connection whose TLS the splitter terminated.
		m.tls, _ = r.Context().Value(connTLSKey{}).(*tls.ConnectionState)
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
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			m.remote = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			m.tls = &ti.State
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ua := md.Get("user-agent"); len(ua) > 0 {
			m.userAgent = ua[0]
		}
	}
	return m
}

// connTLSKey is the context key of the TLS state of a connection whose TLS
// the splitter terminated, for net/http's requests on it.
type connTLSKey struct{}

// withConnTLS is the http.Server's ConnContext: net/http serves the HTTP/2
// connections of a TLS listener as h2c (the splitter has decrypted them), so
// their requests' TLS field is nil and the state comes from here.
func withConnTLS(ctx context.Context, c net.Conn) context.Context {
	if rc, ok := c.(*replayConn); ok && rc.tls != nil {
		return context.WithValue(ctx, connTLSKey{}, rc.tls)
	}
	return ctx
}

// splitTLSCreds are the native gRPC server's transport credentials on a TLS
// listener. The splitter has completed the handshake; these only hand the
// connection's TLS state to gRPC's peer information (credentials.TLSInfo,
// where grpcMeta finds the client certificate), as grpc-go's own TLS
// credentials would.
type splitTLSCreds struct{}

var errNotSplitTLS = errors.New("server: a connection without the splitter's TLS on a TLS listener")

func (splitTLSCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	inner := c
	if w, ok := c.(*sendWatch); ok {
		inner = w.Conn
	}
	rc, ok := inner.(*replayConn)
	if !ok || rc.tls == nil {
		return nil, nil, errNotSplitTLS
	}
	return c, credentials.TLSInfo{State: *rc.tls, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (splitTLSCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("server: splitTLSCreds serve the server side only")
}

func (splitTLSCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (splitTLSCreds) Clone() credentials.TransportCredentials { return splitTLSCreds{} }

func (splitTLSCreds) OverrideServerName(string) error { return nil }
