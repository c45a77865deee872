package durablefile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/internal/durablefile"
)

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "page-token.key")
	if err := durablefile.Create(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Never replaced.
	if err := durablefile.Create(path, []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want fs.ErrExist", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "first" {
		t.Fatalf("file holds %q (%v), want %q", got, err, "first")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// The temporary files are gone.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want the file alone: %v", len(entries), entries)
	}
	// The mode asked for, not the temporary file's.
	public := filepath.Join(dir, "log-verification.key")
	if err := durablefile.Create(public, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(public); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	if err := durablefile.Create(filepath.Join(dir, "missing", "key"), []byte("k"), 0o600); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

// TestCreateRace: of many creators of one file, one succeeds, the others
// are told it exists, and the file holds the winner's bytes whole.
func TestCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = durablefile.Create(path, []byte(fmt.Sprintf("creator %02d", i)), 0o600) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("creators %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("creator %d: %v", i, err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("creator %02d", winner); winner < 0 || string(got) != want {
		t.Fatalf("file holds %q, the winner was %d", got, winner)
	}
}

// TestReplace: the file is created, then replaced whole, with the mode
// asked for, and no temporary file stays behind.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, data := range []string{"first", "second, longer", "3"} {
		if err := durablefile.Replace(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != data {
			t.Fatalf("file holds %q (%v), want %q", got, err, data)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v), want the file alone", entries, err)
	}
	if err := durablefile.Replace(filepath.Join(dir, "missing", "state"), []byte("x"), 0o640); err == nil {
		t.Fatal("Replace in a missing directory succeeded")
	}
}
