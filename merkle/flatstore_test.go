package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memTree returns n distinct leaves and their tree in a MemStore, the
// reference the FlatStore tests compare with.
func memTree(t *testing.T, n int) ([]tlog.Hash, *MemStore) {
	t.Helper()
	leaves := make([]tlog.Hash, n)
	for i := range leaves {
		leaves[i] = sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	mem := &MemStore{}
	if _, err := Integrate(mem, 0, leaves); err != nil {
		t.Fatal(err)
	}
	return leaves, mem
}

// TestFlatStoreMatchesMemStore builds the same tree in a FlatStore (sized
// for fewer, exactly as many and more leaves, mapped or not) and a MemStore.
func TestFlatStoreMatchesMemStore(t *testing.T) {
	const n = 40000 // above the mapped threshold
	leaves, mem := memTree(t, n)
	for _, sized := range []uint64{0, 100, n / 2, n, 2 * n} {
		fs := NewFlatStore(sized)
		for done := 0; done < n; {
			k := min(n-done, 777)
			if _, err := Integrate(fs, uint64(done), leaves[done:done+k]); err != nil {
				t.Fatalf("sized %d: %v", sized, err)
			}
			done += k
		}
		if fs.Len() != mem.Len() {
			t.Fatalf("sized %d: %d hashes, want %d", sized, fs.Len(), mem.Len())
		}
		for _, size := range []uint64{1, 2, 1000, n / 2, n - 1, n} {
			a, err := TreeRoot(fs, size)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := TreeRoot(mem, size)
			if a != b {
				t.Fatalf("sized %d: root of %d differs", sized, size)
			}
		}
		if err := fs.WriteHashes([]int64{fs.Len() + 1}, []tlog.Hash{{}}); err == nil {
			t.Fatal("write leaving a gap accepted")
		}
		if _, err := fs.ReadHashes([]int64{fs.Len()}); err == nil {
			t.Fatal("read beyond the held hashes accepted")
		}
		fs.Release()
	}
}

// TestFlatStoreAppendLeaves checks the in-place integration of the audit
// against Integrate, and the closed form of a leaf's storage index.
func TestFlatStoreAppendLeaves(t *testing.T) {
	const n = 40000
	leaves, mem := memTree(t, n)
	for _, sized := range []uint64{0, 100, n} {
		fs := NewFlatStore(sized)
		for done := 0; done < n; {
			k := min(n-done, 4096)
			if err := fs.appendLeaves(uint64(done), leaves[done:done+k]); err != nil {
				t.Fatalf("sized %d: %v", sized, err)
			}
			done += k
		}
		if fs.Len() != mem.Len() {
			t.Fatalf("sized %d: %d hashes, want %d", sized, fs.Len(), mem.Len())
		}
		all := make([]int64, fs.Len())
		for i := range all {
			all[i] = int64(i)
		}
		got, _ := fs.ReadHashes(all)
		want, _ := mem.ReadHashes(all)
		if !hashesEqual(got, want) {
			t.Fatalf("sized %d: hashes differ from Integrate's", sized)
		}
		if err := fs.appendLeaves(n-1, leaves[:1]); err == nil {
			t.Fatal("append to a tree of another size accepted")
		}
		fs.Release()
	}
	for _, i := range []uint64{0, 1, 2, 3, 4, 5, 7, 8, 1000, 1 << 40, 1<<40 - 1, MaxTreeSize - 1} {
		if got, want := leafStorageIndex(i), tlog.StoredHashIndex(0, int64(i)); got != want {
			t.Errorf("leafStorageIndex(%d) = %d, want %d", i, got, want)
		}
	}
}
