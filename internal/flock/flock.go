// Package flock keeps two processes from working on the same files at once
// (a mirror directory, a tail's state file): an advisory, exclusive lock
// on a file, released when the process ends, however it ends, so a crash
// leaves nothing to clean up.
package flock

import "errors"

// ErrLocked is wrapped by Lock's error when another process holds the lock.
var ErrLocked = errors.New("another process holds the lock")
