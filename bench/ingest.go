package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
)

// IngestResult is one ingest phase.
type IngestResult struct {
	Method    string // "BatchCreateEvents", "CreateEvent", "INSERT", "COPY"
	Events    int
	Batch     int // events per call
	Producers int // concurrent callers
	Elapsed   time.Duration
	Calls     Latencies     // latency of each call
	ServerCPU time.Duration // CPU time of the server (and its children) during the phase
	DBCPU     time.Duration // CPU time of the PostgreSQL cluster, when the server stores in it
	ClientCPU time.Duration // CPU time of the benchmark process (generating, encoding, sending)
	OtherCPU  time.Duration // CPU time of every other process on the machine (other users' load)
	Note      string
}

// Rate returns events per second.
func (r *IngestResult) Rate() float64 {
	if r == nil || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// batches feeds the next n events of src, in batches of size, to a channel,
// converted by conv. Generation runs ahead of the producers by a few
// batches, on its own goroutine.
func batches[T any](ctx context.Context, src *Source, n, size, ahead int, conv func(id string, ne audittrail.NewEvent) T) <-chan []T {
	ch := make(chan []T, ahead)
	go func() {
		defer close(ch)
		for n > 0 {
			b := make([]T, 0, min(size, n))
			for len(b) < cap(b) {
				id, ne, ok := src.Next()
				if !ok {
					break
				}
				b = append(b, conv(id, ne))
			}
			if len(b) == 0 {
				return
			}
			n -= len(b)
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// run drives producers callers over the batches and times each call.
func runProducers[T any](ctx context.Context, ch <-chan []T, producers int, cpuPID, dbPID int, call func(ctx context.Context, b []T) error) (IngestResult, error) {
	var (
		mu    sync.Mutex
		calls Latencies
		n     int
		first error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0, db0, self0, busy0 := procTreeCPU(cpuPID), procTreeCPU(dbPID), SelfCPU(), MachineBusy()
	start := time.Now()
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local Latencies
			cnt := 0
			for b := range ch {
				t := time.Now()
				err := call(ctx, b)
				local = append(local, time.Since(t))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					for range ch {
					}
					break
				}
				cnt += len(b)
			}
			mu.Lock()
			calls = append(calls, local...)
			n += cnt
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := IngestResult{Events: n, Producers: producers, Elapsed: time.Since(start), Calls: calls}
	r.ServerCPU, r.DBCPU, r.ClientCPU = procTreeCPU(cpuPID)-cpu0, procTreeCPU(dbPID)-db0, SelfCPU()-self0
	r.OtherCPU = max(MachineBusy()-busy0-r.ServerCPU-r.DBCPU-r.ClientCPU, 0)
	return r, first
}

// IngestAPIBatches sends the next n events of src with BatchCreateEvents in
// batches of size from producers concurrent callers.
func IngestAPIBatches(ctx context.Context, c *client.Client, src *Source, n, size, producers, serverPID, dbPID int) (IngestResult, error) {
	ch := batches(ctx, src, n, size, 2*producers, func(id string, ne audittrail.NewEvent) audittrail.CreateRequest {
		return audittrail.CreateRequest{EventID: id, Event: ne}
	})
	r, err := runProducers(ctx, ch, producers, serverPID, dbPID, func(ctx context.Context, b []audittrail.CreateRequest) error {
		res, err := c.BatchCreateEvents(ctx, b)
		if err != nil {
			return err
		}
		if len(res.Failed) > 0 || len(res.Events) != len(b) {
			for i, e := range res.Failed {
				return fmt.Errorf("BatchCreateEvents: %d of %d events failed, e.g. #%d: %v", len(res.Failed), len(b), i, e)
			}
			return fmt.Errorf("BatchCreateEvents: %d events stored of %d", len(res.Events), len(b))
		}
		return nil
	})
	r.Method, r.Batch = "BatchCreateEvents", size
	return r, err
}

// IngestAPISingle sends the next n events of src with CreateEvent from
// producers concurrent callers.
func IngestAPISingle(ctx context.Context, c *client.Client, src *Source, n, producers, serverPID, dbPID int) (IngestResult, error) {
	ch := batches(ctx, src, n, 1, 4*producers, func(id string, ne audittrail.NewEvent) audittrail.CreateRequest {
		return audittrail.CreateRequest{EventID: id, Event: ne}
	})
	r, err := runProducers(ctx, ch, producers, serverPID, dbPID, func(ctx context.Context, b []audittrail.CreateRequest) error {
		_, err := c.CreateEvent(ctx, b[0].EventID, b[0].Event)
		return err
	})
	r.Method, r.Batch = "CreateEvent", 1
	return r, err
}

// IngestSQL loads the next n events of src into table with INSERT (batches
// of size rows per statement; size 1 is a single-row INSERT per
// transaction) or COPY, from producers concurrent connections.
func IngestSQL(ctx context.Context, pool *pgxpool.Pool, d *Dataset, src *Source, table, method string, n, size, producers, pgPID int) (IngestResult, error) {
	ch := batches(ctx, src, n, size, 2*producers, d.Prepare)
	var call func(ctx context.Context, b []*audittrail.Event) error
	switch method {
	case "INSERT":
		call = func(ctx context.Context, b []*audittrail.Event) error { return InsertRows(ctx, pool, table, b) }
	case "COPY":
		call = func(ctx context.Context, b []*audittrail.Event) error { return CopyRows(ctx, pool, table, b) }
	default:
		return IngestResult{}, errors.New("unknown method " + method)
	}
	r, err := runProducers(ctx, ch, producers, pgPID, 0, call)
	r.Method, r.Batch = method, size
	return r, err
}

// ProcTreeCPU returns the CPU time of a process, of its reaped children, and
// of its live children (PostgreSQL runs a process per connection).
func ProcTreeCPU(pid int) time.Duration { return procTreeCPU(pid) }

func procTreeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	const hz = 100
	total := int64(0)
	if f := procStatFields(pid); f != nil {
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			total += v
		}
	}
	for _, child := range childPIDs(pid) {
		f := procStatFields(child)
		if f == nil {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			total += v
		}
	}
	return time.Duration(total) * time.Second / hz
}

// childPIDs returns the live children of a process.
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if f := procStatFields(child); f != nil && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// procStatFields returns the fields of /proc/<pid>/stat after the command
// name: state is [0], ppid [1], utime [11], stime [12].
func procStatFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil
	}
	return f
}

// MachineBusy returns the CPU time all processes of the machine have used
// (user, nice, system, irq, softirq, steal of /proc/stat).
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	total := int64(0)
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += v
	}
	return time.Duration(total) * time.Second / 100
}

// CPUWatch measures the CPU time of the benchmark's processes and of
// everything else over a phase.
type CPUWatch struct {
	pids         []int
	t0           time.Time
	busy0, ours0 time.Duration
}

// WatchCPU starts a watch; pids are the process trees that are ours (the
// benchmark itself always is).
func WatchCPU(pids ...int) *CPUWatch {
	w := &CPUWatch{pids: pids, t0: time.Now(), busy0: MachineBusy()}
	w.ours0 = w.ours()
	return w
}

func (w *CPUWatch) ours() time.Duration {
	d := SelfCPU()
	for _, p := range w.pids {
		d += procTreeCPU(p)
	}
	return d
}

// OtherCores returns the average number of cores other processes used since
// the start of the watch.
func (w *CPUWatch) OtherCores() float64 {
	el := time.Since(w.t0)
	if el <= 0 {
		return 0
	}
	other := (MachineBusy() - w.busy0) - (w.ours() - w.ours0)
	return max(other.Seconds(), 0) / el.Seconds()
}

// Settle waits until the process trees of pids are idle (together below
// maxCores of CPU over a window), for at most limit, and returns how long it
// waited and whether they settled. After a large ingest the embedded store
// still compacts for a while; queries measured meanwhile would pay for it.
func Settle(ctx context.Context, pids []int, window time.Duration, maxCores float64, limit time.Duration) (time.Duration, bool) {
	return waitIdle(ctx, func() float64 {
		var d time.Duration
		for _, p := range pids {
			d += procTreeCPU(p)
		}
		return d.Seconds()
	}, window, maxCores, limit)
}

// waitIdle waits until a cumulative counter grows by less than maxRate per
// second over a window, for at most limit, and returns how long it waited
// and whether the counter settled.
func waitIdle(ctx context.Context, counter func() float64, window time.Duration, maxRate float64, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		c0 := counter()
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(window):
		}
		if (counter()-c0)/window.Seconds() < maxRate {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// DiskIdleBytesPerSec is the write rate under which the disks count as
// idle before the suite: well above the trickle of an idle machine (logs,
// PostgreSQL's statistics), well below a checkpoint or a compaction.
const DiskIdleBytesPerSec = 1 << 20

// DiskWritten returns the bytes written to the machine's disks since boot
// (/proc/diskstats, whole devices only: a partition's writes are also its
// disk's).
func DiskWritten() int64 {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if _, err := os.Stat("/sys/block/" + f[2]); err != nil {
			continue // a partition
		}
		if strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		sectors, _ := strconv.ParseInt(f[9], 10, 64)
		total += sectors * 512 // diskstats counts 512-byte sectors whatever the device's
	}
	return total
}

// SettleDisk waits until the machine's disks write less than maxRate
// bytes/s over a window, for at most limit, and returns how long it waited
// and whether they settled.
func SettleDisk(ctx context.Context, window time.Duration, maxRate float64, limit time.Duration) (time.Duration, bool) {
	return waitIdle(ctx, func() float64 { return float64(DiskWritten()) }, window, maxRate, limit)
}
