package witness_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCosign is what witnessing adds to a signing round of the log:
// one add-checkpoint exchange with each witness (concurrently), over
// loopback HTTP, each witness checking the log's signature and a
// consistency proof, writing its state durably (an fsync) and cosigning,
// and the log checking the cosignatures. The tree grows by 1,000 leaves a
// round.
//
//	go test ./witness -run '^$' -bench Cosign
func BenchmarkCosign(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("witnesses=%d", n), func(b *testing.B) {
			log := newTestLog(b, "audit.example.com/log")
			text := ""
			for i := range n {
				w := startWitness(b, fmt.Sprintf("w.example.com/w%d", i+1), log)
				text += w.line()
			}
			text += fmt.Sprintf("group g all %s\nquorum g\n", names(n))
			p := policy(b, text)
			c := cosigner(b, p)
			tree := &memTree{}
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				tree.grow(b, 1000, "a")
				cp := log.checkpoint(b, tree)
				b.StartTimer()
				if err := p.Check(c.Cosign(ctx, cp, uint64(tree.size), tree.prove)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func names(n int) string {
	s := ""
	for i := range n {
		s += fmt.Sprintf(" w%d", i+1)
	}
	return s[1:]
}
