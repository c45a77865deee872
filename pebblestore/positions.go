package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Log positions: the event time of every seq, which completes the primary
// key (time, seq) of the event at a log position. The verifiable log reads
// events in seq order, the audit splits the primary range by them, Open
// finds the last seq with them, and an id's index entry holds only the seq.
//
// Storage format 6 writes one key per group commit (positionsKey): o + the
// group's first seq(8) → uvarint(n) and the times of its n consecutive
// seqs, each as a zigzag varint of the difference from the time before
// (the first from 0). Formats 5 and earlier wrote a key per event, s +
// seq(8) → time(8): 11–12 bytes per event on disk, against about 3 for a
// group's differences (events of a group come close in time, in arrival
// order). A store of format 5 keeps its s keys: they hold seqs below every
// o key, and the readers below take both.

// positionsKey is the key of the positions of a group whose first seq is
// first.
func positionsKey(dst []byte, first uint64) []byte {
	dst = append(dst, pfxPositions)
	return binary.BigEndian.AppendUint64(dst, first)
}

// appendPositions appends the value of the positions of recs (consecutive
// seqs, in seq order).
func appendPositions(dst []byte, recs []recentEvent) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	prev := int64(0)
	for _, r := range recs {
		dst = binary.AppendVarint(dst, r.ns-prev)
		prev = r.ns
	}
	return dst
}

var errCorruptPositions = errors.New("pebblestore: corrupt log positions")

// decodePositions appends the times of a positions value to dst.
func decodePositions(dst []int64, v []byte) ([]int64, error) {
	n, w := binary.Uvarint(v)
	// A time takes at least one byte: a count beyond the value is corrupt.
	if w <= 0 || n == 0 || n > uint64(len(v)-w) {
		return dst, errCorruptPositions
	}
	v = v[w:]
	t := int64(0)
	for range n {
		d, w := binary.Varint(v)
		if w <= 0 {
			return dst, errCorruptPositions
		}
		v = v[w:]
		t += d
		dst = append(dst, t)
	}
	if len(v) != 0 {
		return dst, errCorruptPositions
	}
	return dst, nil
}

// positionReader reads log positions; it keeps the last group's times, so
// that reading the positions of neighbouring seqs (a retried batch) decodes
// a group once. The caller holds closeMu.
type positionReader struct {
	s     *Store
	it    *pebble.Iterator // over the o range, opened on first use
	first uint64           // the seq of times[0]
	times []int64
}

func (r *positionReader) close() error {
	if r.it == nil {
		return nil
	}
	return r.it.Close()
}

// position returns the time of seq; ok is false when seq has no position.
func (r *positionReader) position(seq uint64) (ns int64, ok bool, err error) {
	if seq >= r.first && seq-r.first < uint64(len(r.times)) {
		return r.times[seq-r.first], true, nil
	}
	if r.s.legacyPositions {
		v, closer, err := r.s.db.Get(seqKey(nil, seq))
		if err == nil {
			defer closer.Close()
			if len(v) != 8 {
				return 0, false, fmt.Errorf("pebblestore: corrupt seq entry %d", seq)
			}
			return int64(binary.BigEndian.Uint64(v)), true, nil
		} else if err != pebble.ErrNotFound {
			return 0, false, err
		}
	}
	if r.it == nil {
		if r.it, err = r.s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxPositions}, UpperBound: []byte{pfxPositions + 1}}); err != nil {
			return 0, false, err
		}
	}
	// The group holding seq is the last one starting at or below it.
	if !r.it.SeekLT(positionsKey(nil, seq+1)) {
		return 0, false, r.it.Error()
	}
	first, err := positionsFirst(r.it.Key())
	if err != nil {
		return 0, false, err
	}
	if r.times, err = decodePositions(r.times[:0], r.it.Value()); err != nil {
		r.times = r.times[:0]
		return 0, false, err
	}
	r.first = first
	if seq-first >= uint64(len(r.times)) {
		return 0, false, nil
	}
	return r.times[seq-first], true, nil
}

func positionsFirst(k []byte) (uint64, error) {
	if len(k) != 1+seqLen {
		return 0, fmt.Errorf("pebblestore: corrupt log positions key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// positions calls fn with the seq and time of every log position in
// [from, to], in seq order, and stops at the first error fn returns. A seq
// without a position is skipped: the caller notices the gap. The caller
// holds closeMu.
func (s *Store) positions(ctx context.Context, from, to uint64, fn func(seq uint64, ns int64) error) error {
	return scanPositions(ctx, s.db, s.legacyPositions, from, to, fn)
}

// scanPositions is Store.positions over db; legacy says whether to read
// format 5's s keys too. to must be below math.MaxUint64.
func scanPositions(ctx context.Context, db pebble.Reader, legacy bool, from, to uint64, fn func(seq uint64, ns int64) error) error {
	if legacy {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: seqKey(nil, from), UpperBound: seqKey(nil, to+1)})
		if err != nil {
			return err
		}
		for valid := it.First(); valid; valid = it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != 1+seqLen || len(v) != 8 {
				it.Close()
				return fmt.Errorf("pebblestore: corrupt seq entry %x", k)
			}
			if err := fn(binary.BigEndian.Uint64(k[1:]), int64(binary.BigEndian.Uint64(v))); err != nil {
				it.Close()
				return err
			}
		}
		if err := firstErr(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxPositions}, UpperBound: positionsKey(nil, to+1)})
	if err != nil {
		return err
	}
	defer it.Close()
	// The group holding from starts at or below it.
	valid := it.SeekLT(positionsKey(nil, from+1))
	if !valid {
		valid = it.First()
	}
	var times []int64
	for ; valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		first, err := positionsFirst(it.Key())
		if err != nil {
			return err
		}
		if times, err = decodePositions(times[:0], it.Value()); err != nil {
			return err
		}
		for i, ns := range times {
			seq := first + uint64(i)
			if seq < from {
				continue
			}
			if seq > to {
				return nil
			}
			if err := fn(seq, ns); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// lastPosition returns the highest seq with a position and its time; ok
// is false for an empty store. The caller holds closeMu or is Open.
func (s *Store) lastPosition() (seq uint64, ns int64, ok bool, err error) {
	for _, pfx := range []byte{pfxPositions, pfxSeq} {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfx}, UpperBound: []byte{pfx + 1}})
		if err != nil {
			return 0, 0, false, err
		}
		if !it.Last() {
			if err := firstErr(it.Error(), it.Close()); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		k, v := it.Key(), it.Value()
		if len(k) != 1+seqLen {
			it.Close()
			return 0, 0, false, fmt.Errorf("pebblestore: corrupt log position key %x", k)
		}
		seq = binary.BigEndian.Uint64(k[1:])
		if pfx == pfxSeq {
			if len(v) != 8 {
				it.Close()
				return 0, 0, false, fmt.Errorf("pebblestore: corrupt seq entry %x", k)
			}
			ns = int64(binary.BigEndian.Uint64(v))
		} else {
			times, err := decodePositions(nil, v)
			if err != nil {
				it.Close()
				return 0, 0, false, err
			}
			seq += uint64(len(times)) - 1
			ns = times[len(times)-1]
		}
		return seq, ns, true, it.Close()
	}
	return 0, 0, false, nil
}
