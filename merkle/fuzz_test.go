package merkle

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseCheckpoint: Parse and OpenCheckpoint never panic; what Parse
// accepts is canonical (Marshal gives back the input) and unverified; what
// OpenCheckpoint accepts is the one text the key signed.
func FuzzParseCheckpoint(f *testing.F) {
	signer, verifier, _, _ := testKeyPair(f, testOrigin, "log key")
	c := &Checkpoint{Origin: testOrigin, Size: 7, Root: tlog.Hash{7, 7, 7}, ReceivedBefore: baseTime}
	signedText, _ := c.Marshal()
	msg, err := Sign(c, signer)
	if err != nil {
		f.Fatal(err)
	}
	witness, _, _, _ := testKeyPair(f, "witness.example.com", "w")
	f.Add([]byte(validText))
	f.Add(signedText)
	f.Add(msg)
	if n, err := note.Open(msg, note.VerifierList(verifier)); err == nil {
		if cosigned, err := note.Sign(n, witness); err == nil {
			f.Add(cosigned)
		}
	}
	f.Add([]byte("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nreceived-before 1970-01-01T00:00:00.000000000Z\n"))
	f.Add([]byte("o\n00\nAAAA\nreceived-before x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil {
			out, err := c.Marshal()
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("Parse accepted non-canonical %q (Marshal %q, %v)", data, out, err)
			}
			if c.Verified() {
				t.Fatal("parsed checkpoint is verified")
			}
			if c.Size == 0 && c.Root != EmptyRoot {
				t.Fatal("empty tree with a root")
			}
		}
		cp, err := OpenCheckpoint(data, verifier)
		if err == nil {
			text, _ := cp.Marshal()
			if !bytes.Equal(text, signedText) || !cp.Verified() {
				t.Fatalf("OpenCheckpoint accepted %q", data)
			}
		}
	})
}

type fuzzTree struct {
	leaves []tlog.Hash
	tree   *MemStore
	cps    []*Checkpoint
}

func fuzzTrees(f *testing.F) (main, fork *fuzzTree) {
	signer, verifier, _, _ := testKeyPair(f, testOrigin, "log key")
	leaves := leafHashes(sampleEvents(37))
	forked := append([]tlog.Hash(nil), leaves...)
	forked[20] = tlog.RecordHash([]byte("fork"))
	mk := func(l []tlog.Hash, from int) *fuzzTree {
		ft := &fuzzTree{leaves: l, tree: buildTree(f, l)}
		for s := from; s <= len(l); s++ {
			cp, _ := signedCheckpoint(f, signer, verifier, ft.tree, uint64(s), horizonFor(uint64(s)))
			ft.cps = append(ft.cps, cp)
		}
		return ft
	}
	return mk(leaves, 0), mk(forked, 21)
}

func chunkHashes(b []byte) []tlog.Hash {
	var hs []tlog.Hash
	for len(b) >= tlog.HashSize {
		var h tlog.Hash
		copy(h[:], b)
		hs = append(hs, h)
		b = b[tlog.HashSize:]
	}
	return hs
}

// FuzzVerifyInclusion: VerifyInclusion never panics and accepts only the
// genuine proof of the genuine leaf at its index in the signed tree.
func FuzzVerifyInclusion(f *testing.F) {
	mt, _ := fuzzTrees(f)
	f.Add(uint8(13), uint64(5), []byte{5}, uint8(1), uint64(5), uint64(13), []byte{})
	f.Add(uint8(37), uint64(36), []byte{36}, uint8(1), uint64(36), uint64(37), []byte{3, 9})
	f.Add(uint8(8), uint64(3), []byte{3}, uint8(0), uint64(3), uint64(8), bytes.Repeat([]byte{1}, 96))
	f.Add(uint8(9), uint64(2), []byte{2}, uint8(2), uint64(2), uint64(9), []byte(`{"leaf_index":2,"tree_size":9,"hashes":[]}`))
	f.Fuzz(func(t *testing.T, sizeSel uint8, index uint64, leaf []byte, mode uint8, claimedIndex, claimedSize uint64, raw []byte) {
		cp := mt.cps[int(sizeSel)%len(mt.cps)]
		var leafHash tlog.Hash
		switch len(leaf) {
		case 1:
			leafHash = mt.leaves[int(leaf[0])%len(mt.leaves)]
		case tlog.HashSize:
			copy(leafHash[:], leaf)
		default:
			leafHash = tlog.RecordHash(leaf)
		}
		p := &Inclusion{LeafIndex: claimedIndex, TreeSize: claimedSize}
		switch mode % 3 {
		case 0: // raw hashes
			p.Hashes = chunkHashes(raw)
		case 1: // a genuine proof of the claimed leaf and size, mutated where raw says
			g, err := InclusionProof(mt.tree, claimedIndex, claimedSize)
			if err != nil {
				return
			}
			p.Hashes = g.Hashes
			for i := 0; i+1 < len(raw) && len(p.Hashes) > 0; i += 2 {
				h := int(raw[i]) % len(p.Hashes)
				p.Hashes[h][raw[i+1]%32] ^= 1 << (raw[i+1] % 8)
			}
		case 2: // JSON
			var q Inclusion
			if json.Unmarshal(raw, &q) != nil {
				return
			}
			p = &q
		}
		if VerifyInclusion(cp, index, leafHash, p) != nil {
			return
		}
		if index >= cp.Size || leafHash != mt.leaves[index] || p.LeafIndex != index || p.TreeSize != cp.Size {
			t.Fatalf("verified leaf %d (hash %v) in size %d with proof %+v", index, leafHash, cp.Size, p)
		}
		if !hashesEqual(p.Hashes, refPath(int(index), mt.leaves[:cp.Size])) {
			t.Fatalf("verified a non-genuine proof %+v", p)
		}
	})
}

// FuzzVerifyConsistency: VerifyConsistency never panics and accepts only the
// genuine proof between two checkpoints of one history (a fork is refused).
func FuzzVerifyConsistency(f *testing.F) {
	mt, ft := fuzzTrees(f)
	type entry struct {
		cp *Checkpoint
		t  *fuzzTree
	}
	var pool []entry
	for _, c := range mt.cps {
		pool = append(pool, entry{c, mt})
	}
	for _, c := range ft.cps {
		pool = append(pool, entry{c, ft})
	}
	f.Add(uint8(3), uint8(17), uint8(1), []byte{})
	f.Add(uint8(25), uint8(45), uint8(1), []byte{})     // main 25 to fork 29
	f.Add(uint8(10), uint8(40), uint8(1), []byte{0, 5}) // mutated
	f.Add(uint8(0), uint8(37), uint8(0), bytes.Repeat([]byte{9}, 64))
	f.Add(uint8(4), uint8(9), uint8(2), []byte(`{"old_size":4,"new_size":9,"hashes":[]}`))
	f.Fuzz(func(t *testing.T, a, b, mode uint8, raw []byte) {
		e1, e2 := pool[int(a)%len(pool)], pool[int(b)%len(pool)]
		n, m := e1.cp.Size, e2.cp.Size
		p := &Consistency{OldSize: n, NewSize: m}
		switch mode % 4 {
		case 0:
			p.Hashes = chunkHashes(raw)
		case 1: // the genuine proof of the newer tree, mutated where raw says
			g, err := ConsistencyProof(e2.t.tree, n, m)
			if err != nil {
				return
			}
			p.Hashes = g.Hashes
			for i := 0; i+1 < len(raw) && len(p.Hashes) > 0; i += 2 {
				h := int(raw[i]) % len(p.Hashes)
				p.Hashes[h][raw[i+1]%32] ^= 1 << (raw[i+1] % 8)
			}
		case 2:
			var q Consistency
			if json.Unmarshal(raw, &q) != nil {
				return
			}
			p = &q
		case 3: // a genuine proof of the older tree's history
			g, err := ConsistencyProof(e1.t.tree, n, min(m, uint64(len(e1.t.leaves))))
			if err != nil {
				return
			}
			p.Hashes = g.Hashes
		}
		if VerifyConsistency(e1.cp, e2.cp, p) != nil {
			return
		}
		if n > m || p.OldSize != n || p.NewSize != m {
			t.Fatalf("verified sizes %d..%d with proof %+v", n, m, p)
		}
		prefix, err := TreeRoot(e2.t.tree, n)
		if err != nil || prefix != e1.cp.Root {
			t.Fatalf("verified a fork: size %d (root %v) into size %d", n, e1.cp.Root, m)
		}
		if !hashesEqual(p.Hashes, refConsistency(int(n), e2.t.leaves[:m])) {
			t.Fatalf("verified a non-genuine proof %+v", p)
		}
	})
}

// FuzzVerifyMultiInclusion: VerifyMultiInclusion never panics and accepts
// only genuine leaves at their own indexes in the signed tree, with the
// genuine proof, and derives their genuine audit paths.
func FuzzVerifyMultiInclusion(f *testing.F) {
	mt, _ := fuzzTrees(f)
	f.Add(uint8(37), []byte{1, 5, 36}, uint8(1), []byte{})
	f.Add(uint8(13), []byte{0}, uint8(0), bytes.Repeat([]byte{2}, 96))
	f.Add(uint8(20), []byte{3, 3, 4, 19}, uint8(1), []byte{0, 7})
	f.Add(uint8(9), []byte{130, 2}, uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, sizeSel uint8, sel []byte, mode uint8, raw []byte) {
		cp := mt.cps[int(sizeSel)%len(mt.cps)]
		n := uint64(len(mt.leaves))
		// Each byte of sel is a leaf: index b%64 (perhaps beyond the tree),
		// with its own hash, or with the next leaf's when b >= 128.
		var leaves []Leaf
		var indexes []uint64
		for _, b := range sel {
			l := Leaf{Index: uint64(b % 64)}
			l.Hash = tlog.RecordHash([]byte{b})
			if l.Index < n {
				l.Hash = mt.leaves[(l.Index+uint64(b>>7))%n]
			}
			leaves = append(leaves, l)
			if l.Index < cp.Size {
				indexes = append(indexes, l.Index)
			}
		}
		slices.Sort(indexes)
		indexes = slices.Compact(indexes)
		p := &MultiInclusion{TreeSize: cp.Size}
		switch mode % 3 {
		case 0: // raw hashes
			p.Hashes = chunkHashes(raw)
		case 1, 2: // the genuine proof of the leaves in the tree, mutated where raw says
			g, err := ProveMultiInclusion(mt.tree, cp.Size, indexes)
			if err != nil {
				return
			}
			p.Hashes = g.Hashes
			for i := 0; i+1 < len(raw) && len(p.Hashes) > 0; i += 2 {
				h := int(raw[i]) % len(p.Hashes)
				p.Hashes[h][raw[i+1]%32] ^= 1 << (raw[i+1] % 8)
			}
			if mode%3 == 2 && len(raw) > 0 {
				p.TreeSize = uint64(raw[0])
			}
		}
		paths, err := VerifyMultiInclusion(cp, leaves, p)
		if err != nil {
			return
		}
		if p.TreeSize != cp.Size || len(paths) != len(leaves) {
			t.Fatalf("verified a proof for size %d against size %d", p.TreeSize, cp.Size)
		}
		set := map[int]bool{}
		for i, l := range leaves {
			if l.Index >= cp.Size || l.Hash != mt.leaves[l.Index] {
				t.Fatalf("verified leaf %d (hash %v) in size %d", l.Index, l.Hash, cp.Size)
			}
			if !hashesEqual(paths[i].Hashes, refPath(int(l.Index), mt.leaves[:cp.Size])) || paths[i].LeafIndex != l.Index {
				t.Fatalf("derived a wrong audit path for leaf %d", l.Index)
			}
			set[int(l.Index)] = true
		}
		if len(leaves) == 0 {
			if len(p.Hashes) != 0 {
				t.Fatal("verified hashes for no leaves")
			}
		} else if !hashesEqual(p.Hashes, refMulti(mt.leaves[:cp.Size], 0, set)) {
			t.Fatalf("verified a non-genuine proof %+v", p)
		}
	})
}
