// Command pagetail times first pages of a search, one request after the
// other, against a running server's public REST listener, and splits each
// request's time into the server's part (until the first byte of the
// answer), the transfer of the body and the client's JSON decoding (with
// encoding/json into every field: bench.RESTAnswer, what the benchmark's
// REST client decodes). It then prints the percentiles of each part and the
// split of the slowest 1 % of requests, with their start times: where the
// tail of first pages comes from (docs/design/performance.md, "Index-bound
// queries").
//
//	go run ./bench/cmd/pagetail -url http://127.0.0.1:8080 -token $READER_TOKEN -n 5000
//
// Over TLS, give the listener's https URL and -ca, the PEM file of the
// certificates that may sign the server's; requests go over HTTP/1.1, as the
// benchmark's and the Python client's do, or over HTTP/2 with -http2.
//
// By default the searches end at the end of the benchmark's generated
// events (-end), so that the self-audit events of the requests themselves
// stay out of the answers.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"time"

	"github.com/audittrail/audittrail/bench"
	"github.com/audittrail/audittrail/internal/sample"
)

// timing is one request: its start and the three parts of its time.
type timing struct {
	at                            time.Time
	total, server, transfer, json time.Duration
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the public listener's `URL`")
	token := flag.String("token", os.Getenv("AUDITTRAIL_READER_TOKEN"), "a reader's bearer `token` (default $AUDITTRAIL_READER_TOKEN)")
	n := flag.Int("n", 2000, "timed requests (after 50 untimed ones)")
	size := flag.Int("page-size", 50, "events per page")
	end := flag.String("end", sample.DefaultEnd.Format(time.RFC3339), "end_event_time of the searches (RFC 3339)")
	caFile := flag.String("ca", "", "over TLS: trust the CA certificates in this PEM `file` (default: the system's roots)")
	http2 := flag.Bool("http2", false, "over TLS: HTTP/2 instead of HTTP/1.1")
	flag.Parse()
	if *token == "" || *n < 1 || *size < 1 {
		fmt.Fprintln(os.Stderr, "pagetail: give -token (or $AUDITTRAIL_READER_TOKEN), -n ≥ 1 and -page-size ≥ 1")
		os.Exit(2)
	}
	body := fmt.Appendf(nil, `{"filter":{"endEventTime":%q},"pageSize":%d}`, *end, *size)
	client, err := newClient(*caFile, *http2)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pagetail: %v\n", err)
		os.Exit(2)
	}
	one := func() (timing, error) {
		var t timing
		var first time.Time
		trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
		req, err := http.NewRequest(http.MethodPost, *url+"/v1/events:search", bytes.NewReader(body))
		if err != nil {
			return t, err
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		req.Header.Set("Authorization", "Bearer "+*token)
		req.Header.Set("Content-Type", "application/json")
		t.at = time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return t, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return t, err
		}
		if resp.StatusCode != http.StatusOK {
			return t, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
		}
		received := time.Now()
		var a bench.RESTAnswer
		if err := json.Unmarshal(data, &a); err != nil {
			return t, fmt.Errorf("decoding the answer: %v", err)
		}
		done := time.Now()
		t.server, t.transfer, t.json, t.total = first.Sub(t.at), received.Sub(first), done.Sub(received), done.Sub(t.at)
		return t, nil
	}
	for range 50 {
		if _, err := one(); err != nil {
			fmt.Fprintln(os.Stderr, "pagetail:", err)
			os.Exit(1)
		}
	}
	ts := make([]timing, 0, *n)
	start := time.Now()
	for range *n {
		t, err := one()
		if err != nil {
			fmt.Fprintln(os.Stderr, "pagetail:", err)
			os.Exit(1)
		}
		ts = append(ts, t)
	}
	fmt.Printf("%d requests in %s, one at a time\n", len(ts), time.Since(start).Round(time.Millisecond))
	for _, part := range []struct {
		name string
		of   func(timing) time.Duration
	}{
		{"total", func(t timing) time.Duration { return t.total }},
		{"server (to the first byte)", func(t timing) time.Duration { return t.server }},
		{"transfer of the body", func(t timing) time.Duration { return t.transfer }},
		{"client's JSON decoding", func(t timing) time.Duration { return t.json }},
	} {
		fmt.Printf("%-28s %s\n", part.name, percentiles(ts, part.of))
	}
	slowest := percentile(sorted(ts, func(t timing) time.Duration { return t.total }), 99)
	fmt.Printf("\nthe requests of %s or more (the slowest 1 %%):\n", slowest.Round(time.Microsecond))
	for _, t := range ts {
		if t.total >= slowest {
			fmt.Printf("%s  total %-9s server %-9s transfer %-9s JSON %s\n", t.at.Format("15:04:05.000000"),
				t.total.Round(time.Microsecond), t.server.Round(time.Microsecond), t.transfer.Round(time.Microsecond), t.json.Round(time.Microsecond))
		}
	}
}

func sorted(ts []timing, of func(timing) time.Duration) []time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = of(t)
	}
	slices.Sort(ds)
	return ds
}

// percentile is the nearest-rank percentile p of the sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}

func percentiles(ts []timing, of func(timing) time.Duration) string {
	ds := sorted(ts, of)
	p := func(q float64) time.Duration { return percentile(ds, q).Round(time.Microsecond) }
	return fmt.Sprintf("p50 %-9s p90 %-9s p99 %-9s p99.9 %-9s max %s", p(50), p(90), p(99), p(99.9), ds[len(ds)-1].Round(time.Microsecond))
}

// newClient returns the HTTP client of the requests: over TLS it trusts
// caFile's certificates (or the system's) and speaks HTTP/1.1 unless http2.
func newClient(caFile string, http2 bool) (*http.Client, error) {
	tc := &tls.Config{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", caFile)
		}
	}
	var p http.Protocols
	p.SetHTTP1(!http2)
	p.SetHTTP2(http2)
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, Protocols: &p}}, nil
}
