package logmirror_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/audittrail/audittrail/logmirror"
)

// The mirror's throughput against the real server binary on the embedded
// store, client and server on the same machine:
//
//	go test ./logmirror -run '^$' -bench . -benchtime 5x
//
// Update fetches every entry of a log of benchEvents events into an empty
// mirror over gRPC and verifies it; Verify checks the resulting directory
// offline. Both report events per second.
const benchEvents = 50_000

func benchMirror(b *testing.B) (*fixture, string) {
	b.Helper()
	f := start(b)
	f.produce(b, benchEvents)
	f.checkpoint(b, benchEvents)
	return f, b.TempDir()
}

func BenchmarkUpdate(b *testing.B) {
	f, tmp := benchMirror(b)
	var n uint64
	i := 0
	for b.Loop() {
		i++
		m, err := logmirror.Open(filepath.Join(tmp, strconv.Itoa(i)), f.verifier)
		if err != nil {
			b.Fatal(err)
		}
		u, err := m.Update(b.Context(), f.auditor, logmirror.UpdateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n += u.To
		m.Close()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkVerify(b *testing.B) {
	f, tmp := benchMirror(b)
	m, err := logmirror.Open(tmp, f.verifier)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Update(b.Context(), f.auditor, logmirror.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	m.Close()
	var n uint64
	for b.Loop() {
		v, err := logmirror.Verify(tmp, f.verifier)
		if err != nil {
			b.Fatal(err)
		}
		n += v.Entries
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
