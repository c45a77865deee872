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

// sort orders the writes by key: an LSD radix sort on the 16-byte integer
// prefixes (passes over bytes that are the same in every key are skipped, and
// most are: the prefix byte, high time bytes), then insertion sort of the
// rare runs of keys that share 16 bytes.
func (b *kvBuf) sort() {
	n := len(b.ents)
	if cap(b.tmp) < n {
		b.tmp = make([]kvEnt, n)
	}
	src, dst := b.ents, b.tmp[:n]
	var counts [256]int
	for pass := 15; pass >= 0; pass-- {
		shift := uint(8 * (7 - pass%8))
		digit := func(e *kvEnt) int {
			if pass < 8 {
				return int(e.p0 >> shift & 0xff)
			}
			return int(e.p1 >> shift & 0xff)
		}
		clear(counts[:])
		for i := range src {
			counts[digit(&src[i])]++
		}
		if counts[digit(&src[0])] == n {
			continue // every key has the same byte here
		}
		sum := 0
		for i, c := range counts {
			counts[i] = sum
			sum += c
		}
		for i := range src {
			d := digit(&src[i])
			dst[counts[d]] = src[i]
			counts[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &b.ents[0] {
		copy(b.ents, src)
	}
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
