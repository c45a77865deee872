package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audittrail/audittrail"
)

// Config configures Open.
type Config struct {
	// URL is the connection string of the database, a URL
	// ("postgres://user:password@host:5432/audit?sslmode=verify-full") or
	// key=value pairs, as libpq and pgx understand them. Parameters the URL
	// sets win over the store's defaults (connect_timeout 5s,
	// application_name audittrail, synchronous_commit on).
	URL string
	// Logger receives the store's log messages; nil means slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the connections of this store (of one replica); 0
	// means the URL's pool_max_conns, or DefaultMaxConns. Searches hold
	// one for their duration, appends one per statement.
	MaxConns int32
	// SearchTimeout bounds the time of one Search; 0 means
	// DefaultSearchTimeout. A search that runs out of time returns the page
	// so far with Next where it stopped, like one that runs out of MaxScan,
	// or fails with EUnavailable when it has examined nothing.
	SearchTimeout time.Duration
	// ReadOnly opens the store for reading only, as an audit does
	// ("audittrail verify store --store"): a role with SELECT on the
	// tables is enough (for example one granted pg_read_all_data). Open
	// applies no migration and creates no partition; it fails when the
	// schema lacks a migration the read-only path reads (0001 to 0004:
	// the database of a release before 0005 is audited before its
	// upgrade), or when its schema_compat excludes this build, as a
	// read-write Open does. Every session has
	// default_transaction_read_only on, so the database itself refuses
	// any write.
	ReadOnly bool

	// build is the schema version the store acts as, 0 meaning this
	// build's (SchemaVersion): tests set it lower to act as an older
	// build (AsBuildForTest).
	build int
}

// Defaults of Config.
const (
	DefaultMaxConns      = 10
	DefaultSearchTimeout = 10 * time.Second
)

// PartitionsAhead is how many months after the current one have their
// partition created in advance. Open creates them, and the store checks
// every hour (so that replicas running for months keep ahead).
const PartitionsAhead = 3

// Store is the PostgreSQL storage engine. It is safe for concurrent use, and
// several Stores (replicas) may share one database.
type Store struct {
	pool          *pgxpool.Pool
	log           *slog.Logger
	searchTimeout time.Duration
	now           func() time.Time

	warnMu   sync.Mutex // throttles warnUnavailable
	lastWarn time.Time
	unlogged int

	// lastSeq is the last value LastSeq read (log.go).
	lastSeq atomic.Uint64
	// cutoff is the retention cutoff as this replica knows it (Unix ns;
	// noCutoff when none; retention.go).
	cutoff atomic.Int64
	// leaves are the leaf hashes of the events appended lately
	// (recentleaves.go).
	leaves recentLeaves
	// leadMu guards leadConn, the connection whose session holds the
	// verifiable log's integrator lock, nil when this Store does not hold
	// it (log.go).
	leadMu   sync.Mutex
	leadConn *pgx.Conn
	// leadTimeout bounds LeadLog's round trips (logTimeout; tests make it
	// short).
	leadTimeout time.Duration
	// lookups counts the id lookups of appends (tests: LookupsForTest).
	lookups atomic.Int64
	// inserts queues the first runs of appends for group commit
	// (group.go).
	inserts insertQueue
	// everyTreeLevel makes AppendTree store every level of the tree, one
	// row per hash, as builds before migration 0003 did (tests only:
	// WriteEveryTreeLevelForTest).
	everyTreeLevel bool

	tokens tokenSchemaState // whether the token tables exist (tokens.go)

	// build is the schema version this store acts as (Config.build).
	build int
	// guarded: the store reads schema_compat at every append and
	// readiness check (a read-write store of a build from migration 0006
	// on; schemaguard.go).
	guarded bool
	// excluded is the error of every operation once the database's
	// schema_compat excludes this build; nil until then.
	excluded atomic.Pointer[error]

	closeMu sync.RWMutex // read: an operation in flight; write: Close
	closed  bool
	stop    chan struct{} // closed by Close: ends the maintenance loop
	// life ends at Close, when no caller waits any more: the statements
	// that run for no caller in particular (group.go) end with it.
	life     context.Context
	endLife  context.CancelFunc
	loopDone chan struct{}
	closeOne sync.Once
}

var _ audittrail.Store = (*Store)(nil)

var errClosed = audittrail.Errorf(audittrail.EUnavailable, "the store is closed")

// Open connects to the database, applies the migrations it lacks (under an
// advisory lock, so replicas may start together) and makes sure the
// partitions of the current and the coming months exist. It fails when the
// database cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: Config.URL is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	pcfg, err := poolConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{
		pool:          pool,
		log:           log,
		searchTimeout: cfg.SearchTimeout,
		leadTimeout:   logTimeout,
		now:           time.Now,
		stop:          make(chan struct{}),
		loopDone:      make(chan struct{}),
	}
	s.cutoff.Store(noCutoff)
	s.life, s.endLife = context.WithCancel(context.Background())
	if s.searchTimeout <= 0 {
		s.searchTimeout = DefaultSearchTimeout
	}
	build := cfg.build
	if build <= 0 {
		build = SchemaVersion()
	}
	s.build, s.guarded = build, !cfg.ReadOnly && build >= compatMigration
	if err := s.setup(ctx, cfg.ReadOnly, build); err != nil {
		s.endLife()
		pool.Close()
		return nil, err
	}
	if cfg.ReadOnly {
		close(s.loopDone) // nothing to maintain
	} else {
		go s.maintain()
	}
	return s, nil
}

func poolConfig(cfg Config) (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message quotes the URL with its password masked.
		return nil, fmt.Errorf("postgres: Config.URL: %w", err)
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.URL, "pool_max_conns"):
		pcfg.MaxConns = DefaultMaxConns
	}
	pcfg.MinConns = 0
	pcfg.MaxConnLifetime = time.Hour
	pcfg.MaxConnIdleTime = 10 * time.Minute
	pcfg.HealthCheckPeriod = 10 * time.Second
	cc := pcfg.ConnConfig
	// Unnamed statements only: no prepared statement outlives its use, and
	// every search is planned for its own arguments (a search is one round
	// trip either way: see search.go). (This alone does not make the store
	// work behind PgBouncer in transaction mode: docs/postgres.md.)
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	// Fail fast when the server is unreachable (an unanswered SYN would
	// otherwise wait for the kernel's timeout).
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 5 * time.Second
	}
	setDefault := func(k, v string) {
		if _, ok := cc.RuntimeParams[k]; !ok {
			cc.RuntimeParams[k] = v
		}
	}
	setDefault("application_name", "audittrail")
	// Append acknowledges events only once they are on stable storage,
	// whatever the server's default is (a URL may ask for more, such as
	// remote_apply).
	setDefault("synchronous_commit", "on")
	if cfg.ReadOnly {
		cc.RuntimeParams["default_transaction_read_only"] = "on"
	}
	// On a cancelled context, ask the server to cancel the statement (the
	// connection stays usable) and give up on the connection only if the
	// server does not answer.
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 2 * time.Second}
	}
	return pcfg, nil
}

// setup checks the server, migrates and creates the partitions; read only,
// it checks that the schema has the migrations the read-only path reads
// instead. Either way it refuses a database whose schema_compat excludes
// build, the schema version of this build.
func (s *Store) setup(ctx context.Context, readOnly bool, build int) error {
	var enc string
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('server_encoding')").Scan(&enc); err != nil {
		return fmt.Errorf("postgres: connecting: %w", s.describe(err))
	}
	if enc != "UTF8" {
		return fmt.Errorf("postgres: the database encoding is %s; the audit trail needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')", enc)
	}
	if readOnly {
		if err := checkMigrated(ctx, s.pool, s.log, build); err != nil {
			return s.describe(err)
		}
		return s.loadCutoff(ctx)
	}
	if err := migrate(ctx, s.pool, s.log, build); err != nil {
		if errors.Is(err, ErrBuildTooOld) {
			return err
		}
		return fmt.Errorf("postgres: migrating the schema: %w", s.describe(err))
	}
	if err := s.loadCutoff(ctx); err != nil {
		return fmt.Errorf("postgres: reading the retention cutoff: %w", s.describe(err))
	}
	if err := s.ensurePartitions(ctx); err != nil {
		return fmt.Errorf("postgres: creating partitions: %w", s.describe(err))
	}
	return nil
}

// describe turns a connection failure into an EUnavailable error that keeps
// the cause, for operators (Open's errors go to logs, not to API callers).
func (s *Store) describe(err error) error {
	if unavailable(err) {
		return &unavailableError{cause: err}
	}
	return err
}

type unavailableError struct{ cause error }

func (e *unavailableError) Error() string {
	return "the database is unavailable: " + e.cause.Error()
}
func (e *unavailableError) Unwrap() []error {
	return []error{e.cause, audittrail.Errorf(audittrail.EUnavailable, "the database is unavailable")}
}

// maintain keeps the partitions ahead while the store is open, and the
// retention cutoff another replica may have moved (retention.go).
func (s *Store) maintain() {
	defer close(s.loopDone)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	c := time.NewTicker(cutoffRefresh)
	defer c.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-c.C:
			s.cutoffTurn()
		case <-t.C:
			s.partitionTurn()
		}
	}
}

// cutoffTurn reads the retention cutoff another replica may have moved.
func (s *Store) cutoffTurn() {
	if s.excluded.Load() != nil {
		return // a newer build's schema: this build leaves the database alone
	}
	ctx, cancel := context.WithTimeout(s.life, cutoffRefresh)
	defer cancel()
	if err := s.loadCutoff(ctx); err != nil && s.life.Err() == nil {
		s.recoverFrom(err)
		_ = s.fail(ctx, "reading the retention cutoff", err) // logs it
	}
}

// partitionTurn creates the partitions ahead (the hourly check), unless a
// newer build's migration excluded this one: the partitions then follow
// that build's rules, not this one's (TestExcludedReplicaResigns).
func (s *Store) partitionTurn() {
	if s.excluded.Load() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.ensurePartitions(ctx); err != nil {
		s.log.Warn("postgres: creating partitions ahead failed; will retry in an hour", "err", err)
	}
}

// Ping checks that the database answers, for readiness probes. It fails
// with EUnavailable when it does not, or when the database no longer admits
// this build (schemaguard.go).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if !s.guarded {
		if err := s.pool.Ping(ctx); err != nil {
			s.recoverFrom(err)
			return s.fail(ctx, "ping", err)
		}
		return nil
	}
	// The round trip of a ping, reading what a newer build's migration
	// may have changed (schemaguard.go).
	var minBuild int32
	if err := s.pool.QueryRow(ctx, "SELECT min_build_version FROM schema_compat").Scan(&minBuild); err != nil {
		s.recoverFrom(err)
		return s.fail(ctx, "ping", err)
	}
	if int(minBuild) > s.build {
		return s.exclude(int(minBuild))
	}
	return nil
}

// enter registers an operation; Close waits for it. The caller must
// RUnlock closeMu when enter returns nil.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return errClosed
	}
	if err := s.excluded.Load(); err != nil {
		s.closeMu.RUnlock()
		return *err
	}
	return nil
}

// Close waits for the operations in flight, then closes the connections.
func (s *Store) Close() error {
	s.closeOne.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		s.endLife()
		<-s.loopDone
		s.leadMu.Lock()
		s.dropLead() // hands the integrator lock over to another replica
		s.leadMu.Unlock()
		s.pool.Close()
	})
	return nil
}
