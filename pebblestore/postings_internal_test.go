package pebblestore

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestPackedListRoundTrip writes random postings of a few lists as several
// group commits (blocks of one list overlapping in time, spanning buckets
// and epochs, sharing nanoseconds, a hashed list's posting repeated in one
// group) and reads every list back over random bounds: exactly the distinct
// postings in [lo, hi), newest first. Lists of format 8 (under epochs) and
// of format 7 (without).
func TestPackedListRoundTrip(t *testing.T) {
	for _, unpartitioned := range []bool{false, true} {
		t.Run(fmt.Sprintf("unpartitioned=%v", unpartitioned), func(t *testing.T) { testPackedListRoundTrip(t, unpartitioned) })
	}
}

func testPackedListRoundTrip(t *testing.T, unpartitioned bool) {
	s, err := Open(t.Context(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(21, 22))
	type list struct {
		hashed bool
		d      dictID
		id     uint32
		v      []byte
	}
	lists := []list{{d: 0, id: 1}, {d: 2, id: 7}, {d: 2, id: 8}, {hashed: true, d: 1, v: []byte("//svc/a")}, {hashed: true, d: 6, v: []byte("k\x00v")}}
	want := make([][]postEnt, len(lists))
	base := int64(1<<postBucketShift) * 1000
	w := postWrites{unpartitioned: unpartitioned, epochs: &s.epochs}
	seq := uint64(0)
	for range 30 { // group commits
		w.reset()
		for range r.IntN(100) {
			seq++
			// Mostly within two buckets; a few far away, some shared.
			ns := base + r.Int64N(2<<postBucketShift) - 1<<postBucketShift
			switch r.IntN(10) {
			case 0:
				ns = base
			case 1:
				ns = base - 1
			case 2:
				ns = base + int64(r.IntN(50))<<postBucketShift
			case 3:
				ns = base + int64(r.IntN(8)-4)<<epochShift + r.Int64N(1<<epochShift)
			}
			for i, l := range lists {
				if r.IntN(3) == 0 {
					continue
				}
				if l.hashed {
					w.addHashed(l.d, l.v, ns, seq)
					if r.IntN(10) == 0 {
						w.addHashed(l.d, l.v, ns, seq) // a hash collision within one event
					}
				} else {
					w.add(l.d, l.id, ns, seq)
				}
				want[i] = append(want[i], postEnt{sortTime(ns), seq})
			}
		}
		b := s.db.NewBatch()
		if err := w.writeTo(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	for i, l := range lists {
		slices.SortFunc(want[i], func(a, b postEnt) int { return b.compare(a) })
		pfx := listPrefix(nil, l.d, l.id)
		if l.hashed {
			pfx = hashListPrefix(nil, l.d, l.v)
		}
		for k := range 200 {
			lo, hi := want[i][r.IntN(len(want[i]))], want[i][r.IntN(len(want[i]))]
			switch k % 4 {
			case 0:
				lo, hi = postEnt{0, 0}, postEnt{1<<64 - 1, 0}
			case 1:
				hi.seq += uint64(r.IntN(2))
			}
			if lo.compare(hi) > 0 {
				lo, hi = hi, lo
			}
			var exp []postEnt
			for _, p := range want[i] {
				if p.compare(lo) >= 0 && p.compare(hi) < 0 {
					exp = append(exp, p)
				}
			}
			var pl *packedList
			if unpartitioned {
				pl, err = s.newPackedList(packedPrefix(pfx), suffixOf(lo), suffixOf(hi))
			} else {
				pl, err = s.newEpochList(packedPrefix(pfx), suffixOf(lo), suffixOf(hi))
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []postEnt
			for pl != nil {
				ok, err := pl.next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				got = append(got, postEnt{pl.t, pl.seq})
			}
			if pl != nil {
				pl.close()
			}
			if !slices.Equal(got, exp) {
				t.Fatalf("list %d, [%v, %v): %d postings, want %d\ngot  %v\nwant %v", i, lo, hi, len(got), len(exp), got, exp)
			}
		}
	}
}

func suffixOf(p postEnt) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, p.t), p.seq)
}

// FuzzPostingBlock: any bytes after a block's first posting are decoded or
// reported corrupt, never a panic, and the postings decoded never go up in
// time; what was decoded, encoded again, decodes to the same postings
// (varints need not be minimal in the input).
func FuzzPostingBlock(f *testing.F) {
	enc := func(ents ...postEnt) []byte {
		var b []byte
		for i := 1; i < len(ents); i++ {
			b = binary.AppendUvarint(b, ents[i-1].t-ents[i].t)
			b = binary.AppendVarint(b, int64(ents[i].seq-ents[i-1].seq))
		}
		return b
	}
	f.Add(uint64(1000), uint64(5), enc(postEnt{1000, 5}, postEnt{900, 2}, postEnt{900, 1}, postEnt{3, 90}))
	f.Add(uint64(0), uint64(0), []byte{0x80})
	f.Add(uint64(1<<63), uint64(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, t0, seq0 uint64, data []byte) {
		b := &postBlock{t: t0, seq: seq0, data: data}
		ents := []postEnt{{t0, seq0}}
		for range len(data) + 1 {
			prev := b.t
			ok, err := b.advance()
			if err != nil || !ok {
				if err != nil {
					return
				}
				again := &postBlock{t: t0, seq: seq0, data: enc(ents...)}
				for i := 1; i < len(ents); i++ {
					if ok, err := again.advance(); !ok || err != nil || (postEnt{again.t, again.seq}) != ents[i] {
						t.Fatalf("posting %d of %v read back as %d %d (%v, %v)", i, ents, again.t, again.seq, ok, err)
					}
				}
				if ok, err := again.advance(); ok || err != nil {
					t.Fatalf("%v read back with more postings (%v)", ents, err)
				}
				return
			}
			if b.t > prev {
				t.Fatalf("time went up: %d after %d", b.t, prev)
			}
			ents = append(ents, postEnt{b.t, b.seq})
		}
		t.Fatalf("%d bytes decoded into more than %d postings", len(data), len(data)+1)
	})
}
