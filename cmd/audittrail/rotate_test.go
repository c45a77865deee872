package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
)

// TestRotateLogKey rotates the embedded store's signing key as
// docs/configuration.md tells an operator to ("Rotating the log's signing
// key"): a restart with a new key alone is refused; with a key made by
// "audittrail keygen" and the previous key given, checkpoints are signed by both, so that a mirror kept with the old
// public key goes on verifying; after the rotation only the new key signs.
// A lost key is replaced with its public key as the previous one. Every
// checkpoint is consistent with the ones before, and "verify store" passes
// with the log's keys.
func TestRotateLogKey(t *testing.T) {
	ctx := t.Context()
	dataDir, keys := t.TempDir(), t.TempDir()
	signingKey := filepath.Join(dataDir, logsign.SigningKeyFile)
	pubFile := filepath.Join(dataDir, logsign.VerificationKeyFile)
	mirrorDir := filepath.Join(t.TempDir(), "mirror")
	seed := 0
	serve := func(args ...string) (*Main, error) {
		t.Helper()
		m, _ := newTestMain(nil)
		args = append([]string{"--dev", "--data-dir", dataDir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--reader-token", "reader", "--producer-token", "producer", "--log-level", "error"}, args...)
		if err := m.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return nil, err
		}
		return m, nil
	}
	// round creates events on m and returns the signed checkpoint that
	// covers them.
	round := func(m *Main) []byte {
		t.Helper()
		seed++
		if out, errs, err := runCommand(t, "create", "--addr", m.InternalURL, "--token", "producer", "--sample", "40", "--seed", strconv.Itoa(seed)); err != nil {
			t.Fatalf("create: %v\n%s%s", err, out, errs)
		}
		if err := m.Log.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		note, _ := m.Log.Checkpoint()
		return note
	}
	verifies := func(note []byte, keyFile string) *merkle.Checkpoint {
		t.Helper()
		cp, err := merkle.OpenCheckpoint(note, mustVerifier(t, keyFile))
		if err != nil {
			return nil
		}
		return cp
	}
	save := func(name string, text []byte) string {
		t.Helper()
		p := filepath.Join(keys, name)
		if err := os.WriteFile(p, text, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mirror := func(m *Main, keyFile string) error {
		_, _, err := runCommand(t, "mirror", "--addr", strings.TrimPrefix(m.PublicURL, "http://"), "--token", "reader", "--dir", mirrorDir, "--log-key", keyFile)
		return err
	}

	// Key A.
	m, err := serve()
	if err != nil {
		t.Fatal(err)
	}
	noteA := round(m)
	pubA := save("a.pub", mustRead(t, pubFile))
	if err := mirror(m, pubA); err != nil {
		t.Fatalf("mirror: %v", err)
	}
	m.Close()

	// A new key alone is refused: the stored checkpoints are A's.
	oldKey := filepath.Join(keys, "a.key")
	if err := os.Rename(signingKey, oldKey); err != nil {
		t.Fatal(err)
	}
	if _, err := serve(); err == nil || !strings.Contains(err.Error(), "--log-previous-key") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing key: %v", err)
	}
	otherKey := filepath.Join(keys, "other.key")
	runOK(t, "keygen", otherKey)
	if _, err := serve("--log-key", otherKey); err == nil || !strings.Contains(err.Error(), "--log-previous-key") {
		t.Fatalf("a new key without the previous one: %v", err)
	}

	// The rotation: key B (made by keygen), A cosigning.
	newKey := filepath.Join(keys, "b.key")
	pubB := save("b.pub", []byte(runOK(t, "keygen", newKey)))
	if _, _, err := runCommand(t, "keygen", newKey); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("keygen over an existing key file: %v", err)
	}
	if _, _, err := runCommand(t, "keygen", "--origin", "a b", filepath.Join(keys, "x.key")); err == nil {
		t.Fatal("keygen with an invalid origin: no error")
	}
	if _, err := serve("--log-key", newKey, "--log-previous-key", newKey); err == nil || !strings.Contains(err.Error(), "holds the signing key itself") {
		t.Fatalf("the new key as its own previous key: %v", err)
	}
	elsewhere := filepath.Join(keys, "elsewhere.key")
	runOK(t, "keygen", "--origin", "example.com/another-log", elsewhere)
	if _, err := serve("--log-key", newKey, "--log-previous-key", elsewhere); err == nil || !strings.Contains(err.Error(), "share its name") {
		t.Fatalf("a previous key of another name: %v", err)
	}
	m, err = serve("--log-key", newKey, "--log-previous-key", oldKey)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mustRead(t, pubFile))), "\n")
	if len(lines) != 2 || lines[0]+"\n" != string(mustRead(t, pubB)) || lines[1]+"\n" != string(mustRead(t, pubA)) {
		t.Fatalf("public keys during the rotation: %q", lines)
	}
	noteBA := round(m)
	if verifies(noteBA, pubA) == nil || verifies(noteBA, pubB) == nil {
		t.Fatalf("a checkpoint during the rotation does not verify with each key:\n%s", noteBA)
	}
	if err := mirror(m, pubA); err != nil {
		t.Fatalf("the mirror kept with the old key, during the rotation: %v", err)
	}
	keyID := func(pub string) string {
		k := strings.TrimSpace(string(mustRead(t, pub)))
		return strings.Join(strings.SplitN(k, "+", 3)[:2], "+")
	}
	if out := runOK(t, "verify", "checkpoint", "--key", pubFile, save("ba.cp", noteBA)); !strings.Contains(out, "signed by "+keyID(pubB)+" and "+keyID(pubA)) {
		t.Errorf("verify checkpoint during the rotation printed %q", out)
	}
	if got := metricValue(t, m.InternalURL, "audittrail_log_public_keys"); got != 2 {
		t.Errorf("audittrail_log_public_keys during the rotation: %v, want 2", got)
	}
	m.Close()

	// After the rotation: B alone.
	m, err = serve("--log-key", newKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustRead(t, pubFile)); got != string(mustRead(t, pubB)) {
		t.Fatalf("public key after the rotation: %q", got)
	}
	noteB := round(m)
	if got := metricValue(t, m.InternalURL, "audittrail_log_public_keys"); got != 1 {
		t.Errorf("audittrail_log_public_keys after the rotation: %v, want 1", got)
	}
	if verifies(noteB, pubA) != nil || verifies(noteB, pubB) == nil {
		t.Fatalf("a checkpoint after the rotation:\n%s", noteB)
	}
	if err := mirror(m, pubA); err == nil {
		t.Fatal("the mirror accepted a checkpoint with the old key only after the rotation")
	}
	ring := save("ab.pub", []byte(merkle.JoinKeys(string(mustRead(t, pubB)), string(mustRead(t, pubA)))+"\n"))
	if err := mirror(m, ring); err != nil {
		t.Fatalf("the mirror with both keys: %v", err)
	}
	m.Close()

	// B is lost: its public key is the previous one, and C, created by the
	// server at its start, signs alone.
	if err := os.Remove(newKey); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(signingKey); !os.IsNotExist(err) {
		t.Fatalf("a key file at the default path: %v", err)
	}
	m, err = serve("--log-previous-key", pubB)
	if err != nil {
		t.Fatal(err)
	}
	pubC := save("c.pub", []byte(strings.Split(string(mustRead(t, pubFile)), "\n")[0]+"\n"))
	noteC := round(m)
	if verifies(noteC, pubB) != nil || verifies(noteC, pubC) == nil {
		t.Fatalf("a checkpoint after a lost key:\n%s", noteC)
	}
	// A verifier holding only the old key fails as the guide says (exit 1,
	// "no signature by the log's key").
	if _, errs, err := runCommand(t, "verify", "checkpoint", "--key", pubB, save("c.cp", noteC)); err == nil ||
		!strings.Contains(err.Error()+errs, "no signature by the log's key") {
		t.Errorf("verify checkpoint with the old key only: %v %s, want no signature by the log's key", err, errs)
	}

	// One history across the three keys.
	cps := []*merkle.Checkpoint{verifies(noteA, pubA), verifies(noteBA, pubB), verifies(noteB, pubB), verifies(noteC, pubC)}
	for i := 1; i < len(cps); i++ {
		p, err := m.Log.ConsistencyProof(cps[i-1].Size, cps[i].Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyConsistency(cps[i-1], cps[i], p); err != nil {
			t.Fatalf("checkpoints of %d and %d: %v", cps[i-1].Size, cps[i].Size, err)
		}
	}
	m.Close()
	all := save("abc.pub", []byte(merkle.JoinKeys(string(mustRead(t, pubC)), string(mustRead(t, ring)))+"\n"))
	if out := runOK(t, "verify", "store", "--data-dir", dataDir, "--key", all); !strings.Contains(out, "OK") {
		t.Errorf("verify store with the log's keys: %s", out)
	}
	if _, _, err := runCommand(t, "verify", "store", "--data-dir", dataDir, "--key", pubC); err == nil {
		t.Error("verify store with the newest key alone passed over checkpoints it cannot verify")
	}
}

// TestLogOrigin names a log by its key: a key made with "keygen --origin"
// signs checkpoints whose first line is that name, and the public key the
// server writes verifies them.
func TestLogOrigin(t *testing.T) {
	dataDir, key := t.TempDir(), filepath.Join(t.TempDir(), "prod.key")
	pub := runOK(t, "keygen", "--origin", "audit.example.com/prod", key)
	if !strings.HasPrefix(pub, "audit.example.com/prod+") {
		t.Fatalf("keygen printed %q", pub)
	}
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", dataDir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
		"--log-level", "error", "--log-key", key}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	note, _ := m.Log.Checkpoint()
	if written := string(mustRead(t, filepath.Join(dataDir, logsign.VerificationKeyFile))); written != pub {
		t.Fatalf("the server wrote the public key %q, keygen printed %q", written, pub)
	}
	cp, err := merkle.OpenCheckpoint(note, mustVerifier(t, filepath.Join(dataDir, logsign.VerificationKeyFile)))
	if err != nil || cp.Origin != "audit.example.com/prod" || !strings.HasPrefix(string(note), "audit.example.com/prod\n") {
		t.Fatalf("checkpoint %q: %v", note, err)
	}
}
