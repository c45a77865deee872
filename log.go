package audittrail

import "context"

// LogStore is what the verifiable log (package logsign, see
// docs/design/verifiable-log.md) needs from a store: the committed events in
// sequence order, and durable storage for the Merkle tree's hashes and the
// signed checkpoints. Hashes are RFC 6962 SHA-256 hashes stored at tlog
// storage indexes (docs/design/merkle.md, "Tree storage layout").
//
// Both stores implement it (pebblestore/log.go, postgres/log.go).
type LogStore interface {
	// LastSeq is the highest committed sequence number (0 when empty).
	LastSeq() uint64
	// EventsBySeq returns the committed events with from <= Seq <= to, in
	// sequence order, exactly as Search would return them. It fails if one
	// is missing.
	EventsBySeq(ctx context.Context, from, to uint64) ([]*Event, error)
	// EventByID returns the committed event with this id, or nil.
	EventByID(ctx context.Context, id string) (*Event, error)
	// TreeSize is the number of leaves whose hashes are stored.
	TreeSize() (uint64, error)
	// ReadTreeHashes returns the stored hashes at the given storage indexes.
	ReadTreeHashes(indexes []int64) ([][32]byte, error)
	// AppendTree durably stores, in one atomic write, the hashes at indexes
	// (contiguous, extending the stored ones), the new tree size, and, when
	// not nil, a signed checkpoint of size newSize.
	AppendTree(newSize uint64, indexes []int64, hashes [][32]byte, checkpoint []byte) error
	// Checkpoints returns the stored signed checkpoints in increasing size
	// order (at most one per size).
	Checkpoints(ctx context.Context) ([][]byte, error)
	// LatestCheckpoint returns the stored checkpoint of the largest size,
	// nil when there is none.
	LatestCheckpoint(ctx context.Context) ([]byte, error)
	// CheckpointsFrom returns at most limit stored checkpoints of size at
	// least from, in increasing size order.
	CheckpointsFrom(ctx context.Context, from uint64, limit int) ([][]byte, error)
	// DeleteCheckpoints deletes the stored checkpoints of these sizes (the
	// log thins old ones; sizes without a checkpoint are ignored).
	DeleteCheckpoints(ctx context.Context, sizes []uint64) error
}
