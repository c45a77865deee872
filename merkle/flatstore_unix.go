//go:build unix

package merkle

import (
	"syscall"
	"unsafe"

	"golang.org/x/mod/sumdb/tlog"
)

// allocHashes returns an empty slice with room for n hashes, mapped outside
// the Go heap so that a large tree does not raise the garbage collector's
// heap goal (which would let garbage grow by as much), and its release
// function. It falls back to the heap when mapping fails.
func allocHashes(n int64) ([]tlog.Hash, func()) {
	hs, release := allocMapped[tlog.Hash](n)
	return hs[:0], release
}

// allocMapped returns a zeroed slice of n values of T, mapped outside the
// Go heap when it is large (as allocHashes), and its release function. T
// must hold no pointers: the garbage collector does not see mapped memory.
func allocMapped[T any](n int64) ([]T, func()) {
	const minMapped = 2 << 20 // bytes
	size := n * int64(unsafe.Sizeof(*new(T)))
	if size < minMapped {
		return make([]T, n), func() {}
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]T, n), func() {}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n), func() { syscall.Munmap(b) }
}
