package pebblestore

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// walCategory is the write category Pebble creates and recycles its WAL
// files with (wal/standalone_manager.go).
const walCategory vfs.DiskWriteCategory = "pebble-wal"

// noWALPreallocation is the file system the store gives Pebble: the
// operating system's, except that WAL files are not preallocated.
//
// Pebble reserves every WAL file in blocks of 110 % of the memtable size
// (70 MiB here) on its first write. A young store rotates its WAL often,
// because Pebble's first memtables are small and double up to MemTableSize,
// so a store of 20,000 events held four WAL files of 45 B to 6 MB taking
// 70 MiB each: 282 MiB on disk, and 147 of the 630 bytes per event of a 1M
// store were reserved, unwritten WAL space. Without the reservation a WAL
// file takes what was written to it. Recycling, which Pebble does to make a
// durable write cheap (a recycled file is overwritten in place: no block
// allocation or size change for fdatasync to journal), is unchanged;
// preallocation only saves those allocations in a file's first use.
// Measured (BenchmarkAppend1, docs/design/storage.md): no difference in the
// latency of a durable single append beyond the machine's spread.
type noWALPreallocation struct{ vfs.FS }

func (fs noWALPreallocation) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || category != walCategory {
		return f, err
	}
	return unpreallocatedFile{f}, nil
}

func (fs noWALPreallocation) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || category != walCategory {
		return f, err
	}
	return unpreallocatedFile{f}, nil
}

// unpreallocatedFile ignores Pebble's requests to reserve space.
type unpreallocatedFile struct{ vfs.File }

func (unpreallocatedFile) Preallocate(offset, length int64) error { return nil }

// Unwrap returns the operating system's file system (vfs.Root).
func (fs noWALPreallocation) Unwrap() vfs.FS { return fs.FS }

// removeFlushedWALs removes the WAL files of a closed database whose
// memtables were all flushed (Store.Close flushes before closing, and
// nothing writes in between), and empties the newest one, the only one
// Pebble would read at the next Open.
//
// After a flush Pebble's manifest names the newest WAL as the oldest one
// still needed; the older files are obsolete, kept only to be recycled
// (renamed and overwritten in place by later WALs, which makes a durable
// write cheaper while the store runs). Pebble itself deletes every obsolete
// WAL at the next Open. The newest holds nothing since the flush, but it is
// often a recycled file, as long as the one it replaced: Pebble reads its
// own records at its start and stops at the stale ones after them, so
// emptying it changes nothing for the next Open. Doing both at Close makes
// a stopped store take its tables' bytes only: 154 MiB of recycled WAL files
// were a third of a 453 MiB store of 1M events (docs/design/storage.md).
func removeFlushedWALs(fsys vfs.FS, dir string) error {
	names, err := fsys.List(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: listing the WAL files: %w", err)
	}
	logs := map[wal.NumWAL]string{}
	newest := wal.NumWAL(0)
	for _, name := range names {
		if n, index, ok := wal.ParseLogFilename(name); ok && index == 0 {
			if fi, err := fsys.Stat(fsys.PathJoin(dir, name)); err == nil && fi.Mode().IsRegular() {
				logs[n] = name
				newest = max(newest, n)
			}
		}
	}
	for n, name := range logs {
		path := fsys.PathJoin(dir, name)
		if n == newest {
			// Create truncates an existing file.
			var f vfs.File
			if f, err = fsys.Create(path, walCategory); err == nil {
				err = f.Close()
			}
		} else {
			err = fsys.Remove(path)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pebblestore: removing a flushed WAL file: %w", err)
		}
	}
	return nil
}
