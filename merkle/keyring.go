package merkle

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// MaxRingKeys bounds the keys of a KeyRing.
const MaxRingKeys = 16

// KeyRing is the set of a log's public keys across rotations of its signing
// key (docs/design/verifiable-log.md, "Rotating the signing key"): a
// checkpoint verifies with the ring when it carries a valid signature by any
// of its keys. The keys share one name, the log's origin, and the first is
// the current one.
//
// A KeyRing is a note.Verifier so that it goes wherever a single key does
// (proof verification, mirrors, audits): OpenCheckpoint accepts any of its
// keys. Used directly as a note.Verifier it is its first key.
type KeyRing struct {
	keys []note.Verifier
}

func newKeyRing(lines []string) (*KeyRing, error) {
	if len(lines) > MaxRingKeys {
		return nil, fmt.Errorf("merkle: a key file holds at most %d keys, one per line", MaxRingKeys)
	}
	r := &KeyRing{}
	seen := make(map[uint32]bool)
	for i, line := range lines {
		v, err := NewVerifier([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("merkle: key %d of %d: %w", i+1, len(lines), err)
		}
		if _, ok := v.(*KeyRing); ok {
			return nil, errors.New("merkle: a key file holds one key per line")
		}
		if i > 0 && v.Name() != r.Name() {
			return nil, fmt.Errorf("merkle: key %d of %d is named %q, not %q: a log's keys share its origin as name", i+1, len(lines), v.Name(), r.Name())
		}
		if seen[v.KeyHash()] {
			return nil, fmt.Errorf("merkle: key %d of %d is listed twice", i+1, len(lines))
		}
		seen[v.KeyHash()] = true
		r.keys = append(r.keys, v)
	}
	return r, nil
}

// Name is the log's origin, the name of every key.
func (r *KeyRing) Name() string { return r.keys[0].Name() }

// KeyHash is the first key's hash.
func (r *KeyRing) KeyHash() uint32 { return r.keys[0].KeyHash() }

// Verify checks a signature by the first key.
func (r *KeyRing) Verify(msg, sig []byte) bool { return r.keys[0].Verify(msg, sig) }

// Keys returns the keys of v: those of a KeyRing, or v itself (of a
// Witnessed verifier, those of the log's verifier it wraps).
func Keys(v note.Verifier) []note.Verifier {
	if w, ok := v.(*witnessed); ok {
		v = w.Verifier
	}
	if r, ok := v.(*KeyRing); ok {
		return append([]note.Verifier(nil), r.keys...)
	}
	return []note.Verifier{v}
}

// JoinKeys returns the text of a key file holding the public keys vkeys in
// order (the current key first), one per line, each given once.
func JoinKeys(vkeys ...string) string {
	var out []string
	for _, k := range vkeys {
		for _, line := range strings.Split(strings.TrimSuffix(k, "\n"), "\n") {
			if line != "" && !slices.Contains(out, line) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// CosignaturePolicy checks the cosignatures a signed checkpoint carries
// besides the log's signature (witness.Policy: a quorum of witnesses).
type CosignaturePolicy interface {
	Check(msg []byte) error
}

// ErrNotWitnessed is wrapped by OpenCheckpoint's error when the log's
// signature is good but a Witnessed verifier's policy refuses the
// cosignatures: not evidence against the log (a witness may be down), but
// not a checkpoint to trust yet.
var ErrNotWitnessed = errors.New("not cosigned as the witness policy requires")

// Witnessed returns a verifier of the log's keys v (a key or a KeyRing)
// with which OpenCheckpoint also requires what policy asks of a
// checkpoint's cosignatures. It goes wherever v went: every proof,
// window, mirror and audit then trusts only checkpoints the policy's
// witnesses cosigned.
func Witnessed(v note.Verifier, policy CosignaturePolicy) note.Verifier {
	if w, ok := v.(*witnessed); ok {
		v = w.Verifier
	}
	return &witnessed{Verifier: v, policy: policy}
}

// Unwitnessed returns the log's keys of v, without the policy of a
// Witnessed verifier: for a checkpoint that was accepted when it was
// saved (a mirror's, a tail's position), under whatever policy held then,
// which a policy adopted later must not make unreadable. New checkpoints
// still go through the policy.
func Unwitnessed(v note.Verifier) note.Verifier {
	if w, ok := v.(*witnessed); ok {
		return w.Verifier
	}
	return v
}

type witnessed struct {
	note.Verifier // the log's keys
	policy        CosignaturePolicy
}
