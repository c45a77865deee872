package client

import (
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail/merkle"
)

// TestConsistentDetectsFork: the checkpoints an iteration meets must be of
// one history; a fork (same prefix size, other leaves) is refused, whatever
// proof the server sends, and so are equal sizes with different roots.
func TestConsistentDetectsFork(t *testing.T) {
	skey, vkey, err := merkle.GenerateKey(rand.Reader, "test/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := merkle.NewSigner([]byte(skey))
	verifier, _ := merkle.NewVerifier([]byte(vkey))
	tree := func(tag string, n int) *merkle.MemStore {
		m := &merkle.MemStore{}
		leaves := make([]tlog.Hash, n)
		for i := range leaves {
			leaves[i] = tlog.RecordHash([]byte{byte(i)})
			if i >= 5 {
				leaves[i] = tlog.RecordHash([]byte(tag + string(rune(i))))
			}
		}
		if _, err := merkle.Integrate(m, 0, leaves); err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	checkpoint := func(m *merkle.MemStore, size uint64) *merkle.Checkpoint {
		root, err := merkle.TreeRoot(m, size)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := merkle.Sign(&merkle.Checkpoint{Origin: "test/log", Size: size, Root: root, ReceivedBefore: base.Add(time.Duration(size) * time.Second)}, signer)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := merkle.OpenCheckpoint(msg, verifier)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	honest, forked := tree("a", 12), tree("b", 12)
	fetchFrom := func(m *merkle.MemStore) func(older, newer uint64) (*merkle.Consistency, error) {
		return func(older, newer uint64) (*merkle.Consistency, error) {
			return merkle.ConsistencyProof(m, older, newer)
		}
	}
	cp7, cp12, fork12, fork7 := checkpoint(honest, 7), checkpoint(honest, 12), checkpoint(forked, 12), checkpoint(forked, 7)

	if got, err := consistent(nil, cp7, nil); err != nil || got != cp7 {
		t.Fatalf("first checkpoint: %v %v", got, err)
	}
	if got, err := consistent(cp7, cp12, fetchFrom(honest)); err != nil || got != cp12 {
		t.Fatalf("a later checkpoint: %v %v", got, err)
	}
	if got, err := consistent(cp12, cp7, fetchFrom(honest)); err != nil || got != cp12 {
		t.Fatalf("an earlier checkpoint (a lagging replica): %v %v", got, err)
	}
	if got, err := consistent(cp12, cp12, nil); err != nil || got != cp12 {
		t.Fatalf("the same checkpoint: %v %v", got, err)
	}
	for _, c := range []struct {
		name      string
		seen, cp  *merkle.Checkpoint
		proofFrom *merkle.MemStore
	}{
		{"a fork, the fork's proof", cp7, fork12, forked},
		{"a fork, the honest proof", cp7, fork12, honest},
		{"a fork seen first", fork7, cp12, honest},
		{"equal sizes, other roots", cp12, fork12, honest},
	} {
		if _, err := consistent(c.seen, c.cp, fetchFrom(c.proofFrom)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
