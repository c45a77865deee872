//go:build !unix

package pebblestore

import "sync/atomic"

// allocFilterWords returns n zeroed words on the Go heap (see the unix
// version for why it is elsewhere there).
func allocFilterWords(n int) ([]atomic.Uint64, func()) { return make([]atomic.Uint64, n), func() {} }
