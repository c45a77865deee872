package merkle

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// refMulti is the multi-inclusion proof of the leaves in set, straight from
// its definition (multiproof.go): a left-to-right walk of the RFC 6962
// split that emits the root of every subtree holding no proven leaf.
func refMulti(d []tlog.Hash, offset int, set map[int]bool) []tlog.Hash {
	holds := false
	for i := range d {
		holds = holds || set[offset+i]
	}
	if !holds {
		return []tlog.Hash{refRoot(d)}
	}
	if len(d) == 1 {
		return nil
	}
	k := refSplit(len(d))
	return append(refMulti(d[:k], offset, set), refMulti(d[k:], offset+k, set)...)
}

// multiCase is a tree, a checkpoint of it, and a set of its leaves.
type multiCase struct {
	name   string
	leaves []tlog.Hash
	set    []uint64 // ascending
}

func multiCases() []multiCase {
	all := leafHashes(sampleEvents(300))
	rng := rand.New(rand.NewPCG(7, 11))
	var cases []multiCase
	add := func(name string, n int, set []uint64) {
		cases = append(cases, multiCase{name: name, leaves: all[:n], set: set})
	}
	for n := 1; n <= 300; n += 1 + n/8 {
		add("first", n, []uint64{0})
		add("last", n, []uint64{uint64(n - 1)})
		every := make([]uint64, n)
		for i := range every {
			every[i] = uint64(i)
		}
		add("all", n, every)
		add("newest 50", n, every[max(0, n-50):])
		var random []uint64
		for i := range n {
			if rng.IntN(5) == 0 {
				random = append(random, uint64(i))
			}
		}
		if len(random) > 0 {
			add("random", n, random)
		}
	}
	return cases
}

func (c multiCase) checkpoint(t testing.TB) (*Checkpoint, *MemStore) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	tree := buildTree(t, c.leaves)
	cp, _ := signedCheckpoint(t, signer, verifier, tree, uint64(len(c.leaves)), horizonFor(uint64(len(c.leaves))))
	return cp, tree
}

func (c multiCase) proven() []Leaf {
	out := make([]Leaf, len(c.set))
	for i, x := range c.set {
		out[i] = Leaf{Index: x, Hash: c.leaves[x]}
	}
	return out
}

func TestMultiInclusion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range multiCases() {
		cp, tree := c.checkpoint(t)
		n := uint64(len(c.leaves))
		proof, err := ProveMultiInclusion(tree, n, c.set)
		if err != nil {
			t.Fatalf("%s of %d: %v", c.name, n, err)
		}
		set := map[int]bool{}
		pathHashes := 0
		for _, x := range c.set {
			set[int(x)] = true
			pathHashes += len(refPath(int(x), c.leaves))
		}
		if want := refMulti(c.leaves, 0, set); !hashesEqual(proof.Hashes, want) {
			t.Fatalf("%s of %d: proof of %d hashes differs from the reference's %d", c.name, n, len(proof.Hashes), len(want))
		}
		if len(proof.Hashes) > pathHashes {
			t.Fatalf("%s of %d: %d hashes, more than the %d of the single proofs", c.name, n, len(proof.Hashes), pathHashes)
		}

		// The leaves in any order, one of them twice.
		leaves := c.proven()
		leaves = append(leaves, leaves[rng.IntN(len(leaves))])
		rng.Shuffle(len(leaves), func(i, j int) { leaves[i], leaves[j] = leaves[j], leaves[i] })
		paths, err := VerifyMultiInclusion(cp, leaves, proof)
		if err != nil {
			t.Fatalf("%s of %d: %v", c.name, n, err)
		}
		for i, l := range leaves {
			p := paths[i]
			if p.LeafIndex != l.Index || p.TreeSize != n || !hashesEqual(p.Hashes, refPath(int(l.Index), c.leaves)) {
				t.Fatalf("%s of %d: the path derived for leaf %d is not its audit path", c.name, n, l.Index)
			}
			if err := VerifyInclusion(cp, l.Index, l.Hash, p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMultiInclusionRejects(t *testing.T) {
	for _, c := range multiCases() {
		cp, tree := c.checkpoint(t)
		n := uint64(len(c.leaves))
		proof, err := ProveMultiInclusion(tree, n, c.set)
		if err != nil {
			t.Fatal(err)
		}
		leaves := c.proven()
		reject := func(what string, leaves []Leaf, p *MultiInclusion) {
			t.Helper()
			if _, err := VerifyMultiInclusion(cp, leaves, p); err == nil {
				t.Fatalf("%s of %d (%d leaves): %s verified", c.name, n, len(leaves), what)
			}
		}
		with := func(hs []tlog.Hash) *MultiInclusion { return &MultiInclusion{TreeSize: n, Hashes: hs} }
		for i := range proof.Hashes {
			hs := slices.Clone(proof.Hashes)
			hs[i][i%32] ^= 1 << (i % 8)
			reject("a bit flipped", leaves, with(hs))
		}
		if len(proof.Hashes) > 0 {
			reject("a hash dropped", leaves, with(proof.Hashes[1:]))
			reject("the last hash dropped", leaves, with(proof.Hashes[:len(proof.Hashes)-1]))
		}
		reject("a hash too many", leaves, with(append(slices.Clone(proof.Hashes), tlog.Hash{})))
		reject("a hash too many in front", leaves, with(append([]tlog.Hash{{}}, proof.Hashes...)))
		reject("another tree size", leaves, &MultiInclusion{TreeSize: n + 1, Hashes: proof.Hashes})
		reject("no proof", leaves, nil)
		for i := range leaves {
			other := slices.Clone(leaves)
			other[i].Hash = tlog.RecordHash([]byte("another event"))
			reject("another leaf's content", other, proof)
			other = slices.Clone(leaves)
			other[i].Index = (other[i].Index + 1) % n
			if n > 1 {
				reject("a leaf at another index", other, proof)
			}
			if len(leaves) > 1 {
				reject("a leaf left out", slices.Delete(slices.Clone(leaves), i, i+1), proof)
			}
			other = append(slices.Clone(leaves), Leaf{Index: leaves[i].Index, Hash: tlog.RecordHash([]byte("x"))})
			reject("a second, different leaf at the same index", other, proof)
		}
		if len(leaves) > 1 {
			swapped := slices.Clone(leaves)
			swapped[0].Hash, swapped[1].Hash = swapped[1].Hash, swapped[0].Hash
			reject("two leaves swapped", swapped, proof)
		}
		reject("a leaf beyond the tree", append(slices.Clone(leaves), Leaf{Index: n, Hash: c.leaves[0]}), proof)
		if uint64(len(leaves)) < n {
			var extra uint64
			for slices.Contains(c.set, extra) {
				extra++
			}
			reject("a leaf added", append(slices.Clone(leaves), Leaf{Index: extra, Hash: c.leaves[extra]}), proof)
		}
	}
	if _, err := VerifyMultiInclusion(&Checkpoint{Size: 1}, nil, &MultiInclusion{TreeSize: 1}); err == nil {
		t.Fatal("an unverified checkpoint was accepted")
	}
}

func TestMultiInclusionNoLeaves(t *testing.T) {
	c := multiCases()[0]
	cp, _ := c.checkpoint(t)
	if paths, err := VerifyMultiInclusion(cp, nil, &MultiInclusion{TreeSize: cp.Size, Hashes: []tlog.Hash{}}); err != nil || len(paths) != 0 {
		t.Fatalf("no leaves: %v %v", paths, err)
	}
	if _, err := VerifyMultiInclusion(cp, nil, &MultiInclusion{TreeSize: cp.Size, Hashes: []tlog.Hash{cp.Root}}); err == nil {
		t.Fatal("a proof of no leaves with a hash was accepted")
	}
}

func TestMultiInclusionSourcesErrors(t *testing.T) {
	for _, c := range []struct {
		size   uint64
		leaves []uint64
		want   string
	}{
		{10, []uint64{3, 3}, "strictly ascending"},
		{10, []uint64{4, 3}, "strictly ascending"},
		{10, []uint64{10}, "no leaf 10"},
		{0, []uint64{0}, "no leaf 0"},
		{MaxTreeSize + 1, nil, "too large"},
	} {
		_, err := MultiInclusionSources(c.size, c.leaves)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("size %d leaves %v: error %v, want %q", c.size, c.leaves, err, c.want)
		}
	}
	if s, err := MultiInclusionSources(5, nil); err != nil || len(s) != 0 {
		t.Fatalf("no leaves: %v %v", s, err)
	}
}
