// Package pgtest runs throwaway PostgreSQL clusters for tests.
//
// A test asks for a fresh database with Start, which returns its URL:
//
//	url := pgtest.Start(t)
//
// All the databases of one test binary live in one shared cluster, started on
// first use (initdb in a temporary directory, pg_ctl on a free port of
// 127.0.0.1 and a unix socket in that directory) and removed when the test
// binary exits. Tests that stop or restart the server (outage tests) take a
// cluster of their own with New, which is removed at the end of the test.
//
// When PostgreSQL is not installed the test is skipped, with the reason,
// unless the environment sets AUDITTRAIL_REQUIRE_POSTGRES=1 (as `make test`
// does): then it fails. The binaries are looked up in $AUDITTRAIL_PG_BIN
// when it is set, else on PATH, then in /usr/lib/postgresql/*/bin (newest
// version first), /usr/pgsql-*/bin and /usr/local/pgsql/bin. As root, the
// cluster runs as the OS user "postgres" (initdb refuses to run as root).
//
// The clusters run with fsync on: tests of durability rely on it.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	// RequireEnv=1 turns a missing PostgreSQL installation from a skip
	// into a failure.
	RequireEnv = "AUDITTRAIL_REQUIRE_POSTGRES"
	// BinEnv names the directory of initdb and pg_ctl, instead of looking
	// for them.
	BinEnv = "AUDITTRAIL_PG_BIN"
)

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // base directory: data/, the socket, the log
	port int
	cred *syscall.Credential // run the server as this user (nil: as ourselves)

	mu      sync.Mutex
	running bool
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
	dbCounter atomic.Int64
)

// Start returns the URL of a new, empty database on the shared cluster of
// the test binary, starting the cluster on first use. The database is
// dropped at the end of the test.
func Start(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Shared returns the cluster shared by the tests of this binary, starting it
// on first use. It lives until the binary exits. Do not stop it: tests that
// need an outage take their own cluster with New.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	bin := findBin(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(bin)
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: starting the shared cluster: %v", sharedErr)
	}
	return shared
}

// New starts a cluster of the test's own, removed at the end of the test.
func New(t testing.TB) *Cluster {
	t.Helper()
	bin := findBin(t)
	c, err := start(bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.remove)
	return c
}

// findBin returns the directory of the PostgreSQL binaries, or skips (or
// fails, when RequireEnv is set) the test.
func findBin(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv(BinEnv); dir != "" {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "pg_ctl")) {
			return dir
		}
		skipOrFail(t, fmt.Sprintf("PostgreSQL not installed (initdb not found): %s=%s has no initdb and pg_ctl", BinEnv, dir))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
	}
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"} {
		m, _ := filepath.Glob(pattern)
		slices.SortFunc(m, func(a, b string) int { return versionOf(b) - versionOf(a) }) // newest first
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	skipOrFail(t, "PostgreSQL not installed (initdb not found): looked on PATH and in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin; install it (Debian: apt-get install postgresql) to run these tests")
	return ""
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1 requires it)", msg, RequireEnv)
	}
	t.Skip(msg)
}

func versionOf(binDir string) int {
	parts := strings.Split(binDir, string(filepath.Separator))
	for _, p := range parts {
		p = strings.TrimPrefix(p, "pgsql-")
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	return 0
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// start creates and starts a cluster.
func start(bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.remove()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the cluster must run as the OS user \"postgres\" (initdb refuses root), and it does not exist: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	// The watchdog removes the cluster when this process exits, whatever
	// way it does (a test binary has no hook at exit without TestMain).
	if err := c.watch(); err != nil {
		return nil, err
	}
	out, err := c.run(2*time.Minute, "initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err != nil {
			return nil, err
		}
		if err = c.startServer(); err == nil {
			break
		}
		if attempt == 2 {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "server.log") }

// run runs a PostgreSQL binary as the cluster's user.
func (c *Cluster) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl leaves the server running with its output redirected to the
	// log file; do not wait for inherited pipes.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

func (c *Cluster) startServer() error {
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.port),
		"-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
		"-c", "timezone=UTC",
	}, " ")
	out, err := c.run(2*time.Minute, "pg_ctl", "-D", c.dataDir(), "-l", c.logFile(), "-o", opts, "-w", "-t", "90", "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, c.logTail())
	}
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	return nil
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logFile())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "server log (tail):\n" + string(b)
}

// watch starts a process that, once this process has exited, stops the
// server at once and removes the cluster's directory.
func (c *Cluster) watch() error {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -f "$2/data/postmaster.pid" ]; then
  pid=$(head -n 1 "$2/data/postmaster.pid")
  kill -QUIT "$pid" 2>/dev/null
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), c.dir)
	// Its own process group, so that an interrupt of the test run does not
	// kill it before it cleans up; no inherited output, so that `go test`
	// does not wait for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the cleanup watchdog: %v", err)
	}
	go cmd.Wait() //nolint:errcheck // reaps it if it ends first
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the connection URL of database db on the cluster (TCP on
// 127.0.0.1, user postgres, no password).
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// Port returns the TCP port of the cluster.
func (c *Cluster) Port() int { return c.port }

// NewDatabase creates a new, empty database and returns its URL. It is
// dropped at the end of the test.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := c.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if running {
			// FORCE ends sessions a test left behind.
			_ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
	})
	return c.URL(name)
}

// Exec runs sql on the maintenance database "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server (fast shutdown: sessions are ended, transactions
// in flight roll back, committed ones are kept).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop("fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Crash stops the server the hard way (immediate shutdown: no checkpoint,
// recovery from the WAL at the next start), like a power cut for the data
// PostgreSQL had acknowledged.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.stop("immediate"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	out, err := c.run(2*time.Minute, "pg_ctl", "-D", c.dataDir(), "-m", mode, "-w", "-t", "90", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s\n%s", err, out, c.logTail())
	}
	c.running = false
	return nil
}

// Start starts a stopped server again, on the same port.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running {
		return
	}
	if err := c.startServer(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server and starts it again.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// remove stops the server and deletes the cluster's directory.
func (c *Cluster) remove() {
	if err := c.stop("immediate"); err != nil {
		// Make sure the server goes away before its files do.
		if pid, perr := readPID(c.dataDir()); perr == nil {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
	}
	_ = os.RemoveAll(c.dir)
}

func readPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, errors.New("pgtest: bad postmaster.pid")
	}
	return pid, nil
}
