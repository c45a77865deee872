-- 0003: the Merkle tree in tiles, as the embedded store keeps it
-- (merkle.TileHeight; docs/design/merkle.md, "Leaf tiles").
--
-- From this migration on, a build stores only the nodes of levels 0, 8, 16,
-- ... (about 1.004 hashes per event instead of two) and recomputes a node
-- in between, when read, from the stored nodes beneath it. The leaf hashes
-- of each complete tile of 256 leaves are one row of log_tree_tiles: the
-- integrator writes it in the transaction that completes the tile, and
-- deletes the tile's leaves that earlier transactions left in
-- log_tree_hashes (those of a partial tile stay there, one row each, until
-- it is complete). Nothing is rewritten: a tree written before this
-- migration (every level, leaves one row each) reads the same.
--
-- Rolling upgrade from an earlier build: its replicas do not know the tiles
-- and the missing levels, so their proofs of leaves written by a newer
-- integrator fail ("tree hash ... is not stored"), and the log integrates
-- on a replica of this build (docs/postgres.md, "Upgrades").
CREATE TABLE log_tree_tiles (
    tile   bigint PRIMARY KEY CHECK (tile >= 0),
    leaves bytea  NOT NULL CHECK (length(leaves) = 8192)
);
-- 8 KiB of hashes never compress: stored out of line without trying.
ALTER TABLE log_tree_tiles ALTER COLUMN leaves SET STORAGE EXTERNAL;
