// Command auditbench runs the benchmark of the audit trail service and
// writes its figures into BENCHMARKS.md:
//
//	go run ./bench/cmd/auditbench -sizes 1000000,10000000 -out BENCHMARKS.md
//
// It builds ./cmd/audittrail, ingests a deterministic sample load through the
// API, runs the query suite through REST and gRPC, runs the same queries as
// hand-written SQL on a throwaway PostgreSQL, and checks that all answers
// agree. See package bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/bench"
)

type sizesFlag []int

func (s *sizesFlag) String() string {
	var p []string
	for _, n := range *s {
		p = append(p, strconv.Itoa(n))
	}
	return strings.Join(p, ",")
}

func (s *sizesFlag) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		mult := 1
		switch {
		case strings.HasSuffix(f, "M"), strings.HasSuffix(f, "m"):
			mult, f = 1_000_000, f[:len(f)-1]
		case strings.HasSuffix(f, "k"), strings.HasSuffix(f, "K"):
			mult, f = 1000, f[:len(f)-1]
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("bad size %q", v)
		}
		*s = append(*s, n*mult)
	}
	return nil
}

func main() {
	var (
		sizes   sizesFlag
		cfg     bench.Config
		out     string
		quick   bool
		runs    int
		workDir string
	)
	flag.Var(&sizes, "sizes", "comma-separated dataset `sizes` in events (1000000 or 1M), run in order")
	flag.Var(&sizes, "events", "a dataset size `N` in events; repeatable (adds to -sizes)")
	flag.StringVar(&out, "out", "", "write the figures into this Markdown `file` (between its auditbench markers); empty: standard output")
	flag.BoolVar(&quick, "quick", false, "smoke run: 20,000 events, 30 runs (ignores -sizes)")
	flag.BoolVar(&cfg.Postgres, "postgres", true, "run the PostgreSQL baseline (hand-written SQL)")
	flag.BoolVar(&cfg.PGStore, "pgstore", true, "run the server on the PostgreSQL store (skipped, with a note, when the binary has no --store flag)")
	flag.StringVar(&cfg.ProfileDir, "profile", "", "record CPU profiles into `dir`: the server with perf (it has no pprof endpoint), the client with pprof")
	// 200 runs make the nearest-rank p99 the 198th of 200 rather than
	// the slowest run (what it is over 30 runs, the minimum).
	flag.IntVar(&runs, "runs", 200, "timed runs per query and system (p99 is by nearest rank: over fewer than 100 runs, the slowest)")
	flag.Int64Var(&cfg.Seed, "seed", 1, "seed of the generated events")
	flag.IntVar(&cfg.Batch, "batch", 1000, "events per BatchCreateEvents call and per multi-row INSERT")
	flag.IntVar(&cfg.Producers, "producers", 4, "concurrent batch producers (and COPY streams)")
	flag.IntVar(&cfg.SingleProducers, "single-producers", 64, "concurrent CreateEvent producers (and single-row INSERT connections)")
	flag.IntVar(&cfg.SingleEvents, "single-events", 0, "events sent one by one with CreateEvent, the first of the stream (0: a tenth of the size, at most 20,000)")
	flag.IntVar(&cfg.MeasureEvents, "pg-measure", 1_000_000, "PostgreSQL baseline: events per measured ingest method (COPY; INSERT); the rest of a larger size is bulk-loaded (0: all)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 16, "clients of the concurrent searches run on each system after the suite (0: none)")
	flag.DurationVar(&cfg.ConcurrentTime, "concurrent-time", 5*time.Second, "timed length of the concurrent searches on each system")
	flag.DurationVar(&cfg.QueryBudget, "query-budget", 30*time.Second, "bound on the timed runs of one query on one system: a query slower than budget/runs gets fewer runs (at least 5; 0: no bound)")
	flag.IntVar(&cfg.PGStoreMax, "pgstore-max", 0, "largest size run on the PostgreSQL store (0: every size)")
	flag.IntVar(&cfg.PGStoreSuiteMax, "pgstore-suite-max", 0, "largest size at which the PostgreSQL store runs the query suite; above it, only its ingest, disk and memory are measured (0: every size)")
	flag.IntVar(&cfg.CopyBatch, "copy-batch", 10_000, "rows per COPY statement")
	flag.BoolVar(&cfg.TLS, "tls", false, "serve our server's listeners over TLS (a self-signed certificate made for the run, verified by every client; REST over HTTP/1.1); the PostgreSQL baseline is unchanged")
	flag.StringVar(&cfg.Bin, "bin", "", "the audittrail `binary` to measure (default: build ./cmd/audittrail)")
	flag.StringVar(&workDir, "workdir", "", "work `directory` for data (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory and the databases")
	var jsonOut, render string
	flag.StringVar(&jsonOut, "json", "", "also write the raw results to this JSON `file`")
	flag.StringVar(&render, "render", "", "do not run: render the results of earlier runs (comma-separated -json `files`, merged by size) into -out")
	flag.Parse()
	if render != "" {
		res, err := bench.LoadResults(strings.Split(render, ",")...)
		if err == nil {
			if out == "" {
				fmt.Print(bench.Markdown(res))
			} else {
				err = bench.WriteReport(out, res)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "auditbench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "auditbench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if quick {
		sizes = sizesFlag{20_000}
		if !flagSet("runs") {
			runs = 30
		}
	}
	if len(sizes) == 0 {
		sizes = sizesFlag{1_000_000}
	}
	cfg.Sizes, cfg.Runs, cfg.WorkDir = sizes, runs, workDir
	cfg.Command = commandLine()
	mod, err := moduleRoot()
	if err != nil && cfg.Bin == "" {
		fmt.Fprintf(os.Stderr, "auditbench: %v (run it inside the audittrail module, or give -bin)\n", err)
		os.Exit(1)
	}
	cfg.ModuleDir = mod

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "auditbench: received %v: stopping (a second signal ends the process at once)\n", s)
		cancel()
		signal.Stop(sigs)
	}()
	res, err := bench.Run(ctx, cfg)
	if res != nil && jsonOut != "" {
		if werr := bench.SaveResults(jsonOut, res); werr != nil {
			fmt.Fprintf(os.Stderr, "auditbench: writing %s: %v\n", jsonOut, werr)
		}
	}
	if res != nil && len(res.Sizes) > 0 {
		if res.Finished.IsZero() {
			res.Notes = append(res.Notes, fmt.Sprintf("the run did not finish: %v", err))
		}
		if out == "" {
			fmt.Print(bench.Markdown(res))
		} else if werr := bench.WriteReport(out, res); werr != nil {
			fmt.Fprintf(os.Stderr, "auditbench: writing %s: %v\n", out, werr)
			os.Exit(1)
		} else {
			fmt.Fprintf(os.Stderr, "auditbench: wrote %s\n", out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "auditbench: %v\n", err)
		os.Exit(1)
	}
	if len(res.Mismatches) > 0 {
		fmt.Fprintf(os.Stderr, "auditbench: %d ANSWERS DIFFER FROM THE ORACLE:\n", len(res.Mismatches))
		for _, m := range res.Mismatches {
			fmt.Fprintf(os.Stderr, "  %s\n", m)
		}
		os.Exit(3)
	}
}

// commandLine is how the benchmark was started, for the report. `go run`
// builds into a temporary directory; report the package path instead.
func commandLine() string {
	args := os.Args[1:]
	name := filepath.Base(os.Args[0])
	if strings.Contains(os.Args[0], "go-build") {
		name = "go run ./bench/cmd/auditbench"
	}
	return strings.TrimSpace(name + " " + strings.Join(args, " "))
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// flagSet says whether the flag name was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
