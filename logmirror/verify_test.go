package logmirror_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/logmirror"
)

// TestVerifyFindsTampering makes a mirror of a real server's log, then
// changes copies of its files as someone with access to the storage could,
// and checks that Verify, offline, refuses each.
func TestVerifyFindsTampering(t *testing.T) {
	f := start(t)
	f.produce(t, 400)
	f.checkpoint(t, 400)
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	orig := lines(t, dir)
	cpText, err := os.ReadFile(filepath.Join(dir, logmirror.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}

	// copyWith writes a copy of the mirror with entries ls and checkpoint cp.
	copyWith := func(t *testing.T, ls [][]byte, cp []byte) string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, logmirror.EntriesFile), bytes.Join(ls, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, logmirror.CheckpointFile), cp, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	edited := func(i int, edit func([]byte) []byte) [][]byte {
		ls := slices.Clone(orig)
		ls[i] = edit(slices.Clone(ls[i]))
		return ls
	}
	for _, tc := range []struct {
		name    string
		entries [][]byte
		cp      []byte
	}{
		{"a value changed", edited(7, func(l []byte) []byte { return bytes.Replace(l, []byte(`"resource":"`), []byte(`"resource":"x`), 1) }), cpText},
		{"a line removed", slices.Delete(slices.Clone(orig), 3, 4), cpText},
		{"two lines swapped", func() [][]byte {
			ls := slices.Clone(orig)
			ls[10], ls[200] = ls[200], ls[10]
			return ls
		}(), cpText},
		{"the last line cut short", edited(len(orig)-1, func(l []byte) []byte { return l[:len(l)/2] }), cpText},
		{"a line that is not an event", edited(0, func([]byte) []byte { return []byte("{}\n") }), cpText},
		{"the checkpoint's size changed", orig, bytes.Replace(cpText, []byte("\n"+itoa(u.To)+"\n"), []byte("\n"+itoa(u.To-1)+"\n"), 1)},
		{"no checkpoint signature", orig, cpText[:bytes.Index(cpText, []byte("\n\n"))+1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := logmirror.Verify(copyWith(t, tc.entries, tc.cp), f.verifier)
			if !errors.Is(err, logmirror.ErrNotVerified) {
				t.Fatalf("Verify: %v, want ErrNotVerified", err)
			}
			t.Log(err)
		})
	}

	// Lines after the verified ones are an update that did not finish:
	// reported by Verify, cut off by the next Open.
	f2, err := os.OpenFile(filepath.Join(dir, logmirror.EntriesFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Write(append(slices.Clone(orig[0]), "half a line"...)); err != nil {
		t.Fatal(err)
	}
	f2.Close()
	v, err := logmirror.Verify(dir, f.verifier)
	if err != nil || v.Entries != u.To || v.Unverified != 2 {
		t.Fatalf("Verify with an unfinished update: %+v %v, want %d entries and 2 unverified lines", v, err, u.To)
	}
	m, err = logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := lines(t, dir); len(got) != len(orig) || !bytes.Equal(got[len(got)-1], orig[len(orig)-1]) {
		t.Fatalf("after Open: %d lines, want the %d verified", len(got), len(orig))
	}
	checkEntries(t, dir, f.verifier, u.To, nil)

	// A line edited in place to another length moves the end of the
	// verified bytes off a line's end: Open refuses the mirror rather than
	// cut there and join the next update's first line to an old one.
	m.Close()
	longer := bytes.Join(edited(7, func(l []byte) []byte { return bytes.Replace(l, []byte(`"resource":"`), []byte(`"resource":"x`), 1) }), nil)
	if err := os.WriteFile(filepath.Join(dir, logmirror.EntriesFile), longer, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := logmirror.Open(dir, f.verifier); err == nil || !strings.Contains(err.Error(), "was changed since the mirror's last update") {
		t.Fatalf("Open of a mirror with a line made longer: %v, want it refused", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, logmirror.EntriesFile)); err != nil || !bytes.Equal(got, longer) {
		t.Fatalf("the refused Open changed %s: %v", logmirror.EntriesFile, err)
	}

	// A state that claims more than the file holds is refused.
	if err := os.Truncate(filepath.Join(dir, logmirror.EntriesFile), 100); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := logmirror.Open(dir, f.verifier); err == nil {
		t.Error("Open accepted an entries file shorter than the verified entries")
	}
}

func itoa(n uint64) string { return string(strconv.AppendUint(nil, n, 10)) }

// TestVerifyUsesNewestCheckpoint: Verify checks the entries against the
// newer of the two signed checkpoints a mirror keeps (the file checkpoint
// and state.json's copy), so a checkpoint file put back to an older one does
// not turn the entries it no longer covers into "an update that did not
// finish": a changed line among them is found. A checkpoint file behind
// state.json after a crash between the two renames verifies everything, and
// a missing directory is an error, not an empty mirror.
func TestVerifyUsesNewestCheckpoint(t *testing.T) {
	f := start(t)
	f.produce(t, 300)
	oldText, old := f.checkpoint(t, 300)
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.produce(t, 300)
	f.checkpoint(t, old.Size+300)
	u, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if u.To <= old.Size {
		t.Fatalf("test setup: the second update reached %d, the old checkpoint %d", u.To, old.Size)
	}

	// copyOf copies the mirror's files; edit changes the copy.
	copyOf := func(t *testing.T, edit func(d string)) string {
		d := t.TempDir()
		for _, name := range []string{logmirror.EntriesFile, logmirror.CheckpointFile, logmirror.StateFile} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		edit(d)
		return d
	}
	writeFile := func(t *testing.T, path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The older checkpoint put back, and a line past it changed.
	rolledBack := copyOf(t, func(d string) {
		writeFile(t, filepath.Join(d, logmirror.CheckpointFile), oldText)
		ls := lines(t, d)
		i := old.Size + 10 // 0-based: entry old.Size+11
		ls[i] = bytes.Replace(ls[i], []byte(`"principal":"`), []byte(`"principal":"x`), 1)
		writeFile(t, filepath.Join(d, logmirror.EntriesFile), bytes.Join(ls, nil))
	})
	if _, err := logmirror.Verify(rolledBack, f.verifier); !errors.Is(err, logmirror.ErrNotVerified) {
		t.Errorf("a rolled-back checkpoint and a changed line past it: %v, want ErrNotVerified", err)
	}

	// The checkpoint file behind state.json (a crash between the renames),
	// or gone: state.json's checkpoint covers every entry.
	for name, edit := range map[string]func(d string){
		"behind":  func(d string) { writeFile(t, filepath.Join(d, logmirror.CheckpointFile), oldText) },
		"missing": func(d string) { os.Remove(filepath.Join(d, logmirror.CheckpointFile)) },
	} {
		v, err := logmirror.Verify(copyOf(t, edit), f.verifier)
		if err != nil || v.Entries != u.To || v.Unverified != 0 || v.Checkpoint == nil || v.Checkpoint.Size != u.To {
			t.Errorf("checkpoint file %s: %+v %v, want all %d entries verified", name, v, err, u.To)
		}
	}

	// state.json's copy changed: refused.
	tampered := copyOf(t, func(d string) {
		b, _ := os.ReadFile(filepath.Join(d, logmirror.StateFile))
		writeFile(t, filepath.Join(d, logmirror.StateFile), bytes.Replace(b, []byte(`"size":`), []byte(`"size":1`), 1))
	})
	if _, err := logmirror.Verify(tampered, f.verifier); !errors.Is(err, logmirror.ErrNotVerified) {
		t.Errorf("a state.json whose size is not its checkpoint's: %v, want ErrNotVerified", err)
	}

	if _, err := logmirror.Verify(filepath.Join(dir, "nonexistent"), f.verifier); err == nil || errors.Is(err, logmirror.ErrNotVerified) {
		t.Errorf("Verify of a directory that does not exist: %v, want an error", err)
	}
}
