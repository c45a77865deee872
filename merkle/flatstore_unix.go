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
	const minMapped = 1 << 16 // hashes: 2 MiB
	if n < minMapped {
		return make([]tlog.Hash, 0, n), func() {}
	}
	b, err := syscall.Mmap(-1, 0, int(n)*len(tlog.Hash{}), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]tlog.Hash, 0, n), func() {}
	}
	hs := unsafe.Slice((*tlog.Hash)(unsafe.Pointer(unsafe.SliceData(b))), n)[:0]
	return hs, func() { syscall.Munmap(b) }
}
