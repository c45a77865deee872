package pebblestore

import "unsafe"

// bytesOf returns the bytes of s without copying. The result must not be
// modified; it serves map lookups, hashing and appends on the write path,
// where a copy per field per event would be a measurable cost.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// strArena makes the strings of one decoded event: each is a copy into
// the arena's buffer, which is allocated once with room for all of them.
// Strings must not be made from a buffer that is modified afterwards; the
// arena only appends, and when its capacity is too small append moves it
// to a new array, leaving the strings already made on the old one (still
// valid, only more allocations).
type strArena []byte

func (a *strArena) string(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(*a)
	*a = append(*a, b...)
	return unsafe.String(&(*a)[start], len(b))
}

// uuidStringLen is the length of a UUID's canonical text form.
const uuidStringLen = 36

// uuid returns the canonical text form (lower-case hex, 8-4-4-4-12) of
// the 16 bytes of id.
func (a *strArena) uuid(id []byte) string {
	const hex = "0123456789abcdef"
	start := len(*a)
	for i, c := range id[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			*a = append(*a, '-')
		}
		*a = append(*a, hex[c>>4], hex[c&0xf])
	}
	return unsafe.String(&(*a)[start], uuidStringLen)
}
