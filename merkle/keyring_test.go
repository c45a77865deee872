package merkle

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestKeyRing(t *testing.T) {
	oldS, oldV, _, oldKey := testKeyPair(t, testOrigin, "old")
	newS, newV, _, newKey := testKeyPair(t, testOrigin, "new")
	_, _, _, otherKey := testKeyPair(t, testOrigin, "other")
	_, _, _, elsewhere := testKeyPair(t, "example.com/another-log", "old")
	c := &Checkpoint{Origin: testOrigin, Size: 3, Root: tlog.RecordHash([]byte("x")), ReceivedBefore: baseTime}

	ring, err := NewVerifier([]byte(JoinKeys(newKey, oldKey) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.(*KeyRing); !ok || len(Keys(ring)) != 2 || ring.Name() != testOrigin || ring.KeyHash() != newV.KeyHash() {
		t.Fatalf("ring %T of %d keys, name %q", ring, len(Keys(ring)), ring.Name())
	}
	other, err := NewVerifier([]byte(otherKey))
	if err != nil {
		t.Fatal(err)
	}
	byOld, _ := Sign(c, oldS)
	byNew, _ := Sign(c, newS)
	byBoth, err := Sign(c, newS, oldS)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(byBoth), "\n— ") != 2 {
		t.Fatalf("note signed by two keys:\n%s", byBoth)
	}
	keyID := func(vkey string) string { return strings.Join(strings.SplitN(vkey, "+", 3)[:2], "+") }
	if cp, err := OpenCheckpoint(byBoth, ring); err != nil || !slices.Equal(cp.SignedBy(), []string{keyID(newKey), keyID(oldKey)}) {
		t.Errorf("signed by %v, %v; want both keys", cp.SignedBy(), err)
	}
	if cp, err := OpenCheckpoint(byBoth, oldV); err != nil || !slices.Equal(cp.SignedBy(), []string{keyID(oldKey)}) {
		t.Errorf("signed by %v, %v; want the old key (the one given)", cp.SignedBy(), err)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		v    any
		ok   bool
	}{
		{"old note, ring", byOld, ring, true},
		{"new note, ring", byNew, ring, true},
		{"both, ring", byBoth, ring, true},
		{"both, old key alone", byBoth, oldV, true},
		{"both, new key alone", byBoth, newV, true},
		{"new note, old key alone", byNew, oldV, false},
		{"old note, new key alone", byOld, newV, false},
		{"old note, another key", byOld, other, false},
	} {
		v := tc.v.(interface {
			Name() string
			KeyHash() uint32
			Verify(msg, sig []byte) bool
		})
		cp, err := OpenCheckpoint(tc.msg, v)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if err == nil && (cp.Size != 3 || !cp.Verified()) {
			t.Errorf("%s: checkpoint %+v", tc.name, cp)
		}
	}
	// A forged second signature by a key of the ring is refused, even when
	// another key of the ring signed validly.
	lines := strings.Split(strings.TrimSuffix(string(byBoth), "\n"), "\n")
	last := []byte(lines[len(lines)-1])
	last[len(last)-10] ^= 'A' ^ 'B' // a base64 letter changed in the signature
	if last[len(last)-10] != 'A' && last[len(last)-10] != 'B' {
		last[len(last)-10] = 'A'
	}
	lines[len(lines)-1] = string(last)
	forged := []byte(strings.Join(lines, "\n") + "\n")
	if _, err := OpenCheckpoint(forged, ring); err == nil {
		t.Error("a note with a bad signature by a key of the ring was accepted")
	}

	if _, err := Sign(c, newS, nil); err == nil {
		t.Error("Sign accepted a nil cosigner")
	}
	_, _, elsewhereS, _ := testKeyPair(t, "example.com/another-log", "x")
	if s, err := NewSigner([]byte(elsewhereS)); err != nil {
		t.Fatal(err)
	} else if _, err := Sign(c, newS, s); err == nil {
		t.Error("Sign accepted a cosigner of another name")
	}

	for _, bad := range []string{
		JoinKeys(newKey, elsewhere),   // another name
		newKey + "\n" + newKey,        // twice
		newKey + "\n\n" + oldKey,      // blank line
		newKey + "\n" + oldKey + "\r", // a carriage return
		newKey + "\n" + "garbage",
		strings.Repeat(newKey+"\n", MaxRingKeys+1),
	} {
		if _, err := NewVerifier([]byte(bad)); err == nil {
			t.Errorf("NewVerifier(%q) accepted", bad)
		}
	}
	if got := JoinKeys(newKey+"\n", JoinKeys(oldKey, newKey)); got != newKey+"\n"+oldKey {
		t.Errorf("JoinKeys = %q", got)
	}
}

// FuzzNewVerifier: a key file of any content never panics NewVerifier; what
// it accepts is one key, or a ring of distinct keys of one name, at most
// MaxRingKeys, and a checkpoint signed by the ring's first key verifies with
// what was accepted.
func FuzzNewVerifier(f *testing.F) {
	signer, _, _, vkey := testKeyPair(f, testOrigin, "new")
	_, _, _, old := testKeyPair(f, testOrigin, "old")
	_, _, _, elsewhere := testKeyPair(f, "other.example/log", "x")
	for _, seed := range []string{vkey, vkey + "\n", JoinKeys(vkey, old) + "\n", vkey + "\n" + vkey, vkey + "\n" + elsewhere, "", "\n", vkey + "\n\n" + old} {
		f.Add([]byte(seed))
	}
	c := &Checkpoint{Origin: testOrigin, Size: 1, Root: tlog.RecordHash(nil), ReceivedBefore: baseTime}
	msg, err := Sign(c, signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := NewVerifier(data)
		if err != nil {
			return
		}
		keys := Keys(v)
		if len(keys) == 0 || len(keys) > MaxRingKeys {
			t.Fatalf("%d keys accepted", len(keys))
		}
		seen := map[uint32]bool{}
		for _, k := range keys {
			if k.Name() != v.Name() || seen[k.KeyHash()] {
				t.Fatalf("ring of %q: key %q/%08x", v.Name(), k.Name(), k.KeyHash())
			}
			seen[k.KeyHash()] = true
		}
		_, openErr := OpenCheckpoint(msg, v)
		signedBy := v.Name() == testOrigin && seen[signer.KeyHash()]
		if (openErr == nil) != signedBy {
			t.Fatalf("keys %q: OpenCheckpoint = %v", data, openErr)
		}
	})
}

// policyFunc is a CosignaturePolicy of a function.
type policyFunc func(msg []byte) error

func (f policyFunc) Check(msg []byte) error { return f(msg) }

// TestWitnessed: a Witnessed verifier opens what the log's keys open only
// when the policy accepts the whole signed note, and is the log's keys
// everywhere else (Keys, Name).
func TestWitnessed(t *testing.T) {
	oldS, _, _, oldKey := testKeyPair(t, testOrigin, "old")
	_, _, _, newKey := testKeyPair(t, testOrigin, "new")
	ring, err := NewVerifier([]byte(JoinKeys(newKey, oldKey)))
	if err != nil {
		t.Fatal(err)
	}
	c := &Checkpoint{Origin: testOrigin, Size: 3, Root: tlog.RecordHash([]byte("x")), ReceivedBefore: baseTime}
	msg, err := Sign(c, oldS)
	if err != nil {
		t.Fatal(err)
	}
	errShort := errors.New("short of the quorum")
	var seen []byte
	accept := Witnessed(ring, policyFunc(func(m []byte) error { seen = m; return nil }))
	if _, err := OpenCheckpoint(msg, accept); err != nil || string(seen) != string(msg) {
		t.Fatalf("accepting policy: %v, saw %q", err, seen)
	}
	refuse := Witnessed(accept, policyFunc(func([]byte) error { return errShort }))
	if _, err := OpenCheckpoint(msg, refuse); !errors.Is(err, errShort) || !errors.Is(err, ErrNotWitnessed) || !strings.Contains(err.Error(), "of 3 leaves") {
		t.Fatalf("refusing policy: %v", err)
	}
	if !slices.Equal(Keys(refuse), Keys(ring)) || refuse.Name() != testOrigin || Unwitnessed(refuse) != ring {
		t.Fatalf("Keys of a Witnessed ring: %v", Keys(refuse))
	}
	// The log's signature is checked first: a policy never makes a
	// checkpoint of another key acceptable.
	otherS, _, _, _ := testKeyPair(t, testOrigin, "other")
	forged, err := Sign(c, otherS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(forged, accept); err == nil {
		t.Fatal("a checkpoint of another key opened with an accepting policy")
	}
}
