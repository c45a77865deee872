package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Profiler records CPU profiles of phases of the run into Dir:
//
//   - the server side with Linux perf (`perf record -g -p PID`), when perf is
//     installed and allowed: the server binary has no pprof endpoint. Each
//     recording leaves NAME.perf.data and NAME.perf.txt (perf report, self
//     time by symbol), and its top symbols go to the report.
//   - the benchmark client with runtime/pprof: NAME.client.pprof, for
//     `go tool pprof`.
//
// A nil *Profiler records nothing.
type Profiler struct {
	Dir  string
	perf string // path of perf, "" when unusable
	Note string // why server profiles are missing, if they are
}

// NewProfiler returns a profiler writing to dir, or nil when dir is "".
func NewProfiler(dir string) (*Profiler, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Profiler{Dir: dir}
	if path, err := exec.LookPath("perf"); err != nil {
		p.Note = "perf is not installed: no server-side profiles, only the client's"
	} else {
		p.perf = path
	}
	return p, nil
}

// Recording is a profile being recorded.
type Recording struct {
	p      *Profiler
	name   string
	native bool // the process is not a Go program (PostgreSQL)
	perf   *exec.Cmd
	client *os.File
}

// Start starts recording the server process pid (0: none) and this process
// under name.
func (p *Profiler) Start(name string, pid int) *Recording {
	if p == nil {
		return nil
	}
	r := &Recording{p: p, name: name, native: !isGoProcess(pid)}
	if p.perf != "" && pid > 0 {
		// The process and its children: PostgreSQL serves each
		// connection from a child of the postmaster.
		pids := []string{fmt.Sprint(pid)}
		for _, c := range childPIDs(pid) {
			pids = append(pids, fmt.Sprint(c))
		}
		cmd := exec.Command(p.perf, "record", "-F", "997", "-g", "-p", strings.Join(pids, ","), "-o", filepath.Join(p.Dir, name+".perf.data"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err == nil {
			r.perf = cmd
			time.Sleep(200 * time.Millisecond) // let it attach
		} else {
			p.Note = "perf record failed: " + err.Error()
		}
	}
	if f, err := os.Create(filepath.Join(p.Dir, name+".client.pprof")); err == nil {
		if pprof.StartCPUProfile(f) == nil {
			r.client = f
		} else {
			f.Close()
			os.Remove(f.Name())
		}
	}
	return r
}

// Stop ends the recording and returns the top symbols of the server's
// profile by self time ("" when there is none).
func (r *Recording) Stop() string {
	if r == nil {
		return ""
	}
	if r.client != nil {
		pprof.StopCPUProfile()
		r.client.Close()
	}
	if r.perf == nil {
		return ""
	}
	_ = r.perf.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { r.perf.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		r.perf.Process.Kill()
		<-done
	}
	data := filepath.Join(r.p.Dir, r.name+".perf.data")
	out, err := exec.Command(r.p.perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
		"-g", "none", "--percent-limit", "0.5").Output()
	if err != nil {
		return ""
	}
	_ = os.WriteFile(filepath.Join(r.p.Dir, r.name+".perf.txt"), out, 0o644)
	top := topSymbols(out, 8)
	if all, err := exec.Command(r.p.perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
		"-g", "none", "--percent-limit", "0").Output(); err == nil {
		if c := Components(all, r.native); c != "" {
			top = "**" + c + "**; top: " + top
		}
	}
	return top
}

// component classifies a symbol of a perf report.
func component(sym string, kernel bool) string {
	switch {
	case kernel:
		return "kernel"
	case strings.Contains(sym, "cockroachdb/pebble"), strings.HasPrefix(sym, "ZSTD_"), strings.HasPrefix(sym, "HUF_"),
		strings.HasPrefix(sym, "FSE_"), strings.Contains(sym, "snappy"), strings.Contains(sym, "DataDog/zstd"):
		return "Pebble"
	case strings.Contains(sym, "audittrail/pebblestore"):
		return "pebblestore"
	case strings.Contains(sym, "google.golang.org/"), strings.Contains(sym, "golang.org/x/net"), strings.Contains(sym, "grpc-gateway"),
		strings.HasPrefix(sym, "encoding/json"), strings.HasPrefix(sym, "net/http"), strings.HasPrefix(sym, "net."):
		return "gRPC, HTTP, protobuf, JSON"
	case strings.HasPrefix(sym, "github.com/audittrail/audittrail"):
		return "audittrail (service, server)"
	case strings.HasPrefix(sym, "runtime."), strings.HasPrefix(sym, "internal/runtime"), strings.HasPrefix(sym, "gcWriteBarrier"),
		strings.HasSuffix(sym, "body"), strings.HasPrefix(sym, "aeshash"), strings.HasPrefix(sym, "memeq"):
		return "Go runtime (GC, allocation, maps, scheduling)"
	case strings.HasPrefix(sym, "0x"):
		return "unresolved"
	case strings.Contains(sym, "/") || strings.Contains(sym, "."):
		if strings.HasPrefix(sym, "regexp") || strings.HasPrefix(sym, "strings") || strings.HasPrefix(sym, "unicode") ||
			strings.HasPrefix(sym, "time.") || strings.HasPrefix(sym, "sort.") || strings.HasPrefix(sym, "bytes.") ||
			strings.HasPrefix(sym, "slices.") || strings.HasPrefix(sym, "strconv.") || strings.HasPrefix(sym, "encoding/") ||
			strings.HasPrefix(sym, "internal/") || strings.HasPrefix(sym, "sync.") || strings.HasPrefix(sym, "hash/") ||
			strings.HasPrefix(sym, "crypto/") || strings.HasPrefix(sym, "math") || strings.HasPrefix(sym, "reflect.") ||
			strings.HasPrefix(sym, "fmt.") || strings.HasPrefix(sym, "maps.") || strings.HasPrefix(sym, "os.") ||
			strings.HasPrefix(sym, "syscall.") || strings.HasPrefix(sym, "io.") || strings.HasPrefix(sym, "bufio.") {
			return "Go standard library"
		}
		return "other"
	}
	return "other"
}

// Components sums a perf report's self time by component, largest first:
// "Pebble 41%, Go runtime 22%, ...".
//
// For a process that is not a Go program (native), everything but the
// kernel is one component: PostgreSQL's binary has no symbols to split by.
func Components(report []byte, native bool) string {
	shares := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(report))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := perfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var v float64
		fmt.Sscan(m[1], &v)
		c := component(m[3], m[2] == "k")
		if native && c != "kernel" {
			c = "PostgreSQL (and libc)"
		}
		shares[c] += v
	}
	type kv struct {
		k string
		v float64
	}
	var list []kv
	for k, v := range shares {
		if v >= 1 {
			list = append(list, kv{k, v})
		}
	}
	slices.SortFunc(list, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
	var parts []string
	for _, e := range list {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

var (
	perfLine    = regexp.MustCompile(`^\s+([0-9.]+)%\s+\[([.k])\]\s+(.+?)(\s+-\s+-)?\s*$`)
	perfSamples = regexp.MustCompile(`(?m)^# Samples: (\d+[KMk]?)`)
)

// topSymbols returns the first n symbols of a perf report as
// "12.3% symbol; 4.5% symbol; ... (N samples)".
func topSymbols(report []byte, n int) string {
	var parts []string
	samples := ""
	if m := perfSamples.FindSubmatch(report); m != nil {
		samples = " (" + string(m[1]) + " samples)"
	}
	sc := bufio.NewScanner(bytes.NewReader(report))
	for sc.Scan() && len(parts) < n {
		m := perfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		parts = append(parts, m[1]+"% "+shortSymbol(m[3]))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + samples
}

// shortSymbol trims the module path from a Go symbol.
func shortSymbol(s string) string {
	s = strings.ReplaceAll(s, "github.com/audittrail/audittrail/", "")
	s = strings.ReplaceAll(s, "github.com/cockroachdb/", "")
	s = strings.ReplaceAll(s, "google.golang.org/", "")
	return s
}

// isGoProcess reports whether the executable of pid is a Go program (it has
// a .go.buildinfo section).
func isGoProcess(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	out, err := exec.Command("go", "version", exe).Output()
	return err == nil && bytes.Contains(out, []byte(" go1."))
}
