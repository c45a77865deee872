package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// The raw key layout of the store (keys.go), exported for the tests of
// other packages that tamper with a closed store's Pebble database directly
// (logsign/tamper_test.go: the verifiable log's audit must find an event
// changed, deleted, moved or inserted in storage; see
// docs/design/verifiable-log.md, "Tests"). Keeping the layout here rather
// than copying it into those tests means a change of layout changes what
// they tamper with. Nothing but tests may write these keys.

// RawPositions reads the log positions of the closed store's Pebble
// database db: the event time (Unix nanoseconds) of every seq.
func RawPositions(db *pebble.DB) (map[uint64]int64, error) {
	out := map[uint64]int64{}
	err := scanPositions(context.Background(), db, true, 0, math.MaxUint64-1, func(seq uint64, ns int64) error {
		out[seq] = ns
		return nil
	})
	return out, err
}

// RawWritePositions replaces, in b, every log position of the store with
// positions (each written as a group of one).
func RawWritePositions(b *pebble.Batch, positions map[uint64]int64) error {
	for _, pfx := range []byte{pfxSeq, pfxPositions} {
		if err := b.DeleteRange([]byte{pfx}, []byte{pfx + 1}, nil); err != nil {
			return err
		}
	}
	for seq, ns := range positions {
		if err := b.Set(positionsKey(nil, seq), appendPositions(nil, []recentEvent{{ns: ns, seq: seq}}), nil); err != nil {
			return err
		}
	}
	return nil
}

// RawEventKey is the key of the record of the event of time ns and seq. The
// record holds the event's id (16 bytes) but neither its time nor its seq.
func RawEventKey(ns int64, seq uint64) []byte { return eventKey(nil, ns, seq) }

// RawIDKey is the key of the id index entry of id, whose value is
// RawIDValue(seq).
func RawIDKey(id [16]byte) []byte { return idKey(nil, id) }

// RawIDValue is the value of an id index entry.
func RawIDValue(seq uint64) []byte { return idValue(nil, seq) }

// ReplaceInValues rewrites, in the closed store's Pebble database at dir,
// every value that contains old with old replaced by new (same length, so
// that a record stays decodable and only its content changes), and returns
// how many values it rewrote.
func ReplaceInValues(dir string, old, new []byte) (n int, err error) {
	return replaceIn(dir, nil, old, new)
}

// ReplaceInColumn is ReplaceInValues on the value column alone (column.go):
// the records and every other index keep old.
func ReplaceInColumn(dir string, old, new []byte) (n int, err error) {
	return replaceIn(dir, []byte{pfxColumn}, old, new)
}

// replaceIn is ReplaceInValues over the keys with prefix (nil: all).
func replaceIn(dir string, prefix, old, new []byte) (n int, err error) {
	if len(old) != len(new) {
		return 0, fmt.Errorf("pebblestore: replacing %d bytes with %d would break the record", len(old), len(new))
	}
	db, err := openRaw(dir, false)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	var opts *pebble.IterOptions
	if prefix != nil {
		opts = &pebble.IterOptions{LowerBound: prefix, UpperBound: []byte{prefix[0] + 1}}
	}
	it, err := db.NewIter(opts)
	if err != nil {
		return 0, err
	}
	b := db.NewBatch()
	defer b.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if v := it.Value(); bytes.Contains(v, old) {
			if err := b.Set(bytes.Clone(it.Key()), bytes.ReplaceAll(v, old, new), nil); err != nil {
				it.Close()
				return 0, err
			}
			n++
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return n, b.Commit(pebble.Sync)
}

// openRaw opens the closed store's Pebble database at dir for a tamper
// function (for reading only with readOnly). Pebble's own messages are
// dropped: a tamper function reports its failures as errors.
func openRaw(dir string, readOnly bool) (*pebble.DB, error) {
	return pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           readOnly,
		Logger:             pebbleLogger{slog.New(slog.DiscardHandler)},
	})
}

// withRaw calls f with the closed store's Pebble database at dir, open for
// writing, and closes it.
func withRaw(dir string, f func(db *pebble.DB) error) (err error) {
	db, err := openRaw(dir, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	return f(db)
}

// withRawList is withRaw for a tamper function on the posting list of
// value of field f (a dictionary value): f gets the value's dictionary id.
func withRawList(dir string, field audittrail.Field, value string, f func(db *pebble.DB, id uint32) error) error {
	return withRaw(dir, func(db *pebble.DB) error {
		id, err := rawDictID(db, field, value)
		if err != nil {
			return err
		}
		return f(db, id)
	})
}

// rawDictID returns the dictionary id of value of field f in db.
func rawDictID(db *pebble.DB, f audittrail.Field, value string) (uint32, error) {
	var id uint32
	found := false
	err := scan(db, []byte{pfxDict, byte(f)}, func(k, v []byte) error {
		if string(v) == value {
			id, found = binary.BigEndian.Uint32(k[2:]), true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("pebblestore: %s %q is not in its dictionary", f, value)
	}
	return id, err
}

// DeletePosting removes, in the closed store's Pebble database at dir, the
// posting of the event of seq from the posting list of value of field f (a
// dictionary value, in a list of this format, w keys): its block is
// rewritten without it.
func DeletePosting(dir string, f audittrail.Field, value string, seq uint64) error {
	return withRawList(dir, f, value, func(db *pebble.DB, id uint32) error {
		return deletePosting(db, f, value, id, seq)
	})
}

// deletePosting is DeletePosting in db, id the dictionary id of value.
func deletePosting(db *pebble.DB, f audittrail.Field, value string, id uint32, seq uint64) (err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxEpochPacked}, UpperBound: []byte{pfxEpochPacked + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if k[5] != byte(f) || binary.BigEndian.Uint32(k[6:]) != id {
			continue
		}
		b := postBlock{data: slices.Clone(it.Value())}
		b.t, b.seq = decodeSuffix(k[10:])
		var ents []postEnt
		for ok := true; ok; {
			ents = append(ents, postEnt{b.t, b.seq})
			if ok, err = b.advance(); err != nil {
				return err
			}
		}
		i := slices.IndexFunc(ents, func(e postEnt) bool { return e.seq == seq })
		if i < 0 {
			continue
		}
		batch := db.NewBatch()
		defer batch.Close()
		if err := batch.Delete(k, nil); err != nil {
			return err
		}
		if ents = slices.Delete(ents, i, i+1); len(ents) > 0 {
			l := &postList{kind: pfxPacked, d: dictID(f), list: uint64(id)}
			var w postWrites
			key := w.appendKey(nil, l, ents[0])
			var val []byte
			for j := 1; j < len(ents); j++ {
				val = binary.AppendUvarint(val, ents[j-1].t-ents[j].t)
				val = binary.AppendVarint(val, int64(ents[j].seq-ents[j-1].seq))
			}
			if err := batch.Set(key, val, nil); err != nil {
				return err
			}
		}
		return batch.Commit(pebble.Sync)
	}
	if err := it.Error(); err != nil {
		return err
	}
	return fmt.Errorf("pebblestore: no posting of seq %d in the list of %s %q", seq, f, value)
}

// AddPosting adds, in the closed store's Pebble database at dir, a posting
// of the event at (ns, seq) to the posting list of value of field f (a
// dictionary value): a block of its own.
func AddPosting(dir string, f audittrail.Field, value string, ns int64, seq uint64) error {
	return withRawList(dir, f, value, func(db *pebble.DB, id uint32) error {
		var w postWrites
		key := w.appendKey(nil, &postList{kind: pfxPacked, d: dictID(f), list: uint64(id)}, postEnt{sortTime(ns), seq})
		return db.Set(key, nil, pebble.Sync)
	})
}

// AddDictionaryValue appends value to the dictionary of field f in the
// closed store's Pebble database at dir, under a new id, even when the
// dictionary holds it already, and returns the id.
func AddDictionaryValue(dir string, f audittrail.Field, value string) (id uint32, err error) {
	err = withRaw(dir, func(db *pebble.DB) error {
		err := scan(db, []byte{pfxDict, byte(f)}, func(_, _ []byte) error {
			id++
			return nil
		})
		if err != nil {
			return err
		}
		return db.Set(dictKey(nil, dictID(f), id), []byte(value), pebble.Sync)
	})
	return id, err
}

// EraseDictionaryValue marks value of the dictionary of field f erased in
// the closed store's Pebble database at dir, as retention does for a value
// no record refers to any more (expire.go), and returns its id.
func EraseDictionaryValue(dir string, f audittrail.Field, value string) (id uint32, err error) {
	err = withRawList(dir, f, value, func(db *pebble.DB, dictValue uint32) error {
		id = dictValue
		return db.Set(dictKey(nil, dictID(f), id), erasedValue, pebble.Sync)
	})
	return id, err
}

// UnfreezeDictionary removes the mark that the dictionary of field f is
// frozen from the closed store's Pebble database at dir.
func UnfreezeDictionary(dir string, f audittrail.Field) error {
	return withRaw(dir, func(db *pebble.DB) error {
		return db.Delete(append([]byte(frozenDictPrefix), byte(f)), pebble.Sync)
	})
}

// RawFormat returns the storage format recorded in the closed store's
// Pebble database at dir.
func RawFormat(dir string) (format byte, err error) {
	db, err := openRaw(dir, true)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	v, closer, err := db.Get(formatKey)
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 1 {
		return 0, fmt.Errorf("pebblestore: storage format %x", v)
	}
	return v[0], nil
}

// RawSetFormat records format as the storage format of the closed store's
// Pebble database at dir, as a store written by an older build holds it.
func RawSetFormat(dir string, format byte) error {
	return withRaw(dir, func(db *pebble.DB) error {
		return db.Set(formatKey, []byte{format}, pebble.Sync)
	})
}
