package pebblestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures Open.
type Config struct {
	// Dir is the directory of the database; it is created when missing.
	Dir string
	// Logger receives the store's and Pebble's log messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// CacheSize is the size in bytes of Pebble's block cache; 0 means
	// DefaultCacheSize. The cache holds decompressed blocks: a scan of
	// cached records runs about 1.4 times as fast as one that decompresses
	// them, and the records of 10M events take ~1.5 GB.
	CacheSize int64
	// DictionaryLimit bounds the values of each in-memory dictionary (each
	// indexed field, user_agent, all metadata pairs); a metadata key may
	// have a sixteenth of it. Values beyond are stored inline. 0 means
	// DefaultDictionaryLimit. See docs/design/storage.md.
	DictionaryLimit int
	// MinFreeBytes is the free space kept in reserve on the file system of
	// Dir: appends are refused (EExhausted) while less is free, before
	// Pebble runs out of space mid-write (diskreserve.go). 0 means
	// DefaultMinFreeBytes; a negative value keeps no reserve.
	MinFreeBytes int64
	// SearchTimeout bounds the time of one Search; 0 means
	// DefaultSearchTimeout. A search that runs out of time returns the page
	// so far with Next where it stopped, like one that runs out of MaxScan,
	// or fails with EUnavailable when it has examined nothing (as the
	// PostgreSQL store does). MaxScan bounds the candidates; this bounds
	// what a candidate can cost, which a regular expression decides.
	SearchTimeout time.Duration
	// ReadOnly opens an existing store for reading only (audittrail verify
	// store): Pebble read-only (a WAL left by a crash is replayed in
	// memory), the storage format left as it is, appends refused, and
	// Close writes nothing. A store of an older format is read as it is,
	// without the move to this build's format that a read-write Open
	// makes, after which the builds that wrote it would refuse it; one of
	// formats 1 and 2 keeps lacking the value column, which only searches
	// read. Dir must hold a store.
	ReadOnly bool

	// fs is the file system of the store; nil means the operating
	// system's. Tests set a crashable in-memory one (export_test.go) to
	// lose what was not synced, as a power cut does.
	fs vfs.FS
	// uncompressed writes small tables without compression and makes no
	// compaction the store does not ask for, so that a test can look for
	// bytes in the files (export_test.go).
	uncompressed bool
	// listen, when set, adds callbacks to Pebble's event listener: the
	// benchmark that attributes Pebble's writing to the kinds of keys
	// follows flushes and compactions (BenchmarkWriteAmplification).
	listen func(*pebble.EventListener)
}

// DefaultCacheSize is the block cache size when Config.CacheSize is 0.
// It keeps the server's resident memory under 1 GiB at 10M events (issue 6's
// budget); a larger cache makes long scans faster (BENCHMARKS.md,
// docs/configuration.md --cache-mib).
const DefaultCacheSize = 256 << 20

// DefaultSearchTimeout is the bound of one search when
// Config.SearchTimeout is 0: the PostgreSQL store's. A search within MaxScan
// takes well under a second.
const DefaultSearchTimeout = 10 * time.Second

// Store is the embedded storage engine. It is safe for concurrent use.
type Store struct {
	db   *pebble.DB
	lock *pebble.Lock // Pebble's directory lock, held until Close is done
	dir  string       // Config.Dir
	fs   vfs.FS       // Config.fs, or the operating system's
	// readOnly is Config.ReadOnly: nothing is written, Close included.
	readOnly bool
	// reserve refuses appends while the disk is nearly full.
	reserve *diskReserve
	// bgErrors counts Pebble's background errors (failed flushes and
	// compactions), so that Close can tell a flush that fails from one
	// that takes time.
	bgErrors *atomic.Uint64
	log      *slog.Logger
	dicts    *dicts
	// countsMu orders the writes of posting counts: the committer's
	// (saveCounts) and retention's (subtractCounts), so that the later
	// write holds the later value.
	countsMu sync.Mutex
	// prefixUse, while retention erases column prefixes, holds the
	// prefixes the writer's groups used meanwhile (expire.go,
	// erasePrefixes). Writer goroutine only.
	prefixUse map[uint32]struct{}
	regex     *regexCache
	// searchTimeout is Config.SearchTimeout.
	searchTimeout time.Duration

	reqs    chan *appendReq // to the writer goroutine
	expires chan *expireReq // to the writer goroutine, unbuffered (expire.go)
	// cutoff is the retention cutoff (Unix ns; noCutoff when none): no
	// event before it is shown or accepted (expire.go).
	cutoff atomic.Int64
	// expireMu runs one retention pass at a time (expire.go); expireFrom,
	// which it guards, is where the next pass's records start (nil: at
	// the first); expired, which it guards too, is set by the first pass
	// since Open; raisedClean, too, by RaiseCutoff when it found the last
	// pass finished (cleanedKey at the cutoff it moved: the next pass may
	// still visit only the lists of the records it deletes).
	expireMu    sync.Mutex
	expireFrom  []byte
	expired     bool
	raisedClean bool
	writerDone  chan struct{}
	lastSeq     atomic.Uint64 // highest committed seq; visible to Search
	// lastReceive is the receive time (Unix ns) of the event at lastSeq
	// when the store was opened: the writer's starting point for keeping
	// receive times strictly increasing in seq order (see groupWriter).
	lastReceive int64
	// recent holds the records of the last committed events, so that the
	// verifiable log's integrator does not read them back (recent.go).
	recent *recentWindow
	ids    *idFilter // the stored ids, for the writer's idempotency check (idfilter.go)
	// idsFiltered counts the ids whose check the filter answered alone.
	idsFiltered atomic.Uint64
	// legacyPostings says which postings of earlier formats the store
	// holds, which searches merge with the packed lists (postings.go): read,
	// those of format 4 and earlier (one key per posting); hash64, format
	// 5's packed lists of inline values (q keys); unpartitioned, the
	// packed lists of formats 5 to 7, without epochs (p and k keys).
	legacyPostings struct{ read, hash64, unpartitioned bool }
	// epochs are the epochs of the store's posting lists (postings.go).
	epochs epochSet
	// legacyPositions says the store holds log positions of format 5 (a
	// key per seq), read beside the packed ones (positions.go).
	legacyPositions bool
	// legacyWrites are test knobs: new events are written as an earlier
	// build did, to make the stores it left. unpacked: postings of format 4;
	// format5: ids' values with their time, a log position per seq, inline
	// values' lists on 64-bit hashes; format6: the value column's entries
	// without prefix refs; format7: posting lists without epochs.
	legacyWrites struct{ unpacked, format5, format6, format7 bool }
	logins       logins
	closeMu      sync.RWMutex // read: an operation uses db; write: Close
	closed       bool
	closeErr     error
	closeFinish  sync.Once

	failMu  sync.Mutex
	failErr error // set when a commit failed: the store takes no more appends
}

// fail stops the store from writing: after a failed commit Pebble's state
// is unknown and in-memory dictionaries may be ahead of the database.
func (s *Store) fail(err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failErr == nil {
		s.log.Error("pebblestore: the store accepts no more appends after a failed write", "err", err)
		s.failErr = fmt.Errorf("pebblestore: the store stopped writing after an earlier failure: %w", err)
	}
}

func (s *Store) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failErr
}

var _ audittrail.Store = (*Store)(nil)

// Stats is a snapshot of the store's counters, for metrics.
type Stats struct {
	Events  uint64 // events stored
	NextSeq uint64 // the seq the next stored event gets
	// DictionaryValues and DictionaryBytes measure the in-memory
	// dictionaries (distinct field values and metadata pairs); their memory
	// use is roughly DictionaryBytes + 80 bytes per value.
	DictionaryValues int
	DictionaryBytes  int64
	// FrozenDictionaries names the dictionaries (and metadata keys, as
	// "metadata[key]") that reached their limit: their new values are
	// stored inline, and regexes on them read the value column.
	FrozenDictionaries []string
	// DiskBytes is the space the database takes on disk (tables, WAL,
	// manifests).
	DiskBytes uint64
	// ColumnDiskBytes estimates the part of the tables that holds the
	// value column (column.go).
	ColumnDiskBytes uint64
}

// Open opens (creating when needed) the store in cfg.Dir: it checks the
// storage format, loads the dictionaries and posting counts into memory and
// reads the last sequence number. Pebble replays its WAL, so everything an
// acknowledged Append wrote is there.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pebblestore: Config.Dir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := cfg.DictionaryLimit
	if limit <= 0 {
		limit = DefaultDictionaryLimit
	}
	if limit > maxDictValues {
		return nil, fmt.Errorf("pebblestore: Config.DictionaryLimit %d is above the maximum %d", limit, maxDictValues)
	}
	// The store holds Pebble's directory lock itself, from before Open to
	// after Close has removed the WAL files (removeFlushedWALs): another
	// process opening the directory in between would have its own WAL
	// files removed.
	if cfg.fs == nil {
		cfg.fs = vfs.Default
	}
	if cfg.ReadOnly {
		if _, err := cfg.fs.Stat(cfg.Dir); err != nil {
			return nil, fmt.Errorf("pebblestore: open %s: %w", cfg.Dir, err)
		}
	} else if err := cfg.fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", cfg.Dir, err)
	}
	lock, err := pebble.LockDirectory(cfg.Dir, cfg.fs)
	if errno := syscall.Errno(0); errors.As(err, &errno) && errno != syscall.EWOULDBLOCK && errno != syscall.EAGAIN {
		// The file system refused the lock file (read-only, say): no one
		// holds the lock, so the reason alone.
		return nil, fmt.Errorf("pebblestore: open %s: cannot lock it: %w", cfg.Dir, err)
	} else if err != nil {
		// Nearly always another server on the same directory (Pebble's
		// message is "resource temporarily unavailable", or "lock held by
		// current process").
		return nil, fmt.Errorf("pebblestore: open %s: cannot lock it; is another server running on this data directory? (%w)", cfg.Dir, err)
	}
	opts := pebbleOptions(cfg, log)
	opts.Lock = lock
	opts.ReadOnly = cfg.ReadOnly
	opts.ErrorIfNotExists = cfg.ReadOnly
	bgErrors := new(atomic.Uint64)
	logBGError := opts.EventListener.BackgroundError // a test's (ListenForTest)
	opts.EventListener.BackgroundError = func(err error) {
		bgErrors.Add(1)
		if logBGError != nil {
			logBGError(err)
			return
		}
		pebbleLogger{log}.Errorf("background error: %s", err) // Pebble's default
	}
	db, err := pebble.Open(cfg.Dir, opts)
	opts.Cache.Unref() // the DB holds its own reference
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		db:            db,
		lock:          lock,
		dir:           cfg.Dir,
		fs:            cfg.fs,
		readOnly:      cfg.ReadOnly,
		reserve:       newDiskReserve(cfg.fs, cfg.Dir, cfg.MinFreeBytes, log),
		bgErrors:      bgErrors,
		log:           log,
		dicts:         newDicts(limit),
		regex:         newRegexCache(regexCacheBytes),
		searchTimeout: cmp.Or(cfg.SearchTimeout, DefaultSearchTimeout),
		reqs:          make(chan *appendReq, 1024),
		expires:       make(chan *expireReq),
		recent:        &recentWindow{},
		writerDone:    make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	s.ids = newIDFilter(db, s.lastSeq.Load())
	go s.writer()
	return s, nil
}

// pebbleOptions returns the store's Pebble options for cfg, whose fs Open
// has set.
func pebbleOptions(cfg Config, log *slog.Logger) *pebble.Options {
	size := cfg.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	opts := &pebble.Options{
		Cache:  pebble.NewCache(size),
		Logger: pebbleLogger{log},
		// A WAL file takes what was written to it (walfs.go).
		FS: noWALPreallocation{cfg.fs},
		// A larger memtable absorbs write bursts and makes fewer, larger
		// L0 files; 64 MiB holds ~150k events with their index entries.
		MemTableSize: 64 << 20,
		// Writes stop when a second full memtable waits for the first
		// one's flush (about a second of work; filling one takes several
		// at 50k events/s). Pebble keeps this many + 1 used WAL files to
		// recycle, each about a memtable's size: 2 instead of 4 is 141 MiB
		// less on disk (docs/design/storage.md).
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       4,
		// Writes stop at 40 L0 sublevels: every flush overlaps the
		// whole key space (times, ids and postings), so each adds a
		// sublevel, and a search merges one iterator per sublevel until
		// compactions catch up. Producers waiting seconds is worse.
		L0StopWritesThreshold: 40,
		LBaseMaxBytes:         256 << 20,
		// One compaction at a time normally; Pebble starts a second one
		// (up to half the cores) when L0 piles up or compaction debt
		// grows. With one, a long compaction into the bottom levels let
		// L0 reach L0StopWritesThreshold while it ran: ingesting 10M
		// events at full speed, 11 write stalls of 4-17 s, and the slowest
		// call of 1000 events took 17.5 s. With two and the threshold
		// above at 40 instead of 24: no stall, slowest call 0.54 s
		// (BenchmarkAppendSustained, docs/design/storage.md).
		CompactionConcurrencyRange: func() (int, int) { return 1, max(2, runtime.GOMAXPROCS(0)/2) },
		FormatMajorVersion:         pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			// A stall means compactions fall behind the append rate:
			// operators should know.
			WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
				log.Warn("pebblestore: write stall: appends wait for flushes or compactions", "reason", i.Reason)
			},
			WriteStallEnd: func() { log.Info("pebblestore: write stall ended") },
			// A block that fails its checksum fails the read that met it
			// (Open, a search) with Pebble's corruption error; Pebble's
			// default would call the logger's Fatalf and end the process.
			DataCorruption: func(i pebble.DataCorruptionInfo) {
				log.Error("pebblestore: on-disk corruption", "path", i.Path, "err", i.Details.Error())
			},
		},
	}
	for i := range opts.Levels {
		l := &opts.Levels[i]
		// 8 KiB data blocks: a record read by key (every result of a
		// posting-list search, each page of a drain) decompresses its
		// whole block, and a result's records are spread over the time
		// range, one per block. Against 32 KiB, measured on 10M events
		// with the default cache (BenchmarkSearchDrain, SearchExact,
		// SearchRegexScan): a drain 3x faster, a first page of a
		// principal's events 1.3-2.7x faster, full scans 15-28% slower,
		// 4% more disk (docs/design/storage.md).
		l.BlockSize = 8 << 10
		l.IndexBlockSize = 256 << 10
		// Bloom filters over the ids make the idempotency lookup of a new
		// id (always a miss) cheap; no other key needs one (filter.go).
		l.FilterPolicy = filterPolicy()
		// Zstd where the data ends up (the lower levels hold ~90%); the
		// fast codec where data is rewritten soon, to save CPU on
		// flushes and the first compactions.
		if i < 2 {
			l.Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
		} else {
			l.Compression = func() *sstable.CompressionProfile { return sstable.ZstdCompression }
		}
	}
	opts.Filters = knownFilterPolicies()
	if cfg.listen != nil {
		cfg.listen(opts.EventListener)
	}
	if cfg.uncompressed {
		// No compaction but those the store asks for: in a store this
		// small, Pebble's own would soon rewrite every table and drop
		// deleted data whatever the store does.
		opts.DisableAutomaticCompactions = true
		for i := range opts.Levels {
			opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
			// Small tables, so that each key range of a small test store
			// has tables of its own, as in a large store.
			opts.TargetFileSizes[i] = 16 << 10
		}
		return opts
	}
	// The value column is read whole by regex searches: the fastest codec
	// decompresses it several times faster than zstd (docs/design/storage.md).
	opts.Experimental.SpanPolicyFunc = pebble.MakeStaticSpanPolicyFunc(pebble.DefaultComparer.Compare,
		pebble.KeyRange{Start: []byte{pfxColumn}, End: []byte{pfxColumn + 1}},
		pebble.SpanPolicy{PreferFastCompression: true})
	return opts
}

// hasKeys says whether the store has a key with prefix pfx.
func (s *Store) hasKeys(pfx byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfx}, UpperBound: []byte{pfx + 1}})
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, firstErr(it.Error(), it.Close())
}

// recover checks the format, loads the dictionaries and reads the last
// sequence number from the last log position (lastPosition: o keys, then
// the s keys of older stores).
func (s *Store) recover() error {
	v, closer, err := s.db.Get(formatKey)
	switch err {
	case nil:
		got := fmt.Sprintf("%x", v)
		old := len(v) == 1 && (v[0] == formatWithoutColumn || v[0] == formatWithoutMetaCol)
		readable := len(v) == 1 && (v[0] == formatEveryTreeLevel || v[0] == formatUnpackedPostings || v[0] == formatHash64Lists || v[0] == formatUnprefixedColumn || v[0] == formatUnpartitioned)
		ok := len(v) == 1 && v[0] == formatVersion
		closer.Close()
		if s.readOnly && (old || readable || ok) {
			// Read as it is: moving it would be a write.
		} else if old {
			if err := s.buildColumn(); err != nil {
				return fmt.Errorf("pebblestore: building the value column: %w", err)
			}
		} else if readable {
			if err := s.db.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
				return err
			}
		} else if !ok {
			return fmt.Errorf("pebblestore: storage format %s is not supported (this build reads formats %d to %d)", got, formatWithoutColumn, formatVersion)
		}
	case pebble.ErrNotFound:
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		empty := !it.First()
		it.Close()
		if !empty {
			return errors.New("pebblestore: the directory holds a database without a storage format version")
		}
		if s.readOnly {
			break
		}
		if err := s.db.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
			return err
		}
	default:
		return err
	}
	if err := s.dicts.load(s.db); err != nil {
		return err
	}
	if err := s.loadCutoff(); err != nil {
		return err
	}
	for _, pfx := range []byte{pfxPost, pfxHash} {
		legacy, err := s.hasKeys(pfx)
		if err != nil {
			return err
		}
		s.legacyPostings.read = s.legacyPostings.read || legacy
	}
	if s.legacyPostings.hash64, err = s.hasKeys(pfxPackedHash64); err != nil {
		return err
	}
	for _, pfx := range []byte{pfxPacked, pfxPackedHashed} {
		unpartitioned, err := s.hasKeys(pfx)
		if err != nil {
			return err
		}
		s.legacyPostings.unpartitioned = s.legacyPostings.unpartitioned || unpartitioned
	}
	if err := s.loadEpochs(); err != nil {
		return err
	}
	if err := s.loadLogins(); err != nil {
		return err
	}
	if s.legacyPositions, err = s.hasKeys(pfxSeq); err != nil {
		return err
	}
	s.lastReceive = -1 // no event yet: no lower bound (receive times are >= 0)
	seq, ns, ok, err := s.lastPosition()
	if err != nil || !ok {
		return err
	}
	last, err := s.eventAt(ns, seq)
	if err != nil {
		return err
	}
	s.lastSeq.Store(seq)
	s.lastReceive = last.ReceiveTime.UnixNano()
	return nil
}

// LastSeq returns the highest committed sequence number (0 when empty).
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	n := s.lastSeq.Load()
	st := Stats{Events: n, NextSeq: n + 1}
	st.DictionaryValues, st.DictionaryBytes, st.FrozenDictionaries = s.dicts.stats()
	s.closeMu.RLock()
	if !s.closed {
		st.DiskBytes = s.db.Metrics().DiskSpaceUsage()
		st.ColumnDiskBytes, _ = s.db.EstimateDiskUsage([]byte{pfxColumn}, []byte{pfxColumn + 1}) // an estimate: 0 on error
	}
	s.closeMu.RUnlock()
	return st
}

// Close stops accepting appends, waits for the appends in flight and the
// searches running, and closes the database.
func (s *Store) Close() error {
	s.closeFinish.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		close(s.reqs)
		s.closeMu.Unlock()
		<-s.writerDone
		s.ids.close()
		// The write lock waits for searches holding the read lock.
		s.closeMu.Lock()
		// A clean shutdown flushes the memtables, so that the store at
		// rest is its tables alone: the next Open replays nothing, and
		// the WAL files, which hold only flushed data then, are removed
		// (removeFlushedWALs).
		var flushErr error
		if !s.readOnly {
			flushErr = s.flushAtClose()
		}
		s.closeErr = s.db.Close()
		if flushErr != nil {
			s.log.Warn("pebblestore: flushing the memtables at close failed; the WAL is kept for the next Open", "err", flushErr)
		} else if s.closeErr == nil && !s.readOnly {
			s.closeErr = removeFlushedWALs(s.fs, s.dir)
		}
		s.closeErr = errors.Join(s.closeErr, s.lock.Close())
		s.closeMu.Unlock()
	})
	return s.closeErr
}

// flushAtClose flushes the memtables, or gives up as soon as a flush (or
// compaction) fails: Pebble retries a failed flush without end, so on a
// disk too full for the tables Close, and with it the server's shutdown on
// SIGTERM, would wait forever. What was not flushed is in the WAL, which
// the next Open replays.
func (s *Store) flushAtClose() error {
	failures := s.bgErrors.Load()
	done, err := s.db.AsyncFlush()
	if err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			if s.bgErrors.Load() != failures {
				return errors.New("pebblestore: a flush or compaction failed (logged above; a full disk?)")
			}
		}
	}
}

var errClosed = audittrail.Errorf(audittrail.EUnavailable, "the store is closed")

// pebbleLogger sends Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

// Infof goes to Debug: Pebble's informational messages (WAL recovery,
// table counts) are chatter for an operator of the service.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble for unrecoverable states (corruption it cannot
// continue from); it must not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}
