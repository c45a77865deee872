package merkle

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const validText = "audittrail.example.com/log\n7\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nreceived-before 2025-11-25T20:00:07.000000008Z\n"

func TestCheckpointRoundTrip(t *testing.T) {
	c, err := Parse([]byte(validText))
	if err != nil {
		t.Fatal(err)
	}
	var root tlog.Hash
	for i := range root {
		root[i] = byte(i)
	}
	want := Checkpoint{Origin: testOrigin, Size: 7, Root: root, ReceivedBefore: time.Date(2025, 11, 25, 20, 0, 7, 8, time.UTC)}
	if c.Origin != want.Origin || c.Size != want.Size || c.Root != want.Root || !c.ReceivedBefore.Equal(want.ReceivedBefore) {
		t.Fatalf("Parse = %+v", c)
	}
	if c.Verified() {
		t.Fatal("a parsed checkpoint must not be verified")
	}
	out, err := want.Marshal()
	if err != nil || string(out) != validText {
		t.Fatalf("Marshal = %q, %v", out, err)
	}
	// The horizon is written in UTC whatever the location.
	want.ReceivedBefore = want.ReceivedBefore.In(time.FixedZone("X", -7200))
	if out, _ := want.Marshal(); string(out) != validText {
		t.Fatalf("Marshal in another zone = %q", out)
	}
	empty := Checkpoint{Origin: "o", Size: 0, Root: EmptyRoot, ReceivedBefore: MinHorizon}
	text, err := empty.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(text); err != nil {
		t.Fatalf("empty tree checkpoint %q: %v", text, err)
	}
}

func TestParseRejects(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(validText, "\n"), "\n")
	with := func(i int, s string) string {
		l := append([]string(nil), lines...)
		l[i] = s
		return strings.Join(l, "\n") + "\n"
	}
	bad := map[string]string{
		"empty":               "",
		"no final newline":    strings.TrimSuffix(validText, "\n"),
		"crlf":                strings.ReplaceAll(validText, "\n", "\r\n"),
		"three lines":         strings.Join(lines[:3], "\n") + "\n",
		"five lines":          validText + "extra\n",
		"blank line":          validText + "\n",
		"empty origin":        with(0, ""),
		"origin with space":   with(0, "audit trail"),
		"origin with plus":    with(0, "audit+trail"),
		"origin with nbsp":    with(0, "audit\u00a0trail"),
		"origin with tab":     with(0, "audit\ttrail"),
		"origin with control": with(0, "audit\x01trail"),
		"origin too long":     with(0, strings.Repeat("a", 256)),
		"origin not utf8":     with(0, "audit\xfftrail"),
		"size leading zero":   with(1, "07"),
		"size sign":           with(1, "+7"),
		"size negative":       with(1, "-7"),
		"size space":          with(1, " 7"),
		"size trailing space": with(1, "7 "),
		"size hex":            with(1, "0x7"),
		"size empty":          with(1, ""),
		"size too large":      with(1, "4611686018427387904"),
		"size overflow":       with(1, "18446744073709551616"),
		"size zero, root set": with(1, "0"),
		"root short":          with(2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
		"root url base64":     with(2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_="),
		"root noncanonical":   with(2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9="),
		"root 33 bytes":       with(2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"),
		"root hex":            with(2, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
		"no horizon keyword":  with(3, "2025-11-25T20:00:07.000000008Z"),
		"other keyword":       with(3, "received-after 2025-11-25T20:00:07.000000008Z"),
		"two spaces":          with(3, "received-before  2025-11-25T20:00:07.000000008Z"),
		"horizon no nanos":    with(3, "received-before 2025-11-25T20:00:07Z"),
		"horizon micros":      with(3, "received-before 2025-11-25T20:00:07.000008Z"),
		"horizon offset":      with(3, "received-before 2025-11-25T20:00:07.000000008+00:00"),
		"horizon lowercase z": with(3, "received-before 2025-11-25T20:00:07.000000008z"),
		"horizon bad date":    with(3, "received-before 2025-02-30T20:00:07.000000008Z"),
		"horizon before 1970": with(3, "received-before 1969-12-31T23:59:59.999999999Z"),
		"horizon after 2262":  with(3, "received-before 2262-01-01T00:00:00.000000001Z"),
		"horizon unix":        with(3, "received-before 1764100807000000008"),
		"horizon trailing":    with(3, "received-before 2025-11-25T20:00:07.000000008Z x"),
		"too long":            strings.Repeat("a", 1100) + "\n7\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nreceived-before 2025-11-25T20:00:07.000000008Z\n",
	}
	for name, text := range bad {
		if c, err := Parse([]byte(text)); err == nil {
			t.Errorf("%s: Parse(%q) = %+v, want error", name, text, c)
		}
	}
	// Boundaries that are valid.
	good := []string{
		with(1, "4611686018427387903"),
		with(3, "received-before 1970-01-01T00:00:00.000000000Z"),
		with(3, "received-before 2262-01-01T00:00:00.000000000Z"),
		with(0, "é/log"),
	}
	for _, text := range good {
		if _, err := Parse([]byte(text)); err != nil {
			t.Errorf("Parse(%q): %v", text, err)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	ok := Checkpoint{Origin: testOrigin, Size: 1, Root: tlog.Hash{1}, ReceivedBefore: baseTime}
	for name, c := range map[string]Checkpoint{
		"origin":     {Origin: "a b", Size: 1, Root: ok.Root, ReceivedBefore: baseTime},
		"size":       {Origin: testOrigin, Size: MaxTreeSize + 1, Root: ok.Root, ReceivedBefore: baseTime},
		"empty root": {Origin: testOrigin, Size: 0, Root: ok.Root, ReceivedBefore: baseTime},
		"zero time":  {Origin: testOrigin, Size: 1, Root: ok.Root},
		"early time": {Origin: testOrigin, Size: 1, Root: ok.Root, ReceivedBefore: MinHorizon.Add(-1)},
		"late time":  {Origin: testOrigin, Size: 1, Root: ok.Root, ReceivedBefore: MaxHorizon.Add(1)},
	} {
		if _, err := c.Marshal(); err == nil {
			t.Errorf("%s: Marshal accepted %+v", name, c)
		}
	}
	if _, err := ok.Marshal(); err != nil {
		t.Fatal(err)
	}
}

func TestSignOpen(t *testing.T) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	_, otherV, _, _ := testKeyPair(t, testOrigin, "another key, same name")
	otherS, _, _, _ := testKeyPair(t, testOrigin, "another key, same name")
	witnessS, _, _, _ := testKeyPair(t, "witness.example.com", "witness")
	c := &Checkpoint{Origin: testOrigin, Size: 7, Root: tlog.Hash{7}, ReceivedBefore: baseTime}
	msg, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(msg, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Verified() || got.Size != 7 || got.Root != c.Root || !got.ReceivedBefore.Equal(baseTime) {
		t.Fatalf("OpenCheckpoint = %+v", got)
	}
	// Modifying a verified checkpoint, even a copy, unverifies it.
	for name, mod := range map[string]func(c *Checkpoint){
		"size":    func(c *Checkpoint) { c.Size++ },
		"root":    func(c *Checkpoint) { c.Root[0] ^= 1 },
		"origin":  func(c *Checkpoint) { c.Origin += "x" },
		"horizon": func(c *Checkpoint) { c.ReceivedBefore = c.ReceivedBefore.Add(1) },
	} {
		cp := *got
		mod(&cp)
		if cp.Verified() {
			t.Errorf("checkpoint with modified %s still verified", name)
		}
	}
	var nilCP *Checkpoint
	if nilCP.Verified() || (&Checkpoint{}).Verified() {
		t.Fatal("zero checkpoint verified")
	}

	// Another key, even with the log's name, is refused, in the words of
	// docs/configuration.md ("A lost or compromised key") and of Python's
	// verifier, not note's "no verifiable signatures".
	if _, err := OpenCheckpoint(msg, otherV); err == nil || !strings.Contains(err.Error(), "no signature by the log's key") {
		t.Fatalf("checkpoint opened with another key: %v, want no signature by the log's key", err)
	}
	forged, err := Sign(c, otherS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(forged, verifier); err == nil {
		t.Fatal("checkpoint signed by another key accepted")
	}
	// A tampered body is refused.
	tampered := bytes.Replace(msg, []byte("\n7\n"), []byte("\n8\n"), 1)
	if _, err := OpenCheckpoint(tampered, verifier); err == nil {
		t.Fatal("tampered checkpoint accepted")
	}
	var ise *note.InvalidSignatureError
	if _, err := OpenCheckpoint(tampered, verifier); !errors.As(err, &ise) {
		t.Fatalf("tampered checkpoint: %v, want an invalid signature", err)
	}
	// A witness cosignature is ignored; the log's signature is still required.
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, witnessS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cosigned, verifier); err != nil {
		t.Fatalf("cosigned checkpoint: %v", err)
	}
	witnessOnly, err := note.Sign(&note.Note{Text: n.Text}, witnessS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(witnessOnly, verifier); err == nil || !strings.Contains(err.Error(), "no signature by the log's key") {
		t.Fatalf("checkpoint without the log's signature: %v, want no signature by the log's key", err)
	}
	// The key name must be the origin.
	if _, err := Sign(&Checkpoint{Origin: "other.example.com", Size: 7, Root: c.Root, ReceivedBefore: baseTime}, signer); err == nil {
		t.Fatal("Sign accepted a checkpoint of another origin")
	}
	otherOrigin, err := note.Sign(&note.Note{Text: strings.Replace(n.Text, testOrigin, "other.example.com", 1)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(otherOrigin, verifier); err == nil {
		t.Fatal("checkpoint of another origin accepted")
	}
	// A signed note whose text is not a checkpoint is refused.
	notCP, _ := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if _, err := OpenCheckpoint(notCP, verifier); err == nil {
		t.Fatal("signed non-checkpoint accepted")
	}
	if _, err := OpenCheckpoint(msg, nil); err == nil {
		t.Fatal("nil verifier accepted")
	}
	if _, err := OpenCheckpoint(append(bytes.Repeat([]byte("x"), 20000), msg...), verifier); err == nil {
		t.Fatal("huge note accepted")
	}
}

func TestKeys(t *testing.T) {
	_, _, skey, vkey := testKeyPair(t, testOrigin, "k")
	if !strings.HasPrefix(skey, "PRIVATE+KEY+"+testOrigin+"+") || !strings.HasPrefix(vkey, testOrigin+"+") {
		t.Fatalf("keys %q %q", skey, vkey)
	}
	for _, k := range []string{vkey, vkey + "\n"} {
		if _, err := NewVerifier([]byte(k)); err != nil {
			t.Errorf("NewVerifier(%q): %v", k, err)
		}
	}
	for _, k := range []string{"", "\n", vkey + "\n\n", vkey + "\r\n", " " + vkey, vkey + "\n" + vkey, skey} {
		if _, err := NewVerifier([]byte(k)); err == nil {
			t.Errorf("NewVerifier(%q) accepted", k)
		}
	}
	// The private key where the public one belongs says so.
	if _, err := NewVerifier([]byte(skey + "\n")); err == nil || !strings.Contains(err.Error(), "private signing key") {
		t.Errorf("NewVerifier of the private key: %v, want it named as such", err)
	}
	if _, err := NewSigner([]byte(skey + "\n")); err != nil {
		t.Errorf("NewSigner(%q): %v", skey, err)
	}
	for _, k := range []string{vkey, skey + "\n\n", ""} {
		if _, err := NewSigner([]byte(k)); err == nil {
			t.Errorf("NewSigner(%q) accepted", k)
		}
	}
	if _, _, err := GenerateKey(bytes.NewReader(make([]byte, 64)), "bad name"); err == nil {
		t.Fatal("GenerateKey accepted an invalid origin")
	}
}

// TestEmptyCheckpoint: the empty tree's checkpoint is verified without a
// signature, every signed checkpoint of its log extends it (by the empty
// proof), and one of another log does not.
func TestEmptyCheckpoint(t *testing.T) {
	signer, verifier, _, _ := testKeyPair(t, testOrigin, "log key")
	m := buildTree(t, []tlog.Hash{{1}, {2}, {3}})
	cp, _ := signedCheckpoint(t, signer, verifier, m, 3, baseTime)
	empty, err := EmptyCheckpoint(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if !empty.Verified() || empty.Size != 0 || empty.Root != EmptyRoot || !empty.ReceivedBefore.Equal(MinHorizon) {
		t.Fatalf("EmptyCheckpoint = %+v", empty)
	}
	w, err := VerifyWindow(empty, cp, &Consistency{OldSize: 0, NewSize: 3})
	if err != nil || w.First != 1 || w.Last != 3 {
		t.Fatalf("the window from the empty tree: %+v %v", w, err)
	}
	if err := VerifyConsistency(empty, cp, &Consistency{OldSize: 0, NewSize: 3, Hashes: []tlog.Hash{{1}}}); err == nil {
		t.Error("a non-empty proof from the empty tree accepted")
	}
	other, err := EmptyCheckpoint("other.example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(other, cp, &Consistency{OldSize: 0, NewSize: 3}); err == nil {
		t.Error("the empty tree of another log accepted")
	}
	changed := *empty
	changed.Size = 1
	if changed.Verified() {
		t.Error("a changed empty checkpoint still verified")
	}
	if _, err := EmptyCheckpoint("not a valid origin\n"); err == nil {
		t.Error("an invalid origin accepted")
	}
}
