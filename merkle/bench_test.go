package merkle

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// countingReader counts the hashes read, the reads a store would serve.
type countingReader struct {
	r     tlog.HashReader
	reads atomic.Int64
}

func (c *countingReader) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	c.reads.Add(int64(len(ix)))
	return c.r.ReadHashes(ix)
}

type countingStore struct {
	HashStore
	reads, writes int64
}

func (c *countingStore) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	c.reads += int64(len(ix))
	return c.HashStore.ReadHashes(ix)
}

func (c *countingStore) WriteHashes(ix []int64, hs []tlog.Hash) error {
	c.writes += int64(len(ix))
	return c.HashStore.WriteHashes(ix, hs)
}

func BenchmarkLeafHash(b *testing.B) {
	e := sampleEvent(6)
	b.SetBytes(int64(len(LeafData(e))))
	for b.Loop() {
		LeafHash(e)
	}
}

// BenchmarkIntegrate appends leaves in batches of the given size; ns/op is
// per leaf.
func BenchmarkIntegrate(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			leaves := make([]tlog.Hash, batch)
			for i := range leaves {
				leaves[i] = tlog.RecordHash([]byte(fmt.Sprint(i)))
			}
			s := &countingStore{HashStore: &MemStore{}}
			size := uint64(0)
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				if _, err := Integrate(s, size, leaves[:n]); err != nil {
					b.Fatal(err)
				}
				size += uint64(n)
			}
			b.ReportMetric(float64(s.reads)/float64(b.N), "reads/leaf")
			b.ReportMetric(float64(s.writes)/float64(b.N), "writes/leaf")
		})
	}
}

var benchTree struct {
	store *MemStore
	size  uint64
}

func benchStore(b *testing.B) (*MemStore, uint64) {
	if benchTree.store == nil {
		const size = 1 << 20
		leaves := make([]tlog.Hash, size)
		for i := range leaves {
			leaves[i] = tlog.RecordHash([]byte(fmt.Sprint(i)))
		}
		m := &MemStore{}
		if _, err := Integrate(m, 0, leaves); err != nil {
			b.Fatal(err)
		}
		benchTree.store, benchTree.size = m, size-7 // not a power of two
	}
	return benchTree.store, benchTree.size
}

// BenchmarkInclusionProof builds proofs in a tree of about a million leaves.
func BenchmarkInclusionProof(b *testing.B) {
	m, size := benchStore(b)
	r := &countingReader{r: m}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		if _, err := InclusionProof(r, rng.Uint64N(size), size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.reads.Load())/float64(b.N), "reads/op")
}

func BenchmarkVerifyInclusion(b *testing.B) {
	m, size := benchStore(b)
	signer, verifier, _, _ := testKeyPair(b, testOrigin, "log key")
	cp, _ := signedCheckpoint(b, signer, verifier, m, size, baseTime)
	const i = 123457
	p, _ := InclusionProof(m, i, size)
	leaf, _ := m.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	b.ResetTimer()
	for b.Loop() {
		if err := VerifyInclusion(cp, i, leaf[0], p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	m, size := benchStore(b)
	r := &countingReader{r: m}
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ConsistencyProof(r, 1+rng.Uint64N(size-1), size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.reads.Load())/float64(b.N), "reads/op")
}

func BenchmarkOpenCheckpoint(b *testing.B) {
	signer, verifier, _, _ := testKeyPair(b, testOrigin, "log key")
	msg, _ := Sign(&Checkpoint{Origin: testOrigin, Size: 5, Root: tlog.Hash{5}, ReceivedBefore: baseTime}, signer)
	for b.Loop() {
		if _, err := OpenCheckpoint(msg, verifier); err != nil {
			b.Fatal(err)
		}
	}
}
