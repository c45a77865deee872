//go:build unix

package logmirror

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on the file path (created when missing),
// held until the returned function is called or the process ends, so that
// two updates never write one mirror at once.
func lockDir(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("logmirror: %s: another process is updating this mirror", path)
		}
		return nil, fmt.Errorf("logmirror: locking %s: %w", path, err)
	}
	return f.Close, nil
}
