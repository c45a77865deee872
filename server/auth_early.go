package server

import (
	"context"
	"io"
	"net/http"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Authentication before decoding.
//
// grpc-go's generated method handlers decode the request message before the
// interceptors run, and the gateway decodes a REST body before it calls the
// service; so authInterceptor, alone, would decide the caller of a request
// decoded already. Decoding is what a request costs before it is answered:
// a hostile-clients review spent 55 s of the server's CPU on one anonymous
// 100 MiB search of the internal listener, and 0.5–1.9 s on a 4 MiB one of
// the public listener (the filter's metadata_exact map, decoded and then
// summarised for the self-audit event), without any credential.
//
// So the listener's gate decides the caller (authCheck.check) first, where
// the request is about to be decoded: gRPC's method handlers are wrapped
// (gateService), for gRPC's own transport and gRPC through net/http alike,
// and a REST body checks at its first read (limitedBody.gate). When the
// caller is not authenticated, the request is left empty, unread, and the
// call goes on through the same interceptor chain: authInterceptor takes
// the decision from the context and refuses it (counting the failed
// attempt, or RESOURCE_EXHAUSTED for an address over its limit, whose
// credential was not checked), and the self-audit records the refused call
// with the parameter request_read=false instead of the request's. When the
// caller is authenticated, the request is decoded and authInterceptor takes
// the caller from the decision: the credential is checked once.
//
// A REST body that is not decoded is still read to its end and thrown away
// (drained: at most the listener's limit, within the read timeout), so that
// an HTTP/1.1 client that sends its whole body before it reads the answer
// gets the 401 and its connection stays usable; gRPC's transports end the
// stream of an unread message after the answer (RST_STREAM NO_ERROR).

// gate is the decision of a request's gate, in its context.
type gate struct {
	decided bool
	d       authDecision
	a       *authCheck // what decided: its limiter charges the caller
	charged bool       // the decision's effects were applied (authInterceptor or chargeUndecoded)
}

type gateKey struct{}

// withGate returns ctx with an undecided gate.
func withGate(ctx context.Context) (context.Context, *gate) {
	g := &gate{}
	return context.WithValue(ctx, gateKey{}, g), g
}

// decide decides once, with the authorization values of the request, and
// reports whether the request may be read.
func (g *gate) decide(ctx context.Context, a *authCheck, authorization []string) bool {
	if !g.decided {
		g.d, g.decided, g.a = a.check(ctx, authorization), true, a
	}
	return g.d.authenticated()
}

// takeDecision returns the decision of ctx's gate, if it decided, and
// marks its effects applied: the caller of authInterceptor applies them.
func takeDecision(ctx context.Context) (authDecision, bool) {
	if g, ok := ctx.Value(gateKey{}).(*gate); ok && g.decided {
		g.charged = true
		return g.d, true
	}
	return authDecision{}, false
}

// chargeUndecoded applies an authenticated caller's decision to a request
// that ended before authInterceptor because it could not be decoded (a
// string that is not UTF-8, a body over its limit or malformed): the
// caller is named in the request's log line and takes a token of its rate
// limit, as every request of an authenticated caller does, so that
// malformed requests are neither anonymous in the log nor free of the
// limit. It returns the refusal of a caller over its limit, which answers
// instead of the decoding error, or nil.
func chargeUndecoded(ctx context.Context) error {
	g, ok := ctx.Value(gateKey{}).(*gate)
	if !ok || !g.decided || g.charged || g.d.p == nil {
		return nil
	}
	g.charged = true
	noteAuthenticated(ctx, g.d.p)
	if ok, wait := g.a.lim.allow(g.d.p.Name); !ok {
		return exhausted(ctx, g.d.p.Name, wait)
	}
	return nil
}

// gateFrom returns the decision of ctx's gate, if it decided.
func gateFrom(ctx context.Context) (authDecision, bool) {
	if g, ok := ctx.Value(gateKey{}).(*gate); ok && g.decided {
		return g.d, true
	}
	return authDecision{}, false
}

// requestNotRead reports whether ctx's request was left unread because its
// caller did not authenticate.
func requestNotRead(ctx context.Context) bool {
	d, ok := gateFrom(ctx)
	return ok && !d.authenticated()
}

// gateService returns a copy of d whose unary methods decide the caller
// before they decode their request, and decode it only for an
// authenticated caller. The methods of unread (the listener refuses them
// before authentication: the public listener's creates) never decode their
// request, and decide nothing.
func gateService(d grpc.ServiceDesc, a *authCheck, unread ...string) *grpc.ServiceDesc {
	d.Methods = slices.Clone(d.Methods)
	for i, m := range d.Methods {
		h := m.Handler
		full := "/" + d.ServiceName + "/" + m.MethodName
		if slices.Contains(unread, full) {
			d.Methods[i].Handler = func(srv any, ctx context.Context, _ func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				return h(srv, ctx, leaveEmpty, ic)
			}
			continue
		}
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			ctx, g := withGate(ctx)
			if !g.decide(ctx, a, metadata.ValueFromIncomingContext(ctx, "authorization")) {
				dec = leaveEmpty
			}
			return h(srv, ctx, dec, ic)
		}
	}
	return &d
}

// leaveEmpty is the decoder of a request that is not read.
func leaveEmpty(any) error { return nil }

// gateBody gives the REST request r, whose body is b, a gate in its context
// that decides at the body's first read; the returned request is what the
// gateway serves.
func gateBody(r *http.Request, b *limitedBody, a *authCheck) *http.Request {
	ctx, g := withGate(r.Context())
	b.gate = func() bool { return g.decide(ctx, a, restAuthorization(r.Header)) }
	return r.WithContext(ctx)
}

// restAuthorization returns the Authorization values of a REST request as
// the gateway passes them on as "authorization" metadata: those of
// printable ASCII only (grpc-gateway's runtime.AnnotateIncomingContext).
func restAuthorization(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Authorization") {
		if printableASCII(v) {
			out = append(out, v)
		}
	}
	return out
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// drain reads b to its end and throws it away: nil when it ended (the
// limit and the read deadline still apply: limitedBody.read).
func (b *limitedBody) drain() error {
	buf := make([]byte, 32<<10)
	for {
		_, err := b.read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
