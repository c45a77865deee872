package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/postgres"
)

func newTestMain(env map[string]string) (*Main, *bytes.Buffer) {
	m := NewMain()
	var out bytes.Buffer
	m.Stdout, m.Stderr = &out, io.Discard
	m.Getenv = func(k string) string { return env[k] }
	return m, &out
}

// startDev runs serve --dev in process on a new data directory and free
// ports, closed with the test, and returns it with what it printed.
func startDev(t *testing.T) (*Main, *bytes.Buffer) {
	t.Helper()
	m, out := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", t.TempDir(), "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, out
}

func TestServeParseFlagsDefaults(t *testing.T) {
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--reader-token", "r", "--producer-token", "p"}); err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "./data", PublicAddr: "127.0.0.1:8080", InternalAddr: "127.0.0.1:8081",
		ReaderToken: "r", ProducerToken: "p", LogLevel: slog.LevelInfo, LogFormat: "text",
		RedactPrivateIPs: true, MaxScan: audittrail.DefaultMaxScan, PrefetchMinPage: audittrail.DefaultPrefetchMinPage, ShutdownTimeout: 30 * time.Second,
		LogKeepCheckpoints: 24 * time.Hour, SearchTimeout: 10 * time.Second, ReadTimeout: time.Minute, MaxReceiving: 256, WriteTimeout: time.Minute,
	}
	if m.Config != want {
		t.Errorf("config\n got %+v\nwant %+v", m.Config, want)
	}
}

func TestServeParseFlagsEnvironment(t *testing.T) {
	env := map[string]string{
		"AUDITTRAIL_DATA_DIR":               "/env/data",
		"AUDITTRAIL_PUBLIC_ADDR":            "0.0.0.0:9000",
		"AUDITTRAIL_INTERNAL_ADDR":          "0.0.0.0:9001",
		"AUDITTRAIL_READER_TOKEN":           "env-reader",
		"AUDITTRAIL_PRODUCER_TOKEN":         "env-producer",
		"AUDITTRAIL_LOG_LEVEL":              "debug",
		"AUDITTRAIL_LOG_FORMAT":             "json",
		"AUDITTRAIL_REDACT_PRIVATE_IPS":     "false",
		"AUDITTRAIL_MAX_SCAN":               "1234",
		"AUDITTRAIL_PREFETCH_MIN_PAGE":      "0",
		"AUDITTRAIL_SHUTDOWN_TIMEOUT":       "5s",
		"AUDITTRAIL_DEV":                    "true",
		"AUDITTRAIL_LOG_KEEP_CHECKPOINTS":   "0s",
		"AUDITTRAIL_SEARCH_TIMEOUT":         "3s",
		"AUDITTRAIL_REQUEST_READ_TIMEOUT":   "2m",
		"AUDITTRAIL_RESPONSE_WRITE_TIMEOUT": "3m",
	}
	m, _ := newTestMain(env)
	// Flags on the command line win over the environment.
	if err := m.ParseFlags([]string{"--data-dir", "/flag/data", "--max-scan", "99", "--redact-private-ips=true"}); err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "/flag/data", PublicAddr: "0.0.0.0:9000", InternalAddr: "0.0.0.0:9001",
		ReaderToken: "env-reader", ProducerToken: "env-producer", Dev: true, LogLevel: slog.LevelDebug, LogFormat: "json",
		RedactPrivateIPs: true, MaxScan: 99, ShutdownTimeout: 5 * time.Second, SearchTimeout: 3 * time.Second,
		ReadTimeout: 2 * time.Minute, MaxReceiving: 256, WriteTimeout: 3 * time.Minute,
	}
	if m.Config != want {
		t.Errorf("config\n got %+v\nwant %+v", m.Config, want)
	}
	// Every flag has its variable.
	m.flagSet().VisitAll(func(f *flag.Flag) {
		if serveEnv[f.Name] == "" {
			t.Errorf("flag --%s has no environment variable", f.Name)
		}
	})
}

func TestServeParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "no tokens: give --reader-token and --producer-token"},
		{[]string{"--reader-token", "r"}, nil, "no tokens"},
		// Client certificates take their roles from the policy: without
		// one, no producer could authenticate.
		{[]string{"--reader-token", "r", "--internal-tls-cert", "c", "--internal-tls-key", "k", "--internal-client-ca", "ca"}, nil, "no tokens"},
		{[]string{"--reader-token", "same", "--producer-token", "same"}, nil, "must differ"},
		{[]string{"--reader-token", "same", "--producer-token", "p", "--admin-token", "same"}, nil, "--admin-token must differ from --reader-token"},
		{[]string{"--reader-token", "r", "--producer-token", "same"}, map[string]string{"AUDITTRAIL_ADMIN_TOKEN": "same"}, "--admin-token must differ from --producer-token"},
		{[]string{"--dev", "--max-scan", "0"}, nil, "--max-scan 0 must be positive"},
		{[]string{"--dev", "--request-read-timeout", "0s"}, nil, "--request-read-timeout 0s must be positive"},
		{[]string{"--dev", "--max-receiving", "0"}, nil, "--max-receiving 0 must be positive"},
		{[]string{"--dev", "--response-write-timeout", "0s"}, nil, "--response-write-timeout 0s must be positive"},
		{[]string{"--dev", "--max-connections-per-ip", "-1"}, nil, "--max-connections-per-ip -1 must not be negative (0: no bound)"},
		{[]string{"--dev", "--prefetch-min-page", "-1"}, nil, "--prefetch-min-page -1 must not be negative (0 turns reading ahead off)"},
		{[]string{"--dev", "--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--dev", "--log-level", "loud"}, nil, "log-level"},
		{[]string{"--dev", "extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--dev"}, map[string]string{"AUDITTRAIL_MAX_SCAN": "lots"}, `AUDITTRAIL_MAX_SCAN="lots"`},
		{[]string{"--dev", "--nope"}, nil, "flag provided but not defined"},
		{[]string{"--dev", "--log-keep-checkpoints", "-1h"}, nil, "--log-keep-checkpoints -1h0m0s must not be negative"},
		{[]string{"--dev", "--rate-burst", "10"}, nil, "--rate-burst needs --rate-limit"},
		{[]string{"--dev", "--access-token-ttl", "1ns"}, nil, "--access-token-ttl 1ns: give at least 1m"},
	} {
		m, _ := newTestMain(tc.env)
		err := m.ParseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			continue
		}
		var ec interface{ ExitCode() int }
		if !errors.As(err, &ec) || ec.ExitCode() != 2 {
			t.Errorf("ParseFlags(%q): %v is not a usage error (exit status 2)", tc.args, err)
		}
	}
}

var readyLine = regexp.MustCompile(`^audittrail: ready public=(http://127\.0\.0\.1:\d+) internal=(http://127\.0\.0\.1:\d+)\n`)

// TestServeMainDev runs Main in process in dev mode on free ports: the ready
// line comes first on stdout, then the tokens, which work; the page token key
// is created once and reused.
func TestServeMainDev(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Main, string) {
		m, out := newTestMain(nil)
		if err := m.ParseFlags([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(t.Context()); err != nil {
			m.Close()
			t.Fatal(err)
		}
		return m, out.String()
	}
	m, out := start()
	match := readyLine.FindStringSubmatch(out)
	if match == nil || match[1] != m.PublicURL || match[2] != m.InternalURL {
		t.Fatalf("stdout does not start with the ready line of %s and %s:\n%s", m.PublicURL, m.InternalURL, out)
	}
	if strings.Count(out, "audittrail: ready") != 1 {
		t.Errorf("more than one ready line:\n%s", out)
	}
	reader, producer := m.Config.ReaderToken, m.Config.ProducerToken
	if len(reader) < 32 || len(producer) < 32 || reader == producer {
		t.Errorf("dev tokens %q and %q", reader, producer)
	}
	for _, want := range []string{reader, producer, "audittrail search --addr", "audittrail create --addr", "--sample", "curl"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev help lacks %q:\n%s", want, out)
		}
	}
	search := func(base, token string) int {
		req, _ := http.NewRequest("POST", base+"/v1/events:search", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := search(m.PublicURL, reader); code != http.StatusOK {
		t.Errorf("search with the printed reader token: %d", code)
	}
	if code := search(m.PublicURL, producer); code != http.StatusForbidden {
		t.Errorf("search with the printed producer token: %d, want 403", code)
	}
	key, err := os.ReadFile(filepath.Join(dir, pageTokenKeyFile))
	if err != nil || len(key) != audittrail.PageTokenKeySize {
		t.Fatalf("page token key: %d bytes, %v", len(key), err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, pageTokenKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("page token key mode %v, want 0600", fi.Mode().Perm())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// The second start reuses the key (and, in dev mode, makes new tokens).
	m2, _ := start()
	defer m2.Close()
	if again, _ := os.ReadFile(filepath.Join(dir, pageTokenKeyFile)); !bytes.Equal(again, key) {
		t.Error("the page token key changed across restarts")
	}
	if m2.Config.ReaderToken == reader {
		t.Error("dev mode reused the tokens of the previous run")
	}
}

// TestServeDevExamplesRun: every command of the dev help calls the program
// as it was started (./bin/audittrail after make run), so that each runs
// when copied; the token and backup examples printed "audittrail", which is
// not on the PATH after make run.
func TestServeDevExamplesRun(t *testing.T) {
	defer func(name string) { programName = name }(programName)
	programName = "./bin/audittrail"
	_, out := startDev(t)
	n := 0
	for line := range strings.Lines(out.String()) {
		cmd := strings.TrimSpace(line)
		if strings.HasPrefix(cmd, "curl ") || !strings.Contains(cmd, " --addr ") {
			continue
		}
		n++
		if !strings.HasPrefix(cmd, programName+" ") {
			t.Errorf("the dev help's example %q does not call %s", cmd, programName)
		}
	}
	if n < 4 {
		t.Errorf("%d examples of the program in the dev help, want the create, search, token and backup ones:\n%s", n, out)
	}
}

func TestServeBadPageTokenKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, pageTokenKeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "has 5 bytes, a key has 32") {
		t.Errorf("Run with a bad key = %v", err)
	}
}

// TestServeLogKeyInMissingDirectory: a new log whose --log-key cannot be
// created (its directory does not exist) fails with the reason, not with
// the message for a log that lost its key ("the log has signed checkpoints
// but its signing key ... is missing"), which sent an operator looking for a
// key that never existed.
func TestServeLogKeyInMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "no-such-dir", "log-signing.key")
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", filepath.Join(dir, "data"), "--log-key", key,
		"--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	m.Close()
	if err == nil || strings.Contains(err.Error(), "has signed checkpoints") || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Run of a new log with --log-key %s = %v; want the failure to create it", key, err)
	}
}

func TestServePortInUse(t *testing.T) {
	m1, _ := startDev(t)
	m2, _ := newTestMain(nil)
	if err := m2.ParseFlags([]string{"--dev", "--data-dir", t.TempDir(), "--public-addr", "127.0.0.1:0",
		"--internal-addr", strings.TrimPrefix(m1.InternalURL, "http://")}); err != nil {
		t.Fatal(err)
	}
	err := m2.Run(t.Context())
	if cerr := m2.Close(); cerr != nil {
		t.Errorf("Close after a failed Run: %v", cerr)
	}
	if err == nil || !strings.Contains(err.Error(), "internal listener") {
		t.Errorf("Run on a used port = %v", err)
	}
}

// TestHelpOfEveryCommand: each command the main help lists answers "help
// <command>" and "<command> -h" with its own usage, as the main help says.
func TestHelpOfEveryCommand(t *testing.T) {
	_, list, _ := strings.Cut(mainUsage, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	n := 0
	for line := range strings.SplitSeq(list, "\n") {
		name := strings.Fields(line)[0]
		if name == "help" {
			continue
		}
		n++
		for _, args := range [][]string{{"help", name}, {name, "-h"}} {
			var out, errs bytes.Buffer
			if code := run(t.Context(), args, &out, &errs); code != 0 || !strings.HasPrefix(out.String(), "usage:") || !regexp.MustCompile(`\baudittrail `+name+`\b`).MatchString(out.String()) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant 0 and the usage of %s", args, code, out.String(), errs.String(), name)
			}
		}
	}
	if n < 12 {
		t.Errorf("the main help lists %d commands besides help, want 12", n)
	}
}

func TestRunDispatch(t *testing.T) {
	// run reads the real environment: keep a developer's settings out.
	for _, v := range serveEnv {
		t.Setenv(v, "")
	}
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"version"}, 0, fmt.Sprintf("\npostgres schema version %d\n", postgres.SchemaVersion()), ""},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"help", "serve"}, 0, "--data-dir", ""},
		{[]string{"help", "-h"}, 0, "Commands:", ""},
		{[]string{"help", "help"}, 0, "Commands:", ""},
		// Every command the main help lists has a help of its own.
		{[]string{"help", "version"}, 0, "usage: audittrail version\n", ""},
		{[]string{"version", "-h"}, 0, "usage: audittrail version\n", ""},
		{[]string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"serve", "-h"}, 0, "AUDITTRAIL_READER_TOKEN", ""},
		{nil, 2, "", "usage: audittrail"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"serve", "--data-dir", t.TempDir()}, 2, "", "no tokens"},
	} {
		var out, errs bytes.Buffer
		code := run(t.Context(), tc.args, &out, &errs)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errs.String(), tc.errs) {
			t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errs.String(), tc.code, tc.out, tc.errs)
		}
	}
}
