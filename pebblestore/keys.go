package pebblestore

import "encoding/binary"

// Key prefixes. Every key of the store starts with one byte naming its kind,
// so that each kind is one contiguous key range. The layout is described,
// with the alternatives that were rejected, in docs/design/storage.md.
const (
	pfxDict         = 'd' // d + dict(1) + id(4) → value
	pfxEvent        = 'e' // e + time(8) + seq(8) → record (clustered primary, time order)
	pfxHash         = 'h' // h + dict(1) + hash(8) + time(8) + seq(8) → empty (postings of inline values, format 4 and earlier)
	pfxID           = 'i' // i + uuid(16) → uvarint seq (format 6; seq(8) + time(8) before) (idempotency, lookups by id)
	pfxMeta         = 'm' // m + name → store metadata (format, frozen dictionaries and metadata keys)
	pfxCount        = 'n' // n + dict(1) + id(4) → postings count (uint64), planner statistics
	pfxSeq          = 's' // s + seq(8) → time(8) (log order, format 5 and earlier; read beside o)
	pfxPositions    = 'o' // o + first seq(8) → the times of a group's seqs (log order; positions.go)
	pfxColumn       = 'v' // v + field(1) + bucket time(8) + first seq(8) → packed inline values (column.go)
	pfxPacked       = 'p' // p + dict(1) + id(4) + time(8) + seq(8) → packed postings (formats 5 to 7; read beside w)
	pfxPackedHashed = 'k' // k + dict(1) + fold32(fnv64)(4) + time(8) + seq(8) → the same for inline values (formats 6 and 7; read beside z)
	pfxEpochPacked  = 'w' // w + epoch(4) + dict(1) + id(4) + time(8) + seq(8) → packed postings by epoch of event time (postings.go)
	pfxEpochHashed  = 'z' // z + epoch(4) + dict(1) + fold32(fnv64)(4) + time(8) + seq(8) → the same for inline values
	pfxPackedHash64 = 'q' // q + dict(1) + fnv64(8) + time(8) + seq(8) → the same, written by format 5; read beside k
	pfxPost         = 'x' // x + dict(1) + id(4) + time(8) + seq(8) → empty (postings of format 4 and earlier; postings.go)

	// Outside the event index (see tokens.go, tokens_logins.go, log.go).
	pfxToken      = 't' // API tokens
	pfxLogin      = 'l' // l + principal → login name
	pfxTree       = 'r' // r + index(8) → Merkle tree hash at tlog storage index
	pfxLeafTile   = 'u' // u + tile(8) → the 256 leaf hashes of a complete tile (log.go)
	pfxCheckpoint = 'c' // c + size(8) → signed checkpoint
)

// keyPrefixes lists every prefix, so that a test can prove they are distinct:
// two kinds of keys sharing a prefix would read each other's records.
var keyPrefixes = []byte{pfxDict, pfxEvent, pfxHash, pfxID, pfxMeta, pfxCount, pfxSeq, pfxPositions, pfxColumn, pfxPost, pfxPacked, pfxPackedHashed, pfxPackedHash64, pfxEpochPacked, pfxEpochHashed, pfxToken, pfxLogin, pfxTree, pfxLeafTile, pfxCheckpoint}

const seqLen = 8

// timeSeqLen is the length of a (time, seq) key suffix (appendTimeSeq).
const timeSeqLen = 16

// Store metadata keys (prefix pfxMeta).
var (
	formatKey = []byte("mformat")
	// frozen dictionaries: "mfd" + dict; frozen metadata keys: "mfk" + key.
	frozenDictPrefix = "mfd"
	frozenKeyPrefix  = "mfk"
)

// formatVersion is the storage format this build writes. Format 1 lacked
// the value column, format 2 its metadata pairs; Open builds the column.
// Format 3 stored every level of the Merkle tree, format 4 only levels 0,
// 8, 16, ... (log.go, treeTileHeight): this build reads both alike. Format
// 5 writes postings packed in blocks (postings.go); this build reads the
// one-key-per-posting lists of formats 4 and earlier beside them. Format 6
// writes the seq alone as an id's value (idValue), the log positions packed
// per group commit (o keys instead of s; positions.go) and hashes inline
// values' lists to 32 bits (k keys instead of q); this build reads format
// 5's beside them. Format 7 writes the value column's entries with the ids
// of their prefixes (column.go, "Prefixes"), which a new dictionary holds;
// this build reads format 6's entries beside them. Format 8 writes the
// posting lists under an epoch of event time (w and z keys instead of p and
// k; postings.go, "Epochs"); this build reads format 7's lists beside them.
// Open moves a store of format 3 to 7 to format 8 without rewriting
// anything, so that older builds, which would miss what this one writes,
// refuse it.
const formatVersion = 8

const (
	formatWithoutColumn    = 1
	formatWithoutMetaCol   = 2
	formatEveryTreeLevel   = 3
	formatUnpackedPostings = 4
	formatHash64Lists      = 5
	formatUnprefixedColumn = 6
	formatUnpartitioned    = 7
)

// sortTime maps Unix nanoseconds to an unsigned value whose big-endian bytes
// sort like the signed times (flipping the sign bit), so byte order of keys
// is time order even for the negative times a cursor could carry.
func sortTime(ns int64) uint64 { return uint64(ns) ^ 1<<63 }

func unsortTime(u uint64) int64 { return int64(u ^ 1<<63) }

// appendTimeSeq appends the 16-byte (time, seq) suffix shared by primary and
// posting keys; comparing suffixes bytewise compares (time, seq).
func appendTimeSeq(dst []byte, ns int64, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, sortTime(ns))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// decodeTimeSeq reads a (time, seq) suffix.
func decodeTimeSeq(suffix []byte) (int64, uint64) {
	return unsortTime(binary.BigEndian.Uint64(suffix)), binary.BigEndian.Uint64(suffix[8:])
}

func eventKey(dst []byte, ns int64, seq uint64) []byte {
	dst = append(dst, pfxEvent)
	return appendTimeSeq(dst, ns, seq)
}

func seqKey(dst []byte, seq uint64) []byte {
	dst = append(dst, pfxSeq)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func idKey(dst []byte, id [16]byte) []byte {
	dst = append(dst, pfxID)
	return append(dst, id[:]...)
}

// idValue is the value of an i key: the event's seq, a uvarint. The time
// that completes its primary key is the seq's log position (o keys;
// positions.go). Formats 5 and
// earlier wrote seq(8) time(8) (decodeIDValue reads both): 16 bytes of
// which zstd kept about 10; the seq alone keeps about 3, for one more read
// when an id is found (a retry, a read by id), never for a new id.
func idValue(dst []byte, seq uint64) []byte {
	return binary.AppendUvarint(dst, seq)
}

// decodeIDValue reads an i value; withTime says whether it holds the time
// (formats 5 and earlier) or the seq alone.
func decodeIDValue(v []byte) (seq uint64, ns int64, withTime, ok bool) {
	if len(v) == 16 {
		return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), true, true
	}
	seq, n := binary.Uvarint(v)
	return seq, 0, false, n > 0 && n == len(v)
}

func dictKey(dst []byte, d dictID, id uint32) []byte {
	dst = append(dst, pfxDict, byte(d))
	return binary.BigEndian.AppendUint32(dst, id)
}

func countKey(dst []byte, d dictID, id uint32) []byte {
	dst = append(dst, pfxCount, byte(d))
	return binary.BigEndian.AppendUint32(dst, id)
}

// listPrefix is the common prefix of the posting keys of (d, id).
func listPrefix(dst []byte, d dictID, id uint32) []byte {
	dst = append(dst, pfxPost, byte(d))
	return binary.BigEndian.AppendUint32(dst, id)
}

func postKey(dst []byte, d dictID, id uint32, ns int64, seq uint64) []byte {
	dst = listPrefix(dst, d, id)
	return appendTimeSeq(dst, ns, seq)
}

// hashListPrefix is the common prefix of the postings of inline value v of
// dictionary d. Different values may share a list (a hash collision); every
// candidate is checked against its record.
func hashListPrefix(dst []byte, d dictID, v []byte) []byte {
	dst = append(dst, pfxHash, byte(d))
	return binary.BigEndian.AppendUint64(dst, fnv64a(v))
}

// fold32 is the 32-bit hash of an inline value's packed list: the halves of
// its FNV-1a 64 XORed (FNV-1a's low bits depend on the inputs' low bits
// only). A 32-bit hash takes 4 bytes less in each of the 1.6 keys per event
// of these lists (10M events of internal/sample); its collisions only add
// candidates, each checked against its record: with 16M distinct values in
// one dictionary, a lookup meets another value's postings with odds of
// about 1 in 270.
func fold32(h uint64) uint32 { return uint32(h>>32) ^ uint32(h) }

// fnv64a is FNV-1a, 64 bits: stable across processes and versions (it is
// part of the storage format), allocation-free.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
