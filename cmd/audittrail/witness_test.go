package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/internal/testpki"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/witness"
	"golang.org/x/mod/sumdb/note"
)

// witnessProcess is "audittrail witness" run from the built binary.
type witnessProcess struct {
	cmd        *exec.Cmd
	out        *syncbuf.Buffer
	url        string
	policyLine string
	vkey       string
}

// startWitnessProcess runs the witness binary with args and waits for its
// ready lines.
func startWitnessProcess(t *testing.T, args ...string) *witnessProcess {
	t.Helper()
	w := &witnessProcess{out: &syncbuf.Buffer{}}
	w.cmd = exec.Command(testserver.Binary(t), append([]string{"witness"}, args...)...)
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.stop(t)
		if t.Failed() {
			t.Logf("audittrail witness output:\n%s", w.out.String())
		}
	})
	sc := bufio.NewScanner(stdout)
	for w.policyLine == "" && sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w.out, line)
		if rest, ok := strings.CutPrefix(line, "audittrail witness: ready url="); ok {
			w.url, _, _ = strings.Cut(rest, " ")
			_, key, _ := strings.Cut(rest, " key=")
			w.vkey, _, _ = strings.Cut(key, " ")
		}
		if rest, ok := strings.CutPrefix(line, "policy line: "); ok {
			w.policyLine = rest + "\n"
		}
	}
	if w.policyLine == "" || w.url == "" {
		t.Fatalf("the witness did not print its ready lines:\n%s", w.out.String())
	}
	go io.Copy(w.out, stdout)
	return w
}

func (w *witnessProcess) stop(t *testing.T) {
	if w.cmd.ProcessState != nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the witness exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		w.cmd.Process.Kill()
		t.Errorf("the witness did not stop on SIGTERM")
	}
}

// logKeyFiles makes a signing key for a log in dir (audittrail keygen)
// and writes its public key beside it.
func logKeyFiles(t *testing.T, dir string) (signing, public string) {
	t.Helper()
	signing, public = filepath.Join(dir, "log-signing.key"), filepath.Join(dir, "log.pub")
	if err := os.WriteFile(public, []byte(runOK(t, "keygen", signing)), 0o644); err != nil {
		t.Fatal(err)
	}
	return signing, public
}

// writePolicy writes a witness policy file in dir and parses it.
func writePolicy(t *testing.T, dir, name, text string) (string, *witness.Policy) {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := witness.LoadPolicy(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWitnessEndToEnd runs a log with a witness, both the real binary: the
// server asks the witness to cosign every checkpoint, clients with the
// policy accept what it cosigned and refuse what it did not, the witness
// and the server each restart without breaking the exchange, and the
// witness refuses to cosign a history that does not extend the one it saw.
func TestWitnessEndToEnd(t *testing.T) {
	dir := t.TempDir()
	logKey, pub := logKeyFiles(t, dir)
	wAddr := freeAddr(t)
	wArgs := []string{"--name", "witness.test/w1", "--key", filepath.Join(dir, "w1.key"), "--log-key", pub,
		"--state", filepath.Join(dir, "w1-state"), "--listen", wAddr}
	w := startWitnessProcess(t, wArgs...)
	if !strings.HasPrefix(w.policyLine, "witness w1 "+w.vkey+" http://"+wAddr+"/") {
		t.Fatalf("policy line %q", w.policyLine)
	}
	policyFile, policy := writePolicy(t, dir, "policy", "# the team's witness\n"+w.policyLine+"quorum w1\n")
	srv := testserver.Start(t, "--log-key", logKey, "--witness-policy", policyFile)
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	logVerifier := mustVerifier(t, pub)
	created := 0
	create := func(n int) {
		t.Helper()
		out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken,
			"--sample", strconv.Itoa(n), "--seed", strconv.Itoa(created+1), "--batch", "50")
		if err != nil {
			t.Fatalf("create: %v %s", err, out)
		}
		created += n
	}
	// latest waits for a checkpoint covering the events created (the
	// server's own self-audit events count too) and returns it.
	latest := func() ([]byte, *merkle.Checkpoint) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			text, err := auditor.Checkpoint(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			cp, err := merkle.OpenCheckpoint(text, logVerifier)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Size >= uint64(created) {
				return text, cp
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of %d events within 30 s (latest of %d)", created, cp.Size)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// cosigned waits until a checkpoint of the events created is cosigned.
	cosigned := func() ([]byte, *merkle.Checkpoint) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			text, cp := latest()
			if policy.Check(text) == nil {
				return text, cp
			}
			if time.Now().After(deadline) {
				t.Fatalf("no cosigned checkpoint within 30 s; the latest:\n%s", text)
			}
			create(1) // a new checkpoint to cosign
			time.Sleep(200 * time.Millisecond)
		}
	}

	create(100)
	text, cp := cosigned()
	cpFile := filepath.Join(dir, "cp")
	if err := os.WriteFile(cpFile, text, 0o644); err != nil {
		t.Fatal(err)
	}
	// The witness's state holds what it cosigned (or a newer one).
	var state struct {
		Logs map[string]struct{ Size uint64 } `json:"logs"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "w1-state", "witness-state.json"))
	if err == nil {
		err = json.Unmarshal(data, &state)
	}
	if err != nil || state.Logs[cp.Origin].Size < cp.Size {
		t.Fatalf("the witness's state %s (%v), want a size of at least %d", data, err, cp.Size)
	}

	// Clients with the policy: verify, mirror.
	out := runOK(t, "verify", "checkpoint", "--key", pub, "--witness-policy", policyFile, cpFile)
	if !strings.Contains(out, "size") {
		t.Fatalf("verify checkpoint printed %q", out)
	}
	mirrorDir := filepath.Join(dir, "mirror")
	mirror := []string{"mirror", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--dir", mirrorDir, "--log-key", pub}
	if out := runOK(t, append(mirror, "--witness-policy", policyFile)...); !strings.Contains(out, "verified against the checkpoint") {
		t.Fatalf("mirror printed %q", out)
	}
	// A policy that also requires a witness the log does not ask: the
	// same checkpoints are refused, with the reason.
	_, vkey2, err := witness.GenerateKey("witness.test/w2")
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := writePolicy(t, dir, "strict-policy", w.policyLine+"witness w2 "+vkey2+" http://127.0.0.1:1/\ngroup both all w1 w2\nquorum both\n")
	for _, args := range [][]string{
		{"verify", "checkpoint", "--key", pub, "--witness-policy", strict, cpFile},
		append(mirror, "--witness-policy", strict),
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "cosigned by witnesses w1, short of the policy's quorum \"both\" (not cosigned by w2)") {
			t.Fatalf("%q with a policy the checkpoint misses: exit %d, %s%s", args[:2], code, stdout.String(), stderr.String())
		}
	}

	// The witness stops: checkpoints go on, without its cosignature, and
	// the server counts the failures.
	w.stop(t)
	create(20)
	text, _ = latest()
	if err := policy.Check(text); err == nil {
		t.Fatalf("a checkpoint signed while the witness was down is cosigned:\n%s", text)
	}
	if f := metricValue(t, srv.InternalURL, `audittrail_witness_failures_total{witness="w1"}`); f < 1 {
		t.Fatalf("witness failures %v while it was down", f)
	}
	// Clients with the policy wait instead of failing: not the log's
	// fault. A one-shot mirror says why it did nothing; a following mirror
	// keeps trying (it stops only on evidence against the log); a tail
	// round waits.
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append(mirror, "--witness-policy", policyFile), &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "not cosigned as the witness policy requires") || strings.Contains(stderr.String(), "verification failed") {
		t.Fatalf("mirror with the policy while the witness is down: exit %d, %s%s", code, stdout.String(), stderr.String())
	}
	tailState := filepath.Join(dir, "tail.state")
	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), []string{"tail", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--log-key", pub,
		"--witness-policy", policyFile, "--state", tailState, "--once"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "not cosigned as --witness-policy requires: waiting") {
		t.Fatalf("tail with the policy while the witness is down: exit %d, %s%s", code, stdout.String(), stderr.String())
	}
	followCtx, stopFollow := context.WithCancel(t.Context())
	defer stopFollow()
	var followOut, followErr syncbuf.Buffer
	followed := make(chan int, 1)
	go func() {
		follow := []string{"mirror", "--addr", srv.PublicAddr, "--token", srv.ReaderToken, "--dir", filepath.Join(dir, "mirror2"), "--log-key", pub,
			"--witness-policy", policyFile, "--follow", "200ms"}
		followed <- run(followCtx, follow, &followOut, &followErr)
	}()
	time.Sleep(time.Second)
	if strings.Contains(followOut.String(), "verified") || !strings.Contains(followErr.String(), "not cosigned as the witness policy requires") {
		t.Fatalf("mirror --follow while the witness is down: %s%s", followOut.String(), followErr.String())
	}
	select {
	case code := <-followed:
		t.Fatalf("mirror --follow stopped while the witness was down: exit %d, %s%s", code, followOut.String(), followErr.String())
	default:
	}

	// A mirror updated without the policy meanwhile keeps that checkpoint.
	runOK(t, mirror...)

	// It comes back on the same state: the server asks again after its
	// retry time, with a proof from the size the witness holds.
	w = startWitnessProcess(t, wArgs...)
	_, cp2 := cosigned()
	if cp2.Size <= cp.Size {
		t.Fatalf("cosigned after the witness's restart: %d, before %d", cp2.Size, cp.Size)
	}
	// The following mirror catches up once a checkpoint is cosigned.
	// (It had updated nothing: its first round met the uncosigned
	// checkpoint.)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(followOut.String(), "verified against the checkpoint of size"); {
		if time.Now().After(deadline) {
			t.Fatalf("mirror --follow did not update to a cosigned checkpoint of at least %d: %s%s", cp2.Size, followOut.String(), followErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopFollow()
	if code := <-followed; code != 0 {
		t.Fatalf("mirror --follow: exit %d: %s%s", code, followOut.String(), followErr.String())
	}
	// The mirror's saved checkpoint is not cosigned, but it was accepted
	// when saved: the policy applies to the new one.
	if out := runOK(t, append(mirror, "--witness-policy", policyFile)...); !strings.Contains(out, "verified against the checkpoint") {
		t.Fatalf("mirror with the policy after an update without: %q", out)
	}

	// The server restarts: its new Cosigner learns the witness's size from
	// a 409 and proves from there.
	srv.Restart()
	auditor.Close()
	if auditor, err = client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken)); err != nil {
		t.Fatal(err)
	}
	create(10)
	_, cp3 := cosigned()
	if cp3.Size <= cp2.Size {
		t.Fatalf("cosigned after the server's restart: %d, before %d", cp3.Size, cp2.Size)
	}
	if c := metricValue(t, srv.InternalURL, `audittrail_witness_cosignatures_total{witness="w1"}`); c < 1 {
		t.Fatalf("cosignatures counted after the restart: %v", c)
	}
	if s := metricValue(t, srv.InternalURL, `audittrail_witness_cosigned_tree_size{witness="w1"}`); s < float64(cp3.Size) {
		t.Fatalf("cosigned size %v, want at least %d", s, cp3.Size)
	}

	// Another log under the same name and key shows the witness a history
	// that does not extend the one it cosigned: it refuses (a fork). While
	// the fork is smaller than what the witness holds, its server does not
	// even ask (the witness's 409 says it holds a larger tree); past it,
	// the witness checks its proof and refuses.
	fork := testserver.Start(t, "--log-key", logKey, "--witness-policy", policyFile)
	out, _, err = runCommand(t, "create", "--addr", fork.InternalAddr, "--token", fork.ProducerToken,
		"--sample", strconv.Itoa(int(cp3.Size)+50), "--seed", "99")
	if err != nil {
		t.Fatalf("create on the fork: %v %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.out.String(), "not proven consistent") && !strings.Contains(w.out.String(), "another root hash") {
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not report the fork; its output:\n%s\nthe fork's:\n%s", w.out.String(), fork.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f := metricValue(t, strings.TrimSuffix(w.url, "/"), `audittrail_witness_server_forks_refused_total{origin="audittrail/log"}`); f < 1 {
		t.Fatalf("the witness's /metrics counts %v forks refused", f)
	}
	if !strings.Contains(fork.Logs(), "witness: no cosignature") {
		t.Fatalf("the fork's server did not log the refusal:\n%s", fork.Logs())
	}
}

// TestWitnessQuorumRequired: with --witness-quorum-required the server
// stores only cosigned checkpoints. Its witness down, the served checkpoint
// stays the last cosigned one while events arrive (each withheld round
// counted, the withholding logged); the witness back, the next checkpoint
// is cosigned and covers them all (with --witness-interval, asked at most
// every 300 ms: logsign's TestWitnessInterval counts the requests). Without
// --witness-policy either flag is a usage error.
func TestWitnessQuorumRequired(t *testing.T) {
	dir := t.TempDir()
	logKey, pub := logKeyFiles(t, dir)
	wArgs := []string{"--name", "witness.test/w1", "--key", filepath.Join(dir, "w1.key"), "--log-key", pub,
		"--state", filepath.Join(dir, "w1-state"), "--listen", freeAddr(t)}
	w := startWitnessProcess(t, wArgs...)
	policyFile, policy := writePolicy(t, dir, "policy", w.policyLine+"quorum w1\n")
	verifier := merkle.Witnessed(mustVerifier(t, pub), policy)
	srv := testserver.Start(t, "--log-key", logKey, "--witness-policy", policyFile, "--witness-quorum-required", "--witness-interval", "300ms")
	create := func(n int, seed string) {
		t.Helper()
		if out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", strconv.Itoa(n), "--seed", seed); err != nil {
			t.Fatalf("create: %v %s", err, out)
		}
	}
	create(50, "1")
	waitCosigned(t, srv, verifier, 50)

	w.stop(t)
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	before, err := auditor.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	create(50, "2")
	for deadline := time.Now().Add(30 * time.Second); metricValue(t, srv.InternalURL, "audittrail_log_checkpoints_withheld_total") < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint withheld within 30 s while the witness was down:\n%s", srv.Logs())
		}
	}
	text, err := auditor.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(text, before) {
		t.Fatalf("the served checkpoint changed while the witness was down:\n%s\nbefore:\n%s", text, before)
	}
	if err := policy.Check(text); err != nil {
		t.Fatalf("the served checkpoint is not cosigned: %v", err)
	}
	if n := strings.Count(srv.Logs(), "checkpoints withheld until the witnesses' quorum cosigns one"); n != 1 {
		t.Fatalf("the withholding logged %d times, want once:\n%s", n, srv.Logs())
	}

	w = startWitnessProcess(t, wArgs...)
	defer w.stop(t)
	waitCosigned(t, srv, verifier, 100)

	for flag, want := range map[string]string{
		"--witness-quorum-required": "--witness-quorum-required needs --witness-policy",
		"--witness-interval=1m":     "--witness-interval 1m0s needs --witness-policy",
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"serve", "--dev", "--data-dir", t.TempDir(), flag}, &stdout, &stderr); code != 2 ||
			!strings.Contains(stderr.String(), want) {
			t.Fatalf("%s alone: exit %d, %s%s", flag, code, stdout.String(), stderr.String())
		}
	}
}

// waitCosigned waits up to 30 s for the server's latest checkpoint to be of
// at least size leaves and to open with verifier (a Witnessed one: its
// quorum of cosignatures), and returns it.
func waitCosigned(t *testing.T, srv *testserver.Server, verifier note.Verifier, size uint64) *merkle.Checkpoint {
	t.Helper()
	auditor, err := client.Dial(t.Context(), srv.PublicAddr, client.WithToken(srv.ReaderToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		text, err := auditor.Checkpoint(t.Context())
		if err == nil {
			var cp *merkle.Checkpoint
			if cp, err = merkle.OpenCheckpoint(text, verifier); err == nil && cp.Size >= size {
				return cp
			}
			if err == nil {
				err = fmt.Errorf("the latest checkpoint is of %d leaves", cp.Size)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cosigned checkpoint of %d leaves within 30 s: %v\nserver:\n%s", size, err, srv.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue reads one sample of the server's /metrics.
func metricValue(t *testing.T, internalURL, sample string) float64 {
	t.Helper()
	resp, err := http.Get(internalURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s in /metrics", sample)
	return 0
}

// TestWitnessPostgresReplicas: on the PostgreSQL store the replica that
// leads the log has the checkpoints cosigned, and every replica serves
// them with their cosignatures (they are stored with them).
func TestWitnessPostgresReplicas(t *testing.T) {
	url := pgtest.Start(t)
	dir := t.TempDir()
	logKey, pub := logKeyFiles(t, dir)
	w := startWitnessProcess(t, "--name", "witness.test/w1", "--key", filepath.Join(dir, "w1.key"), "--log-key", pub,
		"--state", filepath.Join(dir, "w1-state"), "--listen", "127.0.0.1:0")
	policyFile, policy := writePolicy(t, dir, "policy", w.policyLine+"quorum w1\n")
	verifier := merkle.Witnessed(mustVerifier(t, pub), policy)
	replicas := []*testserver.Server{
		testserver.Start(t, "--store", url, "--log-key", logKey, "--witness-policy", policyFile),
		testserver.Start(t, "--store", url, "--log-key", logKey, "--witness-policy", policyFile),
	}
	out, _, err := runCommand(t, "create", "--addr", replicas[0].InternalAddr, "--token", replicas[0].ProducerToken, "--sample", "200", "--seed", "7")
	if err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	for _, r := range replicas {
		waitCosigned(t, r, verifier, 200)
	}
}

// TestWitnessTLS: a witness serving HTTPS with its own certificate, which
// the log trusts through SSL_CERT_FILE (Go's system roots on Linux).
func TestWitnessTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.IssueFiles(2, "127.0.0.1", false)
	logKey, pub := logKeyFiles(t, dir)
	w := startWitnessProcess(t, "--name", "witness.test/tls", "--key", filepath.Join(dir, "w.key"), "--log-key", pub,
		"--state", filepath.Join(dir, "state"), "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(w.url, "https://127.0.0.1:") {
		t.Fatalf("the witness's URL %q", w.url)
	}
	// Not over plain HTTP.
	if resp, err := http.Post(strings.Replace(w.url, "https", "http", 1)+"add-checkpoint", "text/plain", strings.NewReader("old 0\n\n")); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS witness: %s", resp.Status)
		}
	}
	policyFile, policy := writePolicy(t, dir, "policy", w.policyLine+"quorum tls\n")
	t.Setenv("SSL_CERT_FILE", caFile) // inherited by the server's process
	srv := testserver.Start(t, "--log-key", logKey, "--witness-policy", policyFile)
	out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", "20", "--seed", "3")
	if err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	verifier := merkle.Witnessed(mustVerifier(t, pub), policy)
	waitCosigned(t, srv, verifier, 20)

	// A renewed certificate is served without a restart, and the log goes
	// on with it.
	served := func() int64 {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		conn, err := tls.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(w.url, "https://"), "/"), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := served(); s != 2 {
		t.Fatalf("the witness serves certificate %d, want 2", s)
	}
	renewedCert, renewedKey := ca.IssueFiles(3, "127.0.0.1", false)
	for _, f := range [][2]string{{renewedCert, certFile}, {renewedKey, keyFile}} {
		data, err := os.ReadFile(f[0])
		if err == nil {
			err = os.WriteFile(f[1]+".new", data, 0o600)
		}
		if err == nil {
			err = os.Rename(f[1]+".new", f[1])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); served() != 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the witness still serves the old certificate 10 s after it was renewed")
		}
	}
	out, _, err = runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", "20", "--seed", "4")
	if err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	waitCosigned(t, srv, verifier, 40)
}
