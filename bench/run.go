package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/pgcluster"
)

// Config is one benchmark run.
type Config struct {
	Sizes           []int
	Seed            int64
	Runs            int           // timed runs per query and system (after one untimed first run)
	Batch           int           // events per BatchCreateEvents / INSERT
	Producers       int           // concurrent batch producers
	SingleProducers int           // concurrent CreateEvent producers
	SingleEvents    int           // events sent with CreateEvent (the first of the stream); 0: min(N/10, 20,000)
	MeasureEvents   int           // PostgreSQL: events per measured ingest method (COPY, INSERT); the rest of a larger size is bulk-loaded; 0: all
	CopyBatch       int           // rows per COPY statement
	QueryBudget     time.Duration // bound on the timed runs of one query on one system (see RunOptions.Budget); 0: none
	Concurrency     int           // clients of the concurrent searches (RunConcurrent); 0: none
	ConcurrentTime  time.Duration // timed length of the concurrent searches on each system
	PGStoreMax      int           // largest size run on the PostgreSQL store; 0: all
	PGStoreSuiteMax int           // largest size at which the PostgreSQL store runs the query suite (above: ingest, disk and memory only); 0: all
	Postgres        bool
	PGStore         bool
	TLS             bool   // both listeners of our server over TLS (benchTLS); the clients verify the certificate
	Bin             string // the server binary; "" builds ./cmd/audittrail
	ModuleDir       string
	WorkDir         string // "" : a new temporary directory
	Keep            bool   // keep the work directory
	ProfileDir      string
	Command         string    // the command line, for the report
	Log             io.Writer `json:"-"`
}

// Results is everything a run measured.
type Results struct {
	Config     Config
	Machine    Machine
	Started    time.Time
	Finished   time.Time
	LoadBefore string // /proc/loadavg at the start
	LoadAfter  string
	Sizes      []*SizeResult
	Notes      []string
	Mismatches []string
	ProfileDir string
	// Parts describes the runs a merged report is made of (see
	// LoadResults): "`command` at date, sizes, took".
	Parts []string
	// Interleaved: the suite ran each query on every system in turn
	// (false in the results of earlier builds, which ran one system's
	// whole suite after another's).
	Interleaved bool
}

// SizeResult is the run of one dataset size.
type SizeResult struct {
	N           int
	Dataset     *Dataset
	AnalyzeTime time.Duration
	Systems     []*SystemResult
	Wall        time.Duration
	// DiskSettle is the wait for the disks to be idle before the suite.
	DiskSettle time.Duration
}

// SerialCreates is the number of CreateEvent calls made one at a time after
// the suite.
const SerialCreates = 300

// System keys.
const (
	SysEmbedded = "embedded"
	SysSQL      = "sql"
	SysPGStore  = "pgstore"
)

// SystemResult is one system at one size.
type SystemResult struct {
	Key     string
	Name    string
	Skipped string // why the system did not run
	// SuiteSkipped says why the system was loaded and measured (ingest,
	// disk, memory) but ran no query suite; "" when it ran one.
	SuiteSkipped string

	Ingest    []IngestResult
	Vacuum    time.Duration // PostgreSQL: VACUUM ANALYZE after the load
	Settle    time.Duration // the wait for background work after ingest (compactions), before the suite
	events    int
	BulkLoad  string // PostgreSQL: how the events past the measured ones were loaded
	Protocols []string
	Queries   map[string]map[string]*QueryResult // protocol → query key → result

	// The verifiable log after the last batch was acknowledged: events
	// that no signed checkpoint covered yet at that moment, and the time
	// until one covered them all (LogCovered < 0: not within
	// LogCoverLimit; both zero: the server exports no log).
	LogBehind  int
	LogCovered time.Duration

	RSSIngest int64 // peak RSS of the server during ingest (VmHWM)
	RSSSuite  int64 // peak RSS of the server during the query suite
	RSSEnd    int64 // RSS at the end of the suite

	DiskIngest   int64            // bytes on disk after ingest
	DiskEnd      int64            // bytes on disk at the end of the suite
	DiskStopped  int64            // bytes on disk after the server has shut down (memtables flushed)
	DiskApparent int64            // apparent size (sum of file sizes) after shutdown
	DiskFiles    map[string]Usage // after shutdown, by kind of file
	TableBytes   int64            // PostgreSQL: heap and TOAST
	IndexBytes   int64            // PostgreSQL: indexes
	DBBytes      int64            // PostgreSQL: pg_database_size

	SuiteWall       time.Duration
	SuiteOtherCores float64 // average cores used by other processes during the suite

	// Concurrent is the concurrent searches on the system's first
	// protocol (REST; SQL), after the suite; nil when not run.
	Concurrent *ConcurrentResult

	Profiles map[string]string // phase → top server symbols
	Wall     time.Duration
	Err      error `json:"-"`
}

func (s *SystemResult) query(proto, key string) *QueryResult {
	if s == nil || s.Queries[proto] == nil {
		return nil
	}
	return s.Queries[proto][key]
}

func (s *SystemResult) ingest(method string) *IngestResult {
	if s == nil {
		return nil
	}
	for i := range s.Ingest {
		if s.Ingest[i].Method == method {
			return &s.Ingest[i]
		}
	}
	return nil
}

// System returns the result of system key, or nil.
func (z *SizeResult) System(key string) *SystemResult {
	for _, s := range z.Systems {
		if s.Key == key {
			return s
		}
	}
	return nil
}

type runner struct {
	cfg  Config
	res  *Results
	bin  string
	prof *Profiler
	pg   *pgcluster.Cluster
	work string
	tls  *benchTLS // nil: plain listeners
}

// settle waits for the background work that ingest left (compactions,
// autovacuum) to finish before the suite, so that queries do not pay for it.
func (r *runner) settle(ctx context.Context, sys *SystemResult, pids ...int) {
	r.logf("%s: waiting for background work (compactions) to finish", sys.Name)
	d, ok := Settle(ctx, pids, 3*time.Second, 0.05, SettleLimit)
	sys.Settle = d
	if !ok {
		r.note("%s at %s events: still busy %s after ingest; the suite ran beside its background work", sys.Name, count(int64(sys.events)), d.Round(time.Second))
	}
	r.logf("%s: idle after %s", sys.Name, d.Round(time.Second))
}

// LogCoverLimit bounds the wait for a signed checkpoint of every ingested
// event.
const LogCoverLimit = 5 * time.Minute

// logCoverage measures, right after the last batch was acknowledged, how
// far the verifiable log's latest signed checkpoint is behind the n
// ingested events and how long until one covers them all: how soon a
// producer can get an inclusion proof for what it wrote.
func (r *runner) logCoverage(ctx context.Context, sys *SystemResult, srv *Server, n int) {
	start := time.Now()
	size, ok, err := srv.SignedTreeSize(ctx)
	if err != nil || !ok {
		if err != nil {
			r.note("%s: reading the signed tree size: %v", sys.Name, err)
		}
		return
	}
	sys.LogBehind = n - int(size)
	for int(size) < n {
		if time.Since(start) > LogCoverLimit {
			sys.LogCovered = -1
			r.note("%s at %s events: no signed checkpoint covered every ingested event %s after the last batch (%d behind)", sys.Name, count(int64(n)), LogCoverLimit, n-int(size))
			return
		}
		time.Sleep(20 * time.Millisecond)
		if size, _, err = srv.SignedTreeSize(ctx); err != nil {
			r.note("%s: reading the signed tree size: %v", sys.Name, err)
			return
		}
	}
	sys.LogCovered = time.Since(start)
	r.logf("%s: a signed checkpoint covered every event %s after the last batch (%d behind then)", sys.Name, sys.LogCovered.Round(time.Millisecond), sys.LogBehind)
}

// quietDisk makes PostgreSQL write out what it holds (CHECKPOINT) and
// waits until the machine's disks are idle before the suite: the suite's
// durable writes (our self-audit event per search) wait for the disk, and
// a load's writes outlast its CPU.
func (r *runner) quietDisk(ctx context.Context, z *SizeResult) error {
	if r.pg != nil {
		if err := r.pg.Exec(ctx, "CHECKPOINT"); err != nil {
			return fmt.Errorf("CHECKPOINT before the suite: %w", err)
		}
	}
	r.logf("waiting for the disks to be idle before the suite")
	d, ok := SettleDisk(ctx, 3*time.Second, DiskIdleBytesPerSec, SettleLimit)
	z.DiskSettle = d
	if !ok {
		r.note("at %s events the disks still wrote more than %s/s after %s of waiting; the suite ran beside it", count(int64(z.N)), bytesIEC(DiskIdleBytesPerSec), d.Round(time.Second))
	}
	r.logf("disks idle after %s", d.Round(time.Second))
	return nil
}

// SettleLimit bounds the wait for background work after ingest.
const SettleLimit = 15 * time.Minute

// pgPID returns the PostgreSQL postmaster's pid, or 0.
func (r *runner) pgPID() int {
	if r.pg == nil {
		return 0
	}
	return r.pg.PostmasterPID()
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "%s auditbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, msg)
	r.logf("NOTE: %s", msg)
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	res := &Results{Config: cfg, Started: time.Now(), LoadBefore: loadavg(), ProfileDir: cfg.ProfileDir, Interleaved: true}
	r := &runner{cfg: cfg, res: res}
	res.Machine = DescribeMachine(ctx)

	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "auditbench-"); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	// PostgreSQL runs as another user and must reach its directory.
	_ = os.Chmod(work, 0o755)
	r.work = work
	if cfg.TLS {
		var err error
		if r.tls, err = newBenchTLS(filepath.Join(work, "tls")); err != nil {
			return nil, err
		}
	}
	r.logf("work directory %s", work)

	var err error
	if r.prof, err = NewProfiler(cfg.ProfileDir); err != nil {
		return nil, err
	}
	if r.prof != nil && r.prof.Note != "" {
		r.note("%s", r.prof.Note)
	}

	r.bin = cfg.Bin
	if r.bin == "" {
		r.logf("building ./cmd/audittrail")
		if r.bin, err = BuildServer(ctx, cfg.ModuleDir, work); err != nil {
			return nil, err
		}
	}
	res.Machine.ServerBinary = describeBinary(r.bin)
	pgstore := cfg.PGStore
	if pgstore && !ServerSupportsStore(r.bin) {
		pgstore = false
		r.note("the server on the PostgreSQL store was not measured: `audittrail serve --help` of this build has no --store flag yet")
	}
	if cfg.Postgres || pgstore {
		binDir, err := FindPGBin()
		if err != nil {
			return nil, err
		}
		r.logf("starting PostgreSQL (%s)", binDir)
		if r.pg, err = StartPGCluster(binDir, filepath.Join(work, "pg"), cfg.Keep); err != nil {
			return nil, err
		}
		if cfg.Keep {
			defer r.logf("PostgreSQL left running at %s; stop it with: %s", r.pg.URL("postgres"), r.pg.StopCommand())
		} else {
			defer r.pg.Remove()
		}
		res.Machine.PostgreSQL = r.pg.Version(ctx)
	}

	for _, n := range cfg.Sizes {
		z, err := r.runSize(ctx, n, pgstore)
		if z != nil {
			res.Sizes = append(res.Sizes, z)
		}
		if err != nil {
			return res, err
		}
	}
	res.Finished = time.Now()
	res.LoadAfter = loadavg()
	var sizes []string
	for _, z := range res.Sizes {
		sizes = append(sizes, sizeLabel(z.N))
	}
	res.Parts = []string{fmt.Sprintf("`%s` at %s (%s; took %s)", cfg.Command, res.Started.UTC().Format("15:04 MST"),
		strings.Join(sizes, ", "), res.Finished.Sub(res.Started).Round(time.Second))}
	return res, nil
}

func (r *runner) singleEvents(n int) int {
	if r.cfg.SingleEvents > 0 {
		return min(r.cfg.SingleEvents, n)
	}
	return min(n/10, 20_000)
}

func (r *runner) runSize(ctx context.Context, n int, pgstore bool) (*SizeResult, error) {
	start := time.Now()
	z := &SizeResult{N: n}
	r.logf("=== %s events: counting the stream and evaluating the queries", count(int64(n)))
	d := NewDataset(r.cfg.Seed, n, time.Now().UTC())
	d.Analyze()
	z.Dataset, z.AnalyzeTime = d, time.Since(start)
	r.logf("analysis took %s", z.AnalyzeTime.Round(time.Millisecond))
	for _, q := range d.Queries {
		r.logf("  %-22s %8d matches  %s", q.Key, q.Matches, q.Param)
	}

	// Every system is loaded first and waits out its background work;
	// then the suite runs each query on every system in turn, so that the
	// figures compared were measured seconds apart, not minutes: this
	// machine's speed moves that much between minutes. The embedded store
	// is loaded last: a load's background IO outlasts its CPU (PostgreSQL
	// writes its bulk load and index builds out for minutes), and ours,
	// loaded first in a trial, ran its durable self-audit writes beside
	// the baseline's (docs/design/performance.md). The disk is waited out
	// before the suite as well.
	var ready []*readySystem
	defer func() {
		for _, rs := range ready {
			rs.cleanup()
		}
	}()
	embedded := &SystemResult{Key: SysEmbedded, Name: "audittrail, embedded store", events: n}
	z.Systems = append(z.Systems, embedded)
	if r.cfg.Postgres {
		sys := &SystemResult{Key: SysSQL, Name: "PostgreSQL, hand-written SQL", events: n}
		z.Systems = append(z.Systems, sys)
		rs, err := r.prepareBaseline(ctx, z, sys)
		if err != nil {
			sys.Err = err
			return z, fmt.Errorf("PostgreSQL baseline, %d events: %w", n, err)
		}
		ready = append(ready, rs)
	}
	if r.cfg.PGStore {
		sys := &SystemResult{Key: SysPGStore, Name: "audittrail, PostgreSQL store", events: n}
		z.Systems = append(z.Systems, sys)
		switch {
		case !pgstore:
			sys.Skipped = "the server binary has no --store flag yet"
		case r.cfg.PGStoreMax > 0 && n > r.cfg.PGStoreMax:
			sys.Skipped = fmt.Sprintf("sizes above %s are not run on the PostgreSQL store (-pgstore-max)", count(int64(r.cfg.PGStoreMax)))
		default:
			db := fmt.Sprintf("audittrail_%d", n)
			if err := r.pg.CreateDatabase(ctx, db); err != nil {
				return z, err
			}
			rs, err := r.prepareServer(ctx, z, sys, []string{"--store", r.pg.URL(db)})
			if err != nil {
				sys.Err = err
				return z, fmt.Errorf("PostgreSQL store, %d events: %w", n, err)
			}
			finish := rs.finish
			rs.finish = func() error {
				if err := finish(); err != nil {
					return err
				}
				if err := r.dbSizes(ctx, db, sys, ""); err != nil {
					r.note("PostgreSQL store size: %v", err)
				}
				return nil
			}
			cleanup := rs.cleanup
			rs.cleanup = func() {
				cleanup()
				if !r.cfg.Keep {
					_ = r.pg.DropDatabase(context.Background(), db)
				}
			}
			if r.cfg.PGStoreSuiteMax > 0 && n > r.cfg.PGStoreSuiteMax {
				// Measured now, and its database dropped before the
				// embedded store's ingest, so that its tables do not
				// share the page cache with the others' suite.
				sys.SuiteSkipped = fmt.Sprintf("sizes above %s run only the ingest on the PostgreSQL store (-pgstore-suite-max)", count(int64(r.cfg.PGStoreSuiteMax)))
				err := rs.finish()
				rs.cleanup()
				if err != nil {
					sys.Err = err
					return z, fmt.Errorf("PostgreSQL store, %d events: %w", n, err)
				}
				break
			}
			ready = append(ready, rs)
		}
	}
	rs, err := r.prepareServer(ctx, z, embedded, nil)
	if err != nil {
		embedded.Err = err
		return z, fmt.Errorf("embedded store, %d events: %w", n, err)
	}
	// First in the suite's turn, as in the tables.
	ready = append([]*readySystem{rs}, ready...)
	if err := r.quietDisk(ctx, z); err != nil {
		return z, err
	}
	r.suite(ctx, z, ready)
	for _, rs := range ready {
		if err := rs.finish(); err != nil {
			rs.sys.Err = err
			return z, fmt.Errorf("%s, %d events: %w", rs.sys.Name, n, err)
		}
	}
	z.Wall = time.Since(start)
	r.logf("=== %s events done in %s", count(int64(n)), z.Wall.Round(time.Second))
	return z, nil
}

// readySystem is a system loaded and idle, ready for the suite.
type readySystem struct {
	sys       *SystemResult
	searchers []Searcher
	tag       string // of its profiles
	pid       int    // the process measured (the server, or PostgreSQL)
	dbPID     int    // the database the server stores in (PostgreSQL store); 0: none
	probe     func() (StoreTimes, error)
	// finish takes the measurements after the suite; cleanup stops
	// and removes what the system used (also after an error).
	finish  func() error
	cleanup func()
}

// prepareServer starts the server binary and ingests through its internal
// listener; the suite then runs through the public one, over REST and gRPC.
func (r *runner) prepareServer(ctx context.Context, z *SizeResult, sys *SystemResult, extra []string) (_ *readySystem, err error) {
	start := time.Now()
	d := z.Dataset
	tag := fmt.Sprintf("%s-%s", sys.Key, sizeLabel(d.N))
	dataDir := filepath.Join(r.work, tag)
	r.logf("%s: starting the server", sys.Name)
	var dialTLS []client.Option
	httpClient := NewHTTPClient()
	if r.tls != nil {
		extra = append(extra, r.tls.serverFlags()...)
		dialTLS = append(dialTLS, client.WithTLS(r.tls.CertFile))
		httpClient = r.tls.httpClient()
	}
	srv, err := StartServer(r.bin, dataDir, filepath.Join(r.work, tag+".log"), extra...)
	if err != nil {
		return nil, err
	}
	srv.HTTP = httpClient
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	closers = append(closers, func() {
		srv.Kill()
		if !r.cfg.Keep {
			os.RemoveAll(dataDir)
		}
	})
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	pid := srv.PID()
	dbPID := 0
	if sys.Key == SysPGStore {
		dbPID = r.pg.PostmasterPID()
	}
	producer, err := client.Dial(ctx, srv.InternalAddr, append(dialTLS, client.WithToken(srv.ProducerToken))...)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { producer.Close() })
	sys.Profiles = map[string]string{}

	src := d.Source()
	single := r.singleEvents(d.N)
	r.logf("%s: ingest, %s events with CreateEvent from %d producers", sys.Name, count(int64(single)), r.cfg.SingleProducers)
	rec := r.prof.Start(tag+"-ingest-single", pid)
	ing, err := IngestAPISingle(ctx, producer, src, single, r.cfg.SingleProducers, pid, dbPID)
	sys.Profiles["ingest-single"] = rec.Stop()
	if err != nil {
		return nil, err
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: %s events/s", sys.Name, rate(int64(ing.Events), ing.Elapsed))

	rest := d.N - single
	r.logf("%s: ingest, %s events with BatchCreateEvents of %d from %d producers", sys.Name, count(int64(rest)), r.cfg.Batch, r.cfg.Producers)
	rec = r.prof.Start(tag+"-ingest-batch", pid)
	ing, err = IngestAPIBatches(ctx, producer, src, rest, r.cfg.Batch, r.cfg.Producers, pid, dbPID)
	sys.Profiles["ingest-batch"] = rec.Stop()
	if err != nil {
		return nil, err
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: %s events/s (other processes used %.1f cores)", sys.Name, rate(int64(ing.Events), ing.Elapsed), ing.OtherCPU.Seconds()/ing.Elapsed.Seconds())
	if got := single + ing.Events; got != d.N {
		return nil, fmt.Errorf("ingested %d events of %d", got, d.N)
	}
	r.logCoverage(ctx, sys, srv, d.N)
	r.settle(ctx, sys, pid, dbPID)
	sys.RSSIngest, _ = ProcStatus(pid, "VmHWM")
	if sys.Key == SysEmbedded {
		sys.DiskIngest, _, _ = DiskUsage(dataDir)
	}
	if err := ResetPeakRSS(pid); err != nil {
		r.note("could not reset the peak RSS of the server (%v): its suite peak includes ingest", err)
	}

	reader, err := client.Dial(ctx, srv.PublicAddr, append(dialTLS, client.WithToken(srv.ReaderToken))...)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { reader.Close() })
	prepared := time.Since(start)
	finish := func() error {
		start := time.Now()
		err := r.finishServer(ctx, z, sys, srv, producer, dataDir, dbPID)
		sys.Wall = prepared + sys.SuiteWall + time.Since(start)
		return err
	}
	return &readySystem{
		sys: sys,
		searchers: []Searcher{
			&RESTSearcher{Label: "REST", URL: srv.PublicURL, Token: srv.ReaderToken, HTTP: httpClient},
			&GRPCSearcher{Label: "gRPC", Client: reader},
		},
		tag:     tag,
		pid:     pid,
		dbPID:   dbPID,
		probe:   func() (StoreTimes, error) { return srv.StoreTimes(ctx) },
		finish:  finish,
		cleanup: cleanup,
	}, nil
}

// finishServer measures a server after the suite: its memory and disk, one
// durable write at a time, and its disk after it has shut down.
func (r *runner) finishServer(ctx context.Context, z *SizeResult, sys *SystemResult, srv *Server, producer *client.Client, dataDir string, dbPID int) error {
	d := z.Dataset
	pid := srv.PID()
	sys.RSSSuite, _ = ProcStatus(pid, "VmHWM")
	sys.RSSEnd, _ = ProcStatus(pid, "VmRSS")
	if sys.Key == SysEmbedded {
		sys.DiskEnd, _, _ = DiskUsage(dataDir)
	}

	// One durable write at a time: what the self-audit event of every
	// search costs at least. Other events (another seed), after the suite.
	other := NewDataset(r.cfg.Seed+1_000_003, SerialCreates, d.Now)
	ing, err := IngestAPISingle(ctx, producer, other.Source(), SerialCreates, 1, pid, dbPID)
	if err != nil {
		return err
	}
	ing.Note = "one at a time, after the suite: the latency of one durable write"
	if sys.SuiteSkipped != "" {
		ing.Note = "one at a time, after the ingest: the latency of one durable write"
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: one CreateEvent at a time: p50 %s ms, p99 %s ms", sys.Name, ms(ing.Calls.Pct(50)), ms(ing.Calls.Pct(99)))

	if err := srv.Stop(); err != nil {
		return err
	}
	if sys.Key == SysEmbedded {
		sys.DiskStopped, sys.DiskApparent, _ = DiskUsage(dataDir)
		sys.DiskFiles, _ = DiskBreakdown(dataDir)
	}
	return nil
}

// suite runs every query on every system in turn, each on all its
// searchers. Other processes' CPU is watched over the whole suite, the
// systems' own processes excepted.
func (r *runner) suite(ctx context.Context, z *SizeResult, systems []*readySystem) {
	var pids []int
	for _, rs := range systems {
		pids = append(pids, rs.pid)
		rs.sys.Queries = map[string]map[string]*QueryResult{}
		for _, s := range rs.searchers {
			rs.sys.Protocols = append(rs.sys.Protocols, s.Name())
			rs.sys.Queries[s.Name()] = map[string]*QueryResult{}
		}
	}
	if pg := r.pgPID(); pg != 0 {
		pids = append(pids, pg)
	}
	watch := WatchCPU(pids...)
	for _, q := range z.Dataset.Queries {
		for _, rs := range systems {
			start := time.Now()
			r.runQuery(ctx, z, rs, q)
			rs.sys.SuiteWall += time.Since(start)
		}
	}
	if qs := concurrentQueries(z.Dataset.Queries); r.cfg.Concurrency > 0 && len(qs) > 0 {
		for _, rs := range systems {
			start := time.Now()
			s := rs.searchers[0]
			opt := RunOptions{Probe: rs.probe, PID: rs.pid, DBPID: rs.dbPID}
			if r.prof != nil {
				opt.Profiler, opt.ProfName = r.prof, rs.tag+"-concurrent"
			}
			res := RunConcurrent(ctx, s, qs, r.cfg.Concurrency, r.cfg.ConcurrentTime, opt)
			rs.sys.Concurrent = &res
			if res.Profile != "" {
				rs.sys.Profiles["concurrent searches"] = res.Profile
			}
			rs.sys.SuiteWall += time.Since(start)
			if res.Errors > 0 || res.Wrong > 0 {
				r.mismatch("%s, %s, %s, concurrent searches: %d errors (first: %s), %d wrong answers of %d", sizeLabel(z.N), rs.sys.Name, s.Name(), res.Errors, res.ErrMsg, res.Wrong, len(res.Lat))
			}
			r.logf("%s %-5s concurrent searches, %d clients: %.0f/s  p50 %s ms  p99 %s ms  (CPU/search server %s ms, client %s ms)", rs.sys.Key, s.Name(), res.Workers,
				res.Rate(), ms(res.Lat.Pct(50)), ms(res.Lat.Pct(99)), ms(res.ServerCPU), ms(res.ClientCPU))
		}
	}
	other := watch.OtherCores()
	for _, rs := range systems {
		rs.sys.SuiteOtherCores = other
	}
}

// runQuery runs q on every searcher of one system.
func (r *runner) runQuery(ctx context.Context, z *SizeResult, rs *readySystem, q *Query) {
	sys := rs.sys
	for _, s := range rs.searchers {
		// Server profiles of the first protocol only: the second runs the
		// same server code.
		opt := RunOptions{Probe: rs.probe, Budget: r.cfg.QueryBudget, PID: rs.pid}
		if s == rs.searchers[0] && r.prof != nil {
			opt.Profiler, opt.ProfName = r.prof, rs.tag+"-query-"+q.Key
		}
		res := RunQuery(ctx, s, q, r.cfg.Runs, opt)
		sys.Queries[s.Name()][q.Key] = &res
		switch {
		case res.Err != nil:
			r.mismatch("%s, %s, %s, %s: ERROR %v", sizeLabel(z.N), sys.Name, s.Name(), q.Key, res.Err)
		case res.Mismatch != "":
			r.mismatch("%s, %s, %s, %s: WRONG ANSWER: %s", sizeLabel(z.N), sys.Name, s.Name(), q.Key, res.Mismatch)
		}
		r.logf("%s %-5s %-22s p50 %8s ms  p99 %8s ms  first %8s ms  (%d requests; CPU/run server %s ms, client %s ms)%s", sys.Key, s.Name(), q.Key,
			ms(res.Lat.Pct(50)), ms(res.Lat.Pct(99)), ms(res.First), res.Requests, ms(res.ServerCPU), ms(res.ClientCPU), res.storeNote())
	}
}

func (r *runner) mismatch(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Mismatches = append(r.res.Mismatches, msg)
	fmt.Fprintf(r.cfg.Log, "\n!!!!!!!! MISMATCH: %s\n\n", msg)
}

// runBaseline loads the baseline schema and runs the suite as SQL.
func (r *runner) prepareBaseline(ctx context.Context, z *SizeResult, sys *SystemResult) (_ *readySystem, err error) {
	start := time.Now()
	d := z.Dataset
	db := fmt.Sprintf("baseline_%d", d.N)
	if err := r.pg.CreateDatabase(ctx, db); err != nil {
		return nil, err
	}
	var pool *pgxpool.Pool
	cleanup := func() {
		if pool != nil {
			pool.Close()
			pool = nil
		}
		if !r.cfg.Keep {
			_ = r.pg.DropDatabase(context.Background(), db)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	pcfg, err := pgxpool.ParseConfig(r.pg.URL(db))
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = int32(max(r.cfg.SingleProducers, r.cfg.Producers) + 4)
	// pgx prepares statements; after five executions PostgreSQL may
	// switch to a generic plan, blind to the parameter's value: for the
	// popular principal it picks the principal index and sorts all its
	// events (100× slower). A hand-tuned application avoids that.
	pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, err
	}
	pgPID := r.pg.PostmasterPID()
	sys.Profiles = map[string]string{}

	// COPY, into a table of its own that is dropped afterwards.
	measure := d.N
	if r.cfg.MeasureEvents > 0 {
		measure = min(measure, r.cfg.MeasureEvents)
	}
	if err := CreateBaseline(ctx, pool, "events_copy"); err != nil {
		return nil, err
	}
	r.logf("%s: COPY of %s events, %d rows per COPY, %d streams", sys.Name, count(int64(measure)), r.cfg.CopyBatch, r.cfg.Producers)
	ing, err := IngestSQL(ctx, pool, d, d.Source(), "events_copy", "COPY", measure, r.cfg.CopyBatch, r.cfg.Producers, pgPID)
	if err != nil {
		return nil, err
	}
	if measure < d.N {
		ing.Note = fmt.Sprintf("the first %s events, into a table of their own", count(int64(measure)))
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: COPY %s events/s", sys.Name, rate(int64(ing.Events), ing.Elapsed))
	if _, err := pool.Exec(ctx, "DROP TABLE events_copy"); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, err
	}

	// The table of the suite, loaded as the API loads: single-row
	// INSERTs (one transaction each) for the first events, then INSERTs
	// of 1000 rows; past the measured events, a bulk load.
	if err := CreateBaseline(ctx, pool, "events"); err != nil {
		return nil, err
	}
	src := d.Source()
	single := r.singleEvents(d.N)
	r.logf("%s: %s single-row INSERTs from %d connections", sys.Name, count(int64(single)), r.cfg.SingleProducers)
	ing, err = IngestSQL(ctx, pool, d, src, "events", "INSERT", single, 1, r.cfg.SingleProducers, pgPID)
	if err != nil {
		return nil, err
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: %s events/s", sys.Name, rate(int64(ing.Events), ing.Elapsed))
	batched := max(min(measure, d.N)-single, 0)
	r.logf("%s: %s events in INSERTs of %d rows from %d connections", sys.Name, count(int64(batched)), r.cfg.Batch, r.cfg.Producers)
	ing, err = IngestSQL(ctx, pool, d, src, "events", "INSERT", batched, r.cfg.Batch, r.cfg.Producers, pgPID)
	if err != nil {
		return nil, err
	}
	if single+batched < d.N {
		ing.Note = fmt.Sprintf("events %s to %s", count(int64(single+1)), count(int64(single+batched)))
	}
	sys.Ingest = append(sys.Ingest, ing)
	r.logf("%s: %s events/s", sys.Name, rate(int64(ing.Events), ing.Elapsed))
	if rest := d.N - single - batched; rest > 0 {
		// The rest only has to be there for the suite: drop the
		// indexes, COPY, and build them again, the fastest way to load.
		t := time.Now()
		r.logf("%s: bulk load of the other %s events (COPY without indexes, then CREATE INDEX)", sys.Name, count(int64(rest)))
		for _, stmt := range BaselineSchema[1:] {
			name := strings.Fields(stmt)[2]
			if _, err := pool.Exec(ctx, "DROP INDEX "+name); err != nil {
				return nil, err
			}
		}
		bulk, err := IngestSQL(ctx, pool, d, src, "events", "COPY", rest, r.cfg.CopyBatch, r.cfg.Producers, pgPID)
		if err != nil {
			return nil, err
		}
		tc := time.Now()
		for _, stmt := range BaselineSchema[1:] {
			if _, err := pool.Exec(ctx, stmt); err != nil {
				return nil, err
			}
		}
		sys.BulkLoad = fmt.Sprintf("events %s to %s: COPY without indexes %s (%s events/s), CREATE INDEX %s; %s in all",
			count(int64(single+batched+1)), count(int64(d.N)), bulk.Elapsed.Round(time.Second), rate(int64(bulk.Events), bulk.Elapsed),
			time.Since(tc).Round(time.Second), time.Since(t).Round(time.Second))
		r.logf("%s: %s", sys.Name, sys.BulkLoad)
	}
	t := time.Now()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		return nil, err
	}
	sys.Vacuum = time.Since(t)
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, err
	}
	r.settle(ctx, sys, pgPID)
	if err := r.dbSizes(ctx, db, sys, "events"); err != nil {
		return nil, err
	}
	sys.DiskIngest = sys.TableBytes + sys.IndexBytes
	sys.DiskEnd = sys.DiskIngest
	prepared := time.Since(start)
	return &readySystem{
		sys:       sys,
		searchers: []Searcher{&SQLSearcher{Label: "SQL", Pool: pool, Table: "events"}},
		tag:       fmt.Sprintf("sql-%s", sizeLabel(d.N)),
		pid:       pgPID,
		finish: func() error {
			sys.Wall = prepared + sys.SuiteWall
			return nil
		},
		cleanup: cleanup,
	}, nil
}

// dbSizes reads the size of a database and, when table is given, of a table
// and its indexes.
func (r *runner) dbSizes(ctx context.Context, db string, sys *SystemResult, table string) error {
	pool, err := pgxpool.New(ctx, r.pg.URL(db))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&sys.DBBytes); err != nil {
		return err
	}
	if table == "" {
		// Every user table of the store, with its indexes.
		return pool.QueryRow(ctx, `SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint, coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`).Scan(&sys.TableBytes, &sys.IndexBytes)
	}
	return pool.QueryRow(ctx, "SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass)", table).Scan(&sys.TableBytes, &sys.IndexBytes)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
