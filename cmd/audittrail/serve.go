package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/postgres"
	"github.com/audittrail/audittrail/server"
	"github.com/audittrail/audittrail/witness"
)

// ServeCommand implements "audittrail serve": it runs a Main until SIGINT or
// SIGTERM, then shuts it down gracefully. A second signal ends the process at
// once.
type ServeCommand struct {
	Stdout, Stderr io.Writer
}

const serveSynopsis = `usage: audittrail serve [flags]

Runs the audit trail server on the embedded store in --data-dir (or, with
--store postgres://..., on PostgreSQL: docs/postgres.md), with two
listeners, each serving gRPC and REST on one port:

  public    SearchEvents, the verifiable log (/v1/log/...), GET /version,
            /healthz, /readyz, the built-in OIDC issuer and discovery
            documents (the REST create paths answer 405, gRPC create
            UNIMPLEMENTED)
  internal  CreateEvent, BatchCreateEvents, SearchEvents, the verifiable
            log, API tokens and backups (AdminService), GET /version,
            /healthz, /readyz, /metrics

Requests authenticate with "Authorization: Bearer <token>": the reader token
may search, the producer token may create, the admin token may manage API
tokens ("audittrail token"); API tokens and the access tokens of --oidc-issuer
carry their own roles (--policy binds OIDC identities to roles). The public
listener is also the OIDC issuer of API tokens and serves the H2O Cloud
discovery documents, so that h2o_audit_trail.login() works against it. Every
search is recorded as an event of the server itself. Without any credential
the server refuses to start, unless --dev generates them. docs/security.md
describes it all.

When both listeners are up, one line goes to standard output:
  audittrail: ready public=http://HOST:PORT internal=http://HOST:PORT
Logs go to standard error. Every flag can also be set by the environment
variable named in its description; a flag given on the command line wins.
`

// Usage returns the help text.
func (c *ServeCommand) Usage() string {
	return usageText(serveSynopsis, NewMain().flagSet())
}

// Run runs the command with the arguments after "serve".
func (c *ServeCommand) Run(ctx context.Context, args []string) error {
	m := NewMain()
	m.Stdout, m.Stderr = c.Stdout, c.Stderr
	if err := m.ParseFlags(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// From the first signal on, the next one ends the process, also while
	// Run still starts the server: Pebble's Open (a long WAL replay, a move
	// to a new storage format, a disk too full to flush) does not watch
	// ctx, and the signals would be swallowed until it returned.
	context.AfterFunc(ctx, stop)
	if err := m.Run(ctx); err != nil {
		return errors.Join(err, m.Close())
	}
	var serveErr error
	select {
	case <-ctx.Done():
		stop() // from now on a signal ends the process
		m.log.InfoContext(ctx, "shutting down: finishing requests in flight", "timeout", m.Config.ShutdownTimeout)
	case serveErr = <-m.server.Err():
		m.log.ErrorContext(ctx, "a listener failed, shutting down", "err", serveErr)
	}
	return errors.Join(serveErr, m.Close())
}

// Config is the configuration of serve.
type Config struct {
	// Store is "" for the embedded store in DataDir, or a postgres:// URL.
	Store   string
	DataDir string
	// LogKey is the verifiable log's signing key file; "" means
	// <DataDir>/log-signing.key (log.go).
	LogKey string
	// LogPreviousKey is the key file the log is rotated from (a signing
	// key, which cosigns, or public keys only); "" when none.
	LogPreviousKey string
	// LogKeepCheckpoints keeps every signed checkpoint this long; older
	// ones are thinned to the last of each hour (0 keeps all).
	LogKeepCheckpoints time.Duration
	// WitnessPolicy is a witness policy file (witness.Policy): the
	// witnesses asked to cosign every checkpoint; "" for none.
	// WitnessQuorumRequired stores only the checkpoints the policy's
	// quorum cosigned (logsign.Config.WitnessQuorum).
	WitnessPolicy         string
	WitnessQuorumRequired bool
	// WitnessInterval is the least time between two requests to the
	// witnesses (logsign.Config.WitnessInterval); 0: every checkpoint.
	WitnessInterval time.Duration
	// Retention deletes the events whose event_time is older than this
	// (0 keeps every event; retention.go).
	Retention        time.Duration
	PublicAddr       string
	InternalAddr     string
	ReaderToken      string
	ProducerToken    string
	Dev              bool
	LogLevel         slog.Level
	LogFormat        string // "text" or "json"
	RedactPrivateIPs bool
	MaxScan          int
	SearchTimeout    time.Duration // bound of one search request, both stores
	ReadTimeout      time.Duration // bound of the time a request takes to arrive
	MaxReceiving     int           // requests of a listener arriving at once
	WriteTimeout     time.Duration // to take each 64 KiB of an answer
	MaxConnsPerIP    int           // open connections of one client address, each listener; 0: no bound
	PrefetchMinPage  int           // read the next page ahead from pages of this size (0: never)
	CacheMiB         int64         // embedded store's block cache; 0: automatic
	MinFreeDiskMiB   int64         // embedded store's disk reserve; 0: 1024, -1: none
	BackupDir        string        // where backups go; empty: <DataDir>/backups
	ShutdownTimeout  time.Duration
	// Auth is the security configuration (serve_auth.go).
	Auth AuthConfig
}

// Files in the data directory.
const (
	pageTokenKeyFile = "page-token.key"
	storeDir         = "pebble"
)

// Main is the server program: ParseFlags fills Config, Run opens the store
// and starts the listeners, Close shuts them down gracefully and closes the
// store. It is all of serve but the signal handling, so tests run it in
// process.
type Main struct {
	Config Config

	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string

	// Set by Run: the listeners' URLs.
	PublicURL, InternalURL string

	log      *slog.Logger
	store    audittrail.Store
	server   *server.Server
	stopAuth context.CancelFunc // stops the policy file watcher

	// Log is the verifiable log (log.go), nil when the store has none.
	Log     *logsign.Log
	stopLog func()
	// witnesses cosign the log's checkpoints (--witness-policy), nil
	// without a policy.
	witnesses *witness.Cosigner
	// stopRetention stops the retention passes (retention.go).
	stopRetention func()
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{
		Config: Config{
			DataDir:            "./data",
			PublicAddr:         "127.0.0.1:8080",
			InternalAddr:       "127.0.0.1:8081",
			LogLevel:           slog.LevelInfo,
			LogFormat:          "text",
			RedactPrivateIPs:   true,
			MaxScan:            audittrail.DefaultMaxScan,
			SearchTimeout:      pebblestore.DefaultSearchTimeout,
			ReadTimeout:        server.DefaultRequestReadTimeout,
			MaxReceiving:       server.DefaultMaxReceiving,
			WriteTimeout:       server.DefaultResponseWriteTimeout,
			PrefetchMinPage:    audittrail.DefaultPrefetchMinPage,
			ShutdownTimeout:    30 * time.Second,
			LogKeepCheckpoints: 24 * time.Hour,
		},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
}

// serveEnv names the environment variable of each flag.
var serveEnv = map[string]string{
	"data-dir":                "AUDITTRAIL_DATA_DIR",
	"public-addr":             "AUDITTRAIL_PUBLIC_ADDR",
	"internal-addr":           "AUDITTRAIL_INTERNAL_ADDR",
	"reader-token":            "AUDITTRAIL_READER_TOKEN",
	"producer-token":          "AUDITTRAIL_PRODUCER_TOKEN",
	"dev":                     "AUDITTRAIL_DEV",
	"log-level":               "AUDITTRAIL_LOG_LEVEL",
	"log-format":              "AUDITTRAIL_LOG_FORMAT",
	"redact-private-ips":      "AUDITTRAIL_REDACT_PRIVATE_IPS",
	"max-scan":                "AUDITTRAIL_MAX_SCAN",
	"search-timeout":          "AUDITTRAIL_SEARCH_TIMEOUT",
	"request-read-timeout":    "AUDITTRAIL_REQUEST_READ_TIMEOUT",
	"max-receiving":           "AUDITTRAIL_MAX_RECEIVING",
	"response-write-timeout":  "AUDITTRAIL_RESPONSE_WRITE_TIMEOUT",
	"max-connections-per-ip":  "AUDITTRAIL_MAX_CONNECTIONS_PER_IP",
	"prefetch-min-page":       "AUDITTRAIL_PREFETCH_MIN_PAGE",
	"cache-mib":               "AUDITTRAIL_CACHE_MIB",
	"min-free-disk-mib":       "AUDITTRAIL_MIN_FREE_DISK_MIB",
	"backup-dir":              "AUDITTRAIL_BACKUP_DIR",
	"shutdown-timeout":        "AUDITTRAIL_SHUTDOWN_TIMEOUT",
	"store":                   "AUDITTRAIL_STORE",
	"log-key":                 "AUDITTRAIL_LOG_KEY",
	"log-previous-key":        "AUDITTRAIL_LOG_PREVIOUS_KEY",
	"log-keep-checkpoints":    "AUDITTRAIL_LOG_KEEP_CHECKPOINTS",
	"retention":               "AUDITTRAIL_RETENTION",
	"witness-policy":          "AUDITTRAIL_WITNESS_POLICY",
	"witness-quorum-required": "AUDITTRAIL_WITNESS_QUORUM_REQUIRED",
	"witness-interval":        "AUDITTRAIL_WITNESS_INTERVAL",
}

// flagSet returns the flags of serve, bound to m.Config; the defaults are
// the values in m.Config.
func (m *Main) flagSet() *flag.FlagSet {
	c := &m.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	env := func(name, usage string) string { return usage + " (" + serveEnv[name] + ")" }
	fs.StringVar(&c.Store, "store", c.Store, env("store", "`store`: empty for the embedded store in --data-dir, or a postgres://user@host/db URL (docs/postgres.md)"))
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, env("data-dir", "`directory` of the store, the page token key, the log's and the built-in issuer's keys and backups; created when missing"))
	fs.StringVar(&c.BackupDir, "backup-dir", c.BackupDir, env("backup-dir", "`directory` the embedded store's backups are written to (audittrail backup; default <data-dir>/backups); on the data directory's file system they link its files instead of copying them"))
	fs.StringVar(&c.LogKey, "log-key", c.LogKey, env("log-key", "signing key `file` of the verifiable log, created when missing (default <data-dir>/log-signing.key); PostgreSQL replicas must all be given the same one"))
	fs.DurationVar(&c.LogKeepCheckpoints, "log-keep-checkpoints", c.LogKeepCheckpoints, env("log-keep-checkpoints", "keep every signed checkpoint of the log this long; older ones are thinned to the last of each hour (0 keeps them all)"))
	fs.StringVar(&c.LogPreviousKey, "log-previous-key", c.LogPreviousKey, env("log-previous-key", "key `file` the log's signing key is rotated from: its signing key, which then cosigns every checkpoint, or its public key when the signing key is lost (docs/configuration.md, \"Rotating the log's signing key\")"))
	fs.StringVar(&c.WitnessPolicy, "witness-policy", c.WitnessPolicy, env("witness-policy", "witness policy `file`: the witnesses (c2sp.org/tlog-witness) asked to cosign every checkpoint of the log before it is stored (docs/configuration.md, \"Witnesses\")"))
	fs.DurationVar(&c.WitnessInterval, "witness-interval", c.WitnessInterval, env("witness-interval", "with --witness-policy, ask the witnesses at most once per `duration` (public witnesses take few requests per log); the checkpoints signed in between are stored uncosigned, or with --witness-quorum-required not signed; 0 asks for every checkpoint"))
	fs.BoolVar(&c.WitnessQuorumRequired, "witness-quorum-required", c.WitnessQuorumRequired, env("witness-quorum-required", "with --witness-policy, store and serve only checkpoints the policy's quorum cosigned: while it is not reached, the latest checkpoint stays the last cosigned one"))
	fs.Var((*retentionFlag)(&c.Retention), "retention", env("retention", "delete the events whose event_time is older than this `period` (90d, 2160h; at least 1h), at start and every hour, and refuse older ones; each pass that deletes is a self-audit event (docs/configuration.md, \"Retention\"); 0 keeps every event"))
	fs.StringVar(&c.PublicAddr, "public-addr", c.PublicAddr, env("public-addr", "`host:port` of the public listener (search); port 0 picks a free port"))
	fs.StringVar(&c.InternalAddr, "internal-addr", c.InternalAddr, env("internal-addr", "`host:port` of the internal listener (create, metrics); port 0 picks a free port"))
	fs.StringVar(&c.ReaderToken, "reader-token", c.ReaderToken, env("reader-token", "bearer `token` of the auditor (users/reader), who may search; prefer the environment variable, flags show in ps"))
	fs.StringVar(&c.ProducerToken, "producer-token", c.ProducerToken, env("producer-token", "bearer `token` of the producer (services/producer), who may create"))
	fs.BoolVar(&c.Dev, "dev", c.Dev, env("dev", "development mode: generate the tokens that are not given, and print how to use them"))
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, env("log-level", "log `level`: debug (one line per request), info, warn or error"))
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, env("log-format", "log `format`: text or json"))
	fs.BoolVar(&c.RedactPrivateIPs, "redact-private-ips", c.RedactPrivateIPs, env("redact-private-ips", "store private (RFC 1918, RFC 4193), loopback, link-local and unspecified source addresses as \"private\""))
	fs.Int64Var(&c.CacheMiB, "cache-mib", c.CacheMiB, env("cache-mib", "block cache of the embedded store in `MiB` (0: 256); more makes long scans faster (docs/configuration.md)"))
	fs.Int64Var(&c.MinFreeDiskMiB, "min-free-disk-mib", c.MinFreeDiskMiB, env("min-free-disk-mib", "free space in `MiB` the embedded store keeps on its file system: below it, new events are refused (RESOURCE_EXHAUSTED) until space is freed (0: 1024; -1: no reserve)"))
	fs.IntVar(&c.MaxScan, "max-scan", c.MaxScan, env("max-scan", "most candidate events one search request may examine before it returns a partial page with a page token"))
	fs.DurationVar(&c.SearchTimeout, "search-timeout", c.SearchTimeout, env("search-timeout", "longest time one search request may take: past it, the page so far is returned with a page token, or UNAVAILABLE when nothing was examined yet (a costly regular expression)"))
	fs.IntVar(&c.MaxReceiving, "max-receiving", c.MaxReceiving, env("max-receiving", "most `requests` of each listener that may be arriving at once (their body or message not whole yet); more are refused with RESOURCE_EXHAUSTED (429), so that slow or stalled uploads cannot hold more than this many times the listener's request size of memory"))
	fs.DurationVar(&c.ReadTimeout, "request-read-timeout", c.ReadTimeout, env("request-read-timeout", "longest time a request may take to arrive, from its headers to the end of its body (REST: 408) or message (gRPC: CANCELLED); what arrived of it is dropped"))
	fs.DurationVar(&c.WriteTimeout, "response-write-timeout", c.WriteTimeout, env("response-write-timeout", "longest time a client may take to read each 64 KiB of an answer; past it the answer is cut (its HTTP/1.1 or gRPC connection closed, its HTTP/2 stream reset), so that clients that do not read cannot hold answers in the server's memory"))
	fs.IntVar(&c.MaxConnsPerIP, "max-connections-per-ip", c.MaxConnsPerIP, env("max-connections-per-ip", "most open `connections` of one client address on each listener; more are closed as they are accepted (0: no bound; clients behind one proxy or NAT share an address, so give room for all of them)"))
	fs.IntVar(&c.PrefetchMinPage, "prefetch-min-page", c.PrefetchMinPage, env("prefetch-min-page", "a full page of at least this many events gets its next page searched ahead, for the request that follows its page token (0: never)"))
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, env("shutdown-timeout", "on SIGINT or SIGTERM, how long requests in flight may take to finish"))
	m.authFlags(fs, env)
	return fs
}

// ParseFlags sets m.Config from the command line args and the environment.
// A flag given in args wins over its environment variable.
func (m *Main) ParseFlags(args []string) error {
	getenv := m.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := m.flagSet()
	if err := parseFlags(fs, args, usageText(serveSynopsis, m.flagSet()), m.Stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(serveEnv[f.Name])
		if err != nil || given[f.Name] || v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageErrorf("%s=%q: %v", serveEnv[f.Name], v, e)
		}
	})
	if err != nil {
		return err
	}
	return m.Config.validate()
}

func (c *Config) validate() error {
	switch {
	case c.DataDir == "":
		return usageErrorf("--data-dir must not be empty")
	case c.MaxScan < 1:
		return usageErrorf("--max-scan %d must be positive", c.MaxScan)
	case c.SearchTimeout <= 0:
		return usageErrorf("--search-timeout %s must be positive", c.SearchTimeout)
	case c.ReadTimeout <= 0:
		return usageErrorf("--request-read-timeout %s must be positive", c.ReadTimeout)
	case c.MaxConnsPerIP < 0:
		return usageErrorf("--max-connections-per-ip %d must not be negative (0: no bound)", c.MaxConnsPerIP)
	case c.WriteTimeout <= 0:
		return usageErrorf("--response-write-timeout %s must be positive", c.WriteTimeout)
	case c.MaxReceiving <= 0:
		return usageErrorf("--max-receiving %d must be positive", c.MaxReceiving)
	case c.PrefetchMinPage < 0:
		return usageErrorf("--prefetch-min-page %d must not be negative (0 turns reading ahead off)", c.PrefetchMinPage)
	case c.Retention != 0 && c.Retention < audittrail.MinRetention:
		return usageErrorf("--retention %s is shorter than the minimum %s: give days, such as 90d", c.Retention, audittrail.MinRetention)
	case c.WitnessQuorumRequired && c.WitnessPolicy == "":
		return usageErrorf("--witness-quorum-required needs --witness-policy: the witnesses whose quorum is required")
	case c.WitnessInterval < 0 || c.WitnessInterval > 0 && c.WitnessPolicy == "":
		return usageErrorf("--witness-interval %s needs --witness-policy and must not be negative", c.WitnessInterval)
	case c.LogKeepCheckpoints < 0:
		return usageErrorf("--log-keep-checkpoints %s must not be negative (0 keeps every checkpoint)", c.LogKeepCheckpoints)
	case c.ShutdownTimeout <= 0:
		return usageErrorf("--shutdown-timeout %s must be positive", c.ShutdownTimeout)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return usageErrorf("--log-format %q must be text or json", c.LogFormat)
	case c.ReaderToken != "" && c.ReaderToken == c.ProducerToken:
		return usageErrorf("--reader-token and --producer-token must differ: a token names one principal")
	case c.Auth.AdminToken != "" && c.Auth.AdminToken == c.ReaderToken:
		// Else the reader's token would silently name the administrator.
		return usageErrorf("--admin-token must differ from --reader-token: a token names one principal")
	case c.Auth.AdminToken != "" && c.Auth.AdminToken == c.ProducerToken:
		return usageErrorf("--admin-token must differ from --producer-token: a token names one principal")
	case !c.hasCredentials():
		return usageErrorf("no tokens: give --reader-token and --producer-token (or AUDITTRAIL_READER_TOKEN and " +
			"AUDITTRAIL_PRODUCER_TOKEN), or --reader-token with producers' client certificates (--internal-client-ca and a " +
			"--policy giving them the producer role), or --admin-token to manage API tokens, or --oidc-issuer, or run with " +
			"--dev to generate them for local use")
	}
	return c.Auth.validate()
}

// Run opens the store, starts both listeners and, once they are up, prints
// the ready line (and in dev mode how to authenticate). It returns when the
// server is serving; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	c := &m.Config
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler = slog.NewTextHandler(m.Stderr, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(m.Stderr, opts)
	}
	m.log = slog.New(h)

	generated := false
	if c.Dev {
		for _, t := range []*string{&c.ReaderToken, &c.ProducerToken, &c.Auth.AdminToken} {
			if *t == "" {
				*t, generated = randomToken(), true
			}
		}
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	store, key, ready, eventsStored, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	m.store = store
	if _, ok := store.(audittrail.Expirer); c.Retention > 0 && !ok {
		return usageErrorf("--retention: this store does not delete events; see docs/postgres.md, \"Retention\"")
	}
	if err := m.startLog(ctx, store); err != nil {
		return err
	}
	metrics := server.NewMetrics(eventsStored)
	if st, ok := store.(*pebblestore.Store); ok {
		metrics.WatchDiskSpace(st.DiskSpace)
	}
	if m.witnesses != nil {
		watchWitnesses(metrics, m.witnesses)
	}
	var lc net.ListenConfig
	public, err := lc.Listen(ctx, "tcp", c.PublicAddr)
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	internal, err := lc.Listen(ctx, "tcp", c.InternalAddr)
	if err != nil {
		public.Close()
		return fmt.Errorf("internal listener: %w", err)
	}
	m.PublicURL = schemeURL(public.Addr(), c.Auth.PublicTLSCert != "")
	m.InternalURL = schemeURL(internal.Addr(), c.Auth.InternalTLSCert != "")
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	m.stopAuth = stopAuth
	auth, err := m.setupAuth(authCtx, store, m.PublicURL)
	if err != nil {
		public.Close()
		internal.Close()
		return err
	}
	scfg := server.Config{
		Service: &audittrail.Service{
			Store:            metrics.InstrumentStore(store),
			PageTokenKey:     key,
			RedactPrivateIPs: c.RedactPrivateIPs,
			MaxScan:          c.MaxScan,
			PrefetchMinPage:  c.PrefetchMinPage,
		},
		Logger:               m.log,
		Metrics:              metrics,
		Version:              buildVersion(),
		Ready:                ready,
		RequestReadTimeout:   c.ReadTimeout,
		MaxReceiving:         c.MaxReceiving,
		ResponseWriteTimeout: c.WriteTimeout,
		MaxConnectionsPerIP:  c.MaxConnsPerIP,
	}
	if m.Log != nil {
		scfg.Log = m.Log
	}
	if st, ok := store.(*pebblestore.Store); ok {
		dir := c.BackupDir
		if dir == "" {
			dir = filepath.Join(c.DataDir, "backups")
		}
		// The path a backup's caller is told, whatever the server's
		// working directory.
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		scfg.Backups = &dataDirBackups{store: st, dataDir: c.DataDir, dir: dir, log: m.log}
	}
	m.serverAuthConfig(&scfg, auth)
	srv, err := server.New(scfg)
	if err != nil {
		public.Close()
		internal.Close()
		return err
	}
	// Before the listeners serve: the cutoff at start hides what is older
	// than the period from the first request on.
	if err := m.startRetention(ctx, store, scfg.Service, auth.selfAudit, metrics); err != nil {
		public.Close()
		internal.Close()
		return err
	}
	srv.Start(public, internal)
	m.server = srv
	m.log.InfoContext(ctx, "serving", "public", m.PublicURL, "internal", m.InternalURL,
		"data_dir", c.DataDir, "version", buildVersion(), "redact_private_ips", c.RedactPrivateIPs, "max_scan", c.MaxScan, "search_timeout", c.SearchTimeout, "prefetch_min_page", c.PrefetchMinPage)
	fmt.Fprintf(m.Stdout, "audittrail: ready public=%s internal=%s\n", m.PublicURL, m.InternalURL)
	if c.Dev {
		m.printDevHelp(generated)
	}
	return nil
}

// Close shuts the server down gracefully (requests in flight finish, for at
// most Config.ShutdownTimeout) and then closes the store. It may be called
// more than once, and after a failed Run.
func (m *Main) Close() error {
	var errs []error
	if m.stopAuth != nil {
		m.stopAuth()
		m.stopAuth = nil
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
		cancel()
		m.server = nil
	}
	if m.stopRetention != nil {
		m.stopRetention()
		m.stopRetention = nil
	}
	if m.stopLog != nil {
		m.stopLog()
		m.stopLog = nil
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
		m.store = nil
		m.log.InfoContext(context.Background(), "stopped")
	}
	return errors.Join(errs...)
}

// openStore opens the configured store and returns it with the page token
// key, the readiness check and the stored-events gauge (nil when the store
// cannot count cheaply). The embedded store keeps its key in the data
// directory; PostgreSQL replicas share one key kept in the database.
func (m *Main) openStore(ctx context.Context) (st audittrail.Store, key []byte, ready func(context.Context) error, eventsStored func() uint64, err error) {
	c := &m.Config
	if !isPostgresURL(c.Store) {
		// A copy of a backup is checked first: its own error names the
		// backup, and says more than checkDataDirStore's.
		if err := checkRestoredStore(c.DataDir); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	if err := checkDataDirStore(c.DataDir, isPostgresURL(c.Store)); err != nil {
		return nil, nil, nil, nil, err
	}
	if isPostgresURL(c.Store) {
		pg, err := postgres.Open(ctx, postgres.Config{URL: c.Store, Logger: m.log, SearchTimeout: c.SearchTimeout})
		if err != nil {
			return nil, nil, nil, nil, err
		}
		key, err := pg.PageTokenKey(ctx)
		if err != nil {
			pg.Close()
			return nil, nil, nil, nil, err
		}
		return pg, key, pg.Ping, nil, nil
	}
	if c.Store != "" && c.Store != "pebble" {
		return nil, nil, nil, nil, usageErrorf("--store %q: give a postgres:// URL, or nothing for the embedded store", c.Store)
	}
	// Bytes past an int64 would wrap to 0 or below: the default, silently.
	if c.CacheMiB < 0 || c.CacheMiB > math.MaxInt64>>20 {
		return nil, nil, nil, nil, usageErrorf("--cache-mib %d: give a size in MiB, or 0 for the automatic size", c.CacheMiB)
	}
	if c.MinFreeDiskMiB < -1 || c.MinFreeDiskMiB > math.MaxInt64>>20 {
		return nil, nil, nil, nil, usageErrorf("--min-free-disk-mib %d: give a size in MiB, 0 for the default (1024), or -1 for no reserve", c.MinFreeDiskMiB)
	}
	// Written only once the flags are known good: a refused start leaves
	// the data directory as it was.
	if key, err = m.pageTokenKey(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	minFree := c.MinFreeDiskMiB << 20
	if c.MinFreeDiskMiB < 0 {
		minFree = -1
	}
	pb, err := pebblestore.Open(ctx, pebblestore.Config{Dir: filepath.Join(c.DataDir, storeDir), Logger: m.log,
		CacheSize: c.CacheMiB << 20, MinFreeBytes: minFree, SearchTimeout: c.SearchTimeout})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return pb, key, nil, func() uint64 { return pb.Stats().Events }, nil
}

// checkDataDirStore refuses a data directory that served the other kind
// of store: the embedded store's holds pebble/, a PostgreSQL replica's only
// keys, the log's public key among them. Either store started on the
// other's directory would begin a new log signed with the key the
// directory holds (log-signing.key), the other log's: two trees under one
// key, a fork to everyone who verifies the first.
func checkDataDirStore(dataDir string, postgres bool) error {
	_, err := os.Stat(filepath.Join(dataDir, storeDir))
	embedded := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("data directory: %w", err)
	}
	switch {
	case postgres && embedded:
		return fmt.Errorf("--data-dir %s holds an embedded store (%s/): a PostgreSQL replica would sign the database's log "+
			"with that store's signing key; give the replica a data directory of its own", dataDir, storeDir)
	case postgres || embedded:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dataDir, logsign.VerificationKeyFile)); err == nil {
		return fmt.Errorf("--data-dir %s holds a log's public key (%s) but no embedded store (%s/): it is a PostgreSQL "+
			"replica's (give its --store), or its store was removed; a new store there would sign a new log with that "+
			"log's signing key. Start a new store in a new data directory", dataDir, logsign.VerificationKeyFile, storeDir)
	}
	return nil
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// pageTokenKey reads the key that authenticates page tokens from the data
// directory, creating it on the first start. It must survive restarts, or
// the page tokens handed out before become invalid.
func (m *Main) pageTokenKey(ctx context.Context) ([]byte, error) {
	path := filepath.Join(m.Config.DataDir, pageTokenKeyFile)
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) != audittrail.PageTokenKeySize {
			return nil, fmt.Errorf("%s has %d bytes, a key has %d: restore it, or delete it to create a new one "+
				"(page tokens issued before then become invalid)", path, len(key), audittrail.PageTokenKeySize)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			m.log.WarnContext(ctx, "the page token key is readable by other users: chmod 600 it", "path", path, "mode", fi.Mode().Perm())
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	key = make([]byte, audittrail.PageTokenKeySize)
	rand.Read(key)
	// Two servers starting on the same directory agree on one key.
	err = durablefile.Create(path, key, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return m.pageTokenKey(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	m.log.InfoContext(ctx, "created the page token key", "path", path)
	return key, nil
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// listenerURL is the URL to reach a listener: an unspecified address (all
// interfaces) is reached on the loopback address.
func listenerURL(a net.Addr) string {
	host, port := a.String(), ""
	if t, ok := a.(*net.TCPAddr); ok {
		ip := t.IP
		if ip.IsUnspecified() {
			ip = net.IPv4(127, 0, 0, 1)
		}
		host, port = ip.String(), strconv.Itoa(t.Port)
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (m *Main) printDevHelp(generated bool) {
	c := &m.Config
	pub, internal := hostPort(m.PublicURL), hostPort(m.InternalURL)
	w := m.Stdout
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  Development mode: not for production.")
	if generated {
		fmt.Fprintln(w, "  Tokens generated for this run (give --reader-token/--producer-token/--admin-token, or AUDITTRAIL_READER_TOKEN/AUDITTRAIL_PRODUCER_TOKEN/AUDITTRAIL_ADMIN_TOKEN, to keep them):")
	}
	fmt.Fprintf(w, "    reader token   (search, public listener):  %s\n", c.ReaderToken)
	fmt.Fprintf(w, "    producer token (create, internal listener): %s\n", c.ProducerToken)
	if c.Auth.AdminToken != "" {
		fmt.Fprintf(w, "    admin token    (tokens, backups, internal): %s\n", c.Auth.AdminToken)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  Try it:")
	fmt.Fprintf(w, "    %s create --addr %s --token %s --sample 100\n", programName, internal, c.ProducerToken)
	fmt.Fprintf(w, "    %s search --addr %s --token %s --since 30d\n", programName, pub, c.ReaderToken)
	fmt.Fprintf(w, "    curl -s -H 'Authorization: Bearer %s' -d '{\"pageSize\": 5}' %s/v1/events:search\n", c.ReaderToken, m.PublicURL)
	fmt.Fprintf(w, "    curl -s -H 'Authorization: Bearer %s' -d '{\"eventTime\": \"%s\", \"eventSource\": \"h2oai-my-service\", "+
		"\"action\": \"actions/my-service/create\", \"readOnly\": false, \"status\": {\"code\": 0}, \"principal\": \"users/jane\", "+
		"\"sourceIpAddress\": \"1.1.1.1\"}' '%s/v1/events?eventId=%s'\n",
		c.ProducerToken, time.Now().UTC().Format(time.RFC3339), m.InternalURL, uuid.NewString())
	fmt.Fprintf(w, "    curl -s %s/metrics | grep ^audittrail_\n", m.InternalURL)
	if c.Auth.AdminToken != "" {
		fmt.Fprintf(w, "    %s token create --addr %s --token %s --principal users/alice --role auditor --ttl 90d\n", programName, internal, c.Auth.AdminToken)
		if !isPostgresURL(c.Store) {
			fmt.Fprintf(w, "    %s backup --addr %s --token %s\n", programName, internal, c.Auth.AdminToken)
		}
	}
	fmt.Fprintln(w)
}

func hostPort(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}
