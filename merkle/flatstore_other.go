//go:build !unix

package merkle

import "golang.org/x/mod/sumdb/tlog"

// allocHashes returns an empty slice with room for n hashes and its release
// function.
func allocHashes(n int64) ([]tlog.Hash, func()) {
	return make([]tlog.Hash, 0, n), func() {}
}

// allocMapped returns a zeroed slice of n values of T and its release
// function.
func allocMapped[T any](n int64) ([]T, func()) {
	return make([]T, n), func() {}
}
