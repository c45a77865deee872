package logmirror_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/logmirror"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
)

// liar is a server that lies: the real server's answers, altered.
type liar struct {
	honest     *client.Client
	checkpoint func(honest []byte) []byte
	entries    func(start uint64, events []*audittrail.Event) []*audittrail.Event
	// hide leaves the event with this seq out and renumbers the later ones,
	// as a server hiding an event would.
	hide uint64
	// stale answers no events and a committed count of 0, as a PostgreSQL
	// replica whose database did not answer does.
	stale bool
	// deleted, when its second leaf is above its first, answers the leaves
	// [deleted[0], deleted[1]) as deleted by a retention policy: their
	// leaf hashes instead of their events, as a PostgreSQL store whose
	// month was dropped does; wrongHash alters the first hash.
	deleted   [2]uint64
	wrongHash bool
}

func (l *liar) Checkpoint(ctx context.Context) ([]byte, error) {
	text, err := l.honest.Checkpoint(ctx)
	if err == nil && l.checkpoint != nil {
		text = l.checkpoint(text)
	}
	return text, err
}

func (l *liar) LogPage(ctx context.Context, start uint64, n int) (*audittrail.LogEntries, error) {
	first, end := l.deleted[0], l.deleted[1]
	if start < first && start+uint64(n) > first {
		n = int(first - start) // a page of events stops before a deleted leaf
	}
	events, committed, err := l.logEntries(ctx, start, n)
	if err != nil {
		return nil, err
	}
	page := &audittrail.LogEntries{Start: start, Events: events, CommittedSize: committed}
	if start >= first && start < end {
		page.Events = nil
		for _, e := range events[:min(len(events), int(end-start))] {
			page.Deleted = append(page.Deleted, merkle.LeafHash(e))
		}
		if l.wrongHash {
			page.Deleted[0][0] ^= 1
		}
	}
	return page, nil
}

func (l *liar) logEntries(ctx context.Context, start uint64, n int) ([]*audittrail.Event, uint64, error) {
	if l.stale {
		return nil, 0, nil
	}
	if l.hide == 0 {
		events, committed, err := l.honest.LogEntries(ctx, start, n)
		if err == nil && l.entries != nil {
			events = l.entries(start, events)
		}
		return events, committed, err
	}
	from := start
	if start >= l.hide-1 {
		from++
	}
	events, committed, err := l.honest.LogEntries(ctx, from, n+1)
	var out []*audittrail.Event
	for _, e := range events {
		switch {
		case e.Seq == l.hide:
			continue
		case e.Seq > l.hide:
			e.Seq--
		}
		out = append(out, e)
	}
	return out[:min(len(out), n)], committed - 1, err
}

// TestMirrorRefusesLies updates a mirror from a server that lies in each
// way a dishonest or broken log could, and checks that every update is
// refused with ErrNotVerified and leaves the mirror as it was, and that
// the honest update after them all goes through.
func TestMirrorRefusesLies(t *testing.T) {
	f := start(t)
	f.produce(t, 300)
	oldText, _ := f.checkpoint(t, 300)
	f.produce(t, 300)
	f.checkpoint(t, 600)
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.produce(t, 500)
	f.checkpoint(t, base.To+500)

	// The server's own key, as a server that signs a forged tree has it.
	skey, err := os.ReadFile(filepath.Join(f.srv.DataDir, logsign.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	serverSigner, err := merkle.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	forgeWith := func(signer note.Signer, edit func(cp *merkle.Checkpoint)) func([]byte) []byte {
		return func(honest []byte) []byte {
			cp, err := merkle.OpenCheckpoint(honest, f.verifier)
			if err != nil {
				t.Fatal(err)
			}
			forged := *cp
			edit(&forged)
			text, err := merkle.Sign(&forged, signer)
			if err != nil {
				t.Fatal(err)
			}
			return text
		}
	}
	forge := func(edit func(cp *merkle.Checkpoint)) func([]byte) []byte { return forgeWith(serverSigner, edit) }
	otherKey, _, err := merkle.GenerateKey(rand.Reader, base.Checkpoint.Origin)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := merkle.NewSigner([]byte(otherKey))
	if err != nil {
		t.Fatal(err)
	}
	at := func(seq uint64, edit func(e *audittrail.Event)) func(uint64, []*audittrail.Event) []*audittrail.Event {
		return func(_ uint64, events []*audittrail.Event) []*audittrail.Event {
			for _, e := range events {
				if e.Seq == seq {
					edit(e)
				}
			}
			return events
		}
	}
	next := base.To + 1 // the first seq the updates fetch
	for _, tc := range []struct {
		name string
		liar liar
	}{
		{"an event changed", liar{entries: at(next+4, func(e *audittrail.Event) { e.Resource += "x" })}},
		{"a receive time changed by a nanosecond", liar{entries: at(next+7, func(e *audittrail.Event) { e.ReceiveTime = e.ReceiveTime.Add(1) })}},
		{"an event left out", liar{hide: next + 2}},
		{"two events swapped", liar{entries: func(_ uint64, events []*audittrail.Event) []*audittrail.Event {
			if len(events) > 3 {
				events[1], events[2] = events[2], events[1]
				events[1].Seq, events[2].Seq = events[2].Seq, events[1].Seq
			}
			return events
		}}},
		{"a wrong seq", liar{entries: at(next, func(e *audittrail.Event) { e.Seq += 1 })}},
		{"no entries", liar{entries: func(uint64, []*audittrail.Event) []*audittrail.Event { return nil }}},
		{"a checkpoint signed by another key", liar{checkpoint: forgeWith(otherSigner, func(*merkle.Checkpoint) {})}},
		{"an older checkpoint (rollback)", liar{checkpoint: func([]byte) []byte { return oldText }}},
		{"the same size with another root (fork)", liar{checkpoint: forge(func(cp *merkle.Checkpoint) {
			cp.Size, cp.ReceivedBefore = base.To, base.Checkpoint.ReceivedBefore // the root stays the larger tree's
		})}},
		{"a signed root over other events", liar{checkpoint: forge(func(cp *merkle.Checkpoint) { cp.Root[0] ^= 1 })}},
		{"a horizon before the events", liar{checkpoint: forge(func(cp *merkle.Checkpoint) {
			cp.ReceivedBefore = base.Checkpoint.ReceivedBefore.Add(1)
		})}},
		{"a horizon earlier than the last one", liar{checkpoint: forge(func(cp *merkle.Checkpoint) {
			cp.ReceivedBefore = base.Checkpoint.ReceivedBefore.Add(-1)
		})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.liar
			l.honest = f.auditor
			before := lines(t, dir)
			_, err := m.Update(t.Context(), &l, logmirror.UpdateOptions{PageSize: 100, BehindWait: 300 * time.Millisecond})
			if !errors.Is(err, logmirror.ErrNotVerified) {
				t.Fatalf("Update: %v, want ErrNotVerified", err)
			}
			t.Log(err)
			if m.Size() != base.To || m.Checkpoint().Size != base.To || len(lines(t, dir)) != len(before) {
				t.Errorf("the refused update changed the mirror: size %d, checkpoint %d, %d lines; was %d", m.Size(), m.Checkpoint().Size, len(lines(t, dir)), base.To)
			}
			checkEntries(t, dir, f.verifier, base.To, nil)
		})
	}
	// A stale count of committed events is not a verdict: the update fails,
	// to be tried again, without ErrNotVerified.
	_, err = m.Update(t.Context(), &liar{honest: f.auditor, stale: true}, logmirror.UpdateOptions{})
	if err == nil || errors.Is(err, logmirror.ErrNotVerified) || m.Size() != base.To {
		t.Errorf("an update from a server with a stale count: %v, size %d; want a plain error and no change", err, m.Size())
	}

	// A replica behind the mirror, which catches up (or a balancer that
	// sends the next call elsewhere), is waited for.
	behind := 0
	catchingUp := &liar{honest: f.auditor, checkpoint: func(honest []byte) []byte {
		if behind++; behind <= 3 {
			return oldText
		}
		return honest
	}}
	if u, err := m.Update(t.Context(), catchingUp, logmirror.UpdateOptions{}); err != nil || u.From != base.To || behind != 4 {
		t.Fatalf("an update through a replica behind: %+v %v after %d checkpoints", u, err, behind)
	}
	base.To = m.Size()
	base.Checkpoint = m.Checkpoint()
	f.produce(t, 100)
	f.checkpoint(t, base.To+100)

	// An update cancelled half way (Ctrl-C) is not a lie: the error says
	// so, and the mirror stays as it was.
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	cancelling := &liar{honest: f.auditor, entries: func(_ uint64, events []*audittrail.Event) []*audittrail.Event {
		if calls++; calls == 2 {
			cancel()
		}
		return events
	}}
	_, err = m.Update(ctx, cancelling, logmirror.UpdateOptions{PageSize: 100})
	if !errors.Is(err, context.Canceled) || errors.Is(err, logmirror.ErrNotVerified) {
		t.Errorf("a cancelled update: %v, want context.Canceled", err)
	}
	checkEntries(t, dir, f.verifier, base.To, nil)

	u, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{})
	if err != nil || u.From != base.To || u.To < base.To+100 {
		t.Fatalf("the honest update after the lies: %+v %v", u, err)
	}
	checkEntries(t, dir, f.verifier, u.To, nil)

	// A crash between the two renames of a commit leaves the file
	// checkpoint behind state.json: a copy taken then verifies every entry
	// against state.json's checkpoint (the newer), and the next Open
	// brings the file up to date.
	if err := os.WriteFile(filepath.Join(dir, logmirror.CheckpointFile), oldText, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := logmirror.Verify(dir, f.verifier)
	if err != nil || v.Checkpoint.Size != u.To || v.Entries != u.To || v.Unverified != 0 {
		t.Fatalf("Verify with the older checkpoint file: %+v %v", v, err)
	}
	m.Close()
	m, err = logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkEntries(t, dir, f.verifier, u.To, nil)

	// Checkpoints kept by others are checked against the mirror's tree: a
	// split view (a checkpoint of the same log with another root or
	// horizon at a size the mirror holds) is found.
	old, err := merkle.OpenCheckpoint(oldText, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	open := func(text []byte) *merkle.Checkpoint {
		cp, err := merkle.OpenCheckpoint(text, f.verifier)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	lastText, err := os.ReadFile(filepath.Join(dir, logmirror.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err = logmirror.Scan(dir, f.verifier, logmirror.ScanOptions{Checkpoints: []*merkle.Checkpoint{old, open(lastText)}})
	if err != nil || v.Checked != 2 || len(v.Beyond) != 0 {
		t.Fatalf("two checkpoints the log signed: %+v %v, want both consistent", v, err)
	}
	for name, edit := range map[string]func(cp *merkle.Checkpoint){
		"another root":           func(cp *merkle.Checkpoint) { cp.Root[5] ^= 1 },
		"a horizon too early":    func(cp *merkle.Checkpoint) { cp.ReceivedBefore = cp.ReceivedBefore.Add(-time.Hour) },
		"a horizon too late":     func(cp *merkle.Checkpoint) { cp.ReceivedBefore = cp.ReceivedBefore.Add(time.Hour) },
		"one leaf fewer, signed": func(cp *merkle.Checkpoint) { cp.Size-- },
	} {
		forged := open(forge(edit)(oldText))
		_, err := logmirror.Scan(dir, f.verifier, logmirror.ScanOptions{Checkpoints: []*merkle.Checkpoint{forged}})
		if !errors.Is(err, logmirror.ErrNotVerified) {
			t.Errorf("a checkpoint with %s: %v, want ErrNotVerified", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	f.produce(t, 10)
	newer, _ := f.checkpoint(t, u.To+10)
	v, err = logmirror.Scan(dir, f.verifier, logmirror.ScanOptions{Checkpoints: []*merkle.Checkpoint{open(newer)}})
	if err != nil || v.Checked != 0 || len(v.Beyond) != 1 {
		t.Errorf("a checkpoint beyond the mirror: %+v %v, want it returned unchecked", v, err)
	}
}

// TestMirrorDeletedLeaves mirrors a log some of whose events the server
// deleted under a retention policy (as a PostgreSQL store with a dropped
// month answers: leaf hashes instead of events). A new mirror stops there
// unless told to accept deletions; accepted, their leaf hashes still have to
// fit the signed root, the offline check counts them, and a search of the
// mirror skips them. The real deletion is tested end to end in
// cmd/audittrail (TestVerifiableLogPostgres).
func TestMirrorDeletedLeaves(t *testing.T) {
	f := start(t)
	f.produce(t, 300)
	f.checkpoint(t, 300)
	dir := t.TempDir()
	m, err := logmirror.Open(dir, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dropped := liar{honest: f.auditor, deleted: [2]uint64{40, 170}}
	opts := logmirror.UpdateOptions{PageSize: 100}

	_, err = m.Update(t.Context(), &dropped, opts)
	if !errors.Is(err, logmirror.ErrDeleted) || errors.Is(err, logmirror.ErrNotVerified) || m.Size() != 0 {
		t.Fatalf("an update meeting deleted leaves without AllowDeleted: %v, size %d; want ErrDeleted and no change", err, m.Size())
	}
	t.Log(err)
	if n := len(lines(t, dir)); n != 0 {
		t.Fatalf("the refused update left %d lines", n)
	}

	opts.AllowDeleted = true
	wrong := dropped
	wrong.wrongHash = true
	if _, err := m.Update(t.Context(), &wrong, opts); !errors.Is(err, logmirror.ErrNotVerified) || m.Size() != 0 {
		t.Fatalf("a deleted leaf with another hash: %v, size %d; want ErrNotVerified", err, m.Size())
	}

	u, err := m.Update(t.Context(), &dropped, opts)
	if err != nil {
		t.Fatal(err)
	}
	if u.From != 0 || u.To < 300 || u.Deleted != 130 {
		t.Fatalf("Updated %+v, want 0..>=300 with 130 deleted", u)
	}
	ls := lines(t, dir)
	for i, l := range ls {
		isDeleted := bytes.HasPrefix(l, []byte(`{"deletedLeafHash":"`))
		if want := i >= 40 && i < 170; isDeleted != want {
			t.Fatalf("line %d: %q, deleted %v", i+1, l, want)
		}
	}
	var seen []uint64
	v, err := logmirror.Scan(dir, f.verifier, logmirror.ScanOptions{Each: func(e *audittrail.Event) error {
		seen = append(seen, e.Seq)
		return nil
	}})
	if err != nil || v.Entries != u.To || v.Deleted != 130 {
		t.Fatalf("Scan: %+v %v, want %d entries, 130 deleted", v, err, u.To)
	}
	if uint64(len(seen)) != u.To-130 || seen[39] != 40 || seen[40] != 171 {
		t.Fatalf("Scan passed %d events (%v...), want every one but the deleted", len(seen), seen[:min(len(seen), 45)])
	}

	// The next update, from an honest server, extends it.
	f.produce(t, 50)
	f.checkpoint(t, u.To+50)
	if u2, err := m.Update(t.Context(), f.auditor, logmirror.UpdateOptions{}); err != nil || u2.From != u.To || u2.Deleted != 0 {
		t.Fatalf("the update after: %+v %v", u2, err)
	}
	if v, err := logmirror.Verify(dir, f.verifier); err != nil || v.Deleted != 130 {
		t.Fatalf("Verify after the next update: %+v %v", v, err)
	}

	// A copy whose deleted leaf is altered or malformed does not verify.
	entries := filepath.Join(dir, logmirror.EntriesFile)
	data, err := os.ReadFile(entries)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(line []byte) []byte{
		"another hash": func(l []byte) []byte {
			i := bytes.IndexByte(l, ':') + 3
			l[i] ^= 'A' ^ 'B' // one letter of the base64 changed
			if l[i] == '"' {
				t.Fatal("edited the quote")
			}
			return l
		},
		"a short hash":    func(l []byte) []byte { return []byte(`{"deletedLeafHash":"AAAA"}` + "\n") },
		"an extra field":  func(l []byte) []byte { return append(bytes.TrimSuffix(l, []byte("}\n")), []byte(`,"x":1}`+"\n")...) },
		"an event's line": func(l []byte) []byte { return ls[0] },
	} {
		copyDir := t.TempDir()
		var out []byte
		for i, l := range bytes.SplitAfter(data, []byte("\n")) {
			if i == 100 {
				l = edit(bytes.Clone(l))
			}
			out = append(out, l...)
		}
		for _, name := range []string{logmirror.CheckpointFile, logmirror.StateFile} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(copyDir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(copyDir, logmirror.EntriesFile), out, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := logmirror.Verify(copyDir, f.verifier); !errors.Is(err, logmirror.ErrNotVerified) {
			t.Errorf("%s: Verify: %v, want ErrNotVerified", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
