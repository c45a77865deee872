package logmirror_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logmirror"
)

// The mirror's throughput against the real server binary, client and
// server on the same machine:
//
//	go test ./logmirror -run '^$' -bench . -benchtime 3x
//
// Update fetches every entry of a log of benchEvents events into an empty
// mirror over gRPC and verifies it, from the embedded store and from the
// PostgreSQL store; Verify checks the resulting directory offline;
// VerifiedWindow proves a window of as many events without a mirror. All
// report events per second. The log is larger than the embedded store's
// window of recent events (65,536), so most entries are read from its
// tables, as for any mirror that is not following closely.
const benchEvents = 200_000

func benchMirror(b *testing.B, args ...string) (*fixture, string) {
	b.Helper()
	f := start(b, args...)
	f.produce(b, benchEvents)
	f.checkpoint(b, benchEvents)
	return f, b.TempDir()
}

func BenchmarkUpdate(b *testing.B) {
	b.Run("embedded", func(b *testing.B) { benchUpdate(b) })
	b.Run("postgres", func(b *testing.B) { benchUpdate(b, "--store", pgtest.Start(b)) })
}

func benchUpdate(b *testing.B, args ...string) {
	f, tmp := benchMirror(b, args...)
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

// BenchmarkVerifiedWindow proves the window between two checkpoints, one
// signed before the log's benchEvents events and one after, with
// client.VerifiedWindow (entries with proofs, page by page): the cost of a
// proven export without a mirror.
func BenchmarkVerifiedWindow(b *testing.B) {
	f := start(b)
	f.produce(b, 1)
	_, older := f.checkpoint(b, 1)
	f.produce(b, benchEvents)
	_, newer := f.checkpoint(b, older.Size+benchEvents)
	var n uint64
	for b.Loop() {
		for _, err := range f.auditor.VerifiedWindow(b.Context(), older, newer, f.verifier) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
