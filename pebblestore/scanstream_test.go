package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestScanStream: the stream yields exactly what a plain backward walk of
// the primary range does, on data shaped to exercise its windows: uniform,
// a burst of thousands of records in one nanosecond (a window too dense,
// read backwards), gaps of years (empty windows skipped), and random
// densities; over the whole range and over cuts of it.
func TestScanStream(t *testing.T) {
	shapes := map[string]func(r *rand.Rand) []int64{
		"uniform": func(r *rand.Rand) []int64 {
			var ts []int64
			for i := range 5000 {
				ts = append(ts, 1e15+int64(i)*1000)
			}
			return ts
		},
		"burst": func(r *rand.Rand) []int64 {
			var ts []int64
			for i := range 2000 {
				ts = append(ts, 1e15+int64(i)*1e6)
			}
			for range 3000 {
				ts = append(ts, 1e15+777*1e6+1) // one nanosecond
			}
			return ts
		},
		"gaps": func(r *rand.Rand) []int64 {
			var ts []int64
			for c := range 6 {
				base := int64(c) * 3e16 // about a year apart
				for i := range 100 + r.IntN(400) {
					ts = append(ts, base+int64(i)*1e3)
				}
			}
			return ts
		},
		"random": func(r *rand.Rand) []int64 {
			var ts []int64
			at := int64(1e15)
			for range 8000 {
				switch r.IntN(10) {
				case 0:
					at += r.Int64N(1e13)
				case 1, 2:
				default:
					at += r.Int64N(1e6)
				}
				ts = append(ts, at)
			}
			return ts
		},
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			s, err := Open(context.Background(), Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := rand.New(rand.NewPCG(1, 2))
			ts := shape(r)
			b := s.db.NewBatch()
			for i, ns := range ts {
				b.Set(eventKey(nil, ns, uint64(i+1)), fmt.Appendf(nil, "record %d %s", i+1, bytes.Repeat([]byte{'x'}, r.IntN(300))), nil)
				if i == len(ts)/2 {
					if err := b.Commit(pebble.Sync); err != nil {
						t.Fatal(err)
					}
					if err := s.db.Flush(); err != nil { // half in tables, half in the memtable
						t.Fatal(err)
					}
					b = s.db.NewBatch()
				}
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			lo, hi := appendTimeSeq(nil, 0, 0), appendTimeSeq(nil, 1<<62, 0)
			ranges := [][2][]byte{{lo, hi}}
			for range 20 {
				a, c := ts[r.IntN(len(ts))], ts[r.IntN(len(ts))]
				a, c = min(a, c), max(a, c)
				ranges = append(ranges, [2][]byte{appendTimeSeq(nil, a, 0), appendTimeSeq(nil, c, uint64(r.IntN(len(ts))))})
			}
			for _, rg := range ranges {
				want := backwardWalk(t, s, rg[0], rg[1])
				st, err := s.newScanStream(rg[0], rg[1])
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for st.next() {
					ns, seq := st.pos()
					rec, err := st.record()
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, fmt.Sprintf("%d/%d %s", ns, seq, rec))
				}
				if err := st.err(); err != nil {
					t.Fatal(err)
				}
				st.close()
				if len(got) != len(want) {
					t.Fatalf("range %x..%x: %d records, want %d", rg[0], rg[1], len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("range %x..%x: record %d is %.40q, want %.40q", rg[0], rg[1], i, got[i], want[i])
					}
				}
			}
		})
	}
}

func backwardWalk(t *testing.T, s *Store, lo, hi []byte) []string {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: append([]byte{pfxEvent}, lo...), UpperBound: append([]byte{pfxEvent}, hi...)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for v := it.Last(); v; v = it.Prev() {
		ns, seq := decodeTimeSeq(it.Key()[1:])
		out = append(out, fmt.Sprintf("%d/%d %s", ns, seq, it.Value()))
	}
	return out
}
