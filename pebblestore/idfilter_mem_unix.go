//go:build unix

package pebblestore

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocFilterWords returns n zeroed words outside the Go heap (an anonymous
// mapping) and the function that frees them. The filter is tens of MiB of
// live memory on a large store; on the Go heap the collector's target
// (GOGC=100) would reserve as much again beside it. Measured in the 10M
// benchmark: peak RSS during the suite 742 MiB without the filter, 825 with
// it on the heap.
func allocFilterWords(n int) ([]atomic.Uint64, func()) {
	b, err := unix.Mmap(-1, 0, n*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]atomic.Uint64, n), func() {}
	}
	return unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&b[0])), n), func() { unix.Munmap(b) }
}
