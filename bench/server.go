package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildServer builds ./cmd/audittrail of the module in moduleDir into dir
// and returns the binary's path.
func BuildServer(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "audittrail")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/audittrail")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/audittrail: %v\n%s", err, out)
	}
	return bin, nil
}

// ServerSupportsStore reports whether `audittrail serve` of bin has the
// --store flag (the PostgreSQL store), by reading its help.
func ServerSupportsStore(bin string) bool {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return storeFlag.Match(out)
}

var storeFlag = regexp.MustCompile(`(?m)^\s+--?store\b`)

// StoreTimes are the totals of the store histograms the server exports on
// /metrics of its internal listener.
type StoreTimes struct {
	SearchSeconds, Searches float64 // Store.Search calls (one page each)
	AppendSeconds, Appends  float64 // Store.Append calls (including the self-audit event of each search)
	GCs                     float64 // Go garbage collections of the server
}

// Sub returns the difference t - o.
func (t StoreTimes) Sub(o StoreTimes) StoreTimes {
	return StoreTimes{t.SearchSeconds - o.SearchSeconds, t.Searches - o.Searches, t.AppendSeconds - o.AppendSeconds, t.Appends - o.Appends, t.GCs - o.GCs}
}

// StoreTimes reads the store histograms.
func (s *Server) StoreTimes(ctx context.Context) (StoreTimes, error) {
	var t StoreTimes
	err := s.scanMetrics(ctx, func(name string, v float64) {
		switch name {
		case "audittrail_store_search_duration_seconds_sum":
			t.SearchSeconds += v
		case "audittrail_store_search_duration_seconds_count":
			t.Searches += v
		case "audittrail_store_append_duration_seconds_sum":
			t.AppendSeconds += v
		case "audittrail_store_append_duration_seconds_count":
			t.Appends += v
		case "go_gc_duration_seconds_count":
			t.GCs += v
		}
	})
	return t, err
}

// SignedTreeSize reads the size of the verifiable log's latest signed
// checkpoint (audittrail_log_signed_tree_size); ok is false when the
// server exports none (no log).
func (s *Server) SignedTreeSize(ctx context.Context) (size uint64, ok bool, err error) {
	err = s.scanMetrics(ctx, func(name string, v float64) {
		if name == "audittrail_log_signed_tree_size" {
			size, ok = uint64(v), true
		}
	})
	return size, ok, err
}

// scanMetrics reads /metrics of the internal listener and calls fn with
// each sample's metric name (without labels) and value.
func (s *Server) scanMetrics(ctx context.Context, fn func(name string, v float64)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.InternalURL+"/metrics", nil)
	if err != nil {
		return err
	}
	hc := s.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, ' '); j >= 0 {
				rest = line[j+1:]
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		fn(name, v)
	}
	return sc.Err()
}

// Server is a running `audittrail serve`.
type Server struct {
	PublicURL, InternalURL   string
	PublicAddr, InternalAddr string
	// HTTP reads the metrics (nil: http.DefaultClient); over TLS, a
	// client that trusts the server's certificate.
	HTTP          *http.Client
	ReaderToken   string
	ProducerToken string
	DataDir       string
	LogPath       string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartServer starts bin serve on free loopback ports with a data directory
// and fresh tokens, plus extra flags, and waits for its ready line. Its
// standard error goes to logPath.
func StartServer(bin, dataDir, logPath string, extra ...string) (*Server, error) {
	s := &Server{ReaderToken: randomToken(), ProducerToken: randomToken(), DataDir: dataDir, LogPath: logPath}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve",
		"--data-dir", dataDir,
		"--public-addr", "127.0.0.1:0",
		"--internal-addr", "127.0.0.1:0",
		"--reader-token", s.ReaderToken,
		"--producer-token", s.ProducerToken,
		"--log-level", "warn",
	}, extra...)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUDITTRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(logf, "stdout: %s\n", line)
			if !sent && strings.HasPrefix(line, "audittrail: ready ") {
				ready <- line
				sent = true
			}
		}
		s.err = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	select {
	case line := <-ready:
		fields := map[string]string{}
		for _, f := range strings.Fields(strings.TrimPrefix(line, "audittrail: ready ")) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		pub, err1 := url.Parse(fields["public"])
		in, err2 := url.Parse(fields["internal"])
		if err := errors.Join(err1, err2); err != nil || pub.Host == "" || in.Host == "" {
			s.Kill()
			return nil, fmt.Errorf("bad ready line %q", line)
		}
		s.PublicURL, s.PublicAddr = pub.String(), pub.Host
		s.InternalURL, s.InternalAddr = in.String(), in.Host
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("audittrail serve exited before it was ready: %v; log %s:\n%s", s.err, logPath, tail(logPath))
	case <-time.After(2 * time.Minute):
		s.Kill()
		return nil, fmt.Errorf("audittrail serve printed no ready line within 2 minutes; log %s:\n%s", logPath, tail(logPath))
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop ends the server gracefully (SIGTERM) and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		s.Kill()
		return errors.New("audittrail serve did not stop within 2 minutes of SIGTERM")
	}
	s.cmd = nil
	if s.err != nil {
		return fmt.Errorf("audittrail serve exited with %v; log %s:\n%s", s.err, s.LogPath, tail(s.LogPath))
	}
	return nil
}

// Kill ends the server at once.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ProcStatus reads a field of /proc/<pid>/status in bytes (the kB fields:
// VmHWM, VmRSS).
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return n * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// ResetPeakRSS resets VmHWM of a process to its current RSS (writing 5 to
// /proc/<pid>/clear_refs, Linux 4.0 and later), so that the next reading is
// the peak of what follows.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// SelfCPU returns the CPU time of this process.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// DiskUsage returns the bytes a directory tree occupies on disk (allocated
// blocks, as du reports) and its apparent size.
func DiskUsage(dir string) (disk, apparent int64, err error) {
	b, err := DiskBreakdown(dir)
	for _, u := range b {
		disk += u.Disk
		apparent += u.Apparent
	}
	return disk, apparent, err
}

// Usage is the space of a set of files.
type Usage struct{ Disk, Apparent int64 }

// DiskBreakdown returns the usage of a directory tree by kind of file:
// "sst" (Pebble tables), "wal" (Pebble's .log files), "other".
func DiskBreakdown(dir string) (map[string]Usage, error) {
	out := map[string]Usage{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (compaction)
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		kind := "other"
		switch filepath.Ext(path) {
		case ".sst":
			kind = "sst"
		case ".log":
			kind = "wal"
		}
		u := out[kind]
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			u.Disk += st.Blocks * 512
		}
		if info.Mode().IsRegular() {
			u.Apparent += info.Size()
		}
		out[kind] = u
		return nil
	})
	return out, err
}
