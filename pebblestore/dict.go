package pebblestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/audittrail/audittrail"
	"github.com/cockroachdb/pebble/v2"
)

// dictID names a dictionary. The values are part of the storage format:
// append, never reorder.
type dictID uint8

const (
	// Dictionaries 0 to NumFields-1 are those of the indexed fields, in the
	// order of audittrail.Field.
	dictMeta      = dictID(audittrail.NumFields)     // metadata pairs, key + "\x00" + value
	dictUserAgent = dictID(audittrail.NumFields + 1) // user_agent (not indexed)
	dictColPrefix = dictID(audittrail.NumFields + 2) // the value column's prefixes (column.go)
	numDicts      = int(dictColPrefix) + 1
)

// dictName names d in log messages.
func (d dictID) String() string {
	switch {
	case d < dictMeta:
		return audittrail.Field(d).String()
	case d == dictMeta:
		return "metadata"
	case d == dictUserAgent:
		return "user_agent"
	case d == dictColPrefix:
		return "value column prefixes"
	}
	return fmt.Sprintf("dictionary %d", uint8(d))
}

// DefaultDictionaryLimit is the default of Config.DictionaryLimit.
const DefaultDictionaryLimit = 1 << 18

// maxDictValues bounds Config.DictionaryLimit: ids are stored in 4 bytes and
// shifted left by one in records.
const maxDictValues = 1<<31 - 1

// dictionary is one string dictionary: value ↔ dense id (from 0), and the
// number of postings of each id.
//
// Values are only ever appended, so a reader may keep a view of the values
// taken under the read lock and read it without the lock: values below its
// length never change (values.go).
//
// A dictionary holds at most the configured limit of values. When a new value
// finds it full, the dictionary is frozen (persistently): it never takes a
// value again, and values it does not hold are stored inline in the records,
// with hashed postings. So a value is either always encoded by id or always
// inline, which the planner relies on: the posting list of an id is complete.
// The same holds per metadata key (a key with many distinct values, such as a
// request id, is frozen alone).
type dictionary struct {
	vals   valueTable
	counts []uint64            // postings per id (indexed dictionaries); guarded by dicts.mu
	total  uint64              // sum of counts; guarded by dicts.mu
	byKey  map[string][]uint32 // metadata only: pair ids by metadata key
	bytes  int64               // bytes of the values, for Stats
	erased map[uint32]bool     // ids of the values retention erased (expire.go)
	frozen bool
}

// erasedValue is what the database holds for a value retention erased
// (expire.go, eraseValues): the id stays taken, so that the ids after it
// keep their places. It is not valid UTF-8, so no event's value (refused by
// audittrail.PrepareNewEvent) nor metadata pair (a key, a zero byte, a
// value) can be it.
var erasedValue = []byte{0xff}

// dicts holds every dictionary, loaded at Open and kept in memory. The
// writer goroutine is the only one that changes them; it publishes a new
// value (under mu) before the batch using it commits, so any record a reader
// can see has its ids in memory already.
type dicts struct {
	mu         sync.RWMutex
	d          [numDicts]dictionary
	frozenKeys map[string]bool // metadata keys frozen
	limit      int             // values per dictionary
	keyLimit   int             // metadata pairs per key
}

func newDicts(limit int) *dicts {
	ds := &dicts{limit: limit, keyLimit: max(limit/16, 1), frozenKeys: map[string]bool{}}
	for i := range ds.d {
		ds.d[i].vals = newValueTable()
	}
	ds.d[dictMeta].byKey = map[string][]uint32{}
	return ds
}

// load reads the dictionaries, frozen flags and counts of db.
func (ds *dicts) load(db *pebble.DB) error {
	err := scan(db, []byte{pfxDict}, func(k, v []byte) error {
		if len(k) != 6 || int(k[1]) >= numDicts {
			return fmt.Errorf("pebblestore: corrupt dictionary key %x", k)
		}
		d := &ds.d[k[1]]
		if id := binary.BigEndian.Uint32(k[2:]); int(id) != d.vals.len() {
			return fmt.Errorf("pebblestore: dictionary %d: id %d follows %d values", k[1], id, d.vals.len())
		}
		if bytes.Equal(v, erasedValue) {
			id := d.vals.addErased()
			d.counts = append(d.counts, 0)
			if d.erased == nil {
				d.erased = map[uint32]bool{}
			}
			d.erased[id] = true
			return nil
		}
		ds.add(dictID(k[1]), v)
		return nil
	})
	if err != nil {
		return err
	}
	err = scan(db, []byte(frozenDictPrefix), func(k, _ []byte) error {
		if len(k) != len(frozenDictPrefix)+1 || int(k[len(k)-1]) >= numDicts {
			return fmt.Errorf("pebblestore: corrupt key %q", k)
		}
		ds.d[k[len(k)-1]].frozen = true
		return nil
	})
	if err != nil {
		return err
	}
	err = scan(db, []byte(frozenKeyPrefix), func(k, _ []byte) error {
		ds.frozenKeys[string(k[len(frozenKeyPrefix):])] = true
		return nil
	})
	if err != nil {
		return err
	}
	return scan(db, []byte{pfxCount}, func(k, v []byte) error {
		if len(k) != 6 || int(k[1]) >= numDicts || len(v) != 8 {
			return fmt.Errorf("pebblestore: corrupt count key %x", k)
		}
		d := &ds.d[k[1]]
		id := binary.BigEndian.Uint32(k[2:])
		if int(id) >= len(d.counts) {
			return fmt.Errorf("pebblestore: count for unknown value %d of dictionary %d", id, k[1])
		}
		d.counts[id] = binary.BigEndian.Uint64(v)
		d.total += d.counts[id]
		return nil
	})
}

// scan calls fn for every key with the prefix, in order.
func scan(db *pebble.DB, prefix []byte, fn func(k, v []byte) error) error {
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), prefix[len(prefix)-1]+1)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return firstErr(it.Error(), it.Close())
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// add appends v (copied) to dictionary d; the caller holds mu or owns ds
// exclusively.
func (ds *dicts) add(d dictID, v []byte) uint32 {
	dd := &ds.d[d]
	id := dd.vals.add(v)
	dd.counts = append(dd.counts, 0)
	dd.bytes += int64(len(v))
	if d == dictMeta {
		k, _, _ := bytes.Cut(v, []byte{0})
		dd.byKey[string(k)] = append(dd.byKey[string(k)], id)
	}
	return id
}

// valueRef is how a record refers to a value: a dictionary id, or the value
// itself (inline).
type valueRef struct {
	id     uint32
	inline bool
}

// resolve returns the reference for v in d, adding v to the dictionary when
// it is new and the dictionary has room; added reports that. New values and
// frozen flags are written to b. Only the writer goroutine calls it, so it
// reads the maps without the lock: nobody else writes them.
func (ds *dicts) resolve(d dictID, v []byte, b *kvBuf) (ref valueRef, added bool) {
	dd := &ds.d[d]
	if id, ok := dd.vals.lookup(v); ok {
		return valueRef{id: id}, false
	}
	if dd.frozen {
		return valueRef{inline: true}, false
	}
	var key []byte
	if d == dictMeta {
		key, _, _ = bytes.Cut(v, []byte{0})
		if ds.frozenKeys[string(key)] {
			return valueRef{inline: true}, false
		}
	}
	switch {
	case dd.vals.len() >= ds.limit:
		ds.mu.Lock()
		dd.frozen = true
		ds.mu.Unlock()
		b.set(append([]byte(frozenDictPrefix), byte(d)), nil)
		return valueRef{inline: true}, true
	case d == dictMeta && len(dd.byKey[string(key)]) >= ds.keyLimit:
		ds.mu.Lock()
		ds.frozenKeys[string(key)] = true
		ds.mu.Unlock()
		b.set(append([]byte(frozenKeyPrefix), key...), nil)
		return valueRef{inline: true}, true
	}
	ds.mu.Lock()
	id := ds.add(d, v) // a copy: the dictionary does not keep the caller's memory
	ds.mu.Unlock()
	b.set(dictKey(nil, d, id), v)
	return valueRef{id: id}, true
}

// exactRef is what a reader knows of value v of d: its id, or whether it may
// be stored inline (it is not in the dictionary, which is frozen). Neither
// means no event has the value.
func (ds *dicts) exactRef(d dictID, v string) (id uint32, inDict, inline bool) {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	if id, ok := ds.d[d].vals.lookup(bytesOf(v)); ok {
		return id, true, false
	}
	return 0, false, ds.mayInline(d, v)
}

// mayInline reports whether values of d (of metadata key k, for pairs) may
// be stored inline. The caller holds mu.
func (ds *dicts) mayInline(d dictID, pair string) bool {
	if ds.d[d].frozen {
		return true
	}
	if d == dictMeta {
		k, _, _ := strings.Cut(pair, "\x00")
		return ds.frozenKeys[k]
	}
	return false
}

// hasInline reports whether values of d (metadata: of key k) may be inline.
func (ds *dicts) hasInline(d dictID, k string) bool {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.mayInline(d, k+"\x00")
}

// sumCounts returns the postings of the ids in d.
func (ds *dicts) sumCounts(d dictID, ids []uint32) uint64 {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	var n uint64
	c := ds.d[d].counts
	for _, id := range ids {
		n += c[id]
	}
	return n
}

// totalCount returns the postings of every value of d.
func (ds *dicts) totalCount(d dictID) uint64 {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.d[d].total
}

// metaKeyIDs returns the ids of the metadata pairs of key k.
func (ds *dicts) metaKeyIDs(k string) []uint32 {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.d[dictMeta].byKey[k]
}

// addCounts publishes the postings a commit added.
func (ds *dicts) addCounts(delta *postingDelta) {
	ds.mu.Lock()
	for _, k := range delta.keys {
		n := delta.count(k)
		ds.d[k>>32].counts[uint32(k)] += n
		ds.d[k>>32].total += n
	}
	ds.mu.Unlock()
}

// erase forgets the values of keys (dict<<32 | id), which the database now
// holds as erased (valueTable.forget). Their counts go to zero, and
// metadata pairs leave their key's id list (copied: readers may hold the
// old one).
func (ds *dicts) erase(keys []uint64) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var ids [numDicts][]uint32
	for _, k := range keys {
		ids[k>>32] = append(ids[k>>32], uint32(k))
	}
	for i := range ids {
		if len(ids[i]) == 0 {
			continue
		}
		dd := &ds.d[i]
		if dictID(i) == dictMeta {
			for _, id := range ids[i] {
				k, _, _ := strings.Cut(dd.vals.at(id), "\x00")
				pairs := dd.byKey[k]
				if j := slices.Index(pairs, id); j >= 0 {
					pairs = slices.Delete(slices.Clone(pairs), j, j+1)
					if len(pairs) == 0 {
						delete(dd.byKey, k)
					} else {
						dd.byKey[k] = pairs
					}
				}
			}
		}
		dd.bytes -= int64(dd.vals.forget(ids[i]))
		if dd.erased == nil {
			dd.erased = map[uint32]bool{}
		}
		for _, id := range ids[i] {
			dd.erased[id] = true
			dd.total -= dd.counts[id]
			dd.counts[id] = 0
		}
	}
}

// dictSnap is a reader's view of the dictionaries' values.
type dictSnap struct {
	ds   *dicts
	vals [numDicts]valueView
}

func (ds *dicts) snapshot() *dictSnap {
	s := &dictSnap{ds: ds}
	s.refresh()
	return s
}

func (s *dictSnap) refresh() {
	s.ds.mu.RLock()
	for i := range s.vals {
		s.vals[i] = s.ds.d[i].vals.view()
	}
	s.ds.mu.RUnlock()
}

// value returns the value of id in d. An id beyond the view was published
// after it was taken: refresh.
func (s *dictSnap) value(d dictID, id uint32) (string, error) {
	if int(id) >= s.vals[d].len() {
		s.refresh()
		if int(id) >= s.vals[d].len() {
			return "", fmt.Errorf("pebblestore: corrupt record: value %d of dictionary %s does not exist", id, d)
		}
	}
	return s.vals[d].at(int(id)), nil
}

// stats reports the dictionaries' sizes (values held, not erased).
func (ds *dicts) stats() (values int, bytes int64, frozen []string) {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	for i := range ds.d {
		values += ds.d[i].vals.len() - len(ds.d[i].erased)
		bytes += ds.d[i].bytes
		if ds.d[i].frozen {
			frozen = append(frozen, dictID(i).String())
		}
	}
	for k := range ds.frozenKeys {
		frozen = append(frozen, "metadata["+k+"]")
	}
	return values, bytes, frozen
}
