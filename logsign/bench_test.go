package logsign_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
)

// BenchmarkIngestLog measures what the verifiable log costs ingest on the
// embedded store: the same appends (batches of 1000 realistic events, four
// concurrent callers, every batch synced) with the integrator and signer
// running beside them at their production intervals, and without. Each
// iteration appends 100,000 events to a fresh store. With the log on,
// cpu-µs/event is the process's CPU time per event, integration included.
// flush-ms is how long integrating and signing the rest took after the
// last append returned: the integrator's lag behind ingest at full speed.
//
//	go test -run '^$' -bench IngestLog -benchtime 3x ./logsign/
func BenchmarkIngestLog(b *testing.B) {
	const events, batch, callers = 100_000, 1000, 4
	for _, on := range []bool{false, true} {
		name := "log=off"
		if on {
			name = "log=on"
		}
		b.Run(name, func(b *testing.B) {
			var total, flush, cpu time.Duration
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				st, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				batches, err := sample.New(7, sample.Options{}).Batches(events, batch, time.Now(), true)
				if err != nil {
					b.Fatal(err)
				}
				var l *logsign.Log
				ctx, cancel := context.WithCancel(context.Background())
				var running sync.WaitGroup
				if on {
					signer, vkey, err := logsign.LoadOrCreateKey(dir, "")
					if err != nil {
						b.Fatal(err)
					}
					if l, err = logsign.New(ctx, logsign.Config{Store: st, Signer: signer, VerifierKey: vkey}); err != nil {
						b.Fatal(err)
					}
					running.Add(1)
					go func() { defer running.Done(); l.Run(ctx) }()
				}
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				if err := sample.AppendConcurrently(context.Background(), st, batches, callers); err != nil {
					b.Error(err)
				}
				total += time.Since(start)
				b.StopTimer()
				if on {
					f := time.Now()
					if err := l.Flush(context.Background()); err != nil {
						b.Fatal(err)
					}
					flush += time.Since(f)
				}
				cpu += cpuTime() - cpu0
				if on {
					if size, err := st.TreeSize(); err != nil || size != events {
						b.Fatalf("tree size %d (%v), want %d", size, err, events)
					}
				}
				cancel()
				running.Wait()
				st.Close()
			}
			b.ReportMetric(float64(b.N*events)/total.Seconds(), "events/s")
			if on {
				b.ReportMetric(float64(flush.Milliseconds())/float64(b.N), "flush-ms")
			}
			// Process CPU from the first append until everything is
			// appended (and, with the log, integrated and signed): less
			// sensitive than events/s to other load on the machine.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*events), "cpu-µs/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cpuTime is the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
