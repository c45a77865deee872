package merkle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "audittrail.example.com/log"

// testKeyPair returns a deterministic key pair derived from seed.
func testKeyPair(t testing.TB, origin, seed string) (note.Signer, note.Verifier, string, string) {
	t.Helper()
	s := sha256.Sum256([]byte(seed))
	skey, vkey, err := GenerateKey(bytes.NewReader(s[:]), origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner([]byte(skey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := NewVerifier([]byte(vkey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier, skey, vkey
}

var baseTime = time.Date(2025, 11, 25, 20, 0, 0, 0, time.UTC)

// sampleEvent returns a deterministic event with sequence number seq,
// received at baseTime + seq seconds + seq nanoseconds.
func sampleEvent(seq uint64) *audittrail.Event {
	e := &audittrail.Event{
		ID:          fmt.Sprintf("%08x-1b2c-4d3e-8f40-%012x", seq*2654435761%0xffffffff, seq),
		EventTime:   baseTime.Add(time.Duration(seq)*time.Second - 3*time.Millisecond + time.Duration(seq%7)),
		ReceiveTime: baseTime.Add(time.Duration(seq)*time.Second + time.Duration(seq)),
		EventSource: "engine-manager",
		Action:      []string{"CreateEngine", "DeleteEngine", "GetEngine"}[seq%3],
		ReadOnly:    seq%3 == 2,
		Principal:   fmt.Sprintf("users/u%d", seq%5),
		SourceIP:    fmt.Sprintf("203.0.113.%d", seq%250),
		UserAgent:   "h2o-cli/1.2",
		Resource:    fmt.Sprintf("//engine-manager/workspaces/w%d/daiEngines/e%d", seq%4, seq),
		Workspace:   fmt.Sprintf("workspaces/w%d", seq%4),
		Type:        audittrail.EventType(seq % 3),
		Seq:         seq,
	}
	if seq%4 != 0 {
		e.Status = &audittrail.Status{Code: int32(seq % 17), Message: fmt.Sprintf("status %d", seq)}
	}
	if seq%2 == 0 {
		e.Metadata = map[string]string{"region": "eu", "team": fmt.Sprint(seq % 3), "a_key": "v"}
	}
	if seq%3 != 1 {
		e.RequestParameters = map[string]string{"name": fmt.Sprint("e", seq), "cpu": "4"}
	}
	return e
}

func sampleEvents(n int) []*audittrail.Event {
	out := make([]*audittrail.Event, n)
	for i := range out {
		out[i] = sampleEvent(uint64(i + 1))
	}
	return out
}

func leafHashes(events []*audittrail.Event) []tlog.Hash {
	out := make([]tlog.Hash, len(events))
	for i, e := range events {
		out[i] = LeafHash(e)
	}
	return out
}

// buildTree integrates leaves into a new MemStore, in batches of varying size.
func buildTree(t testing.TB, leaves []tlog.Hash) *MemStore {
	t.Helper()
	m := &MemStore{}
	size := uint64(0)
	for batch := 1; size < uint64(len(leaves)); batch = batch%5 + 1 {
		end := min(size+uint64(batch), uint64(len(leaves)))
		if _, err := Integrate(m, size, leaves[size:end]); err != nil {
			t.Fatal(err)
		}
		size = end
	}
	return m
}

// signedCheckpoint signs and opens a checkpoint of the tree m at size.
func signedCheckpoint(t testing.TB, s note.Signer, v note.Verifier, m tlog.HashReader, size uint64, horizon time.Time) (*Checkpoint, []byte) {
	t.Helper()
	root, err := TreeRoot(m, size)
	if err != nil {
		t.Fatal(err)
	}
	return signRoot(t, s, v, size, root, horizon)
}

func signRoot(t testing.TB, s note.Signer, v note.Verifier, size uint64, root tlog.Hash, horizon time.Time) (*Checkpoint, []byte) {
	t.Helper()
	msg, err := Sign(&Checkpoint{Origin: s.Name(), Size: size, Root: root, ReceivedBefore: horizon}, s)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(msg, v)
	if err != nil {
		t.Fatal(err)
	}
	return cp, msg
}

// horizonFor is a valid horizon for a tree of sampleEvents of the given size:
// after the last leaf's receive time, not after the next one's.
func horizonFor(size uint64) time.Time {
	return baseTime.Add(time.Duration(size)*time.Second + time.Duration(size) + 1)
}

// The reference implementation of RFC 6962, section 2.1, straight from the
// definitions and independent of tlog.

func refNode(l, r tlog.Hash) tlog.Hash {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func refSplit(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

func refRoot(d []tlog.Hash) tlog.Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return d[0]
	}
	k := refSplit(len(d))
	return refNode(refRoot(d[:k]), refRoot(d[k:]))
}

func refPath(m int, d []tlog.Hash) []tlog.Hash {
	if len(d) <= 1 {
		return nil
	}
	k := refSplit(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refRoot(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refRoot(d[:k]))
}

func refConsistency(m int, d []tlog.Hash) []tlog.Hash {
	var sub func(m int, d []tlog.Hash, b bool) []tlog.Hash
	sub = func(m int, d []tlog.Hash, b bool) []tlog.Hash {
		n := len(d)
		if m == n {
			if b {
				return nil
			}
			return []tlog.Hash{refRoot(d)}
		}
		k := refSplit(n)
		if m <= k {
			return append(sub(m, d[:k], b), refRoot(d[k:]))
		}
		return append(sub(m-k, d[k:], false), refRoot(d[:k]))
	}
	if m == 0 || m == len(d) {
		return nil
	}
	return sub(m, d, true)
}

func hashesEqual(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
