package pebblestore

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/audittrail/audittrail"
)

// DefaultMinFreeBytes is the free space kept in reserve on the store's file
// system when Config.MinFreeBytes is 0.
const DefaultMinFreeBytes = 1 << 30

// diskCheckInterval is how stale the free space an append is judged by may
// be. At 100,000 events/s the store writes about 60 MB/s (WAL, flushes and
// compactions), so a check every 100 ms lets the reserve shrink by a few MB
// between two checks.
const diskCheckInterval = 100 * time.Millisecond

// diskReserve refuses appends while the store's file system has less free
// space than a reserve.
//
// Why: Pebble treats a failed WAL write as fatal (a "fatal commit error":
// the process stops), and flushes and compactions that run out of space
// stall every write. Either way producers get no answer, and a server
// restarted on the full disk fails again. Refusing appends before that, with
// an error that says why (RESOURCE_EXHAUSTED, which producers retry), keeps
// what is stored safe and the server up, and appends resume by themselves
// once space is freed. The reserve also leaves Pebble room to flush and
// compact what it holds. Searches go on while appends are refused, unless
// their own audit record is required (fail closed), which is an append too.
type diskReserve struct {
	fs  vfs.FS
	dir string
	min uint64 // 0: no reserve
	log *slog.Logger

	next atomic.Int64  // Unix ns: the free space is read again from then on
	free atomic.Uint64 // at the last reading; ^0 when unknown
	low  atomic.Bool   // free < min at the last reading (for the log's transitions)
	// failing is set while the free space cannot be read (logged once).
	failing atomic.Bool
}

func newDiskReserve(fs vfs.FS, dir string, minFree int64, log *slog.Logger) *diskReserve {
	d := &diskReserve{fs: fs, dir: dir, log: log}
	switch {
	case minFree == 0:
		d.min = DefaultMinFreeBytes
	case minFree > 0:
		d.min = uint64(minFree)
	}
	d.free.Store(^uint64(0))
	return d
}

// check returns an EExhausted error while the free space is under the
// reserve, reading it at most once per diskCheckInterval.
func (d *diskReserve) check() error {
	if d.min == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if n := d.next.Load(); now >= n && d.next.CompareAndSwap(n, now+int64(diskCheckInterval)) {
		d.read()
	}
	if free := d.free.Load(); free < d.min {
		return audittrail.Errorf(audittrail.EExhausted,
			"the data directory's file system has %d MiB free, less than the %d MiB kept in reserve: "+
				"events are refused until space is freed (retry later; operators: free space, or lower --min-free-disk-mib)",
			free>>20, d.min>>20)
	}
	return nil
}

// read reads the free space and logs when it crosses the reserve.
func (d *diskReserve) read() {
	u, err := d.fs.GetDiskUsage(d.dir)
	if err != nil {
		// Unknown: do not refuse appends for a failing statfs.
		d.free.Store(^uint64(0))
		if !d.failing.Swap(true) {
			d.log.Warn("pebblestore: cannot read the data directory's free space: appends are not held to the reserve", "dir", d.dir, "err", err)
		}
		return
	}
	d.failing.Store(false)
	d.free.Store(u.AvailBytes)
	low := u.AvailBytes < d.min
	if d.low.Swap(low) != low {
		if low {
			d.log.Error("pebblestore: the data directory's file system is nearly full: appends are refused until space is freed",
				"dir", d.dir, "free_mib", u.AvailBytes>>20, "reserve_mib", d.min>>20)
		} else {
			d.log.Info("pebblestore: free space is above the reserve again: appends resume", "dir", d.dir, "free_mib", u.AvailBytes>>20)
		}
	}
}

// DiskSpace reads the free space of the store's file system now (and
// refreshes what appends are judged by), for monitoring: an alert can fire
// well before the reserve stops appends. reserve is 0 when there is none; ok
// is false when the free space cannot be read.
func (s *Store) DiskSpace() (free, reserve uint64, ok bool) {
	s.reserve.read()
	free = s.reserve.free.Load()
	return free, s.reserve.min, free != ^uint64(0)
}
