package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/syncbuf"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/merkle"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"
)

// TestLitewitnessInterop has our log cosigned by a witness we did not
// write: litewitness (filippo.io/torchwood, v0.6.1, built from
// tests/interop/litewitness), an independent implementation of
// c2sp.org/tlog-witness and tlog-cosignature. The server asks it to cosign
// its checkpoints (first contact, then growth with consistency proofs),
// and our policy check accepts its cosignatures.
//
// litewitness takes its key from an ssh-agent (served here in process by
// x/crypto's agent package) and its logs from a SQLite database (written
// here with Python's sqlite3, the rows its witnessctl would insert).
func TestLitewitnessInterop(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed to write litewitness's database: install it (make test installs the rest)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "litewitness")
	build := exec.Command("go", "build", "-o", bin, "filippo.io/torchwood/cmd/litewitness")
	build.Dir = filepath.Join("..", "..", "tests", "interop", "litewitness")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building litewitness: %v\n%s", err, out)
	}

	// The log's key, named as our logs are by default.
	logKey, pubFile := logKeyFiles(t, dir)
	logPub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	logVerifier := mustVerifier(t, pubFile)
	origin := logVerifier.Name()

	// The witness's key, in an ssh-agent.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(keyring, c) }()
		}
	}()
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}

	// The database: the log and its key, as `witnessctl add-log` and
	// `add-key` write them (litewitness creates the same tables if absent).
	db := filepath.Join(dir, "litewitness.db")
	empty := sha256.Sum256(nil)
	py := exec.Command("python3", "-c", `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE IF NOT EXISTS log (origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, tree_hash TEXT NOT NULL)")
db.execute("CREATE TABLE IF NOT EXISTS key (origin TEXT NOT NULL, key TEXT NOT NULL, FOREIGN KEY(origin) REFERENCES log(origin))")
db.execute("INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)", (sys.argv[2], sys.argv[3]))
db.execute("INSERT INTO key (origin, key) VALUES (?, ?)", (sys.argv[2], sys.argv[4]))
db.commit()
`, db, origin, base64.StdEncoding.EncodeToString(empty[:]), strings.TrimSpace(string(logPub)))
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("writing litewitness's database: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	const name = "witness.test/litewitness"
	lw := exec.Command(bin, "-name", name, "-db", db, "-ssh-agent", sock, "-key", ssh.FingerprintSHA256(sshPub), "-listen", addr)
	logs := &syncbuf.Buffer{}
	lw.Stdout, lw.Stderr = logs, logs
	if err := lw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		lw.Process.Kill()
		lw.Wait()
		if t.Failed() {
			t.Logf("litewitness output:\n%s", logs.String())
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("litewitness does not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The policy names it by its cosignature key (type 0x04).
	plain, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(plain)
	if err != nil {
		t.Fatal(err)
	}
	policyFile, policy := writePolicy(t, dir, "policy", "witness lite "+vkey+" http://"+addr+"/\nquorum lite\n")

	srv := testserver.Start(t, "--log-key", logKey, "--witness-policy", policyFile)
	// First contact, then growth by a consistency proof.
	if out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", "30", "--seed", "1"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	first := waitCosigned(t, srv, merkle.Witnessed(logVerifier, policy), 30)
	if out, _, err := runCommand(t, "create", "--addr", srv.InternalAddr, "--token", srv.ProducerToken, "--sample", "500", "--seed", "2"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	second := waitCosigned(t, srv, merkle.Witnessed(logVerifier, policy), first.Size+500)
	t.Logf("litewitness cosigned checkpoints of %d and %d leaves", first.Size, second.Size)
}
