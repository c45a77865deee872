// Command draintime times drains, every page of a search one request after
// the other, through the Go client (gRPC) against a running server, and
// reports their latency and the CPU they cost the server (with -server-pid)
// and the client itself: what a drain costs with and without TLS
// (docs/design/performance.md, "TLS").
//
//	go run ./bench/cmd/draintime -addr 127.0.0.1:8080 -token $READER_TOKEN \
//	    -workspace workspaces/<id> -n 20 -server-pid <pid> [-ca server.pem]
//
// The first three drains are not timed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/bench"
	"github.com/audittrail/audittrail/client"
)

const untimed = 3

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the public listener (`host:port`, or an https:// URL)")
	token := flag.String("token", os.Getenv("AUDITTRAIL_READER_TOKEN"), "a reader's bearer `token` (default $AUDITTRAIL_READER_TOKEN)")
	caFile := flag.String("ca", "", "connect with TLS, trusting the certificates in this PEM `file`")
	workspace := flag.String("workspace", "", "the drained search: events of this `workspace`")
	pageSize := flag.Int("page-size", 1000, "events per page")
	n := flag.Int("n", 20, "timed drains")
	serverPID := flag.Int("server-pid", 0, "the server's process id, for its CPU time (0: not measured)")
	flag.Parse()
	if *token == "" || *workspace == "" || *n < 1 {
		fmt.Fprintln(os.Stderr, "draintime: give -token, -workspace and -n ≥ 1")
		os.Exit(2)
	}
	opts := []client.Option{client.WithToken(*token)}
	if *caFile != "" {
		opts = append(opts, client.WithTLS(*caFile))
	}
	c, err := client.Dial(context.Background(), *addr, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "draintime: %v\n", err)
		os.Exit(2)
	}
	defer c.Close()
	var f audittrail.Filter
	f.Exact[audittrail.FieldWorkspace] = *workspace
	serverCPU := func() time.Duration {
		if *serverPID == 0 {
			return 0
		}
		return bench.ProcTreeCPU(*serverPID)
	}
	var lat bench.Latencies
	var server0, self0 time.Duration
	events := 0
	for i := range *n + untimed {
		if i == untimed {
			server0, self0 = serverCPU(), bench.SelfCPU()
		}
		start := time.Now()
		got := 0
		for _, err := range c.Events(context.Background(), f, *pageSize) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "draintime: %v\n", err)
				os.Exit(1)
			}
			got++
		}
		if i >= untimed {
			lat = append(lat, time.Since(start))
		}
		events = got
	}
	per := func(d time.Duration) time.Duration { return d / time.Duration(*n) }
	fmt.Printf("%d drains of %d events: p50 %v, fastest %v, slowest %v; CPU per drain: server %v, this client %v\n",
		*n, events, lat.Pct(50).Round(100*time.Microsecond), lat.Pct(0).Round(100*time.Microsecond), lat.Max().Round(100*time.Microsecond),
		per(serverCPU()-server0).Round(100*time.Microsecond), per(bench.SelfCPU()-self0).Round(100*time.Microsecond))
}
