package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// requestInfo collects what the layers of one request learn about it, so
// that the outermost HTTP handler writes one log line and one set of metrics
// per request, for REST and gRPC alike. Each layer writes before it returns
// to the HTTP handler that reads it, so no lock is needed (grpc.Server's
// ServeHTTP returns only after the call's goroutine is done).
type requestInfo struct {
	route    string // REST: "POST /v1/events:search"
	rpc      string // full gRPC method, once the interceptor chain ran
	code     codes.Code
	caller   string // principal name, once authenticated
	internal error  // detail of an internal error, for the log only
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

func noteRPC(ctx context.Context, method string, err error) {
	if info := infoFrom(ctx); info != nil {
		info.rpc, info.code = method, status.Code(err)
	}
}

func noteCaller(ctx context.Context, name string) {
	if info := infoFrom(ctx); info != nil {
		info.caller = name
	}
}

// noteInternal keeps the detail of an internal error for the request's log
// line; outside a request it logs it at once.
func noteInternal(ctx context.Context, err error) {
	if info := infoFrom(ctx); info != nil {
		info.internal = err
		return
	}
	slog.ErrorContext(ctx, "internal error", "err", err)
}

// routeMiddleware records the REST route that the gateway matched.
func routeMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if info := infoFrom(r.Context()); info != nil {
			if pat, ok := runtime.HTTPPattern(r.Context()); ok {
				info.route = r.Method + " " + pat.String()
			}
		}
		next(w, r, params)
	}
}

// observe wraps the handler of a listener: it times the request and, once it
// is done, counts it and writes its log line (debug when it succeeded, warn
// for a caller's error, error for a server's).
func (s *Server) observe(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		ctx := context.WithValue(r.Context(), infoKey{}, info)
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		elapsed := time.Since(start)

		protocol, method, code := "http", info.route, strconv.Itoa(rec.statusCode())
		level := slog.LevelDebug
		switch {
		case rec.statusCode() >= 500:
			level = slog.LevelError
		case rec.statusCode() >= 400:
			level = slog.LevelWarn
		}
		if method == "" {
			method = "unmatched"
		}
		if isGRPC(r) {
			protocol = "grpc"
			c := info.code
			if info.rpc == "" {
				// The call ended before the interceptors (unknown method,
				// message too large): the code is in the trailers.
				c = codes.Unknown
				if n, err := strconv.Atoi(rec.Header().Get("Grpc-Status")); err == nil {
					c = codes.Code(n)
				}
			}
			method, code = "unknown", c.String()
			if name, ok := s.grpcMethods[r.URL.Path]; ok {
				method = name
			}
			level = grpcLogLevel(c)
		}
		if info.internal != nil {
			level = slog.LevelError
		}
		s.metrics.observeRequest(listener, protocol, method, code, elapsed)
		s.logRequest(ctx, level, info, requestLine{listener, r.Method, r.URL.Path, rec.statusCode(), protocol, code, elapsed, r.RemoteAddr, r.Proto})
	})
}

// requestLine is what a request's log line says besides its requestInfo.
type requestLine struct {
	listener, method, path string
	status                 int
	protocol, code         string
	elapsed                time.Duration
	remote, proto          string
}

// logRequest writes the log line of a request. The line of a successful
// request is at debug, usually off: its attributes are built only when it is
// written.
func (s *Server) logRequest(ctx context.Context, level slog.Level, info *requestInfo, l requestLine) {
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("listener", l.listener),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.Int("status", l.status),
	}
	if l.protocol == "grpc" {
		attrs = append(attrs, slog.String("grpc_code", l.code))
	}
	if info.rpc != "" {
		attrs = append(attrs, slog.String("rpc", info.rpc[strings.LastIndexByte(info.rpc, '/')+1:]))
	}
	if info.caller != "" {
		attrs = append(attrs, slog.String("caller", info.caller))
	}
	if info.internal != nil {
		attrs = append(attrs, slog.String("err", info.internal.Error()))
	}
	attrs = append(attrs,
		slog.Duration("duration", l.elapsed),
		slog.String("remote", l.remote),
		slog.String("proto", l.proto),
	)
	s.log.LogAttrs(ctx, level, "request", attrs...)
}

// grpcObserver is observe for the calls on gRPC's own transport (split.go),
// as a stats handler, so that calls refused before the interceptors (an
// unknown method, a message too large) are counted too. It also puts the
// call's requestMeta in its context, as the listener's handler does for the
// calls that come through net/http.
type grpcObserver struct {
	s        *Server
	listener string
}

// observedMethod is the context key of the call's full method name, which
// stats.End does not carry.
type observedMethod struct{}

func (o *grpcObserver) TagRPC(ctx context.Context, t *stats.RPCTagInfo) context.Context {
	m := grpcMeta(ctx, time.Now())
	m.listener = o.listener
	info := &requestInfo{}
	ctx = context.WithValue(ctx, metaKey{}, m)
	ctx = context.WithValue(ctx, infoKey{}, info)
	return context.WithValue(ctx, observedMethod{}, t.FullMethodName)
}

func (o *grpcObserver) HandleRPC(ctx context.Context, st stats.RPCStats) {
	end, ok := st.(*stats.End)
	if !ok {
		return
	}
	full, _ := ctx.Value(observedMethod{}).(string)
	info := infoFrom(ctx)
	if info == nil {
		return
	}
	c := status.Code(end.Error)
	if info.rpc != "" {
		c = info.code
	}
	method, ok := o.s.grpcMethods[full]
	if !ok {
		method = "unknown"
	}
	elapsed := end.EndTime.Sub(end.BeginTime)
	o.s.metrics.observeRequest(o.listener, "grpc", method, c.String(), elapsed)
	level := grpcLogLevel(c)
	if info.internal != nil {
		level = slog.LevelError
	}
	o.s.logRequest(ctx, level, info, requestLine{o.listener, http.MethodPost, full, http.StatusOK, "grpc", c.String(), elapsed, metaFrom(ctx).remote, "HTTP/2.0"})
}

// unknownMethod answers a call of a method g does not have, as grpc.Server
// does by itself, but through a handler, so that the stats handler sees the
// call end and counts it.
func unknownMethod(g *grpc.Server, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	name := strings.TrimPrefix(full, "/")
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return status.Errorf(codes.Unimplemented, "malformed method name: %q", full)
	}
	service, method := name[:i], name[i+1:]
	if _, ok := g.GetServiceInfo()[service]; ok {
		return status.Errorf(codes.Unimplemented, "unknown method %v for service %v", method, service)
	}
	return status.Errorf(codes.Unimplemented, "unknown service %v", service)
}

func (o *grpcObserver) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (o *grpcObserver) HandleConn(context.Context, stats.ConnStats)                       {}

func grpcLogLevel(c codes.Code) slog.Level {
	switch c {
	case codes.OK:
		return slog.LevelDebug
	case codes.Unknown, codes.Internal, codes.DataLoss, codes.Unavailable:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// recorder remembers the status code written through it. It keeps
// http.Flusher, which grpc.Server's ServeHTTP requires.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
