package merkle

import "golang.org/x/mod/sumdb/tlog"

// TileHeight is how both stores keep the tree's hashes: only the nodes at
// levels 0, 8, 16, ... (the leaves, the roots of every complete subtree of
// 256 leaves, of 65,536, ...), about 1.004 hashes per event instead of two;
// a node in between is recomputed, when read, from the 2 to 128 stored
// nodes beneath it (TileLevels). The leaves of each complete group of
// TileWidth are kept together as one tile (8 KiB), those of the last,
// partial group one by one until it is complete. This is the idea of tlog's
// tiles (golang.org/x/mod/sumdb/tlog) kept in the storage-index layout of
// HashStore, so that a store written with every level reads the same
// (docs/design/merkle.md, "Leaf tiles").
const TileHeight = 8

// TileWidth is the number of stored nodes in one tile: 256.
const TileWidth = 1 << TileHeight

// StoredLevel reports whether the nodes of level are stored (TileHeight).
func StoredLevel(level int) bool { return level%TileHeight == 0 }

// Tile names the TileWidth stored nodes of level Base (0, 8, 16, ...) below
// one node of level Base+TileHeight: nodes (Base, T·256) to (Base, T·256+255).
type Tile struct {
	Base int
	T    int64
}

// First is the index, within its level, of the tile's first node.
func (t Tile) First() int64 { return t.T * TileWidth }

// TileOf returns the tile a node (level, n) is read or computed from (the
// node itself when its level is stored), and where the node is in the
// tile's TileLevels: levels[j][i].
func TileOf(level int, n int64) (t Tile, j int, i int64) {
	j = level % TileHeight
	shift := TileHeight - j // nodes of level j per tile: 1<<shift
	t = Tile{Base: level - j, T: n >> shift}
	return t, j, n - t.T<<shift
}

// TileLevels returns the levels of a tile computed from its stored nodes
// (level base, from the tile's first node on; fewer than TileWidth at the
// right edge of the tree): levels[j][i] is node (base+j, t·(256>>j)+i) of
// tile t, for j from 0 (the stored nodes) to TileHeight-1. A level has the
// nodes whose subtrees are complete within stored.
func TileLevels(stored []tlog.Hash) [][]tlog.Hash {
	levels := make([][]tlog.Hash, TileHeight)
	levels[0] = stored
	for j := 1; j < TileHeight; j++ {
		below := levels[j-1]
		up := make([]tlog.Hash, len(below)/2)
		for i := range up {
			up[i] = tlog.NodeHash(below[2*i], below[2*i+1])
		}
		levels[j] = up
	}
	return levels
}
