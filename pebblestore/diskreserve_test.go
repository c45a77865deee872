package pebblestore_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestDiskReserve: while the file system has less free space than the
// reserve, appends are refused with EExhausted and nothing is written;
// searches go on; appends resume by themselves when space is freed, with no
// gap in the seqs. The transitions are logged once each.
func TestDiskReserve(t *testing.T) {
	const gib = 1 << 30
	mem := vfs.NewMem()
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 10 * gib, TotalBytes: 20 * gib})
	logs := &syncbuf.Buffer{}
	cfg := pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data", CacheSize: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, mem) // the default reserve, 1 GiB
	s := openStoreConfig(t, cfg)
	defer s.Close()
	g := newGen(7)
	all := stored(mustAppend(t, s, g.batch(50)))

	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: gib - 1, TotalBytes: 20 * gib})
	waitDiskCheck()
	_, err := s.Append(t.Context(), g.batch(10))
	var e *audittrail.Error
	if !errors.As(err, &e) || e.Code != audittrail.EExhausted || !strings.Contains(e.Message, "1023 MiB free, less than the 1024 MiB kept in reserve") {
		t.Fatalf("append on a nearly full disk: %v, want EExhausted naming the free space and the reserve", err)
	}
	if s.LastSeq() != 50 {
		t.Fatalf("LastSeq %d after refused appends, want 50", s.LastSeq())
	}
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 20, 0)); d != "" {
		t.Fatalf("search while appends are refused (-want +got):\n%s", d)
	}

	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 2 * gib, TotalBytes: 20 * gib})
	waitDiskCheck()
	mustAppend(t, s, g.batch(10))
	if s.LastSeq() != 60 {
		t.Fatalf("LastSeq %d after appends resumed, want 60", s.LastSeq())
	}
	if free, reserve, ok := s.DiskSpace(); free != 2*gib || reserve != gib || !ok {
		t.Errorf("DiskSpace() = %d, %d, %v; want %d, %d, true", free, reserve, ok, 2*gib, gib)
	}
	for _, want := range []string{"nearly full: appends are refused", "appends resume"} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("log line %q written %d times, want once:\n%s", want, n, logs)
		}
	}
}

// TestDiskReserveOff: a negative reserve keeps none; a file system whose
// free space cannot be read does not stop appends (one warning).
func TestDiskReserveOff(t *testing.T) {
	mem := vfs.NewMem()
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1, TotalBytes: 1 << 30})
	s := openStoreConfig(t, pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data", CacheSize: 8 << 20, MinFreeBytes: -1}, mem))
	mustAppend(t, s, newGen(8).batch(5))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &syncbuf.Buffer{}
	unknown := vfs.NewMem() // GetDiskUsage: ErrUnsupported
	s = openStoreConfig(t, pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data", CacheSize: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, unknown))
	defer s.Close()
	g := newGen(9)
	for range 3 {
		mustAppend(t, s, g.batch(5))
		waitDiskCheck()
	}
	if _, _, ok := s.DiskSpace(); ok {
		t.Error("DiskSpace() reports a free space that cannot be read")
	}
	if n := strings.Count(logs.String(), "cannot read the data directory's free space"); n != 1 {
		t.Errorf("the unreadable free space logged %d times, want once:\n%s", n, logs)
	}
}

// waitDiskCheck waits until the next append reads the free space again.
func waitDiskCheck() { time.Sleep(pebblestore.DiskCheckIntervalForTest + 10*time.Millisecond) }
