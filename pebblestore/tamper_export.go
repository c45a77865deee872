package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

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
	if len(old) != len(new) {
		return 0, fmt.Errorf("pebblestore: replacing %d bytes with %d would break the record", len(old), len(new))
	}
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	it, err := db.NewIter(nil)
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
