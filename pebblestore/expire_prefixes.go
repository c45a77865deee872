package pebblestore

import (
	"context"

	"github.com/cockroachdb/pebble/v2"
)

// Retention and the value column's prefixes (column.go, "Prefixes").
//
// A prefix is the parent path of inline values (a resource's
// "//service/workspaces/<id>/users/<name>"), kept once in a dictionary of
// its own, and it can name a person as well as a principal can. It has no
// posting list to tell whether an entry still refers to it, so after a
// pass deleted the column's buckets before the cutoff, erasePrefixes reads
// the column that is left and erases the prefixes no entry refers to:
//
//  1. the writer starts noting the prefixes its groups use (prefixUse);
//  2. the pass reads every entry of the column from an iterator opened
//     after that, noting the prefixes they refer to: an entry committed
//     before the noting began is in the iterator, one committed after is
//     noted by the writer;
//  3. the writer erases the prefixes neither saw (eraseValues) and stops
//     noting.
//
// The read is a pass over the column's names (the entries hold a prefix's
// id, not its bytes), once per retention pass that deleted events
// (BenchmarkExpire, BENCHMARKS.md "Retention pass").

// prefixScanHook, when set (tests), runs between the read of the column
// and the erasure.
var prefixScanHook func()

// erasePrefixes erases the column prefixes no column entry refers to and
// returns how many it erased.
func (s *Store) erasePrefixes(ctx context.Context) (int64, error) {
	s.dicts.mu.RLock()
	n := s.dicts.d[dictColPrefix].vals.len() // later ones are in use: the writer notes them
	s.dicts.mu.RUnlock()
	if n == 0 {
		return 0, nil
	}
	if err := s.notePrefixes(ctx, 1); err != nil {
		return 0, err
	}
	// The noting stops with the pass, also when it fails (or at the next
	// pass's start, if this cannot reach the writer).
	defer s.notePrefixes(context.WithoutCancel(ctx), -1)
	used := make([]uint64, (n+63)/64)
	if err := s.columnPrefixRefs(used); err != nil {
		return 0, err
	}
	if prefixScanHook != nil {
		prefixScanHook()
	}
	var cands []uint64
	s.dicts.mu.RLock()
	for id := range uint32(n) {
		if used[id/64]&(1<<(id%64)) == 0 && !s.dicts.d[dictColPrefix].erased[id] {
			cands = append(cands, uint64(dictColPrefix)<<32|uint64(id))
		}
	}
	s.dicts.mu.RUnlock()
	return s.sendErase(ctx, cands)
}

// notePrefixes starts (on > 0) or stops the writer's noting of the
// prefixes it uses.
func (s *Store) notePrefixes(ctx context.Context, on int8) error {
	r := &expireReq{notePrefixes: on, done: make(chan struct{})}
	if err := s.sendExpire(ctx, r); err != nil {
		return err
	}
	<-r.done
	return nil
}

// columnPrefixRefs sets the bit of every prefix below len(used)*64 that an
// entry of the column refers to.
func (s *Store) columnPrefixRefs(used []uint64) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxColumn}, UpperBound: []byte{pfxColumn + 1}})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		format, err := colKeyFormat(it.Key())
		if err != nil {
			return firstErr(err, it.Close())
		}
		if format != colPrefixed {
			continue // written before prefixes existed: values whole
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = notePrefixRefs(v, used)
		}
		if err != nil {
			return firstErr(err, it.Close())
		}
	}
	return firstErr(it.Error(), it.Close())
}

// notePrefixRefs sets the bits of the prefixes the entries of a column
// value (prefixed format: column.go) refer to.
func notePrefixRefs(data []byte, used []uint64) error {
	for pos := 0; pos < len(data); {
		count, w1 := uvarint(data[pos:])
		if w1 <= 0 {
			return errCorruptColumn
		}
		blen, w2 := uvarint(data[pos+w1:])
		if w2 <= 0 || blen > uint64(len(data)-pos-w1-w2) {
			return errCorruptColumn
		}
		body := data[pos+w1+w2 : pos+w1+w2+int(blen)]
		pos += w1 + w2 + int(blen)
		var n uint64
		for p := 0; p < len(body); n++ {
			// Time and seq differences, the prefix ref, the length.
			var f [4]uint64
			for i := range f {
				x, w := uvarint(body[p:])
				if w <= 0 {
					return errCorruptColumn
				}
				f[i], p = x, p+w
			}
			if f[3] > uint64(len(body)-p) {
				return errCorruptColumn
			}
			p += int(f[3])
			if id := f[2] - 1; f[2] > 0 && id < uint64(len(used))*64 {
				used[id/64] |= 1 << (id % 64)
			}
		}
		if n != count {
			return errCorruptColumn
		}
	}
	return nil
}
