// Package testserver runs the audittrail binary for end-to-end tests: it
// builds ./cmd/audittrail once per test process (with the race detector when
// the tests run with it, and then a race the server reports fails the test),
// starts "audittrail serve" on free loopback ports with a temporary data
// directory and random tokens, and stops it gracefully at the end of the
// test. Crash kills it instead, as a crash would, and Resume starts it again
// on the same data directory, for tests of recovery.
//
// A test package that uses it calls Main from its TestMain, which removes the
// built binary when the tests are done:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		srv := testserver.Start(t)
//		resp, err := http.Get(srv.PublicURL + "/version")
//		...
//	}
package testserver

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/syncbuf"
)

// Timeouts of the server process.
const (
	StartTimeout = 60 * time.Second // until the ready line
	StopTimeout  = 30 * time.Second // from SIGTERM to exit
)

// Server is a running "audittrail serve".
type Server struct {
	PublicURL, InternalURL   string // http://127.0.0.1:PORT
	PublicAddr, InternalAddr string // 127.0.0.1:PORT
	ReaderToken              string // may search (users/reader)
	ProducerToken            string // may create (services/producer)
	DataDir                  string

	tb   testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}   // closed when cmd has exited
	err  error           // cmd's exit error, after done
	logs *syncbuf.Buffer // stdout and stderr of every run
}

var build struct {
	sync.Once
	dir, bin string
	err      error
	mainUsed bool
}

// Main runs the tests of a package that starts servers and then removes the
// binary built for them. Call it from TestMain.
func Main(m *testing.M) {
	build.mainUsed = true
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// Binary returns the path of the audittrail binary built from the module the
// test runs in, building it on the first call.
func Binary(tb testing.TB) string {
	tb.Helper()
	if !build.mainUsed {
		tb.Fatal("testserver: call testserver.Main(m) from the package's TestMain (it removes the built binary)")
	}
	build.Do(func() {
		var root string
		if root, build.err = moduleRoot(); build.err != nil {
			return
		}
		if build.dir, build.err = os.MkdirTemp("", "audittrail-testserver-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "audittrail")
		args := []string{"build", "-o", build.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/audittrail")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/audittrail: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatalf("testserver: %v", build.err)
	}
	return build.bin
}

// moduleRoot finds the directory of the audittrail module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(data, []byte("module github.com/audittrail/audittrail\n")) {
		return "", fmt.Errorf("%s is not the audittrail module", gomod)
	}
	return filepath.Dir(gomod), nil
}

// Start builds the binary if needed and starts "audittrail serve" with the
// given extra flags (after the ones Start sets, so they win), waiting until it
// is ready. The server stops at the end of the test; a server that does not
// exit cleanly then fails the test. When the test fails, the server's output
// is logged.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	s := &Server{
		tb:            tb,
		args:          extraArgs,
		ReaderToken:   randomToken(),
		ProducerToken: randomToken(),
		DataDir:       tb.TempDir(),
		logs:          &syncbuf.Buffer{},
	}
	tb.Cleanup(func() {
		s.Stop()
		s.checkRaces()
		if tb.Failed() {
			tb.Logf("audittrail serve output:\n%s", s.Logs())
		}
	})
	s.start()
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	args := append([]string{"serve",
		"--data-dir", s.DataDir,
		"--public-addr", "127.0.0.1:0",
		"--internal-addr", "127.0.0.1:0",
		"--reader-token", s.ReaderToken,
		"--producer-token", s.ProducerToken,
		"--log-level", "debug",
	}, s.args...)
	cmd := exec.Command(Binary(s.tb), args...)
	// The flags are authoritative: keep a developer's AUDITTRAIL_*
	// settings out of the test server.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUDITTRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.tb.Fatal(err)
	}
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("testserver: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(s.logs, "stdout: %s\n", line)
			if !sent && strings.HasPrefix(line, "audittrail: ready ") {
				ready <- line
				sent = true
			}
		}
		// The pipe is at EOF: the process has exited (Wait must not run
		// before the reads are done).
		s.err = cmd.Wait()
		close(s.done)
	}()

	select {
	case line := <-ready:
		if err := s.parseReady(line); err != nil {
			s.kill()
			s.tb.Fatalf("testserver: %v", err)
		}
	case <-s.done:
		s.cmd = nil
		s.tb.Fatalf("testserver: audittrail serve exited before it was ready: %v (its output follows)", s.err)
	case <-time.After(StartTimeout):
		s.kill()
		s.tb.Fatalf("testserver: audittrail serve printed no ready line within %s (its output follows)", StartTimeout)
	}
}

// parseReady reads "audittrail: ready public=URL internal=URL".
func (s *Server) parseReady(line string) error {
	fields := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "audittrail: ready ")) {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	pub, err := url.Parse(fields["public"])
	if err != nil || pub.Host == "" {
		return fmt.Errorf("bad ready line %q: no public=URL", line)
	}
	internal, err := url.Parse(fields["internal"])
	if err != nil || internal.Host == "" {
		return fmt.Errorf("bad ready line %q: no internal=URL", line)
	}
	s.PublicURL, s.PublicAddr = pub.String(), pub.Host
	s.InternalURL, s.InternalAddr = internal.String(), internal.Host
	return nil
}

// Stop stops the server with SIGTERM and waits for it to exit, failing the
// test when it does not exit with status 0 within StopTimeout. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.tb.Helper()
	if s.cmd == nil {
		return
	}
	defer func() { s.cmd = nil }()
	select {
	case <-s.done:
		s.tb.Errorf("testserver: audittrail serve had exited before Stop: %v", s.err)
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			s.tb.Errorf("testserver: audittrail serve exited with %v after SIGTERM", s.err)
		}
	case <-time.After(StopTimeout):
		s.kill()
		s.tb.Errorf("testserver: audittrail serve did not exit within %s of SIGTERM", StopTimeout)
	}
}

// raceReport is how the race detector begins a report (on stderr, when it
// sees the race; the process then exits with status 66 at its end).
const raceReport = "WARNING: DATA RACE"

// checkRaces fails the test if a race-built server reported a data race in
// any of its runs: a crashed run never gets to exit with status 66, and a
// report must not pass unseen.
func (s *Server) checkRaces() {
	s.tb.Helper()
	if n := strings.Count(s.Logs(), raceReport); n > 0 {
		s.tb.Errorf("testserver: audittrail serve reported %d data race(s) (its output follows)", n)
	}
}

// Restart stops the server gracefully and starts it again on the same data
// directory with the same tokens. The ports change: read the URL and address
// fields again.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// Crash kills the server with SIGKILL, as a crash or an OOM kill would stop
// it: nothing flushed, no shutdown. It returns once the process has exited.
// The data directory is kept, for Resume. Crashing a stopped server does
// nothing; a server that had exited by itself fails the test, as with Stop.
func (s *Server) Crash() {
	s.tb.Helper()
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		s.tb.Errorf("testserver: audittrail serve had exited before Crash: %v", s.err)
		s.cmd = nil
		return
	default:
	}
	// A marker in the logs, which hold every run: the next lines are the
	// recovery's.
	fmt.Fprintf(s.logs, "testserver: SIGKILL\n")
	s.kill()
}

// Resume starts a stopped or crashed server again, on the same data
// directory with the same tokens and flags, and waits until it is ready.
// The ports change: read the URL and address fields again. Resuming a
// server that was neither stopped nor crashed fails the test.
func (s *Server) Resume() {
	s.tb.Helper()
	if s.cmd != nil {
		s.tb.Fatal("testserver: Resume of a server that was not stopped (Stop or Crash it first)")
	}
	s.start()
}

// Exited reports whether the server process has exited by itself.
func (s *Server) Exited() bool {
	if s.cmd == nil {
		return true
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Logs returns what the server has written so far (stderr, and stdout lines
// prefixed "stdout: "), over all its runs.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
