package bench

import (
	"io"
	"testing"

	"github.com/audittrail/audittrail/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// TestRunTLS runs a small benchmark with -tls: ingest through gRPC over TLS,
// the suite over REST and gRPC over TLS (every answer checked against the
// generated stream's oracle), the metrics read over TLS.
func TestRunTLS(t *testing.T) {
	res, err := Run(t.Context(), Config{
		Sizes: []int{3000}, Seed: 1, Runs: 2, Batch: 100, Producers: 2, SingleProducers: 4, SingleEvents: 200,
		Concurrency: 2, ConcurrentTime: 200e6, TLS: true, Bin: testserver.Binary(t), WorkDir: t.TempDir(), Log: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) > 0 {
		t.Fatalf("mismatches: %q", res.Mismatches)
	}
	sys := res.Sizes[0].Systems
	if len(sys) != 1 || sys[0].Key != SysEmbedded {
		t.Fatalf("systems %v, want the embedded store only", sys)
	}
	for _, proto := range []string{"REST", "gRPC"} {
		qs := sys[0].Queries[proto]
		if len(qs) < 10 {
			t.Errorf("%s: %d queries ran", proto, len(qs))
		}
		for key, q := range qs {
			if q.ErrMsg != "" || len(q.Lat) != 2 {
				t.Errorf("%s %s: error %q, %d timed runs", proto, key, q.ErrMsg, len(q.Lat))
			}
		}
	}
	if c := sys[0].Concurrent; c == nil || c.Errors > 0 || len(c.Lat) == 0 {
		t.Errorf("concurrent searches over TLS: %+v", c)
	}
}
