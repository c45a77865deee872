package merkle

import (
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestIntegrateMatchesReference(t *testing.T) {
	leaves := leafHashes(sampleEvents(70))
	for _, batch := range []int{1, 2, 3, 7, 70} {
		m := &MemStore{}
		for size := 0; size < len(leaves); {
			end := min(size+batch, len(leaves))
			root, err := Integrate(m, uint64(size), leaves[size:end])
			if err != nil {
				t.Fatal(err)
			}
			if want := refRoot(leaves[:end]); root != want {
				t.Fatalf("batch %d: root at size %d = %v, want %v", batch, end, root, want)
			}
			if got, want := m.Len(), tlog.StoredHashCount(int64(end)); got != want {
				t.Fatalf("batch %d: %d stored hashes at size %d, want %d", batch, got, end, want)
			}
			size = end
		}
		for size := 0; size <= len(leaves); size++ {
			root, err := TreeRoot(m, uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if want := refRoot(leaves[:size]); root != want {
				t.Fatalf("TreeRoot(%d) = %v, want %v", size, root, want)
			}
		}
	}
	if EmptyRoot != refRoot(nil) {
		t.Fatal("EmptyRoot is not SHA-256 of nothing")
	}
	root, err := Integrate(&MemStore{}, 0, nil)
	if err != nil || root != EmptyRoot {
		t.Fatalf("Integrate of nothing = %v, %v", root, err)
	}
}

func TestIntegrateSwapChangesRoot(t *testing.T) {
	leaves := leafHashes(sampleEvents(9))
	want, err := Integrate(&MemStore{}, 0, leaves)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(leaves); i++ {
		for j := i + 1; j < len(leaves); j++ {
			s := append([]tlog.Hash(nil), leaves...)
			s[i], s[j] = s[j], s[i]
			got, err := Integrate(&MemStore{}, 0, s)
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				t.Fatalf("swapping leaves %d and %d leaves the root unchanged", i, j)
			}
		}
	}
}

type failingStore struct {
	MemStore
	failRead, failWrite bool
	writes              int
}

func (f *failingStore) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	if f.failRead {
		return nil, errors.New("read failed")
	}
	return f.MemStore.ReadHashes(ix)
}

func (f *failingStore) WriteHashes(ix []int64, hs []tlog.Hash) error {
	f.writes++
	if f.failWrite {
		return errors.New("write failed")
	}
	return f.MemStore.WriteHashes(ix, hs)
}

func TestIntegrateErrors(t *testing.T) {
	leaves := leafHashes(sampleEvents(8))
	f := &failingStore{}
	if _, err := Integrate(f, 0, leaves[:3]); err != nil {
		t.Fatal(err)
	}
	if f.writes != 1 {
		t.Fatalf("Integrate made %d writes, want 1", f.writes)
	}
	f.failRead = true
	if _, err := Integrate(f, 3, leaves[3:]); err == nil {
		t.Fatal("read failure not reported")
	}
	f.failRead, f.failWrite = false, true
	if _, err := Integrate(f, 3, leaves[3:]); err == nil {
		t.Fatal("write failure not reported")
	}
	f.failWrite = false
	// A wrong old size is caught by the store's append-only check.
	if _, err := Integrate(f, 5, leaves[5:]); err == nil {
		t.Fatal("integrating at a size the store does not hold succeeded")
	}
	if _, err := Integrate(nil, 0, leaves); err == nil {
		t.Fatal("nil store accepted")
	}
	if _, err := Integrate(&MemStore{}, MaxTreeSize, leaves[:1]); err == nil {
		t.Fatal("size beyond MaxTreeSize accepted")
	}
	if _, err := TreeRoot(&MemStore{}, 1); err == nil {
		t.Fatal("TreeRoot of an empty store succeeded")
	}
}

func TestMemStore(t *testing.T) {
	var m MemStore
	h := func(b byte) tlog.Hash { return tlog.Hash{b} }
	if err := m.WriteHashes([]int64{0, 1}, []tlog.Hash{h(1), h(2)}); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteHashes([]int64{1, 2}, []tlog.Hash{h(2), h(3)}); err != nil {
		t.Fatalf("identical rewrite refused: %v", err)
	}
	for _, c := range []struct {
		ix []int64
		hs []tlog.Hash
	}{
		{[]int64{4}, []tlog.Hash{h(4)}},          // gap
		{[]int64{1}, []tlog.Hash{h(9)}},          // change
		{[]int64{3, 3}, []tlog.Hash{h(4), h(5)}}, // twice, differently
		{[]int64{3}, []tlog.Hash{h(4), h(5)}},    // length mismatch
		{[]int64{-1}, []tlog.Hash{h(1)}},         // negative
		{[]int64{3, 5}, []tlog.Hash{h(4), h(5)}}, // partial gap
	} {
		if err := m.WriteHashes(c.ix, c.hs); err == nil {
			t.Errorf("WriteHashes(%v) accepted", c.ix)
		}
	}
	if m.Len() != 3 {
		t.Fatalf("a refused write changed the store: %d hashes", m.Len())
	}
	if _, err := m.ReadHashes([]int64{3}); err == nil {
		t.Fatal("read beyond the end succeeded")
	}
	got, err := m.ReadHashes([]int64{2, 0})
	if err != nil || got[0] != h(3) || got[1] != h(1) {
		t.Fatalf("ReadHashes = %v, %v", got, err)
	}
}
