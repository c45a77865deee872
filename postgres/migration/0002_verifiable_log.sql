-- 0002: the verifiable log (Merkle tree and signed checkpoints).
--
-- See docs/design/verifiable-log.md ("PostgreSQL") and docs/design/merkle.md
-- ("Tree storage layout").

-- log_head.receive_time_ns is the receive time given to the event of
-- log_head.seq. Append raises each new event's receive time to at least one
-- nanosecond after it, in the statement that takes the event's seq (under
-- the row lock of log_head), so receive times strictly increase with seq:
-- a checkpoint's horizon (its last leaf's receive time + 1 ns) then
-- separates the events of its tree from every later one. NULL: no event yet.
-- Releases before this migration do not maintain it; during a rolling
-- upgrade their appends are not clamped.
ALTER TABLE log_head ADD COLUMN receive_time_ns bigint;
UPDATE log_head h SET receive_time_ns = (
    SELECT e.receive_time_ns FROM event_ids i JOIN events e ON e.event_time_ns = i.event_time_ns AND e.seq = i.seq
    WHERE i.seq = h.seq);

-- log_tree holds the tree's size (its leaves are the events of seq
-- 1..size) and the log's public key. One row. It is not in log_head so that
-- the integrator and the appenders never wait on each other's row lock.
-- verifier_key is the note verifier key of the first replica that signed:
-- every replica must sign with the same key, and one that has another does
-- not sign (logsign.SharedStore).
CREATE TABLE log_tree (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    size         bigint  NOT NULL CHECK (size >= 0),
    verifier_key text
);
INSERT INTO log_tree (id, size) VALUES (true, 0);

-- log_tree_hashes holds the tree's hashes at their tlog storage indexes
-- (golang.org/x/mod/sumdb/tlog.StoredHashIndex): the tree of n leaves is
-- exactly the indexes [0, tlog.StoredHashCount(n)), about two per event,
-- written once and never rewritten.
CREATE TABLE log_tree_hashes (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    hash bytea  NOT NULL CHECK (length(hash) = 32)
);

-- log_checkpoints holds the signed checkpoints (note text), one per tree
-- size that was signed.
CREATE TABLE log_checkpoints (
    size bigint PRIMARY KEY CHECK (size >= 0),
    note text   NOT NULL
);
