//go:build unix

package flock_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/flock"
)

// TestLock: a second lock of one file is refused while the first is held
// (flock locks are per open file, so this holds within one process too),
// and granted once it is released.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := flock.Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flock.Lock(path); !errors.Is(err, flock.ErrLocked) {
		t.Fatalf("a second lock: %v, want ErrLocked", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = flock.Lock(path)
	if err != nil {
		t.Fatalf("the lock after its release: %v", err)
	}
	unlock()
	if _, err := flock.Lock(filepath.Join(t.TempDir(), "missing", "lock")); err == nil {
		t.Fatal("a lock in a missing directory")
	}
}
