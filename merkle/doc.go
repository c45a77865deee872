// Package merkle is the pure core of the audit trail's verifiable log: every
// committed event is leaf Seq-1 of an append-only RFC 6962 Merkle tree, and
// the server signs checkpoints of that tree (C2SP tlog-checkpoint signed
// notes, Ed25519) that anyone holding the public key can check offline.
//
// The package does no I/O. It defines
//
//   - the canonical leaf encoding of an event (LeafData, LeafHash), versioned
//     and documented byte by byte in docs/design/merkle.md;
//   - the storage contract for tree hashes (HashStore, addressed by the
//     golang.org/x/mod/sumdb/tlog stored-hash index) with an in-memory
//     implementation (MemStore), and Integrate, which appends leaves;
//   - checkpoints (Checkpoint, Marshal, Parse, Sign, OpenCheckpoint) whose
//     body carries, besides origin, size and root, a receive-time horizon:
//     the events received before it are exactly the leaves of the tree. Two
//     checkpoints thus delimit a receive-time window by sequence numbers
//     (VerifyWindow);
//   - inclusion and consistency proofs (InclusionProof, ConsistencyProof),
//     their verifiers (VerifyInclusion, VerifyEventInclusion,
//     VerifyConsistency) and their JSON form;
//   - a full audit (Auditor, Audit) that recomputes the tree from events and
//     reports the first leaf where the log's signed checkpoints disagree.
//
// Verification never trusts a tree size or root supplied with a proof: the
// verifiers take them from a Checkpoint that OpenCheckpoint has checked
// against the log's public key, and refuse any other Checkpoint value.
package merkle
