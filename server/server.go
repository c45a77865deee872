package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// Config configures New.
type Config struct {
	// Service holds the rules and the store. Required.
	Service *audittrail.Service
	// Authenticator authenticates the bearer tokens of both listeners.
	// Required.
	Authenticator Authenticator
	// Logger receives one line per request (debug when it succeeded, warn
	// or error when not) and the server's own messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics are served on the internal listener at /metrics; nil means
	// NewMetrics(nil). Give the same Metrics' InstrumentStore to the
	// Service to have the store timed.
	Metrics *Metrics
	// Version is what GET /version reports.
	Version string
	// Ready, when set, is asked by /readyz whether the store can serve
	// (the PostgreSQL store pings its database); nil means always ready
	// while the server runs.
	Ready func(context.Context) error

	// SelfAudit records every SearchEvents and GetLogEntries call, every
	// API token creation and revocation and every backup
	// (docs/security.md); nil means a fail-closed
	// auditor writing to Service.Store with the Service's redaction.
	SelfAudit *audittrail.SelfAuditor
	// Tokens, when set, serves the AdminService (API tokens) on the
	// internal listener.
	Tokens audittrail.TokenStore
	// Backups, when set, takes the AdminService's backups (the embedded
	// store's data directory); without it CreateBackup is UNIMPLEMENTED.
	Backups audittrail.Backuper
	// RateLimit applies to each principal (and to the failed attempts of
	// each source address); the zero value imposes none.
	RateLimit RateLimit
	// PublicRoutes are extra HTTP routes of the public listener (the
	// built-in issuer, discovery).
	PublicRoutes []Route
	// PublicTLS and InternalTLS serve the listeners over TLS; nil means
	// plain HTTP (with h2c for gRPC).
	PublicTLS, InternalTLS *TLSConfig
	// CertPrincipal maps a verified client certificate of the internal
	// listener to the caller (mutual TLS, see InternalTLS.ClientCAFile).
	CertPrincipal CertMapper

	// Log, when set, serves the LogService (verifiable log: checkpoints and
	// proofs, server/log.go) on both listeners, and lets SearchEvents attach
	// inclusion proofs and creates return receipts (server/proofs.go).
	Log VerifiableLog
	// ReceiptWait bounds how long a create asking for a receipt waits for a
	// signed checkpoint covering its events; 0 means DefaultReceiptWait.
	ReceiptWait time.Duration
	// RequestReadTimeout bounds the time a request takes to arrive, from
	// its headers to the end of its body or message; 0 means
	// DefaultRequestReadTimeout.
	RequestReadTimeout time.Duration
	// MaxReceiving bounds the requests of each listener that are still
	// arriving (their body or message not whole yet); more are refused
	// with RESOURCE_EXHAUSTED. 0 means DefaultMaxReceiving.
	MaxReceiving int
	// ResponseWriteTimeout bounds the time a client may take to read each
	// part (64 KiB) of an answer; past it the answer is cut (send.go). 0
	// means DefaultResponseWriteTimeout.
	ResponseWriteTimeout time.Duration
	// MaxConnectionsPerIP bounds the open connections of one client
	// address on each listener; more are closed as they are accepted. 0
	// means no bound.
	MaxConnectionsPerIP int
}

// Server serves the audit trail on a public and an internal listener.
type Server struct {
	log          *slog.Logger
	metrics      *Metrics
	version      string
	readyCheck   func(context.Context) error // Config.Ready
	grpcMethods  map[string]string           // full method -> RPC name, for metrics
	logSvc       *logService                 // nil: no LogService
	public       *endpoint
	internal     *endpoint
	ready        atomic.Bool
	errc         chan error
	readTimeout  time.Duration // Config.RequestReadTimeout
	maxReceiving int           // Config.MaxReceiving
	writeTimeout time.Duration // Config.ResponseWriteTimeout
	perIP        int           // Config.MaxConnectionsPerIP
}

// endpoint is one listener: one http.Server carrying gRPC and REST and, on
// a plain listener, gRPC's own transport for the connections that start
// with a gRPC call (split.go).
type endpoint struct {
	name   string
	grpc   *grpc.Server // gRPC through net/http (ServeHTTP)
	native *grpc.Server // gRPC on its own transport
	http   *http.Server
	tls    *reloadingTLS // nil: plain
	split  *splitter     // set by Start
}

// New returns a server; Start serves it.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("server: Config.Service is required")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("server: Config.Authenticator is required")
	}
	s := &Server{
		readyCheck:   cfg.Ready,
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		version:      cfg.Version,
		grpcMethods:  map[string]string{},
		errc:         make(chan error, 2),
		readTimeout:  cfg.RequestReadTimeout,
		maxReceiving: cfg.MaxReceiving,
		writeTimeout: cfg.ResponseWriteTimeout,
		perIP:        cfg.MaxConnectionsPerIP,
	}
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultResponseWriteTimeout
	}
	if s.maxReceiving <= 0 {
		s.maxReceiving = DefaultMaxReceiving
	}
	if s.readTimeout <= 0 {
		s.readTimeout = DefaultRequestReadTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	s.metrics.watchPrefetch(cfg.Service)
	if cfg.Log != nil {
		s.logSvc = &logService{log: cfg.Log, svc: cfg.Service}
		s.metrics.watchLog(cfg.Log)
	}
	for _, d := range []grpc.ServiceDesc{pb.EventService_ServiceDesc, pb.AdminService_ServiceDesc, pb.LogService_ServiceDesc} {
		for _, m := range d.Methods {
			s.grpcMethods["/"+d.ServiceName+"/"+m.MethodName] = m.MethodName
		}
	}
	impl := &eventService{svc: cfg.Service, log: cfg.Log, receiptWait: cfg.ReceiptWait}
	if impl.receiptWait <= 0 {
		impl.receiptWait = DefaultReceiptWait
	}
	sa := audittrail.SelfAuditor{Store: cfg.Service.Store, RedactPrivateIPs: cfg.Service.RedactPrivateIPs}
	if cfg.SelfAudit != nil {
		sa = *cfg.SelfAudit
	}
	audit := newSelfAudit(sa, s.log, s.metrics.reg).intercept
	lim := newLimiter(cfg.RateLimit)
	var admin pb.AdminServiceServer
	if cfg.Tokens != nil || cfg.Backups != nil {
		admin = &adminService{tokens: cfg.Tokens, backups: cfg.Backups, now: time.Now}
	}
	// The routes authenticate by themselves (the built-in issuer's token
	// endpoint takes API and static tokens): their failures share the
	// addresses' buckets of failed authentications.
	routes := make([]Route, len(cfg.PublicRoutes))
	for i, rt := range cfg.PublicRoutes {
		routes[i] = Route{Method: rt.Method, Path: rt.Path, Handler: limitFailedAuth(lim, rt.Handler)}
	}
	var err error
	// The public listener refuses the create methods before it
	// authenticates; otherwise both run the same chain. The audit
	// interceptor is outside authentication, so refused calls are audited.
	// Each listener's authCheck decides the caller before the request is
	// decoded (auth_early.go); authInterceptor acts on the decision.
	pubAuth := &authCheck{auth: cfg.Authenticator, lim: lim}
	if s.public, err = s.newEndpoint("public", impl, nil, pubAuth, chain(rpcInterceptor, decodeErrors, recoverPanics, publicOnly, audit, recoverPanics,
		authInterceptor(pubAuth)), true, routes, cfg.PublicTLS); err != nil {
		return nil, err
	}
	intAuth := &authCheck{auth: cfg.Authenticator, lim: lim, certs: cfg.CertPrincipal}
	if s.internal, err = s.newEndpoint("internal", impl, admin, intAuth, chain(rpcInterceptor, decodeErrors, recoverPanics, audit, recoverPanics,
		authInterceptor(intAuth)), false, nil, cfg.InternalTLS); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) newEndpoint(name string, impl pb.EventServiceServer, admin pb.AdminServiceServer, ac *authCheck, ic grpc.UnaryServerInterceptor,
	public bool, routes []Route, tlsCfg *TLSConfig) (*endpoint, error) {
	maxRequest := audittrail.MaxRequestBodySize
	// The methods the listener refuses before authentication (publicOnly)
	// never read their request.
	var unread []string
	if public {
		maxRequest = MaxPublicRequestSize
		unread = []string{pb.EventService_CreateEvent_FullMethodName, pb.EventService_BatchCreateEvents_FullMethodName}
	}
	newGRPC := func(opts ...grpc.ServerOption) *grpc.Server {
		g := grpc.NewServer(append([]grpc.ServerOption{
			grpc.UnaryInterceptor(ic),
			grpc.MaxRecvMsgSize(maxRequest),
			grpc.ForceServerCodecV2(wire.ServerCodec(MaxPublicRequestSize)),
		}, opts...)...)
		// The services' descriptors with each method's decoding behind
		// the caller's authentication (gateService).
		g.RegisterService(gateService(pb.EventService_ServiceDesc, ac, unread...), impl)
		if admin != nil {
			g.RegisterService(gateService(pb.AdminService_ServiceDesc, ac), admin)
		}
		if s.logSvc != nil {
			g.RegisterService(gateService(pb.LogService_ServiceDesc, ac), s.logSvc)
		}
		return g
	}
	g := newGRPC()
	// The limits of the http.Server below, on gRPC's transport: as many
	// concurrent calls per connection as net/http's HTTP/2 allows by
	// default, as many bytes of headers, idle connections closed after as
	// long. Clients' keepalive pings are accepted down to every 10 s, with
	// or without calls in flight (grpc-go's default, 5 minutes, would close
	// the connections of producers that ping more often, which net/http
	// never did).
	slots := &receivingSlots{max: int64(s.maxReceiving)}
	var native *grpc.Server
	nativeOpts := []grpc.ServerOption{
		grpc.StatsHandler(&grpcObserver{s: s, listener: name}),
		grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error { return unknownMethod(native, st) }),
		grpc.MaxConcurrentStreams(250),
		// Calls run on up to 64 goroutines kept between calls (a new one
		// when all are busy), whose stacks have grown already: a goroutine
		// per call grew its stack again through the interceptors and the
		// store (runtime.morestack, 6 % of the CPU of single CreateEvents).
		// Side by side, three pairs: 8–14 % less server CPU per single
		// event.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.InTapHandle(receiveTap(s.readTimeout, slots)),
	}
	if tlsCfg != nil {
		// The splitter terminates TLS; the transport learns the
		// connection's TLS state (the client certificate) from it.
		nativeOpts = append(nativeOpts, grpc.Creds(splitTLSCreds{}))
	}
	native = newGRPC(nativeOpts...)
	gw, err := s.gateway(impl, ic, public)
	if err != nil {
		return nil, fmt.Errorf("server: %s listener: %w", name, err)
	}
	if s.logSvc != nil {
		il := &interceptedLog{s: &intercepted{impl: impl, intercept: ic}, l: s.logSvc}
		if err := pb.RegisterLogServiceHandlerServer(context.Background(), gw, il); err != nil {
			return nil, fmt.Errorf("server: %s listener: %w", name, err)
		}
	}
	var rt *reloadingTLS
	if tlsCfg != nil {
		if rt, err = newReloadingTLS(*tlsCfg); err != nil {
			return nil, fmt.Errorf("server: %s listener: %w", name, err)
		}
	}
	tlsListener := rt != nil
	cutHTTP := s.metrics.cut.WithLabelValues(name, "http")
	s.metrics.cut.WithLabelValues(name, "grpc") // reported from 0
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = newDeadlineWriter(w, s.writeTimeout, cutHTTP.Inc)
		r = withRequestMeta(name, tlsListener, r)
		if !isGRPC(r) && len(routes) > 0 && serveRoute(routes, w, r) {
			return
		}
		if r.ContentLength != 0 {
			var done func()
			var ok bool
			if r, done, ok = receiveDeadline(w, r, s.readTimeout, slots); !ok {
				refuseReceiving(w, r, slots)
				return
			}
			defer done()
		}
		if isGRPC(r) {
			if r.ContentLength != 0 {
				r.Body = grpcBody{r.Body, s.readTimeout}
			}
			g.ServeHTTP(w, r)
			return
		}
		body := limitBody(w, r, requestLimit(r, maxRequest), s.readTimeout)
		r.Body = body
		// The body is read only once its caller is authenticated.
		gw.ServeHTTP(w, asGet(gateBody(r, body, ac)))
	})
	// One port, two protocols: HTTP/1.1 for REST clients, and HTTP/2 with
	// prior knowledge (h2c) for gRPC clients and REST clients that speak it.
	// net/http routes both to the same handler; the content type decides
	// between gRPC and REST. On a TLS listener the splitter terminates TLS
	// (split.go): net/http gets HTTP/1.1 connections as *tls.Conn and
	// HTTP/2 ones as the decrypted stream, which it serves as h2c.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &endpoint{
		name:   name,
		grpc:   g,
		native: native,
		tls:    rt,
		http: &http.Server{
			Handler:           s.observe(name, mux),
			ConnContext:       withConnTLS,
			Protocols:         &protocols,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			// An HTTP/2 connection whose client does not read its
			// socket is closed once nothing could be written to it for
			// as long as a part of an answer may take (deadlineWriter
			// bounds each stream's answer; this, the connection's
			// frames, which net/http writes itself).
			HTTP2: &http.HTTP2Config{WriteByteTimeout: s.writeTimeout},
		},
	}, nil
}

// PublicHandler and InternalHandler return the handlers of the two
// listeners, for serving them some other way (tests).
func (s *Server) PublicHandler() http.Handler   { return s.public.http.Handler }
func (s *Server) InternalHandler() http.Handler { return s.internal.http.Handler }

// Start serves the public and internal listeners in the background. An
// error of either (other than a shutdown) is reported on Err.
func (s *Server) Start(public, internal net.Listener) {
	s.ready.Store(true)
	for _, x := range []struct {
		e  *endpoint
		ln net.Listener
	}{{s.public, public}, {s.internal, internal}} {
		x.e.split = newSplitter(x.ln, readHeaderTimeout, idleTimeout)
		x.e.split.log = s.log
		x.e.split.writeTimeout = s.writeTimeout
		x.e.split.onCut = s.metrics.cut.WithLabelValues(x.e.name, "grpc").Inc
		x.e.split.perAddr = s.perIP
		x.e.split.onRefuse = s.metrics.refused.WithLabelValues(x.e.name).Inc
		if x.e.tls != nil {
			x.e.split.tls = x.e.tls.tlsConfig()
		}
		go x.e.split.serve()
		go x.e.native.Serve(x.e.split.grpc) // an error of the listener is reported by net/http's Serve
		go func() {
			if err := x.e.http.Serve(x.e.split.http); !errors.Is(err, http.ErrServerClosed) {
				s.errc <- fmt.Errorf("%s listener %s: %w", x.e.name, x.ln.Addr(), err)
			}
		}()
	}
}

// The limits of a connection, on both transports.
const (
	readHeaderTimeout = 10 * time.Second // from its first byte to its first request's headers (HTTP/1)
	idleTimeout       = 2 * time.Minute  // without a request
	maxHeaderBytes    = 1 << 20          // of a request's headers
	streamWorkers     = 64               // goroutines kept for gRPC calls, per gRPC server
)

// Err reports a listener that stopped serving by itself.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops the server gracefully: /readyz turns 503, the listeners
// stop accepting, idle connections are closed (HTTP/2 clients get a GOAWAY),
// and requests in flight, appends included, run to their end. When ctx ends
// first, the remaining connections are closed and ctx's error is returned.
// Close the store only after Shutdown returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	for _, e := range []*endpoint{s.public, s.internal} {
		if e.split != nil { // nil: never started
			// No new connections; those not yet handed to either server
			// are closed, having no request in flight.
			e.split.close()
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, e := range []*endpoint{s.public, s.internal} {
		wg.Go(func() {
			if err := e.http.Shutdown(ctx); err != nil {
				errs[2*i] = fmt.Errorf("%s listener: %w", e.name, err)
				e.http.Close()
			}
			// No calls remain: this only releases the gRPC server.
			e.grpc.Stop()
		})
		if e.split == nil {
			continue
		}
		wg.Go(func() {
			// GracefulStop sends GOAWAY to every connection and waits for
			// the calls in flight.
			stopped := make(chan struct{})
			go func() { e.native.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				errs[2*i+1] = fmt.Errorf("%s listener (gRPC): %w", e.name, ctx.Err())
				e.native.Stop()
				<-stopped
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
