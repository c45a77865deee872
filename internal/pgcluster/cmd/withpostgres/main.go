// Command withpostgres runs a command beside a throwaway PostgreSQL cluster:
// it creates and starts a cluster in a new temporary directory
// (internal/pgcluster, with the tests' settings), creates an empty database,
// runs the command with the database's URL in an environment variable (and
// the directory of PostgreSQL's programs in WITHPOSTGRES_BIN, for a command
// that makes databases of its own with createdb), then removes the cluster
// and exits with the command's status.
//
//	go run ./internal/pgcluster/cmd/withpostgres [-env NAME] [-db NAME] -- command [args...]
//
// `make python-test` runs the compatibility suite (the published Python
// client) through it against a server on the PostgreSQL store. The
// cluster's watchdog removes it even if this process is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/pgcluster"
)

// BinEnv is the environment variable that gets the directory of
// PostgreSQL's programs (createdb, psql).
const BinEnv = "WITHPOSTGRES_BIN"

func main() {
	envName := flag.String("env", "AUDITTRAIL_TEST_STORE", "the environment variable that gets the database's URL")
	db := flag.String("db", "audittrail", "the database to create")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: withpostgres [-env NAME] [-db NAME] -- command [args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	code, err := run(*envName, *db, flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "withpostgres: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run returns the command's exit status, or an error when the cluster or the
// command could not be started.
func run(envName, db string, argv []string) (int, error) {
	bin, err := pgcluster.FindBin()
	if err != nil {
		return 0, fmt.Errorf("%v: install PostgreSQL's server programs (apt-get install postgresql) or set %s", err, pgcluster.BinEnv)
	}
	dir, err := os.MkdirTemp("", "withpostgres-")
	if err != nil {
		return 0, err
	}
	cluster, err := pgcluster.Create(bin, dir, pgcluster.TestSettings, true)
	if err != nil {
		return 0, fmt.Errorf("starting the cluster: %v", err)
	}
	defer cluster.Remove()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return 0, fmt.Errorf("creating database %q: %v", db, err)
	}

	fmt.Fprintf(os.Stderr, "withpostgres: a throwaway PostgreSQL cluster in %s; %s=%s\n", dir, envName, cluster.URL(db))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envName+"="+cluster.URL(db), BinEnv+"="+programsDir(bin))
	// An interrupt reaches the command too (same process group); wait for
	// it to end, then remove the cluster.
	signal.Ignore(syscall.SIGINT)
	sigterm := make(chan os.Signal, 1)
	signal.Notify(sigterm, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		for s := range sigterm {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() < 0 { // killed by a signal
			return 128 + int(exit.Sys().(syscall.WaitStatus).Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	return 0, err
}

// programsDir is the directory of PostgreSQL's programs: bin, or where its
// initdb is when that is a link (Debian links initdb, pg_ctl and postgres
// into /usr/local/bin, not createdb or psql).
func programsDir(bin string) string {
	if real, err := filepath.EvalSymlinks(filepath.Join(bin, "initdb")); err == nil {
		return filepath.Dir(real)
	}
	return bin
}
