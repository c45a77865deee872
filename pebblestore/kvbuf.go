package pebblestore

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// kvBuf collects the writes of one group commit so that they can be handed
// to Pebble in key order. A memtable insert finds its place from the
// previous insert's position when the keys are close, so sorted inserts (all
// postings of one list together, then the next list) cost a fraction of
// random-order inserts, which miss the CPU cache at every skiplist level.
// The sort costs less than it saves.
type kvBuf struct {
	arena []byte
	ents  []kvEnt
	tmp   []kvEnt // radix sort buffer
}

// kvEnt is one write; p0 and p1 are the first 16 bytes of the key as
// big-endian integers (zero-padded), so that the sort compares integers and
// falls back to bytes only for longer keys sharing 16 bytes.
type kvEnt struct {
	p0, p1           uint64
	k, klen, v, vlen uint32
}

func (b *kvBuf) reset() {
	b.arena = b.arena[:0]
	b.ents = b.ents[:0]
}

func (b *kvBuf) set(k, v []byte) {
	e := kvEnt{k: uint32(len(b.arena)), klen: uint32(len(k))}
	var p [16]byte
	copy(p[:], k)
	e.p0, e.p1 = binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:])
	b.arena = append(b.arena, k...)
	e.v, e.vlen = uint32(len(b.arena)), uint32(len(v))
	b.arena = append(b.arena, v...)
	b.ents = append(b.ents, e)
}

func (b *kvBuf) key(e kvEnt) []byte { return b.arena[e.k : e.k+e.klen] }

func (b *kvBuf) len() int { return len(b.ents) }

// writeTo sorts the writes by key and adds them to batch. Keys are unique
// within a group except count keys, which are written once per group.
func (b *kvBuf) writeTo(batch *pebble.Batch) error {
	b.sort()
	for _, e := range b.ents {
		if err := batch.Set(b.key(e), b.arena[e.v:e.v+e.vlen], nil); err != nil {
			return err
		}
	}
	return nil
}

// sort orders the writes by key: an MSD radix sort on the 16-byte integer
// prefixes, then a comparison sort of the rare runs of keys that share 16
// bytes.
//
// Most significant byte first, because a group's keys split early: the
// first byte names the kind of key, the next ones the posting list or the
// random id, and buckets of at most insertionMax keys are finished by
// insertion sort. A byte that is the same in every key of a bucket (the
// high bytes of a time, of a small dictionary id) costs a counting pass and
// no move. An LSD sort moved every key once for each of the 16 bytes, which
// all vary across the kinds of keys.
func (b *kvBuf) sort() {
	n := len(b.ents)
	if cap(b.tmp) < n {
		b.tmp = make([]kvEnt, n)
	}
	msdSort(b.ents, b.tmp[:n], 0)
	// Runs of keys sharing 16 bytes (rare: same posting list and nearly
	// the same time) are finished with a comparison sort.
	for i := 0; i < n; {
		j := i + 1
		for j < n && b.ents[j].p0 == b.ents[i].p0 && b.ents[j].p1 == b.ents[i].p1 {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(b.ents[i:j], func(x, y kvEnt) int { return bytes.Compare(b.key(x), b.key(y)) })
		}
		i = j
	}
}

// insertionMax is the bucket size below which msdSort sorts by insertion.
const insertionMax = 24

// digit returns byte d (0 is the most significant) of e's 16-byte prefix.
func (e *kvEnt) digit(d int) int {
	if d < 8 {
		return int(e.p0 >> (56 - 8*d) & 0xff)
	}
	return int(e.p1 >> (56 - 8*(d-8)) & 0xff)
}

// msdSort orders ents by their 16-byte prefixes (p0, p1), whose bytes before
// d are the same in every entry; tmp is scratch space of the same length.
func msdSort(ents, tmp []kvEnt, d int) {
	for len(ents) > insertionMax && d < 16 {
		var counts [256]int
		for i := range ents {
			counts[ents[i].digit(d)]++
		}
		if counts[ents[0].digit(d)] == len(ents) {
			d++ // every key has the same byte here
			continue
		}
		var next [256]int
		sum := 0
		for i, c := range counts {
			next[i] = sum
			sum += c
		}
		for i := range ents {
			k := ents[i].digit(d)
			tmp[next[k]] = ents[i]
			next[k]++
		}
		copy(ents, tmp)
		start := 0
		for _, c := range counts {
			if c > 1 {
				msdSort(ents[start:start+c], tmp[start:start+c], d+1)
			}
			start += c
		}
		return
	}
	if d < 16 {
		for i := 1; i < len(ents); i++ {
			e := ents[i]
			j := i
			for ; j > 0 && (ents[j-1].p0 > e.p0 || ents[j-1].p0 == e.p0 && ents[j-1].p1 > e.p1); j-- {
				ents[j] = ents[j-1]
			}
			ents[j] = e
		}
	}
}
