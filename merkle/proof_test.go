package merkle

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// proofFixture is a tree of sample events with a signed checkpoint at every
// size.
type proofFixture struct {
	leaves []tlog.Hash
	tree   *MemStore
	cps    []*Checkpoint // cps[n] has size n
}

func newProofFixture(t testing.TB, n int) *proofFixture {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	f := &proofFixture{leaves: leafHashes(sampleEvents(n))}
	f.tree = buildTree(t, f.leaves)
	for size := 0; size <= n; size++ {
		cp, _ := signedCheckpoint(t, signer, verifier, f.tree, uint64(size), horizonFor(uint64(size)))
		f.cps = append(f.cps, cp)
	}
	return f
}

func TestInclusion(t *testing.T) {
	const n = 40
	f := newProofFixture(t, n)
	for size := 1; size <= n; size++ {
		cp := f.cps[size]
		for i := 0; i < size; i++ {
			p, err := InclusionProof(f.tree, uint64(i), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if !hashesEqual(p.Hashes, refPath(i, f.leaves[:size])) {
				t.Fatalf("proof (%d, %d) differs from RFC 6962 PATH", i, size)
			}
			if err := VerifyInclusion(cp, uint64(i), f.leaves[i], p); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", i, size, err)
			}
			// Every single-bit change of the proof is rejected.
			for k := range p.Hashes {
				for bit := 0; bit < 256; bit += 37 {
					q := cloneInclusion(p)
					q.Hashes[k][bit/8] ^= 1 << (bit % 8)
					if VerifyInclusion(cp, uint64(i), f.leaves[i], q) == nil {
						t.Fatalf("proof (%d, %d) with hash %d bit %d flipped verified", i, size, k, bit)
					}
				}
			}
			// Another leaf's hash, another index, an extra or a missing hash.
			other := f.leaves[(i+1)%n]
			if VerifyInclusion(cp, uint64(i), other, p) == nil {
				t.Fatalf("proof (%d, %d) verified another leaf", i, size)
			}
			for j := 0; j < size; j++ {
				if j == i {
					continue
				}
				q := cloneInclusion(p)
				q.LeafIndex = uint64(j)
				if VerifyInclusion(cp, uint64(j), f.leaves[i], q) == nil {
					t.Fatalf("leaf %d proven at index %d in size %d", i, j, size)
				}
			}
			q := cloneInclusion(p)
			q.Hashes = append(q.Hashes, f.leaves[0])
			if VerifyInclusion(cp, uint64(i), f.leaves[i], q) == nil {
				t.Fatalf("proof (%d, %d) with an extra hash verified", i, size)
			}
			if len(p.Hashes) > 0 {
				q := cloneInclusion(p)
				q.Hashes = q.Hashes[:len(q.Hashes)-1]
				if VerifyInclusion(cp, uint64(i), f.leaves[i], q) == nil {
					t.Fatalf("truncated proof (%d, %d) verified", i, size)
				}
			}
		}
	}
}

func TestInclusionWrongSizes(t *testing.T) {
	f := newProofFixture(t, 20)
	cp := f.cps[13]
	p, err := InclusionProof(f.tree, 5, 12)
	if err != nil {
		t.Fatal(err)
	}
	// A genuine proof for another tree size does not verify against cp,
	// whatever size it claims.
	if VerifyInclusion(cp, 5, f.leaves[5], p) == nil {
		t.Fatal("proof for size 12 verified against size 13 (claiming 12)")
	}
	q := cloneInclusion(p)
	q.TreeSize = 13
	if VerifyInclusion(cp, 5, f.leaves[5], q) == nil {
		t.Fatal("proof for size 12 verified against size 13 (claiming 13)")
	}
	// Sizes where the path happens to be the same: the claimed size must
	// still match the signed one.
	p16, _ := InclusionProof(f.tree, 3, 16)
	p16.TreeSize = 15
	if VerifyInclusion(f.cps[16], 3, f.leaves[3], p16) == nil {
		t.Fatal("proof claiming another tree size accepted")
	}
	// Out-of-range indexes.
	for _, i := range []uint64{13, 14, 1 << 40, MaxTreeSize, ^uint64(0)} {
		q := cloneInclusion(p)
		q.LeafIndex, q.TreeSize = i, 13
		if VerifyInclusion(cp, i, f.leaves[5], q) == nil {
			t.Fatalf("leaf index %d accepted in size 13", i)
		}
		if _, err := InclusionProof(f.tree, i, 13); err == nil {
			t.Fatalf("InclusionProof(%d, 13) succeeded", i)
		}
	}
	if _, err := InclusionProof(f.tree, 0, 0); err == nil {
		t.Fatal("proof in the empty tree")
	}
	if VerifyInclusion(f.cps[0], 0, EmptyRoot, &Inclusion{Hashes: []tlog.Hash{}}) == nil {
		t.Fatal("inclusion in the empty tree verified")
	}
	if VerifyInclusion(cp, 5, f.leaves[5], nil) == nil {
		t.Fatal("nil proof verified")
	}
	if _, err := InclusionProof(f.tree, 5, 21); err == nil {
		t.Fatal("proof beyond the stored tree succeeded")
	}
}

// TestProverSuppliedCheckpoint is the immudb GHSA-672p-m5jq-mrh8 case: a
// malicious server answers with a proof against a tree it made up. The root
// and size it supplies must never be trusted: only a signed checkpoint is.
func TestProverSuppliedCheckpoint(t *testing.T) {
	f := newProofFixture(t, 8)
	// The attacker builds a tree with a forged leaf 2 and proves it.
	forged := append([]tlog.Hash(nil), f.leaves...)
	forged[2] = tlog.RecordHash([]byte("forged"))
	ft := buildTree(t, forged)
	root, _ := TreeRoot(ft, 8)
	p, _ := InclusionProof(ft, 2, 8)
	fake := &Checkpoint{Origin: testOrigin, Size: 8, Root: root, ReceivedBefore: horizonFor(8)}
	if VerifyInclusion(fake, 2, forged[2], p) == nil {
		t.Fatal("inclusion verified against an unsigned checkpoint")
	}
	// A verified checkpoint with the size and root replaced by the
	// attacker's is no longer verified.
	c := *f.cps[8]
	c.Root = root
	if VerifyInclusion(&c, 2, forged[2], p) == nil {
		t.Fatal("inclusion verified against a modified checkpoint")
	}
	if VerifyInclusion(f.cps[8], 2, forged[2], p) == nil {
		t.Fatal("forged leaf verified against the signed checkpoint")
	}
	// And a consistency proof to the attacker's tree is rejected too.
	cp, _ := ConsistencyProof(ft, 4, 8)
	if VerifyConsistency(f.cps[4], fake, cp) == nil {
		t.Fatal("consistency verified against an unsigned checkpoint")
	}
}

func TestConsistency(t *testing.T) {
	const n = 40
	f := newProofFixture(t, n)
	for m := 0; m <= n; m++ {
		for k := 0; k <= m; k++ {
			p, err := ConsistencyProof(f.tree, uint64(k), uint64(m))
			if err != nil {
				t.Fatal(err)
			}
			if !hashesEqual(p.Hashes, refConsistency(k, f.leaves[:m])) {
				t.Fatalf("proof (%d, %d) differs from RFC 6962 PROOF", k, m)
			}
			if err := VerifyConsistency(f.cps[k], f.cps[m], p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", k, m, err)
			}
			for h := range p.Hashes {
				q := cloneConsistency(p)
				q.Hashes[h][h%32] ^= 0x80
				if VerifyConsistency(f.cps[k], f.cps[m], q) == nil {
					t.Fatalf("proof (%d, %d) with hash %d changed verified", k, m, h)
				}
			}
			q := cloneConsistency(p)
			q.Hashes = append(q.Hashes, f.leaves[0])
			if VerifyConsistency(f.cps[k], f.cps[m], q) == nil {
				t.Fatalf("proof (%d, %d) with an extra hash verified", k, m)
			}
			if k < m && k > 0 {
				// Reversed checkpoints, and the proof against other sizes.
				if VerifyConsistency(f.cps[m], f.cps[k], p) == nil {
					t.Fatalf("reversed proof (%d, %d) verified", k, m)
				}
				if m < n && VerifyConsistency(f.cps[k], f.cps[m+1], p) == nil {
					t.Fatalf("proof (%d, %d) verified for size %d", k, m, m+1)
				}
				q := cloneConsistency(p)
				q.NewSize++
				if m < n && VerifyConsistency(f.cps[k], f.cps[m+1], q) == nil {
					t.Fatalf("proof (%d, %d) relabelled to %d verified", k, m, m+1)
				}
			}
		}
	}
	if VerifyConsistency(f.cps[3], f.cps[5], nil) == nil {
		t.Fatal("nil proof verified")
	}
	for _, c := range [][2]uint64{{5, 3}, {3, 41}, {0, MaxTreeSize + 1}} {
		if _, err := ConsistencyProof(f.tree, c[0], c[1]); err == nil {
			t.Fatalf("ConsistencyProof(%d, %d) succeeded", c[0], c[1])
		}
	}
}

func TestConsistencyFork(t *testing.T) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	f := newProofFixture(t, 16)
	forked := append([]tlog.Hash(nil), f.leaves...)
	forked[9] = tlog.RecordHash([]byte("rewritten history"))
	ft := buildTree(t, forked)
	for m := 10; m <= 16; m++ {
		fork, _ := signedCheckpoint(t, signer, verifier, ft, uint64(m), horizonFor(uint64(m)))
		for k := 1; k <= m; k++ {
			// The honest proof from the fork's own store.
			p, _ := ConsistencyProof(ft, uint64(k), uint64(m))
			err := VerifyConsistency(f.cps[k], fork, p)
			if k <= 9 && err != nil {
				t.Fatalf("common prefix %d of the fork of size %d: %v", k, m, err)
			}
			if k > 9 && err == nil {
				t.Fatalf("fork: size %d proven a prefix of the forked tree of size %d", k, m)
			}
		}
		if VerifyConsistency(f.cps[m], fork, &Consistency{OldSize: uint64(m), NewSize: uint64(m), Hashes: []tlog.Hash{}}) == nil {
			t.Fatalf("two roots for size %d accepted", m)
		}
	}
}

func TestConsistencyHorizons(t *testing.T) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	f := newProofFixture(t, 8)
	// A larger tree whose horizon is not later contradicts the smaller one.
	late, _ := signedCheckpoint(t, signer, verifier, f.tree, 4, horizonFor(6))
	p, _ := ConsistencyProof(f.tree, 4, 6)
	if VerifyConsistency(late, f.cps[6], p) == nil {
		t.Fatal("contradicting horizons accepted")
	}
	same, _ := signedCheckpoint(t, signer, verifier, f.tree, 4, horizonFor(6).Add(-1))
	if err := VerifyConsistency(same, f.cps[6], p); err != nil {
		t.Fatalf("horizons 1ns apart: %v", err)
	}
	// Equal sizes may have any horizons (nothing was received in between).
	empty := &Consistency{OldSize: 6, NewSize: 6, Hashes: []tlog.Hash{}}
	later, _ := signedCheckpoint(t, signer, verifier, f.tree, 6, horizonFor(6).Add(time.Hour))
	if err := VerifyConsistency(later, f.cps[6], empty); err != nil {
		t.Fatal(err)
	}
	// Another log.
	os, ov, _, _ := testKeyPair(t, "other.example.com/log", "other")
	other, _ := signedCheckpoint(t, os, ov, f.tree, 6, horizonFor(6))
	if VerifyConsistency(f.cps[4], other, p) == nil {
		t.Fatal("consistency across logs accepted")
	}
}

func TestProofJSON(t *testing.T) {
	f := newProofFixture(t, 13)
	p, _ := InclusionProof(f.tree, 6, 13)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"leaf_index":6,"tree_size":13,"hashes":["`) {
		t.Fatalf("JSON %s", b)
	}
	var q Inclusion
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(f.cps[13], 6, f.leaves[6], &q); err != nil {
		t.Fatal(err)
	}
	c, _ := ConsistencyProof(f.tree, 5, 13)
	b, _ = json.Marshal(c)
	var d Consistency
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(f.cps[5], f.cps[13], &d); err != nil {
		t.Fatal(err)
	}
	e, _ := ConsistencyProof(f.tree, 0, 13)
	if b, _ := json.Marshal(e); string(b) != `{"old_size":0,"new_size":13,"hashes":[]}` {
		t.Fatalf("empty proof JSON %s", b)
	}
	h := `"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="`
	for _, s := range []string{
		`{"leaf_index":1,"tree_size":2}`,
		`{"leaf_index":1,"hashes":[]}`,
		`{"tree_size":2,"hashes":[]}`,
		`{"leaf_index":1,"tree_size":2,"hashes":null}`,
		`{"leaf_index":1,"tree_size":2,"hashes":[],"root":` + h + `}`,
		`{"leaf_index":-1,"tree_size":2,"hashes":[]}`,
		`{"leaf_index":1.5,"tree_size":2,"hashes":[]}`,
		`{"leaf_index":"1","tree_size":2,"hashes":[]}`,
		`{"leaf_index":1,"tree_size":2,"hashes":["AAEC"]}`,
		`{"leaf_index":1,"tree_size":2,"hashes":["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9="]}`,
		`{"leaf_index":1,"tree_size":2,"hashes":[` + strings.Repeat(h+",", 128) + h + `]}`,
		`{"leaf_index":1,"tree_size":2,"hashes":[]} {}`,
		`{"leaf_index":1,"tree_size":2,"hashes":[]}]`,
		`[]`,
	} {
		var p Inclusion
		if err := json.Unmarshal([]byte(s), &p); err == nil {
			t.Errorf("Inclusion JSON %s accepted", s)
		}
	}
	var p2 Consistency
	if err := json.Unmarshal([]byte(`{"old_size":1,"new_size":2,"hashes":[],"x":1}`), &p2); err == nil {
		t.Error("Consistency JSON with an unknown field accepted")
	}
}

func cloneInclusion(p *Inclusion) *Inclusion {
	q := *p
	q.Hashes = append([]tlog.Hash(nil), p.Hashes...)
	return &q
}

func cloneConsistency(p *Consistency) *Consistency {
	q := *p
	q.Hashes = append([]tlog.Hash(nil), p.Hashes...)
	return &q
}

func TestVerifyEventInclusion(t *testing.T) {
	f := newProofFixture(t, 9)
	events := sampleEvents(9)
	p, _ := InclusionProof(f.tree, 4, 9)
	if err := VerifyEventInclusion(f.cps[9], events[4], p); err != nil {
		t.Fatal(err)
	}
	// The same content at another seq is another leaf.
	e := cloneEvent(events[4])
	e.Seq = 4
	q := cloneInclusion(p)
	q.LeafIndex = 3
	if VerifyEventInclusion(f.cps[9], e, q) == nil || VerifyEventInclusion(f.cps[9], e, p) == nil {
		t.Fatal("event proven at another seq")
	}
	e.Seq = 0
	if VerifyEventInclusion(f.cps[9], e, p) == nil || VerifyEventInclusion(f.cps[9], nil, p) == nil {
		t.Fatal("event without seq proven")
	}
	if HashString(f.leaves[0]) != f.leaves[0].String() || len(HashString(f.leaves[0])) != 44 {
		t.Fatal("HashString")
	}
}
