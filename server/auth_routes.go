package server

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Route is an extra HTTP route of the public listener (the built-in OIDC
// issuer and the discovery endpoints). Routes answer before the gateway and
// without authentication; each route authenticates what it needs itself.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// serveRoute serves r with the matching route, and reports whether one
// matched. A known path with another method is 405.
func serveRoute(routes []Route, w http.ResponseWriter, r *http.Request) bool {
	known := false
	for _, rt := range routes {
		if rt.Path != r.URL.Path {
			continue
		}
		known = true
		if rt.Method == r.Method || (rt.Method == http.MethodGet && r.Method == http.MethodHead) {
			if info := infoFrom(r.Context()); info != nil {
				info.route = rt.Method + " " + rt.Path
			}
			rt.Handler.ServeHTTP(w, r)
			return true
		}
	}
	if known {
		if info := infoFrom(r.Context()); info != nil {
			info.route = metricMethod(r.Method) + " " + r.URL.Path
		}
		w.Header().Set("Allow", methodsOf(routes, r.URL.Path))
		writeStatus(w, http.StatusMethodNotAllowed, status.Error(codes.Unimplemented, "Method Not Allowed"))
	}
	return known
}

func methodsOf(routes []Route, path string) string {
	s := ""
	for _, rt := range routes {
		if rt.Path == path {
			if s != "" {
				s += ", "
			}
			s += rt.Method
			if rt.Method == http.MethodGet {
				s += ", HEAD"
			}
		}
	}
	return s
}

// metricMethod is a request's method as the metrics' method label may name
// it: one of the standard methods, or OTHER. net/http takes any token as a
// method, up to the header limit (1 MiB): the method as given made the
// label set unbounded, two series for good per method any anonymous client
// invented (100 requests with methods of 64 KiB made /metrics 105 MB;
// TestE2EMetricsMethodLabel).
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}
