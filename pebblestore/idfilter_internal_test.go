package pebblestore

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// TestIDFilter: every id added is reported possibly stored, in every part
// as the filter grows past its first part's capacity; ids never added are
// reported absent about 99 % of the time; nothing is absent before the
// filter is ready.
func TestIDFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	randomID := func() uuid.UUID {
		var u uuid.UUID
		for i := range u {
			u[i] = byte(r.Uint32())
		}
		return u
	}
	f := &idFilter{seed: maphash.MakeSeed(), done: make(chan struct{})}
	f.parts = []*bloomPart{newBloomPart(1000)}
	added := make([]uuid.UUID, 20000)
	for i := range added {
		added[i] = randomID()
		f.add(added[i])
	}
	if f.absent(added[0]) {
		t.Fatal("absent before the filter is ready")
	}
	f.ready.Store(true)
	if len(f.parts) < 4 {
		t.Fatalf("%d parts after 20 times the first part's capacity", len(f.parts))
	}
	for _, id := range added {
		if f.absent(id) {
			t.Fatalf("%s was added but is reported absent", id)
		}
	}
	present := 0
	const others = 100000
	for range others {
		if !f.absent(randomID()) {
			present++
		}
	}
	// Each part below ~1 %; the parts' rates add up.
	if rate := float64(present) / others; rate > 0.02 {
		t.Errorf("false positive rate %.3f over %d parts", rate, len(f.parts))
	}
	t.Logf("false positives: %d of %d (%d parts)", present, others, len(f.parts))
}
