package pebblestore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Checkpoint writes a consistent copy of the store into dir, which must not
// exist, while appends and searches go on: Pebble's checkpoint, which links
// the table files where dir is on the same file system (copying them
// elsewhere) and copies the manifest and the WAL files. The WAL is flushed
// and synced first (pebble.WithFlushedWAL), not the memtables: the newest
// writes are in the copy's WAL, which Open replays. Every event acknowledged
// before the call is in the copy, with the log's tree and checkpoints as
// they were then; the copy opens with Open like any store.
//
// Linked files share their blocks with the store until compactions replace
// the store's own: a copy kept beside a busy store grows towards the size of
// the data it holds.
func (s *Store) Checkpoint(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("pebblestore: checkpoint into %s: %w", dir, err)
	}
	return nil
}

// PeekLastSeq returns the last seq of the store in dir without writing to
// it: Pebble opened read-only replays the WAL in memory and flushes
// nothing, so that a store can be checked (a restored backup against the
// events it held) before Open, which may rewrite its files.
func PeekLastSeq(dir string) (uint64, error) {
	opts := pebbleOptions(Config{fs: vfs.Default}, slog.New(slog.DiscardHandler))
	opts.ReadOnly = true
	opts.ErrorIfNotExists = true
	db, err := pebble.Open(dir, opts)
	opts.Cache.Unref()
	if err != nil {
		return 0, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	seq, _, _, err := (&Store{db: db}).lastPosition()
	return seq, firstErr(err, db.Close())
}
