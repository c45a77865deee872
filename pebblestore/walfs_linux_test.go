package pebblestore_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// allocated returns the bytes a file takes on disk and its size.
func allocated(t *testing.T, path string) (onDisk, size int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512, st.Size
}

// TestWALNotPreallocated checks that a young store's WAL takes about what
// was written to it: Pebble would reserve 70 MiB per WAL file
// (walfs.go).
func TestWALNotPreallocated(t *testing.T) {
	dir := t.TempDir()
	// The premise: this file system honours a reservation beyond the end
	// of a file, so a preallocated WAL would show.
	probe := filepath.Join(dir, "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 8<<20)
	f.Close()
	if err != nil {
		t.Skipf("the file system of %s cannot preallocate (%v): nothing to check", dir, err)
	}
	if got, _ := allocated(t, probe); got < 8<<20 {
		t.Skipf("the file system of %s ignores preallocation (%d bytes allocated for 8 MiB): nothing to check", dir, got)
	}
	os.Remove(probe)

	s := openStore(t, filepath.Join(dir, "store"))
	g := newGen(7)
	for i := 0; i < 20; i++ {
		mustAppend(t, s, g.batch(100))
	}
	for i := 0; i < 50; i++ {
		mustAppend(t, s, g.batch(1))
	}
	logs, err := filepath.Glob(filepath.Join(dir, "store", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL file in the store's directory (err %v)", err)
	}
	var written int64
	for _, l := range logs {
		onDisk, size := allocated(t, l)
		written += size
		// Block rounding and the file system's own speculative
		// allocation stay far under Pebble's 70 MiB.
		if onDisk > size+(1<<20) {
			t.Errorf("%s takes %d bytes on disk for %d written: preallocated", filepath.Base(l), onDisk, size)
		}
	}
	if written == 0 {
		t.Errorf("WAL files %s are empty: the appends were not logged where expected", strings.Join(logs, ", "))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
