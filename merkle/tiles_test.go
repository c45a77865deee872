package merkle

import (
	"encoding/binary"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestTileOf(t *testing.T) {
	for _, c := range []struct {
		level int
		n     int64
		tile  Tile
		j     int
		i     int64
	}{
		{0, 0, Tile{0, 0}, 0, 0},
		{0, 300, Tile{0, 1}, 0, 44},
		{3, 40, Tile{0, 1}, 3, 8},
		{7, 1, Tile{0, 0}, 7, 1},
		{7, 2, Tile{0, 1}, 7, 0},
		{8, 5, Tile{8, 0}, 0, 5},
		{11, 70, Tile{8, 2}, 3, 6},
		{16, 1, Tile{16, 0}, 0, 1},
	} {
		tile, j, i := TileOf(c.level, c.n)
		if tile != c.tile || j != c.j || i != c.i {
			t.Errorf("TileOf(%d, %d) = %v, %d, %d; want %v, %d, %d", c.level, c.n, tile, j, i, c.tile, c.j, c.i)
		}
	}
}

// TestTileLevelsRecomputeEveryNode: every node of a tree past two stored
// levels (66,000 leaves) is found at TileOf's place in the TileLevels of its
// tile's stored nodes, as the stores read them.
func TestTileLevelsRecomputeEveryNode(t *testing.T) {
	const size = 66_000
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for k, x := range idx {
			out[k] = all[x]
		}
		return out, nil
	})
	for n := int64(0); n < size; n++ {
		hs, err := tlog.StoredHashes(n, binary.BigEndian.AppendUint64(nil, uint64(n)), r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
	}
	levels := map[Tile][][]tlog.Hash{}
	for idx := range int64(len(all)) {
		level, n := tlog.SplitStoredHashIndex(idx)
		tile, j, i := TileOf(level, n)
		if _, ok := levels[tile]; !ok {
			var stored []tlog.Hash
			for k := range int64(TileWidth) {
				x := tlog.StoredHashIndex(tile.Base, tile.First()+k)
				if x >= int64(len(all)) {
					break
				}
				stored = append(stored, all[x])
			}
			levels[tile] = TileLevels(stored)
		}
		if got := levels[tile][j]; i >= int64(len(got)) || got[i] != all[idx] {
			t.Fatalf("node (%d, %d) is not at [%d][%d] of tile %v", level, n, j, i, tile)
		}
	}
}
