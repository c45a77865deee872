package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
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
		// The line of a successful request is at debug, usually off: its
		// attributes are built only when it is written.
		if !s.log.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("listener", listener),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.statusCode()),
		}
		if protocol == "grpc" {
			attrs = append(attrs, slog.String("grpc_code", code))
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
			slog.Duration("duration", elapsed),
			slog.String("remote", r.RemoteAddr),
			slog.String("proto", r.Proto),
		)
		s.log.LogAttrs(ctx, level, "request", attrs...)
	})
}

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
