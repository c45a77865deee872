package bench

import (
	"bytes"
	"context"
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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGSettings are the server settings of the throwaway cluster: durable
// (fsync and synchronous commit on, as a production audit log needs) and
// sized for the machine the way a DBA would size a dedicated database server
// (the defaults, 128 MB of shared buffers, would handicap PostgreSQL).
var PGSettings = []string{
	"fsync=on",
	"synchronous_commit=on",
	"full_page_writes=on",
	"shared_buffers=4GB",
	"effective_cache_size=12GB",
	"work_mem=64MB",
	"maintenance_work_mem=1GB",
	"max_wal_size=8GB",
	"checkpoint_timeout=15min",
	"max_connections=300",
	"timezone=UTC",
}

// PGCluster is a throwaway PostgreSQL cluster (initdb in a directory of its
// own, listening on a free port of 127.0.0.1), removed by Remove.
// internal/pgtest does the same for tests but takes a testing.TB.
type PGCluster struct {
	Bin  string // directory of initdb, pg_ctl
	Dir  string
	Port int
	cred *syscall.Credential
}

// FindPGBin returns the directory of initdb and pg_ctl: $AUDITTRAIL_PG_BIN,
// PATH, then /usr/lib/postgresql/*/bin (newest first).
func FindPGBin() (string, error) {
	isExec := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	}
	if dir := os.Getenv("AUDITTRAIL_PG_BIN"); dir != "" {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
		return "", fmt.Errorf("AUDITTRAIL_PG_BIN=%s has no initdb and pg_ctl", dir)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"} {
		m, _ := filepath.Glob(pattern)
		slices.Sort(m)
		slices.Reverse(m)
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
}

// StartPGCluster creates and starts a cluster in dir (which must not
// exist). As root, it runs as the OS user postgres. Unless keep is set, a
// watchdog removes the cluster when this process exits.
func StartPGCluster(bin, dir string, keep bool) (*PGCluster, error) {
	c := &PGCluster{Bin: bin, Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the user postgres, which does not exist: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if !keep {
		if err := c.watch(); err != nil {
			return nil, err
		}
	}
	if out, err := c.run(5*time.Minute, "initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
		opts := []string{"-p", strconv.Itoa(c.Port), "-k", c.Dir, "-c", "listen_addresses=127.0.0.1"}
		for _, s := range PGSettings {
			opts = append(opts, "-c", s)
		}
		var out []byte
		out, err = c.run(5*time.Minute, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.Dir, "server.log"), "-o", strings.Join(opts, " "), "-w", "-t", "120", "start")
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil, err
}

func (c *PGCluster) dataDir() string { return filepath.Join(c.Dir, "data") }

func (c *PGCluster) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
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
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// watch starts a process that stops the server and removes the directory
// once this process has exited, however it exits.
func (c *PGCluster) watch() error {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -f "$2/data/postmaster.pid" ]; then
  pid=$(head -n 1 "$2/data/postmaster.pid")
  kill -QUIT "$pid" 2>/dev/null
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "auditbench-pg-watchdog", strconv.Itoa(os.Getpid()), c.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the cleanup watchdog: %v", err)
	}
	go cmd.Wait() //nolint:errcheck
	return nil
}

// StopCommand is the command that stops the cluster.
func (c *PGCluster) StopCommand() string {
	return fmt.Sprintf("su postgres -c '%s -D %s stop'", filepath.Join(c.Bin, "pg_ctl"), c.dataDir())
}

// Remove stops the server and deletes the cluster.
func (c *PGCluster) Remove() {
	_, _ = c.run(2*time.Minute, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "90", "stop")
	_ = os.RemoveAll(c.Dir)
}

// URL returns the connection URL of database db.
func (c *PGCluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// CreateDatabase creates an empty database.
func (c *PGCluster) CreateDatabase(ctx context.Context, name string) error {
	return c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDatabase drops a database, ending its sessions.
func (c *PGCluster) DropDatabase(ctx context.Context, name string) error {
	return c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (c *PGCluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Version returns the server's version string.
func (c *PGCluster) Version(ctx context.Context) string {
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

// PostmasterPID returns the pid of the cluster's main process.
func (c *PGCluster) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
