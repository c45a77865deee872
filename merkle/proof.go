package merkle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxProofHashes bounds the hashes of a proof: an inclusion proof has at
// most 62 and a consistency proof at most 2·62 in a tree of MaxTreeSize.
const MaxProofHashes = 128

// Inclusion is the proof that a tree of TreeSize leaves has a given leaf at
// LeafIndex (the RFC 6962 audit path, leaf to root). TreeSize and LeafIndex
// say what the prover meant; the verifier checks them against the signed
// checkpoint and the leaf it verifies, never uses them instead.
//
// Its JSON form is {"leaf_index": N, "tree_size": N, "hashes": ["<base64>", ...]}.
type Inclusion struct {
	LeafIndex uint64      `json:"leaf_index"`
	TreeSize  uint64      `json:"tree_size"`
	Hashes    []tlog.Hash `json:"hashes"`
}

// Consistency is the proof that the tree of OldSize leaves is a prefix of
// the tree of NewSize leaves (the RFC 6962 consistency proof).
//
// Its JSON form is {"old_size": N, "new_size": N, "hashes": ["<base64>", ...]}.
type Consistency struct {
	OldSize uint64      `json:"old_size"`
	NewSize uint64      `json:"new_size"`
	Hashes  []tlog.Hash `json:"hashes"`
}

// InclusionProof returns the proof that the tree of treeSize leaves, whose
// hashes r holds, contains leaf leafIndex. It reads at most about
// 2·log2(treeSize) hashes.
func InclusionProof(r tlog.HashReader, leafIndex, treeSize uint64) (*Inclusion, error) {
	if treeSize > MaxTreeSize || leafIndex >= treeSize {
		return nil, fmt.Errorf("merkle: no leaf %d in a tree of size %d", leafIndex, treeSize)
	}
	if r == nil {
		return nil, errors.New("merkle: nil hash reader")
	}
	p, err := tlog.ProveRecord(int64(treeSize), int64(leafIndex), r)
	if err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof: %w", err)
	}
	return &Inclusion{LeafIndex: leafIndex, TreeSize: treeSize, Hashes: nonNil(p)}, nil
}

// ConsistencyProof returns the proof that the tree of n leaves is a prefix of
// the tree of m leaves, whose hashes r holds (n <= m). The proof is empty when
// n is 0 or n == m.
func ConsistencyProof(r tlog.HashReader, n, m uint64) (*Consistency, error) {
	if m > MaxTreeSize || n > m {
		return nil, fmt.Errorf("merkle: no consistency proof from size %d to size %d", n, m)
	}
	if n == 0 || n == m {
		return &Consistency{OldSize: n, NewSize: m, Hashes: []tlog.Hash{}}, nil
	}
	if r == nil {
		return nil, errors.New("merkle: nil hash reader")
	}
	p, err := tlog.ProveTree(int64(m), int64(n), r)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof: %w", err)
	}
	return &Consistency{OldSize: n, NewSize: m, Hashes: nonNil(p)}, nil
}

func nonNil(h []tlog.Hash) []tlog.Hash {
	if h == nil {
		return []tlog.Hash{}
	}
	return h
}

// VerifyInclusion checks that the tree of the verified checkpoint cp has
// leafHash at leafIndex. The proof must be for exactly that leaf and that
// tree size: a proof for another size, or any size or root that does not
// come from cp, is rejected.
func VerifyInclusion(cp *Checkpoint, leafIndex uint64, leafHash tlog.Hash, proof *Inclusion) error {
	if !cp.Verified() {
		return errNotVerified
	}
	if proof == nil {
		return errors.New("merkle: no inclusion proof")
	}
	if leafIndex >= cp.Size {
		return fmt.Errorf("merkle: leaf %d is not in the checkpoint's tree of size %d", leafIndex, cp.Size)
	}
	if proof.TreeSize != cp.Size {
		return fmt.Errorf("merkle: inclusion proof is for tree size %d, the checkpoint has %d", proof.TreeSize, cp.Size)
	}
	if proof.LeafIndex != leafIndex {
		return fmt.Errorf("merkle: inclusion proof is for leaf %d, not %d", proof.LeafIndex, leafIndex)
	}
	if len(proof.Hashes) > MaxProofHashes {
		return errors.New("merkle: inclusion proof too long")
	}
	if err := tlog.CheckRecord(proof.Hashes, int64(cp.Size), cp.Root, int64(leafIndex), leafHash); err != nil {
		return fmt.Errorf("merkle: leaf %d is not proven in the tree of size %d: %w", leafIndex, cp.Size, err)
	}
	return nil
}

// VerifyEventInclusion checks that event e is leaf e.Seq-1 of the tree of the
// verified checkpoint cp. The leaf covers e.Seq, so an event cannot be proven
// at another position than its own.
func VerifyEventInclusion(cp *Checkpoint, e *audittrail.Event, proof *Inclusion) error {
	if e == nil {
		return errors.New("merkle: nil event")
	}
	i, ok := LeafIndex(e)
	if !ok {
		return fmt.Errorf("merkle: event %s has no valid sequence number", e.ID)
	}
	return VerifyInclusion(cp, i, LeafHash(e), proof)
}

// VerifyConsistency checks that the tree of verified checkpoint older is a
// prefix of the tree of verified checkpoint newer: same origin,
// older.Size <= newer.Size, a proof for exactly these sizes, equal roots when
// the sizes are equal, and horizons that do not contradict each other (a
// larger tree cannot have an earlier horizon).
func VerifyConsistency(older, newer *Checkpoint, proof *Consistency) error {
	if !older.Verified() || !newer.Verified() {
		return errNotVerified
	}
	if proof == nil {
		return errors.New("merkle: no consistency proof")
	}
	if older.Origin != newer.Origin {
		return fmt.Errorf("merkle: checkpoints of different logs (%q, %q)", older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		return fmt.Errorf("merkle: checkpoint of size %d is not older than one of size %d", older.Size, newer.Size)
	}
	if proof.OldSize != older.Size || proof.NewSize != newer.Size {
		return fmt.Errorf("merkle: consistency proof is for sizes %d..%d, the checkpoints have %d..%d",
			proof.OldSize, proof.NewSize, older.Size, newer.Size)
	}
	if len(proof.Hashes) > MaxProofHashes {
		return errors.New("merkle: consistency proof too long")
	}
	switch {
	case older.Size == newer.Size:
		if len(proof.Hashes) != 0 {
			return errors.New("merkle: consistency proof between equal sizes must be empty")
		}
		if older.Root != newer.Root {
			return fmt.Errorf("merkle: two checkpoints of size %d with different roots: the log forked", older.Size)
		}
	case older.Size == 0:
		if len(proof.Hashes) != 0 {
			return errors.New("merkle: consistency proof from the empty tree must be empty")
		}
	default:
		if err := tlog.CheckTree(proof.Hashes, int64(newer.Size), newer.Root, int64(older.Size), older.Root); err != nil {
			return fmt.Errorf("merkle: tree of size %d is not proven a prefix of the tree of size %d: %w", older.Size, newer.Size, err)
		}
	}
	if older.Size < newer.Size && !older.ReceivedBefore.Before(newer.ReceivedBefore) {
		return fmt.Errorf("merkle: horizons contradict: size %d received before %s, size %d received before %s",
			older.Size, older.ReceivedBefore.Format(HorizonLayout), newer.Size, newer.ReceivedBefore.Format(HorizonLayout))
	}
	return nil
}

// UnmarshalJSON decodes the JSON form strictly: known fields only, hashes in
// canonical padded base64, at most MaxProofHashes of them.
func (p *Inclusion) UnmarshalJSON(b []byte) error {
	var raw struct {
		LeafIndex *uint64  `json:"leaf_index"`
		TreeSize  *uint64  `json:"tree_size"`
		Hashes    []string `json:"hashes"`
	}
	if err := decodeStrict(b, &raw); err != nil {
		return fmt.Errorf("merkle: inclusion proof: %w", err)
	}
	if raw.LeafIndex == nil || raw.TreeSize == nil || raw.Hashes == nil {
		return errors.New("merkle: inclusion proof: leaf_index, tree_size and hashes are required")
	}
	hs, err := decodeHashes(raw.Hashes)
	if err != nil {
		return fmt.Errorf("merkle: inclusion proof: %w", err)
	}
	*p = Inclusion{LeafIndex: *raw.LeafIndex, TreeSize: *raw.TreeSize, Hashes: hs}
	return nil
}

// UnmarshalJSON decodes the JSON form strictly, like Inclusion's.
func (p *Consistency) UnmarshalJSON(b []byte) error {
	var raw struct {
		OldSize *uint64  `json:"old_size"`
		NewSize *uint64  `json:"new_size"`
		Hashes  []string `json:"hashes"`
	}
	if err := decodeStrict(b, &raw); err != nil {
		return fmt.Errorf("merkle: consistency proof: %w", err)
	}
	if raw.OldSize == nil || raw.NewSize == nil || raw.Hashes == nil {
		return errors.New("merkle: consistency proof: old_size, new_size and hashes are required")
	}
	hs, err := decodeHashes(raw.Hashes)
	if err != nil {
		return fmt.Errorf("merkle: consistency proof: %w", err)
	}
	*p = Consistency{OldSize: *raw.OldSize, NewSize: *raw.NewSize, Hashes: hs}
	return nil
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func decodeHashes(ss []string) ([]tlog.Hash, error) {
	if len(ss) > MaxProofHashes {
		return nil, fmt.Errorf("%d hashes, at most %d allowed", len(ss), MaxProofHashes)
	}
	hs := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		h, err := parseHash(s)
		if err != nil {
			return nil, fmt.Errorf("hash %d: %w", i, err)
		}
		hs[i] = h
	}
	return hs, nil
}

// HashString returns h in standard padded base64, the form of the JSON and
// the checkpoint.
func HashString(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
