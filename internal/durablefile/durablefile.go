// Package durablefile creates the small files of a data directory that must
// survive a crash whole or not at all: the page token key, the log's
// signing key and the built-in issuer's key. A key file seen half written, or lost after it was used (a
// power cut within the file system's commit interval loses a new directory
// entry that was not synced), would make the server start with a different
// key: page tokens refused, or checkpoints that the published verifier key
// no longer opens. Replace does the same for files that are rewritten (a
// mirror's state, a tail's position). SyncDir makes a directory's new
// entries durable (the backups' renames).
package durablefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Create writes data to a new file at path with mode perm, durably: a
// temporary file in the same directory is written and synced, linked into
// place, and the directory synced. It never replaces a file: when path
// exists (another process created it first) the error wraps fs.ErrExist
// and nothing is changed. Readers never see the file partly written.
func Create(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	err = errors.Join(err, tmp.Chmod(perm), tmp.Sync(), tmp.Close())
	if err != nil {
		return err
	}
	// A link, unlike a rename, fails when path exists: two servers
	// starting on one directory agree on the first one's file.
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// Replace writes data to path durably, replacing any file there: a
// temporary file (path + ".tmp") written and synced, renamed over path, the
// directory synced. Readers see the old file or the new one, never a mix;
// after a crash, path holds one of the two. One writer per path at a time.
func Replace(path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs a directory, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return d.Close()
}
