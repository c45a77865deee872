package pebblestore

import "unsafe"

// bytesOf returns the bytes of s without copying. The result must not be
// modified; it serves map lookups, hashing and appends on the write path,
// where a copy per field per event would be a measurable cost.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
