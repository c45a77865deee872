package pebblestore

import (
	"hash/maphash"
	"math"
	"unsafe"
)

// valueTable is a dictionary's values, kept where the garbage collector need
// not look at them one by one.
//
// The dictionaries live as long as the store and are its largest heap
// structure (about 60 MB for 1M generated events, most of the server's live
// heap). Held as []string and map[string]uint32, every value was a heap
// object and every string header a pointer, which each garbage collection
// marked again: on the 2-core machine a cycle took 13-23 ms of wall time
// (1M events) with one core mostly taken by marking, and the searches
// answered in it were the slow tail (BenchmarkGC: 17-18 ms at 10M events,
// 1.0-1.3 ms with this table). Here the value bytes sit in a few
// large chunks, each value's place is a pointer-free triple, and the lookup
// map goes from a 64-bit hash to an id (pointer-free too); a value whose
// hash another value already has (never seen with 64 bits, but possible)
// goes to a small ordinary map instead, so lookups stay exact.
//
// Values are only appended. The chunks are allocated at full length and
// never written below their fill mark, so a reader holding a view (the
// chunks and places slice headers, taken under the dictionaries' lock) may
// read every value of the view without the lock while the writer appends.
//
// Retention erases values that only deleted events held (dicts.erase): the
// lookup forgets them, so that a value that comes back gets a new id, and
// the database holds them as erased. In memory their bytes stay until the
// process ends, where readers of records deleted meanwhile may still find
// them; a store opened again loads the ids as erased, reading as "".
type valueTable struct {
	chunks [][]byte     // value bytes; each chunk allocated at full length
	places []valuePlace // by id
	fill   int          // bytes used in the last chunk
	byHash map[uint64]uint32
	clash  map[string]uint32 // values whose hash an earlier value has
	seed   maphash.Seed
}

// valuePlace locates one value in the chunks.
type valuePlace struct{ chunk, off, n uint32 }

// erasedPlace is the place of a value loaded as erased: it reads as "".
var erasedPlace = valuePlace{chunk: math.MaxUint32}

const (
	firstChunkSize = 4 << 10 // small stores (tests, fresh stores) stay small
	maxChunkSize   = 1 << 20
)

// collideForTest makes every hash one of four, so that the tests exercise
// the exact lookups of clashing values.
var collideForTest bool

func newValueTable() valueTable {
	return valueTable{byHash: map[uint64]uint32{}, seed: maphash.MakeSeed()}
}

func (t *valueTable) hash(b []byte) uint64 {
	h := maphash.Bytes(t.seed, b)
	if collideForTest {
		h &= 3
	}
	return h
}

func (t *valueTable) len() int { return len(t.places) }

// lookup returns the id of v. Only the writer may call it without the
// dictionaries' read lock.
func (t *valueTable) lookup(v []byte) (uint32, bool) {
	id, ok := t.byHash[t.hash(v)]
	if !ok {
		return 0, false // the first value of each hash is in byHash
	}
	if t.at(id) == string(v) {
		return id, true
	}
	id, ok = t.clash[string(v)]
	return id, ok
}

// add appends v (copied) and returns its id. The caller holds the
// dictionaries' write lock.
func (t *valueTable) add(v []byte) uint32 {
	id := uint32(len(t.places))
	p := valuePlace{n: uint32(len(v))}
	if len(v) > 0 {
		last := len(t.chunks) - 1
		if last < 0 || t.fill+len(v) > len(t.chunks[last]) {
			size := firstChunkSize
			if last >= 0 {
				size = min(2*len(t.chunks[last]), maxChunkSize)
			}
			t.chunks = append(t.chunks, make([]byte, max(size, len(v))))
			t.fill, last = 0, last+1
		}
		copy(t.chunks[last][t.fill:], v)
		p.chunk, p.off = uint32(last), uint32(t.fill)
		t.fill += len(v)
	}
	t.places = append(t.places, p)
	h := t.hash(v)
	if _, taken := t.byHash[h]; !taken {
		t.byHash[h] = id
	} else {
		if t.clash == nil {
			t.clash = map[string]uint32{}
		}
		t.clash[t.at(id)] = id
	}
	return id
}

// addErased appends an erased value (one the database holds as erased, at
// Open) and returns its id.
func (t *valueTable) addErased() uint32 {
	t.places = append(t.places, erasedPlace)
	return uint32(len(t.places) - 1)
}

// forget removes the values of ids from the lookup (retention erased
// them: see dicts.erase) and returns their bytes. Their places stay: a
// reader may still be decoding a record it saw before the deletion. The
// caller holds the dictionaries' write lock.
func (t *valueTable) forget(ids []uint32) (bytes int) {
	for _, id := range ids {
		v := t.at(id)
		bytes += len(v)
		h := t.hash(bytesOf(v))
		if first, ok := t.byHash[h]; ok && first == id {
			delete(t.byHash, h)
			// A value with the same hash waits in clash: it becomes the
			// first of its hash, as lookup expects.
			for cv, cid := range t.clash {
				if t.hash(bytesOf(cv)) == h {
					t.byHash[h] = cid
					delete(t.clash, cv)
					break
				}
			}
		} else if cid, ok := t.clash[v]; ok && cid == id {
			delete(t.clash, v)
		}
	}
	return bytes
}

// at returns value id; the string shares the chunk's memory.
func (t *valueTable) at(id uint32) string { return t.view().at(int(id)) }

// view returns the values added so far, for reading without the lock.
func (t *valueTable) view() valueView { return valueView{chunks: t.chunks, places: t.places} }

// valueView is a reader's copy of a table's slice headers.
type valueView struct {
	chunks [][]byte
	places []valuePlace
}

func (v valueView) len() int { return len(v.places) }

func (v valueView) at(i int) string {
	p := v.places[i]
	if p.n == 0 {
		return ""
	}
	return unsafe.String(&v.chunks[p.chunk][p.off], p.n)
}
