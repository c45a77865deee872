package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// NewJSONMarshaler returns the JSON encoding of the REST API, grpc-gateway's
// defaults made explicit where the Python client depends on them.
//
// Out: lowerCamelCase names, and every field with a default value is emitted
// ("", false, 0, {}, [], the enum's zero name), because the client's
// generated models fail on some missing keys. A message field that is not set
// (the status of an event stored without one) is left out rather than
// written as null, which the client rejects (docs/compat.md). That is
// protojson's EmitDefaultValues; grpc-gateway's default, EmitUnpopulated,
// would write null there.
//
// In: both the lowerCamelCase and the proto (snake_case) names are accepted,
// unknown fields are ignored, and null means unset.
//
// An enum value the API does not know is refused (requestJSON), and the
// answers the API sends most are written by fastjson (fastJSON).
func NewJSONMarshaler() runtime.Marshaler {
	pb := &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}
	return requestJSON{Marshaler: withFastJSON(pb), lenient: pb.UnmarshalOptions}
}

var (
	errMethodNotAllowed = &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        wire.ToStatus(audittrail.Errorf(audittrail.EUnimplemented, "Method Not Allowed")),
	}
)

// MaxPublicRequestSize bounds a request of the public listener, REST body
// or gRPC message, and every request but the producers' creates of the
// internal listener, whose creates take up to audittrail.MaxRequestBodySize
// (requestLimit; wire.ServerCodec for gRPC). Only creates are large: the
// largest other request is a search with every filter field at its limit,
// about 600 KiB of protobuf (3.5 MiB of JSON were every byte written as a
// \u escape), and decoding 100 MiB of a search's metadata_exact map took
// 8.7 s of the server's CPU on the internal listener. A request is on its way before its caller can be refused (its
// credentials are checked before it is decoded, auth_early.go, but a
// refused REST body is still drained), and a body can be held open half
// sent: at 100 MiB, four
// connections of anonymous clients that never finish their bodies held
// 730 MB of the server's memory, and a few dozen more would have exhausted
// it.
const MaxPublicRequestSize = 4 << 20

// requestLimit is the size limit of the REST request r on a listener whose
// limit is max: the producers' create paths take up to max, every other
// request up to MaxPublicRequestSize.
func requestLimit(r *http.Request, max int) int64 {
	if r.Method == http.MethodPost && (r.URL.Path == "/v1/events" || r.URL.Path == "/v1/events:batchCreate") {
		return int64(max)
	}
	return int64(min(max, MaxPublicRequestSize))
}

// bodyTooLarge is the answer to a REST body over limit bytes.
func bodyTooLarge(limit int64) error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err: wire.ToStatus(audittrail.Errorf(audittrail.ETooLarge,
			"request body is too large: the limit is %d bytes", limit)),
	}
}

// gateway returns the REST mux of a listener. It calls impl in process
// through the listener's interceptor chain ic (see intercepted).
func (s *Server) gateway(impl pb.EventServiceServer, ic grpc.UnaryServerInterceptor, public bool) (*runtime.ServeMux, error) {
	allow := allowedMethods(public)
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, NewJSONMarshaler()),
		runtime.WithErrorHandler(httpError),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
			if httpStatus == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", allow[r.URL.Path])
			}
			routingError(ctx, mux, m, w, r, httpStatus)
		}),
		// Only the Authorization header becomes metadata (the gateway
		// always forwards it); no other header can smuggle metadata in.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		// A form-encoded POST is not a GET in disguise here.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithMiddlewares(routeMiddleware),
		// Answers are marshalled whole before they are written, so their
		// length is known: declared, the body goes out without HTTP/1.1
		// chunk framing (for a page of 50 events two socket writes
		// instead of three, and nothing for the client to unframe).
		runtime.WithWriteContentLength(),
	)
	if err := pb.RegisterEventServiceHandlerServer(context.Background(), mux, &intercepted{impl: impl, intercept: ic}); err != nil {
		return nil, err
	}
	routes := []route{
		{http.MethodGet, "/version", s.serveVersion},
		{http.MethodGet, "/healthz", serveHealthz},
		{http.MethodGet, "/readyz", s.serveReadyz},
	}
	if public {
		// Registered after the gateway's routes, these take precedence
		// (the mux tries the latest registration first). They answer
		// before the body is read or anyone is authenticated.
		notAllowed := func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			w.Header().Set("Allow", "") // no method creates here
			_, out := runtime.MarshalerForRequest(mux, r)
			httpError(r.Context(), mux, out, w, r, errMethodNotAllowed)
		}
		routes = append(routes,
			route{http.MethodPost, "/v1/events", notAllowed},
			route{http.MethodPost, "/v1/events:batchCreate", notAllowed})
	} else {
		metrics := s.metrics.Handler()
		routes = append(routes, route{http.MethodGet, "/metrics", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			metrics.ServeHTTP(w, r)
		}})
	}
	for _, rt := range routes {
		if err := mux.HandlePath(rt.method, rt.path, rt.h); err != nil {
			return nil, fmt.Errorf("route %s %s: %w", rt.method, rt.path, err)
		}
	}
	return mux, nil
}

type route struct {
	method, path string
	h            runtime.HandlerFunc
}

// apiMethods is the one method of each path of the REST API (the
// protobuf's HTTP rules; TestAllowedMethods checks it against the OpenAPI
// document generated from them) and of the handlers added beside them.
var apiMethods = map[string]string{
	"/v1/events":             http.MethodPost,
	"/v1/events:batchCreate": http.MethodPost,
	"/v1/events:search":      http.MethodPost,
	"/v1/log/checkpoint":     http.MethodGet,
	"/v1/log/consistency":    http.MethodGet,
	"/v1/log/entries":        http.MethodGet,
	"/v1/log/inclusion":      http.MethodGet,
	"/version":               http.MethodGet,
	"/healthz":               http.MethodGet,
	"/readyz":                http.MethodGet,
	"/metrics":               http.MethodGet, // internal listener
}

// allowedMethods returns the Allow header of a 405 answer for each path of
// a listener (RFC 9110 §15.5.6: a 405 names the methods that are): on the
// public listener nothing creates, and an empty Allow says so. A GET path
// answers HEAD too (asGet).
func allowedMethods(public bool) map[string]string {
	out := maps.Clone(apiMethods)
	for path, method := range out {
		if method == http.MethodGet {
			out[path] = "GET, HEAD"
		}
	}
	if public {
		out["/v1/events"], out["/v1/events:batchCreate"] = "", ""
		delete(out, "/metrics")
	}
	return out
}

// asGet returns a HEAD request of a GET path as the GET the gateway routes
// (RFC 9110 §9.3.2: a server that answers GET answers HEAD, with the same
// header fields). The answer is computed whole, as for GET; net/http, which
// still has the request as HEAD, sends its header fields, Content-Length
// included, and drops its body. Any other request is returned as it is.
func asGet(r *http.Request) *http.Request {
	if r.Method != http.MethodHead || apiMethods[r.URL.Path] != http.MethodGet {
		return r
	}
	get := r.WithContext(r.Context())
	get.Method = http.MethodGet
	return get
}

// httpError writes an error as a google.rpc.Status body with the HTTP status
// of its gRPC code (grpc-gateway's mapping), except that a body over the
// limit is 413.
func httpError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if b, ok := r.Body.(*limitedBody); ok && b.exceeded {
		err = bodyTooLarge(b.limit)
	} else if ok && b.timedOut {
		err = &runtime.HTTPStatusError{
			HTTPStatus: http.StatusRequestTimeout,
			Err: status.Errorf(codes.DeadlineExceeded, "the request body did not arrive within %s of its headers: send it faster, or in smaller requests",
				b.timeout),
		}
	}
	// A body that could not be read or decoded ends here without the
	// interceptors: its authenticated caller is named and charged here.
	if over := chargeUndecoded(r.Context()); over != nil {
		err = over
	}
	if secs, ok := retryAfter(err); ok {
		w.Header().Set("Retry-After", secs)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, challenge{w}, r, err)
}

// routingError answers an unknown path with 404 and a known path with the
// wrong method with 405 (grpc-gateway's default would be 501 for the latter),
// both with a Status body.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		httpError(ctx, mux, m, w, r, errMethodNotAllowed)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// challenge gives a 401 the WWW-Authenticate header of RFC 6750 (the
// gateway's default puts the error message there).
type challenge struct{ http.ResponseWriter }

func (c challenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Bearer realm="audittrail"`)
	}
	c.ResponseWriter.WriteHeader(code)
}

// limitedBody limits a REST request body to its listener's limit
// (audittrail.MaxRequestBodySize, MaxPublicRequestSize) and remembers when a read went over it, so that httpError can answer 413
// (the gateway reports any failure to read the body as INVALID_ARGUMENT). A
// declared Content-Length over the limit fails at the first read, before
// anything is read. Routing answers (404, 405) still come first: they read
// nothing.
type limitedBody struct {
	io.ReadCloser
	limit    int64
	timeout  time.Duration // the request's read timeout (receiveDeadline)
	tooLong  bool          // the declared length is over the limit
	exceeded bool          // a read failed because of the limit
	timedOut bool          // a read failed at the read deadline
	// gate, when set, decides at the first read whether the body is
	// read (gateBody); when not, the body is drained and reads as empty.
	gate   func() bool
	unread bool // the gate refused: every read is io.EOF
}

func limitBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) *limitedBody {
	return &limitedBody{
		ReadCloser: http.MaxBytesReader(w, r.Body, limit),
		limit:      limit,
		timeout:    timeout,
		tooLong:    r.ContentLength > limit,
	}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.gate != nil {
		g := b.gate
		b.gate = nil
		if !g() {
			// Thrown away, so that the answer reaches an HTTP/1.1
			// client still sending; a body over the limit or late is
			// answered as ever (413, 408), whoever sent it.
			if err := b.drain(); err != nil {
				return 0, err
			}
			b.unread = true
		}
	}
	if b.unread {
		return 0, io.EOF
	}
	return b.read(p)
}

func (b *limitedBody) read(p []byte) (int, error) {
	if b.tooLong {
		b.exceeded = true
		return 0, bodyTooLarge(b.limit)
	}
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.exceeded = true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut = true
	}
	return n, err
}

// isGRPC reports whether r is a gRPC call (HTTP/2 with a gRPC content type).
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.version})
}

// serveHealthz is the liveness probe: the process serves HTTP.
func serveHealthz(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serveReadyz is the readiness probe: 200 while serving, 503 once shutting
// down, so that a load balancer stops sending requests.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	if s.readyCheck != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.readyCheck(ctx); err != nil {
			// The probe is unauthenticated: a cause that is not one of
			// ours (a driver's error names hosts) goes to the log only.
			msg := audittrail.ErrorMessage(err)
			if audittrail.ErrorCode(err) == audittrail.EInternal {
				msg = "the store does not answer; the server's log says why"
			}
			s.log.WarnContext(r.Context(), "readiness: the store does not answer", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable", "message": msg})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// errorJSON writes the error bodies the server writes itself (writeStatus).
var errorJSON = NewJSONMarshaler()

// writeStatus answers err, a gRPC status, with httpStatus and its
// google.rpc.Status, written as the gateway writes its errors (httpError):
// the same marshaler, so the same keys in the same order, without spaces.
func writeStatus(w http.ResponseWriter, httpStatus int, err error) {
	st, _ := status.FromError(err)
	b, merr := errorJSON.Marshal(st.Proto())
	if merr != nil { // a Status without details always marshals
		b = []byte(`{"code":13,"message":"failed to marshal error message","details":[]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
