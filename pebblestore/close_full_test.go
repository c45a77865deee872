package pebblestore_test

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// fullDisk is an in-memory file system whose disk can fill up: while full,
// creating a table file fails with ENOSPC, as it does on a full disk (the
// WAL, written before, is untouched).
type fullDisk struct {
	vfs.FS
	full atomic.Bool
}

func (d *fullDisk) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if d.full.Load() && strings.HasSuffix(name, ".sst") {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	return d.FS.Create(name, category)
}

// syncWriter serializes the writes of the store's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  strings.Builder
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestCloseOnFullDisk: Close on a disk too full to flush the memtables
// returns (Pebble retries a failed flush without end), keeping the WAL, and
// the store opened again once there is space holds every event appended.
// Before, Close waited for the flush forever, and so did serve's shutdown on
// SIGTERM.
func TestCloseOnFullDisk(t *testing.T) {
	disk := &fullDisk{FS: vfs.NewMem()}
	logs := &syncWriter{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	cfg := pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data", CacheSize: 16 << 20, Logger: logger, MinFreeBytes: -1}, disk)
	s := openStoreConfig(t, cfg)
	g := newGen(7)
	all := appendBatches(t, s, g, 3, 200)
	disk.full.Store(true)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close on a full disk: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Close on a full disk did not return in 30 s")
	}
	if l := logs.String(); !strings.Contains(l, "flushing the memtables at close failed; the WAL is kept") {
		t.Errorf("premise: the flush at close did not fail:\n%s", l)
	}
	disk.full.Store(false)
	s = openStoreConfig(t, cfg)
	defer s.Close()
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("after reopening (-want +got)\n%s", d)
	}
}
