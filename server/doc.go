// Package server is the transport of the audit trail: the gRPC EventService
// and its REST mapping (grpc-gateway), served on two listeners.
//
// The public listener serves SearchEvents to auditors and GET /version to the
// Python client's login probe; the REST create paths answer 405 there before
// any authentication, as the H2O service does, and the gRPC create methods
// answer UNIMPLEMENTED. The internal listener serves producers (CreateEvent,
// BatchCreateEvents), SearchEvents, and /metrics for operators. Both carry
// /healthz and /readyz.
//
// Each listener is one port carrying gRPC and REST: an http.Server that speaks
// HTTP/1.1 and unencrypted HTTP/2 (prior knowledge, as gRPC clients use it)
// hands requests with an application/grpc content type to grpc.Server's
// ServeHTTP and everything else to the grpc-gateway mux. A splitter
// (split.go) sends the connections whose first request is a gRPC call to a
// second grpc.Server, on gRPC's own transport, which costs the server about
// half as much CPU per call; its stats handler logs and counts those calls as
// the http.Server's handler does the others. On a TLS listener the splitter
// terminates TLS before it looks, and the connection's TLS state (the client
// certificate) goes with the connection to either server.
//
// There is one authentication path. REST requests are not authenticated by an
// HTTP middleware: the gateway calls the EventService in process through the
// same unary interceptor chain that native gRPC calls run through, with the
// Authorization header as the "authorization" metadata. So a REST request and
// a gRPC request are authenticated, authorized, logged and counted by the same
// code. Authentication is the Authenticator interface (package token: static
// tokens, API tokens, OIDC access tokens, the built-in issuer's), plus client
// certificates on the internal listener. The caller is decided before its
// request is decoded, where the request is about to be read (a gRPC method's
// decoder, a REST body's first read: auth_early.go), and a request is
// decoded only for a caller that authenticated; the interceptor acts on that
// decision. Authorization decisions are the
// domain functions audittrail.CanSearch, audittrail.CanCreate and
// audittrail.CanManageTokens, called by the handlers. The self-audit
// interceptor, outside authentication, records every search and token
// administration call (docs/security.md).
//
// The handlers hold no rules: they convert with package internal/wire, call
// audittrail.Service, and map errors with wire.ToStatus, logging the detail of
// internal errors and never sending it.
package server
