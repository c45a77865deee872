package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// Verifiable log storage (audittrail.LogStore; docs/design/verifiable-log.md).
// Two key prefixes unused by keys.go, and one metadata key:
//
//	r + index(8)  → 32-byte tree hash at tlog storage index `index`, for the
//	                nodes at levels 0, 8, 16, ... only (see treeTileHeight);
//	                of the leaves (level 0), only those of the last, partial
//	                tile since storage format 6
//	u + tile(8)   → the 256 leaf hashes of a complete tile (leafTileKey)
//	c + size(8)   → signed checkpoint (note text) of the tree of `size` leaves
//	mtreesize     → tree size (uint64), written in the same batch as its hashes
var treeSizeKey = []byte("mtreesize")

var _ audittrail.LogStore = (*Store)(nil)

func treeKey(idx int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxTree}, uint64(idx))
}

// leafTileKey is the key of the leaf hashes of tile t: leaves t·256 to
// t·256+255, written as one value of 8 KiB when the last of them is
// (storage format 6). A leaf hash is 32 incompressible bytes; its own key
// cost about 6 more (the key's last bytes, the value's offset and length in
// the block): 38 bytes per event on disk, now 32. A tile's leaves are
// written as r keys until it is complete, then moved into its u key in
// the batch that completes it; leaves of stores of earlier formats stay r
// keys, and a read looks for the tile first, then the leaf's own key.
func leafTileKey(t int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxLeafTile}, uint64(t))
}

func checkpointKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxCheckpoint}, size)
}

func (s *Store) rlock() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return errClosed
	}
	return nil
}

// EventsBySeq implements audittrail.LogStore. A range entirely inside the
// recent-events window (recent.go) is decoded from memory; any other is
// read from the database: the log positions of the range (seq → time; o
// keys, s keys in stores written before format 6), then each record.
//
// It reads every event still stored, those before the retention cutoff
// included (the log's integrator hashes them); a seq whose event was
// deleted fails with ENotFound.
func (s *Store) EventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return s.eventsBySeq(ctx, from, to, false)
}

// EventsBySeqSparse implements logsign.SparseLogReader: EventsBySeq with a
// nil event for each seq whose event is before the retention cutoff
// (expire.go), deleted or not yet, as every other read shows them.
func (s *Store) EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return s.eventsBySeq(ctx, from, to, true)
}

func (s *Store) eventsBySeq(ctx context.Context, from, to uint64, sparse bool) ([]*audittrail.Event, error) {
	if from == 0 || to < from {
		return nil, fmt.Errorf("pebblestore: bad seq range [%d, %d]", from, to)
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	if out, ok, err := s.recentEventsBySeq(ctx, from, to); ok || err != nil {
		return out, err
	}
	return s.diskEventsBySeq(ctx, from, to, sparse)
}

// recentEventsBySeq decodes the events from..to from the recent-events
// window, or reports that they are not all in it, or that one is before
// the retention cutoff.
func (s *Store) recentEventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, bool, error) {
	win := s.window()
	if win == nil {
		return nil, false, nil
	}
	recs, ok := win.get(make([]recentEvent, 0, to-from+1), from, to)
	if !ok {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, true, err
	}
	// Events before the retention cutoff may be deleted on disk while the
	// window still holds them: the disk is the authority for those.
	if cutoff := s.cutoff.Load(); cutoff != noCutoff {
		for _, r := range recs {
			if r.ns < cutoff {
				return nil, false, nil
			}
		}
	}
	snap := s.dicts.snapshot()
	out := make([]*audittrail.Event, len(recs))
	for i, r := range recs {
		e, err := decodeRecord(snap, r.rec, r.ns, r.seq)
		if err != nil {
			return nil, true, fmt.Errorf("pebblestore: event seq %d: %w", r.seq, err)
		}
		out[i] = e
	}
	return out, true, nil
}

// diskEventsBySeq reads the events from..to from the database; the caller
// holds closeMu.
func (s *Store) diskEventsBySeq(ctx context.Context, from, to uint64, sparse bool) ([]*audittrail.Event, error) {
	snap := s.dicts.snapshot()
	cutoff := s.cutoff.Load()
	out := make([]*audittrail.Event, 0, to-from+1)
	next := from
	err := s.positions(ctx, from, to, func(seq uint64, ns int64) error {
		if seq != next {
			return audittrail.Errorf(audittrail.ENotFound, "pebblestore: event seq %d is missing", next)
		}
		if sparse && ns < cutoff {
			out = append(out, nil)
			next++
			return nil
		}
		rec, closer, err := s.db.Get(eventKey(nil, ns, seq))
		if err == pebble.ErrNotFound {
			return audittrail.Errorf(audittrail.ENotFound, "pebblestore: event seq %d was deleted (retention)", seq)
		} else if err != nil {
			return fmt.Errorf("pebblestore: event seq %d: %w", seq, err)
		}
		e, err := decodeRecord(snap, rec, ns, seq)
		closer.Close()
		if err != nil {
			return err
		}
		out = append(out, e)
		next++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != to+1 {
		return nil, audittrail.Errorf(audittrail.ENotFound, "pebblestore: event seq %d is missing", next)
	}
	return out, nil
}

// TreeSize implements audittrail.LogStore.
func (s *Store) TreeSize() (uint64, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	return s.readTreeSize()
}

// treeTileHeight is how the tree's hashes are stored (merkle.TileHeight):
// only the nodes at levels 0, 8, 16, ..., about 1.004 hashes per event. All
// the levels took 80 bytes per event at 10M events (two incompressible
// 32-byte hashes and their keys), a fifth of the store; this takes about 40.
// Reading is cheap where it matters: the proof cache (logsign) keeps levels 8
// and up and the newest leaves in memory, and an older leaf's proof reads its
// own tile of 256 leaf hashes, in one read.
const treeTileHeight = merkle.TileHeight

// storedTreeLevel reports whether the hashes of level are stored.
func storedTreeLevel(level int) bool { return merkle.StoredLevel(level) }

// ReadTreeHashes implements audittrail.LogStore.
func (s *Store) ReadTreeHashes(indexes []int64) ([][32]byte, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	// One view of the tree for the whole call: the integrator moves a
	// tile's leaves from their own keys into the tile's key when it
	// completes the tile, and a read between the two would find neither.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	out := make([][32]byte, len(indexes))
	var tiles *treeTiles
	for i, idx := range indexes {
		if idx < 0 {
			return nil, fmt.Errorf("pebblestore: bad tree hash index %d", idx)
		}
		level, n := tlog.SplitStoredHashIndex(idx)
		if tiles == nil && (level == 0 || !storedTreeLevel(level)) {
			tiles = &treeTiles{db: snap, done: map[merkle.Tile][][]tlog.Hash{}, leafTiles: map[int64][]tlog.Hash{}}
			defer tiles.close()
		}
		if level == 0 {
			if leaves, err := tiles.leafTile(n >> treeTileHeight); err != nil {
				return nil, err
			} else if leaves != nil {
				out[i] = leaves[n&(1<<treeTileHeight-1)]
				continue
			}
		} else if !storedTreeLevel(level) {
			h, err := tiles.node(level, n)
			if err != nil {
				return nil, err
			}
			out[i] = h
			continue
		}
		v, closer, err := snap.Get(treeKey(idx))
		if err == pebble.ErrNotFound {
			return nil, fmt.Errorf("pebblestore: tree hash %d is not stored", idx)
		} else if err != nil {
			return nil, err
		}
		if len(v) != 32 {
			closer.Close()
			return nil, fmt.Errorf("pebblestore: corrupt tree hash %d", idx)
		}
		copy(out[i][:], v)
		closer.Close()
	}
	return out, nil
}

// treeTiles reads leaf tiles and recomputes unstored nodes for one
// ReadTreeHashes call, reading each tile once, from the call's snapshot.
type treeTiles struct {
	db        pebble.Reader // the call's snapshot
	it        *pebble.Iterator
	done      map[merkle.Tile][][]tlog.Hash // levels[j][i]: node (base+j, t·(256>>j)+i)
	leafTiles map[int64][]tlog.Hash         // by tile: its leaves' u value, or nil
}

// leafTile returns the 256 leaf hashes of tile t from its u key, or nil
// when it has none (a partial tile, or one of an earlier format: its leaves
// are r keys).
func (tt *treeTiles) leafTile(t int64) ([]tlog.Hash, error) {
	if leaves, ok := tt.leafTiles[t]; ok {
		return leaves, nil
	}
	v, closer, err := tt.db.Get(leafTileKey(t))
	if err == pebble.ErrNotFound {
		tt.leafTiles[t] = nil
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer closer.Close()
	const width = 1 << treeTileHeight
	if len(v) != width*32 {
		return nil, fmt.Errorf("pebblestore: corrupt leaf tile %d", t)
	}
	leaves := make([]tlog.Hash, width)
	for i := range leaves {
		leaves[i] = tlog.Hash(v[i*32 : i*32+32])
	}
	tt.leafTiles[t] = leaves
	return leaves, nil
}

func (tt *treeTiles) close() {
	if tt.it != nil {
		tt.it.Close()
	}
}

// node returns the hash of node (level, n), level not stored.
func (tt *treeTiles) node(level int, n int64) (tlog.Hash, error) {
	key, j, i := merkle.TileOf(level, n)
	levels, ok := tt.done[key]
	if !ok {
		var err error
		if levels, err = tt.read(key); err != nil {
			return tlog.Hash{}, err
		}
		tt.done[key] = levels
	}
	if i >= int64(len(levels[j])) {
		return tlog.Hash{}, fmt.Errorf("pebblestore: tree hash %d is not stored", tlog.StoredHashIndex(level, n))
	}
	return levels[j][i], nil
}

// read reads the stored nodes of tile k (all of them, or the first ones
// of a tile at the right edge of the tree) and computes the levels above
// them up to, not including, the next stored level.
func (tt *treeTiles) read(k merkle.Tile) ([][]tlog.Hash, error) {
	const width = merkle.TileWidth
	first := k.First()
	if k.Base == 0 {
		if leaves, err := tt.leafTile(k.T); err != nil {
			return nil, err
		} else if leaves != nil {
			return merkle.TileLevels(leaves), nil
		}
	}
	if tt.it == nil {
		it, err := tt.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxTree}, UpperBound: []byte{pfxTree + 1}})
		if err != nil {
			return nil, err
		}
		tt.it = it
	}
	// The tile's nodes are in increasing storage index order. Between two
	// leaves (base 0) lie a few other nodes (the next stored level's, and
	// every level's in a store written before treeTileHeight): stepped
	// over. Between two nodes of a higher stored level lie hundreds of
	// leaves: each node is sought.
	leaves := make([]tlog.Hash, 0, width)
	want := tlog.StoredHashIndex(k.Base, first)
	for valid := tt.it.SeekGE(treeKey(want)); valid; {
		key, v := tt.it.Key(), tt.it.Value()
		if len(key) != 9 || len(v) != 32 {
			return nil, fmt.Errorf("pebblestore: corrupt tree hash entry %x", key)
		}
		idx := int64(binary.BigEndian.Uint64(key[1:]))
		if idx < want {
			valid = tt.it.Next()
			continue
		}
		if idx > want {
			break // the stored tree ends within the tile
		}
		if leaves = append(leaves, tlog.Hash(v)); len(leaves) == width {
			break
		}
		want = tlog.StoredHashIndex(k.Base, first+int64(len(leaves)))
		if k.Base == 0 {
			valid = tt.it.Next()
		} else {
			valid = tt.it.SeekGE(treeKey(want))
		}
	}
	if err := tt.it.Error(); err != nil {
		return nil, err
	}
	return merkle.TileLevels(leaves), nil
}

// AppendTree implements audittrail.LogStore: one synced batch. Of the
// hashes, only those of the stored levels are written (treeTileHeight).
func (s *Store) AppendTree(newSize uint64, indexes []int64, hashes [][32]byte, checkpoint []byte) error {
	if len(indexes) != len(hashes) {
		return fmt.Errorf("pebblestore: %d indexes for %d hashes", len(indexes), len(hashes))
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	const width = 1 << treeTileHeight
	var (
		tile    = int64(-1) // the tile of the leaves in leaves
		leaves  []byte      // its leaf hashes from its first leaf on
		pending []int       // this call's leaves of it, by position in indexes
	)
	for i, idx := range indexes {
		level, n := tlog.SplitStoredHashIndex(idx)
		if level == 0 && !s.legacyWrites.format5 {
			if t := n / width; t != tile {
				// The tile's leaves before n were stored by earlier calls,
				// as r keys.
				var err error
				if leaves, err = s.partialTile(leaves[:0], t, n); err != nil {
					return err
				}
				tile, pending = t, pending[:0]
			}
			leaves = append(leaves, hashes[i][:]...)
			pending = append(pending, i)
			if n%width == width-1 {
				if err := b.Set(leafTileKey(tile), leaves, nil); err != nil { // Set copies
					return err
				}
				if first := tile * width; n+1-int64(len(pending)) > first {
					// The r keys of the earlier calls' leaves of the tile
					// (and nothing else: a stored node of level 8 or more
					// follows the tile's last leaf).
					lo, hi := tlog.StoredHashIndex(0, first), tlog.StoredHashIndex(0, n+1-int64(len(pending)))
					if err := b.DeleteRange(treeKey(lo), treeKey(hi), nil); err != nil {
						return err
					}
				}
				tile, leaves, pending = -1, leaves[:0], pending[:0]
			}
			continue
		}
		if !storedTreeLevel(level) {
			continue
		}
		if err := b.Set(treeKey(idx), hashes[i][:], nil); err != nil {
			return err
		}
	}
	// The leaves of a tile left partial: r keys until it is complete.
	for _, i := range pending {
		if err := b.Set(treeKey(indexes[i]), hashes[i][:], nil); err != nil {
			return err
		}
	}
	if err := b.Set(treeSizeKey, binary.BigEndian.AppendUint64(nil, newSize), nil); err != nil {
		return err
	}
	if checkpoint != nil {
		if err := b.Set(checkpointKey(newSize), checkpoint, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// partialTile appends to dst the hashes of the leaves of tile t below leaf
// n, stored as r keys by earlier AppendTree calls.
func (s *Store) partialTile(dst []byte, t, n int64) ([]byte, error) {
	first := t << treeTileHeight
	if n == first {
		return dst, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: treeKey(tlog.StoredHashIndex(0, first)),
		UpperBound: treeKey(tlog.StoredHashIndex(0, n)),
	})
	if err != nil {
		return dst, err
	}
	want := first
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 || len(v) != 32 {
			it.Close()
			return dst, fmt.Errorf("pebblestore: corrupt tree hash entry %x", k)
		}
		// Between two leaves: nodes of levels 1 to 7, in stores of format 3.
		if level, m := tlog.SplitStoredHashIndex(int64(binary.BigEndian.Uint64(k[1:]))); level == 0 {
			if m != want {
				break
			}
			dst = append(dst, v...)
			want++
		}
	}
	if err := firstErr(it.Error(), it.Close()); err != nil {
		return dst, err
	}
	if want != n {
		return dst, fmt.Errorf("pebblestore: tree hash %d is not stored", tlog.StoredHashIndex(0, want))
	}
	return dst, nil
}

// Checkpoints implements audittrail.LogStore.
func (s *Store) Checkpoints(ctx context.Context) ([][]byte, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	var out [][]byte
	err := scan(s.db, []byte{pfxCheckpoint}, func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		out = append(out, append([]byte(nil), v...))
		return nil
	})
	return out, err
}

// CheckpointsFrom implements audittrail.LogStore.
func (s *Store) CheckpointsFrom(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: checkpointKey(from), UpperBound: []byte{pfxCheckpoint + 1}})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for valid := it.First(); valid && len(out) < limit; valid = it.Next() {
		out = append(out, bytes.Clone(it.Value()))
	}
	return out, firstErr(it.Error(), it.Close())
}

// DeleteCheckpoints implements audittrail.LogStore: one synced batch.
func (s *Store) DeleteCheckpoints(ctx context.Context, sizes []uint64) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, size := range sizes {
		if err := b.Delete(checkpointKey(size), nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// LatestCheckpoint implements audittrail.LogStore: the checkpoint of the
// largest size, read from the end of the checkpoints' key range (one per
// second of continuous load adds up; a restart reads one).
func (s *Store) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{pfxCheckpoint}, UpperBound: []byte{pfxCheckpoint + 1}})
	if err != nil {
		return nil, err
	}
	var note []byte
	if it.Last() {
		note = bytes.Clone(it.Value())
	}
	return note, firstErr(it.Error(), it.Close())
}

// EventByID implements audittrail.LogStore: the stored event with the given
// id, or nil.
func (s *Store) EventByID(ctx context.Context, id string) (*audittrail.Event, error) {
	u, ok := parseCanonicalUUID(id)
	if !ok {
		return nil, nil
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	e, err := s.eventByID(u)
	if e != nil && e.EventTime.UnixNano() < s.cutoff.Load() {
		return nil, err // before the retention cutoff: deleted, or about to be
	}
	return e, err
}
