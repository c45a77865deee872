// Package pgcluster runs a throwaway PostgreSQL cluster: initdb in a
// directory of its own, pg_ctl on a free port of 127.0.0.1 with its unix
// socket in that directory. The tests (internal/pgtest) and the benchmark
// (bench) both use it; each chooses the server's settings.
//
// As root, the cluster runs as the OS user "postgres" (initdb refuses to run
// as root). A watchdog process can remove the cluster when this process
// exits, however it exits.
package pgcluster

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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinEnv names the directory of initdb and pg_ctl, instead of looking for
// them.
const BinEnv = "AUDITTRAIL_PG_BIN"

// ErrNotInstalled is the error of FindBin when PostgreSQL is not installed.
var ErrNotInstalled = errors.New("PostgreSQL not installed (initdb not found)")

// FindBin returns the directory of initdb and pg_ctl: $AUDITTRAIL_PG_BIN,
// else PATH, then /usr/lib/postgresql/*/bin (newest version first),
// /usr/pgsql-*/bin and /usr/local/pgsql/bin.
func FindBin() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: %s=%s has no initdb and pg_ctl", ErrNotInstalled, BinEnv, dir)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
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
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: looked on PATH and in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin; install it (Debian: apt-get install postgresql)", ErrNotInstalled)
}

func versionOf(binDir string) int {
	for _, p := range strings.Split(binDir, string(filepath.Separator)) {
		if n, err := strconv.Atoi(strings.TrimPrefix(p, "pgsql-")); err == nil {
			return n
		}
	}
	return 0
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// TestSettings are the server settings of the tests' clusters (internal/pgtest,
// internal/pgcluster/cmd/withpostgres): durable, as tests of durability need, and small.
var TestSettings = []string{
	"fsync=on",
	"synchronous_commit=on",
	"max_connections=300",
	"shared_buffers=128MB",
	"timezone=UTC",
}

// Cluster is a throwaway PostgreSQL cluster.
type Cluster struct {
	Bin      string   // directory of initdb, pg_ctl
	Dir      string   // base directory: data/, the socket, server.log
	Port     int      // TCP port on 127.0.0.1
	Settings []string // server settings, "name=value"

	cred *syscall.Credential // run the server as this user (nil: as ourselves)

	mu      sync.Mutex
	running bool
}

// Create makes a cluster in dir (created, or empty) with the binaries of
// bin and starts it with settings ("name=value"). With watchdog, a process
// removes the cluster once this process has exited. On failure nothing is
// left running.
func Create(bin, dir string, settings []string, watchdog bool) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, Settings: settings}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Remove()
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
	if watchdog {
		if err := c.watch(); err != nil {
			return nil, err
		}
	}
	out, err := c.run(5*time.Minute, "initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
		if err = c.StartServer(); err == nil {
			break
		}
		if attempt == 2 {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.Dir, "server.log") }

// run runs a PostgreSQL binary as the cluster's user.
func (c *Cluster) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, name), args...)
	cmd.Dir = c.Dir
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

// StartServer starts the server of a created cluster that is not running,
// on its port. It does nothing when the server runs.
func (c *Cluster) StartServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	opts := []string{"-p", strconv.Itoa(c.Port), "-k", c.Dir, "-c", "listen_addresses=127.0.0.1"}
	for _, s := range c.Settings {
		opts = append(opts, "-c", s)
	}
	out, err := c.run(5*time.Minute, "pg_ctl", "-D", c.dataDir(), "-l", c.logFile(), "-o", strings.Join(opts, " "), "-w", "-t", "120", "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, c.logTail())
	}
	c.running = true
	return nil
}

// Stop stops the server: mode "fast" ends sessions and rolls back what is
// in flight, keeping what committed; "immediate" is a crash (recovery from
// the WAL at the next start). It does nothing when the server is stopped.
func (c *Cluster) Stop(mode string) error {
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

// Running reports whether the server runs.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Remove stops the server at once and deletes the cluster's directory.
func (c *Cluster) Remove() {
	if err := c.Stop("immediate"); err != nil {
		// Make sure the server goes away before its files do.
		if pid := c.PostmasterPID(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
	}
	_ = os.RemoveAll(c.Dir)
}

// StopCommand is a shell command that stops the server (for a cluster left
// running on purpose).
func (c *Cluster) StopCommand() string {
	return fmt.Sprintf("su postgres -c '%s -D %s stop'", filepath.Join(c.Bin, "pg_ctl"), c.dataDir())
}

// PostmasterPID returns the pid of the server's main process, 0 when it is
// not known.
func (c *Cluster) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
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
	cmd := exec.Command("/bin/sh", "-c", script, "pgcluster-watchdog", strconv.Itoa(os.Getpid()), c.Dir)
	// Its own process group, so that an interrupt of this process does not
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

// URL returns the connection URL of database db (TCP on 127.0.0.1, user
// postgres, no password).
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// Exec runs sql on the maintenance database "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// CreateDatabase creates an empty database.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDatabase drops a database, ending its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// Version returns the server's version string, "?" when it cannot be read.
func (c *Cluster) Version(ctx context.Context) string {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "?"
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return v
}
