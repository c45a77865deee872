package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/server"
	"github.com/audittrail/audittrail/witness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/note"
)

// WitnessCommand implements "audittrail witness": a witness of verifiable
// logs (c2sp.org/tlog-witness), run apart from the logs it watches.
type WitnessCommand struct {
	Stdout, Stderr io.Writer
	// Ready, when set, receives the witness's URL once it listens (tests).
	Ready chan<- string
}

const witnessSynopsis = `usage: audittrail witness --key FILE --log-key PUBKEY [--log-key PUBKEY ...] --state DIR [--listen ADDR]

Runs a witness (c2sp.org/tlog-witness): it cosigns a log's checkpoint only
when a consistency proof shows it extends the latest checkpoint of that log
the witness cosigned, which it keeps in DIR. Logs give it their checkpoints
(serve --witness-policy); verifiers that require its cosignature
(--witness-policy of mirror, tail, window, verify) then know that the
history they are shown is the one the witness saw: a log showing another
history to someone else would have had to fork it past the witness.

Run it apart from the log: another machine, another team, its own key. The
key is created when FILE is missing (named --name); the witness prints its
public key and the line of a policy file that names it. The requests carry
signed checkpoints, so plain HTTP is safe on a private network; otherwise
give it a certificate (--tls-cert, --tls-key, read again when they change; a
log trusts the system's CAs, or those of SSL_CERT_FILE) or put TLS in front
of it. GET /metrics on the same listener gives its counts
per log (audittrail_witness_server_*): alert on forks refused.

Examples:
  audittrail witness --name witness.example.com/audit --key /secrets/witness.key \
      --log-key log-verification.key --state /var/lib/audit-witness --listen :7380

Exit status: 0 stopped by a signal, 1 error, 2 bad usage.
`

type witnessFlags struct {
	key, name, state, listen string
	tlsCert, tlsKey          string
	logKeys                  stringList
}

func newWitnessFlags(f *witnessFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	fs.StringVar(&f.key, "key", "", "the witness's private key `file`, created when missing")
	fs.StringVar(&f.name, "name", "", "the witness's `name` in its cosignatures, URL-like (witness.example.com/audit), for a new key")
	fs.Var(&f.logKeys, "log-key", "public key `file` of a log to cosign (a log-verification.key; repeat for several logs)")
	fs.StringVar(&f.state, "state", "", "`directory` of the latest checkpoint cosigned of each log (created when missing)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7380", "`host:port` to listen on; port 0 picks a free port")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate `file`: serve HTTPS (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	return fs
}

// Usage returns the help text.
func (c *WitnessCommand) Usage() string {
	return usageText(witnessSynopsis, newWitnessFlags(&witnessFlags{}))
}

// Run runs the command with the arguments after "witness".
func (c *WitnessCommand) Run(ctx context.Context, args []string) error {
	var f witnessFlags
	fset := newWitnessFlags(&f)
	if err := parseFlags(fset, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch {
	case fset.NArg() > 0:
		return usageErrorf("unexpected argument %q (see -h)", fset.Arg(0))
	case f.key == "":
		return usageErrorf("give the witness's key file with --key")
	case len(f.logKeys) == 0:
		return usageErrorf("give the public key of a log to cosign with --log-key")
	case f.state == "":
		return usageErrorf("give the state directory with --state")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usageErrorf("give both --tls-cert and --tls-key, or neither")
	}
	var tlsConfig *tls.Config
	if f.tlsCert != "" {
		// Read again when the files change: a renewed certificate is
		// served without a restart.
		getCert, err := server.CertificateReloader(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12}
	}
	logs := map[string][]note.Verifier{}
	for _, file := range f.logKeys {
		v, err := loadVerifier(file, "")
		if err != nil {
			return err
		}
		logs[v.Name()] = append(logs[v.Name()], merkle.Keys(v)...)
	}
	signer, vkey, err := loadWitnessKey(f.key, f.name)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(c.Stderr, nil))
	srv, err := witness.NewServer(witness.ServerConfig{Signer: signer, Logs: logs, StateDir: f.state, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(witnessCollector{srv})
	mux := http.NewServeMux()
	mux.Handle("/add-checkpoint", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second}
	url := "http://" + ln.Addr().String() + "/"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		url = "https://" + strings.TrimPrefix(url, "http://")
	}
	var origins []string
	for o := range logs {
		origins = append(origins, o)
	}
	fmt.Fprintf(c.Stdout, "audittrail witness: ready url=%s key=%s logs=%s\n", url, vkey, strings.Join(origins, ","))
	fmt.Fprintf(c.Stdout, "policy line: witness %s %s %s\n", policyName(signer.Name()), vkey, url)
	if c.Ready != nil {
		c.Ready <- url
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// witnessCollector exports a witness Server's counts by log origin.
type witnessCollector struct{ srv *witness.Server }

var witnessDescs = struct{ cosigned, conflicts, forks, refused, size *prometheus.Desc }{
	prometheus.NewDesc("audittrail_witness_server_cosigned_total", "Checkpoints of the log this witness cosigned.", []string{"origin"}, nil),
	prometheus.NewDesc("audittrail_witness_server_conflicts_total", "Requests answered 409 because the log's idea of the witness's size was wrong (normal after either restarts).", []string{"origin"}, nil),
	prometheus.NewDesc("audittrail_witness_server_forks_refused_total", "Checkpoints refused as not extending the tree cosigned (same size with another root, or a consistency proof that does not verify): the log showed two histories. Alert on any.", []string{"origin"}, nil),
	prometheus.NewDesc("audittrail_witness_server_refused_total", "Other refused requests: no valid signature by the log's keys, malformed requests.", []string{"origin"}, nil),
	prometheus.NewDesc("audittrail_witness_server_cosigned_tree_size", "Size of the latest tree of the log this witness cosigned.", []string{"origin"}, nil),
}

func (c witnessCollector) Describe(ch chan<- *prometheus.Desc) {
	d := witnessDescs
	for _, x := range []*prometheus.Desc{d.cosigned, d.conflicts, d.forks, d.refused, d.size} {
		ch <- x
	}
}

func (c witnessCollector) Collect(ch chan<- prometheus.Metric) {
	d := witnessDescs
	for origin, st := range c.srv.Stats() {
		ch <- prometheus.MustNewConstMetric(d.cosigned, prometheus.CounterValue, float64(st.Cosigned), origin)
		ch <- prometheus.MustNewConstMetric(d.conflicts, prometheus.CounterValue, float64(st.Conflict), origin)
		ch <- prometheus.MustNewConstMetric(d.forks, prometheus.CounterValue, float64(st.Forked), origin)
		ch <- prometheus.MustNewConstMetric(d.refused, prometheus.CounterValue, float64(st.Refused), origin)
		ch <- prometheus.MustNewConstMetric(d.size, prometheus.GaugeValue, float64(st.Size), origin)
	}
}

// loadWitnessKey reads the witness's private key file, creating it (named
// name) when missing.
func loadWitnessKey(file, name string) (note.Signer, string, error) {
	text, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if name == "" {
			return nil, "", usageErrorf("%s does not exist: give --name to create a new witness key", file)
		}
		if !merkle.ValidOrigin(name) {
			return nil, "", usageErrorf("--name %q: a name of 1 to 255 printable bytes, without spaces or '+'", name)
		}
		skey, _, err := witness.GenerateKey(name)
		if err != nil {
			return nil, "", err
		}
		if err := durablefile.Create(file, []byte(skey+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		text = []byte(skey)
	} else if err != nil {
		return nil, "", err
	}
	signer, vkey, err := witness.NewCosignatureSigner(string(text))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	if name != "" && signer.Name() != name {
		return nil, "", fmt.Errorf("%s is the key of %q, not %q", file, signer.Name(), name)
	}
	return signer, vkey, nil
}

// policyName is a short name for a policy file's witness line: the last
// element of the witness's name.
func policyName(name string) string {
	name = name[strings.LastIndex(name, "/")+1:]
	if name == "" {
		return "w1"
	}
	return name
}
