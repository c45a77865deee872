package pebblestore

import (
	"context"
	"encoding/binary"
	"regexp"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// SetScanChunkEventsForTest sets the chunk size of parallel scans (small
// chunks exercise them on small data sets) and returns a function that
// restores it.
//
// The sequential head before a parallel scan shrinks with them, so that
// both run on small data sets.
func SetScanChunkEventsForTest(n int) (restore func()) {
	old, oldHead := scanChunkEvents, scanHeadRecords
	scanChunkEvents, scanHeadRecords = n, n
	return func() { scanChunkEvents, scanHeadRecords = old, oldHead }
}

// EvalRegexForTest evaluates re over the dictionary of field f (or of
// metadata key metaKey when set) without the cache, as a search plans, and
// returns the number of matching values.
func (s *Store) EvalRegexForTest(f audittrail.Field, metaKey string, re *regexp.Regexp) int {
	d := dictID(f)
	if metaKey != "" {
		d = dictMeta
	}
	snap := s.dicts.snapshot()
	c := &valueCond{d: d, re: newMatcher(re), metaKey: metaKey}
	if err := c.extend(context.Background(), snap, snap.vals[d].len()); err != nil {
		panic(err) // no deadline here
	}
	return len(c.members())
}

// SetHashCollisionsForTest makes the dictionaries' value hashes collide
// (one of four values) until restore.
func SetHashCollisionsForTest() (restore func()) {
	collideForTest = true
	return func() { collideForTest = false }
}

// DowngradeForTest makes the store look like one written before the value
// column (storage format 1): the column is deleted, or kept when
// keepColumn is set, as a build interrupted after writing it leaves it.
func (s *Store) DowngradeForTest(keepColumn bool) error {
	if !keepColumn {
		if err := s.db.DeleteRange([]byte{pfxColumn}, []byte{pfxColumn + 1}, pebble.Sync); err != nil {
			return err
		}
	}
	return s.db.Set(formatKey, []byte{formatWithoutColumn}, pebble.Sync)
}

// SetColumnWindowsForTest sets the value column's window target and the
// entries from which a window is read in parallel (small values exercise
// both on small data sets) and returns a function that restores them.
func SetColumnWindowsForTest(window, parallel int) (restore func()) {
	oldW, oldP := colWindowEntries, colParallelEntries
	colWindowEntries, colParallelEntries = window, parallel
	return func() { colWindowEntries, colParallelEntries = oldW, oldP }
}

// CompactAllForTest flushes the memtable and compacts every key into the
// bottom level (L6), and returns the number of tables there and above it.
func (s *Store) CompactAllForTest() (bottom, above int64, err error) {
	if err := s.db.Flush(); err != nil {
		return 0, 0, err
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		return 0, 0, err
	}
	m := s.db.Metrics()
	for i, l := range m.Levels {
		if i == len(m.Levels)-1 {
			bottom = l.TablesCount
		} else {
			above += l.TablesCount
		}
	}
	return bottom, above, nil
}

// TreeKeysForTest counts the stored tree hash keys (r) and leaf tiles (u).
func (s *Store) TreeKeysForTest() (hashes, leafTiles int, err error) {
	if err := scan(s.db, []byte{pfxTree}, func(k, v []byte) error { hashes++; return nil }); err != nil {
		return 0, 0, err
	}
	err = scan(s.db, []byte{pfxLeafTile}, func(k, v []byte) error { leafTiles++; return nil })
	return hashes, leafTiles, err
}

// WriteCurrentFormatForTest undoes WriteFormat5ForTest's and
// WriteFormat6ForTest's writes (their reads stay).
func (s *Store) WriteCurrentFormatForTest() {
	s.legacyWrites.format5, s.legacyWrites.format6, s.legacyWrites.format7 = false, false, false
}

// WriteFormat7ForTest makes s write its posting lists as stores of format 7
// did, without epochs (and read them), as a store written by an earlier
// build and opened by this one holds them.
func (s *Store) WriteFormat7ForTest() {
	s.legacyPostings.unpartitioned, s.legacyWrites.format7 = true, true
}

// ReadsFormat7ListsForTest says whether s reads posting lists without
// epochs.
func (s *Store) ReadsFormat7ListsForTest() bool { return s.legacyPostings.unpartitioned }

// EpochShiftForTest is log2 of the epochs' width in nanoseconds.
const EpochShiftForTest = epochShift

// EpochsForTest returns the epochs s's searches seek, oldest first.
func (s *Store) EpochsForTest() []uint32 { return slices.Clone(s.epochs.load()) }

// EpochOfForTest returns the epoch of time ns.
func EpochOfForTest(ns int64) uint32 { return epochOf(sortTime(ns)) }

// WriteFormat6ForTest makes s write the value column's entries as stores of
// format 6 did, without prefix refs, as a store written by an earlier build
// and opened by this one holds them.
func (s *Store) WriteFormat6ForTest() { s.legacyWrites.format6 = true }

// FormatVersionForTest is the storage format this build writes.
const FormatVersionForTest = formatVersion

// ColumnPrefixesForTest returns the value column's prefix dictionary, and
// ColumnKeysForTest counts the column's keys by their last byte (2: format
// 6's entries, 3: with prefix refs; 0: format 5's keys, without it).
func (s *Store) ColumnPrefixesForTest() []string {
	s.dicts.mu.RLock()
	v := s.dicts.d[dictColPrefix].vals.view()
	s.dicts.mu.RUnlock()
	out := make([]string, v.len())
	for i := range out {
		out[i] = v.at(i)
	}
	return out
}

func (s *Store) ColumnKeysForTest() (map[byte]int, error) {
	m := map[byte]int{}
	err := scan(s.db, []byte{pfxColumn}, func(k, v []byte) error {
		if len(k) == colKeyLenDelta {
			m[k[colKeyLen]]++
		} else {
			m[0]++
		}
		return nil
	})
	return m, err
}

// PutTreeHashesForTest stores hashes at storage indexes as they are given,
// every level included, as stores written before treeTileHeight did.
func (s *Store) PutTreeHashesForTest(newSize uint64, indexes []int64, hashes [][32]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	for i, idx := range indexes {
		if err := b.Set(treeKey(idx), hashes[i][:], nil); err != nil {
			return err
		}
	}
	if err := b.Set(treeSizeKey, binary.BigEndian.AppendUint64(nil, newSize), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// SetFormatForTest writes v as the store's storage format version.
func (s *Store) SetFormatForTest(v byte) error { return s.db.Set(formatKey, []byte{v}, pebble.Sync) }

// FormatForTest reads the store's storage format version.
func (s *Store) FormatForTest() (byte, error) {
	v, closer, err := s.db.Get(formatKey)
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return v[0], nil
}

// SimulateEarlierFiltersForTest makes stores opened until restore write and
// read table filters as builds before the id-only filter did.
func SimulateEarlierFiltersForTest() (restore func()) {
	earlierBuildFilters = true
	return func() { earlierBuildFilters = false }
}

// FiltersForTest returns the tables of each filter policy and the total
// size of the filter blocks.
func (s *Store) FiltersForTest() (tables map[string]int, bytes uint64, err error) {
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		return nil, 0, err
	}
	tables = map[string]int{}
	for _, l := range levels {
		for _, t := range l {
			tables[t.Properties.FilterPolicyName]++
			bytes += t.Properties.FilterSize
		}
	}
	return tables, bytes, nil
}

// FlushForTest writes the memtable to a table.
func (s *Store) FlushForTest() error { return s.db.Flush() }

// FilterProbesForTest returns how many times a table filter was consulted.
func (s *Store) FilterProbesForTest() int64 {
	m := s.db.Metrics()
	return m.Filter.Hits + m.Filter.Misses
}

// SetPairAnchorRateForTest sets the anchor frequency (one byte in rate)
// above which a column literal is searched by two of its bytes (pairIndex);
// 0 turns the pair search off. It returns a function that restores it.
func SetPairAnchorRateForTest(rate int) (restore func()) {
	old := pairAnchorRate
	pairAnchorRate = rate
	return func() { pairAnchorRate = old }
}

// SetUnbatchedFetchForTest turns the batches off: every candidate is read by
// the candidate-by-candidate walk, newest first. It returns a function that
// restores them.
func SetUnbatchedFetchForTest() (restore func()) {
	old := unbatchedFetch
	unbatchedFetch = true
	return func() { unbatchedFetch = old }
}

// SetParallelFetchForTest sets the candidates from which a page's records
// are read on several cores, and the number of readers (0: one per core),
// and returns a function that restores both.
func SetParallelFetchForTest(min, readers int) (restore func()) {
	oldMin, oldReaders := parallelFetchMin, fetchReadersOverride
	parallelFetchMin, fetchReadersOverride = min, readers
	return func() { parallelFetchMin, fetchReadersOverride = oldMin, oldReaders }
}

// SetListsOpenedHookForTest makes f run whenever a posting stream has opened
// its lists and not yet its record readers.
func SetListsOpenedHookForTest(f func()) (restore func()) {
	old := listsOpenedHook
	listsOpenedHook = f
	return func() { listsOpenedHook = old }
}

// ParallelFetchBatchesForTest returns the number of candidate batches read
// on several cores since the process started.
func ParallelFetchBatchesForTest() int64 { return parallelBatches.Load() }

// ParallelScansForTest returns the number of scans run on several cores, and
// ColumnHalvesForTest the number of value column windows read in two halves.
func ParallelScansForTest() int64 { return parallelScans.Load() }
func ColumnHalvesForTest() int64  { return columnHalves.Load() }

// WriteUnpackedPostingsForTest makes s write its postings as stores of
// format 4 did, one key per posting (and read them), as a store written by
// an earlier build and opened by this one holds them.
func (s *Store) WriteUnpackedPostingsForTest() {
	s.legacyPostings.read, s.legacyWrites.unpacked = true, true
}

// WriteFormat5ForTest makes s write ids' values, log positions and inline
// values' posting lists as stores of format 5 did (and read them), as a store written by an
// earlier build and opened by this one holds them.
func (s *Store) WriteFormat5ForTest() {
	s.legacyPostings.hash64, s.legacyPositions, s.legacyWrites.format5 = true, true, true
	s.legacyPostings.unpartitioned = true
}

// ReadsFormat5ListsForTest says whether s reads format 5's lists of inline
// values.
func (s *Store) ReadsFormat5ListsForTest() bool { return s.legacyPostings.hash64 }

// ReadsUnpackedPostingsForTest says whether s merges format 4's postings
// into its searches.
func (s *Store) ReadsUnpackedPostingsForTest() bool { return s.legacyPostings.read }

// KeysWithPrefixForTest counts the keys of s that start with prefix.
func (s *Store) KeysWithPrefixForTest(prefix byte) (int, error) {
	n := 0
	err := scan(s.db, []byte{prefix}, func(k, v []byte) error { n++; return nil })
	return n, err
}

// DiskUsageByPrefixForTest estimates the disk bytes of each key prefix.
func (s *Store) DiskUsageByPrefixForTest() map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range keyPrefixes {
		n, _ := s.db.EstimateDiskUsage([]byte{p}, []byte{p + 1})
		m[string(rune(p))] = n
	}
	return m
}

// IDFilterReadyForTest waits for the id filter's build and says whether it
// is in use.
func (s *Store) IDFilterReadyForTest() bool {
	<-s.ids.done
	return s.ids.ready.Load()
}

// IDsFilteredForTest counts the new ids whose idempotency check the filter
// answered without a read.
func (s *Store) IDsFilteredForTest() uint64 { return s.idsFiltered.Load() }

// CompactionBytesForTest returns the bytes Pebble's flushes and compactions
// have written since the store was opened, and the compactions in progress.
func (s *Store) CompactionBytesForTest() (written uint64, inProgress int64) {
	m := s.db.Metrics()
	for _, l := range m.Levels {
		written += l.TableBytesCompacted + l.TableBytesFlushed
	}
	return written, m.Compact.NumInProgress
}

// WithFSForTest returns cfg with the store's file system set to fs, such
// as Pebble's crashable in-memory one (vfs.NewCrashableMem), whose
// CrashClone keeps what was synced and loses a chosen part of the rest.
func WithFSForTest(cfg Config, fs vfs.FS) Config {
	cfg.fs = fs
	return cfg
}

// UncompressedForTest makes the store write its tables without
// compression, so that a test can look for bytes in its files, small (16
// KiB), so that each key range has tables of its own, as in a large store,
// and compact only when it asks (CompactAllForTest, retention), as the
// bottom level of a large store is left alone for months.
func UncompressedForTest(cfg Config) Config {
	cfg.uncompressed = true
	return cfg
}

// ListenForTest has f add callbacks to the Pebble event listener of the
// store opened with cfg.
func ListenForTest(cfg Config, f func(*pebble.EventListener)) Config {
	cfg.listen = f
	return cfg
}

// DiskCheckIntervalForTest is how long the free space read by an append
// stays in use.
const DiskCheckIntervalForTest = diskCheckInterval

// KeysBeforeForTest counts, by kind, the keys that hold nothing at or after
// cutoff: records ("e") and posting blocks ("p", "k", ...) whose (newest)
// time is before it, the value column's keys of buckets that end at or
// before it ("v"); and every id entry ("i").
func (s *Store) KeysBeforeForTest(cutoff int64) (map[string]int, error) {
	m := map[string]int{}
	bound := sortTime(cutoff)
	for _, pfx := range []byte{pfxEvent, pfxPacked, pfxPackedHashed, pfxPackedHash64, pfxPost, pfxHash, pfxEpochPacked, pfxEpochHashed} {
		err := scan(s.db, []byte{pfx}, func(k, v []byte) error {
			if binary.BigEndian.Uint64(k[len(k)-16:]) < bound {
				m[string(pfx)]++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err := scan(s.db, []byte{pfxColumn}, func(k, v []byte) error {
		if unsortTime(binary.BigEndian.Uint64(k[2:10])) < colBucket(cutoff)<<colBucketShift {
			m["v"]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(s.db, []byte{pfxID}, func(k, v []byte) error { m["i"]++; return nil })
	return m, err
}

// ForgetCleanedForTest makes the next retention pass walk every posting
// list, as after a pass that did not finish.
func (s *Store) ForgetCleanedForTest() {
	stale := int64(noCutoff + 1) // any cutoff but the store's
	if err := s.db.Set(cleanedKey, binary.BigEndian.AppendUint64(nil, uint64(stale)), pebble.Sync); err != nil {
		panic(err)
	}
}

// InterruptPassForTest leaves the store as a retention pass that the
// process's end interrupted does: marked in progress, its end unrecorded.
func (s *Store) InterruptPassForTest() {
	s.ForgetCleanedForTest()
	if err := s.db.Set(passingKey, binary.BigEndian.AppendUint64(nil, uint64(s.cutoff.Load())), pebble.Sync); err != nil {
		panic(err)
	}
}

// ForgetPassMarksForTest leaves the store as a build before the marks of
// passes (cleanedKey, passingKey) left it after its passes.
func (s *Store) ForgetPassMarksForTest() {
	for _, k := range [][]byte{cleanedKey, passingKey} {
		if err := s.db.Delete(k, pebble.Sync); err != nil {
			panic(err)
		}
	}
}

// DictionaryValuesForTest returns the values the dictionaries of the
// indexed fields hold, by field, the metadata pairs they hold (key "\x00"
// value) and the value column's prefixes, erased values left out.
func (s *Store) DictionaryValuesForTest() (fields [audittrail.NumFields]map[string]bool, meta, prefixes map[string]bool) {
	values := func(ids map[string]uint32) map[string]bool {
		m := map[string]bool{}
		for v := range ids {
			m[v] = true
		}
		return m
	}
	fieldIDs, metaIDs, prefixIDs := s.DictionaryIDsForTest()
	for f := range fields {
		fields[f] = values(fieldIDs[f])
	}
	return fields, values(metaIDs), values(prefixIDs)
}

// DictionaryIDsForTest is DictionaryValuesForTest with each value's id: a
// value erased and then stored again has a new one.
func (s *Store) DictionaryIDsForTest() (fields [audittrail.NumFields]map[string]uint32, meta, prefixes map[string]uint32) {
	ids := func(d dictID) map[string]uint32 {
		return dictEntriesForTest(s, d, func(_ *dictionary, id uint32) uint32 { return id })
	}
	for f := range fields {
		fields[f] = ids(dictID(f))
	}
	return fields, ids(dictMeta), ids(dictColPrefix)
}

// ErasePrefixesForTest runs the erasure of the column's unused prefixes of
// a retention pass.
func (s *Store) ErasePrefixesForTest(ctx context.Context) (int64, error) { return s.erasePrefixes(ctx) }

// SetPrefixScanHookForTest sets a function that retention's erasure of
// column prefixes calls between its read of the column and the erasure,
// and returns a function that removes it.
func SetPrefixScanHookForTest(f func()) (restore func()) {
	prefixScanHook = f
	return func() { prefixScanHook = nil }
}

// ColumnBucketStartForTest returns the start of the value column's bucket
// that holds t.
func ColumnBucketStartForTest(t time.Time) time.Time {
	return time.Unix(0, colBucket(t.UnixNano())<<colBucketShift).UTC()
}

// SplitColumnValueForTest is the split of an inline value in the column:
// its prefix, when it has one.
func SplitColumnValueForTest(v string) (prefix string, ok bool) {
	p, _, ok := splitColValue([]byte(v))
	return string(p), ok
}

// DumpForTest returns every key and value of the database, one after the
// other (what an iterator sees: deleted keys are not in it).
func (s *Store) DumpForTest() ([]byte, error) {
	var out []byte
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		out = append(append(append(out, it.Key()...), 0), it.Value()...)
		out = append(out, 0)
	}
	return out, firstErr(it.Error(), it.Close())
}

// CountsForTest returns the posting counts of the values the dictionaries
// of the indexed fields hold, by field, and of the metadata pairs (key
// "\x00" value), erased values left out.
func (s *Store) CountsForTest() (fields [audittrail.NumFields]map[string]uint64, meta map[string]uint64) {
	for f := range fields {
		fields[f] = s.countsForTest(dictID(f))
	}
	return fields, s.countsForTest(dictMeta)
}

// countsForTest returns the values of dictionary d with their counts,
// erased values left out.
func (s *Store) countsForTest(d dictID) map[string]uint64 {
	return dictEntriesForTest(s, d, func(dd *dictionary, id uint32) uint64 { return dd.counts[id] })
}

// dictEntriesForTest returns the values of dictionary d, erased values left
// out, each with what f says of its id.
func dictEntriesForTest[V any](s *Store, d dictID, f func(dd *dictionary, id uint32) V) map[string]V {
	s.dicts.mu.RLock()
	defer s.dicts.mu.RUnlock()
	m := map[string]V{}
	dd := &s.dicts.d[d]
	for id := range uint32(dd.vals.len()) {
		if !dd.erased[id] {
			m[dd.vals.at(id)] = f(dd, id)
		}
	}
	return m
}

// WriterBufferBytesForTest returns the bytes of the writer's groups'
// reusable buffers (group.bufferBytes), read on the writer goroutine
// between group commits.
func (s *Store) WriterBufferBytesForTest() (int, error) {
	n := 0
	r := &expireReq{done: make(chan struct{}), inspect: func(groups []*group) {
		for _, g := range groups {
			n += g.bufferBytes()
		}
	}}
	if err := s.sendExpire(context.Background(), r); err != nil {
		return 0, err
	}
	<-r.done
	return n, nil
}

// SetMaxIdleGroupBytesForTest sets the bound of a group's buffers while the
// writer is idle until restore.
func SetMaxIdleGroupBytesForTest(n int) (restore func()) {
	old := maxIdleGroupBytes
	maxIdleGroupBytes = n
	return func() { maxIdleGroupBytes = old }
}
