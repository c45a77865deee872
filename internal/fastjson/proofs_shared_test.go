package fastjson_test

import (
	"math/rand/v2"
	"testing"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestSharedProofHashes: the proofs of a page repeat hashes (the encoder
// copies the encoding of a hash equal to the previous proof's at the same
// distance from the root); pages whose proofs share, shift, shorten and
// change hashes, of 32 bytes and of odd lengths, are written as protojson
// writes them.
func TestSharedProofHashes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pool := make([][]byte, 12)
	for i := range pool {
		pool[i] = make([]byte, []int{32, 32, 32, 0, 1, 2, 31}[r.IntN(7)])
		for j := range pool[i] {
			pool[i][j] = byte(r.IntN(256))
		}
	}
	for range 2000 {
		p := &pb.LogProofs{Checkpoint: "c", TreeSize: 100}
		for range r.IntN(8) {
			in := &pb.EventInclusion{Name: "events/x", LeafIndex: r.Uint64N(100), Hashes: [][]byte{}, Pending: r.IntN(8) == 0}
			for range r.IntN(6) {
				h := pool[r.IntN(len(pool))]
				if r.IntN(2) == 0 {
					h = append([]byte(nil), h...) // equal bytes, another array
				}
				in.Hashes = append(in.Hashes, h)
			}
			p.Inclusions = append(p.Inclusions, in)
		}
		compare(t, &pb.SearchEventsResponse{Proofs: p})
	}
}
