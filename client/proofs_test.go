package client_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/merkle"
)

// The tests of proofs.go run against the real server (the audittrail binary)
// with its own verifiable log, and check the proofs with the public key of
// its data directory.

func serverVerifier(t *testing.T, srv *testserver.Server) note.Verifier {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(srv.DataDir, "log-verification.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := merkle.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// searchProven searches with proofs until no event of the page is pending.
func searchProven(t *testing.T, c *client.Client, v note.Verifier, req audittrail.SearchEventsRequest) (*audittrail.SearchEventsResponse, *client.Proofs, *merkle.Checkpoint) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, p, err := c.SearchEventsWithProofs(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		cp, pending, err := p.Verify(v, res.Events)
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return res, p, cp
		}
		if len(p.Pending()) != pending {
			t.Fatalf("Pending() lists %d, Verify counted %d", len(p.Pending()), pending)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still pending: %v", p.Pending())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSearchEventsWithProofs(t *testing.T) {
	srv := testserver.Start(t)
	v := serverVerifier(t, srv)
	producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
	auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))
	reqs, _ := sampleRequests(t, 11, 40, time.Now().Add(-time.Hour))
	createAll(t, producer, reqs)

	// The generated events end an hour ago; the search's own audit events
	// (now) are left out.
	end := time.Now().Add(-30 * time.Minute)
	req := audittrail.SearchEventsRequest{PageSize: 25, Filter: audittrail.Filter{EndTime: &end}}
	res, p, cp := searchProven(t, auditor, v, req)
	if len(res.Events) != 25 || len(p.Inclusions) != 25 || cp.Size < 40 {
		t.Fatalf("%d events, %d inclusions, tree of %d", len(res.Events), len(p.Inclusions), cp.Size)
	}
	// The plain search returns the same events.
	plain, err := auditor.SearchEvents(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plain.Events, res.Events); diff != "" {
		t.Errorf("events differ with proofs (-plain +proofs):\n%s", diff)
	}

	// Every forgery fails Verify. Each case changes a fresh copy.
	_, otherVkey, err := merkle.GenerateKey(rand.Reader, cp.Origin)
	if err != nil {
		t.Fatal(err)
	}
	otherVerifier, err := merkle.NewVerifier([]byte(otherVkey))
	if err != nil {
		t.Fatal(err)
	}
	// Another valid checkpoint of the same log: a later, larger one.
	reqs2, _ := sampleRequests(t, 12, 3, time.Now().Add(-time.Hour))
	createAll(t, producer, reqs2)
	var later []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		later, err = auditor.Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		lc, err := merkle.OpenCheckpoint(later, v)
		if err != nil {
			t.Fatal(err)
		}
		if lc.Size > cp.Size {
			// The later checkpoint is consistent with the earlier one.
			cons, err := auditor.ConsistencyProof(t.Context(), cp.Size, lc.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyConsistency(cp, lc, cons); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no later checkpoint")
		}
	}
	laterCP, _ := merkle.OpenCheckpoint(later, v)

	forgeries := []struct {
		name     string
		verifier note.Verifier
		change   func(p *client.Proofs, evs []*audittrail.Event)
		want     string
	}{
		{"wrong path: a hash bit flipped", v, func(p *client.Proofs, _ []*audittrail.Event) { p.Hashes[0][7] ^= 0x10 }, "not proven"},
		{"wrong path: a hash dropped", v, func(p *client.Proofs, _ []*audittrail.Event) { p.Hashes = p.Hashes[1:] }, "too few hashes"},
		{"wrong path: a hash too many", v, func(p *client.Proofs, _ []*audittrail.Event) { p.Hashes = append(p.Hashes, p.Hashes[0]) }, "too many"},
		{"wrong path: the hashes reordered", v, func(p *client.Proofs, _ []*audittrail.Event) { slices.Reverse(p.Hashes) }, "not proven"},
		{"wrong size: the stated tree size", v, func(p *client.Proofs, _ []*audittrail.Event) { p.TreeSize-- }, "tree size"},
		{"wrong position: a leaf index moved outside the page", v, func(p *client.Proofs, _ []*audittrail.Event) {
			p.Inclusions[5].LeafIndex = 0
		}, "not what the log signed"},
		{"wrong position: two leaf indexes swapped", v, func(p *client.Proofs, _ []*audittrail.Event) {
			p.Inclusions[5].LeafIndex, p.Inclusions[6].LeafIndex = p.Inclusions[6].LeafIndex, p.Inclusions[5].LeafIndex
		}, "not proven"},
		{"other checkpoint: a later one of the same log", v, func(p *client.Proofs, _ []*audittrail.Event) {
			p.Checkpoint, p.TreeSize = later, laterCP.Size
		}, "not what the log signed"},
		{"bad signature: a signature byte changed", v, func(p *client.Proofs, _ []*audittrail.Event) {
			// A character in the middle of the signature proper (after the
			// key hash): a signature by the log's key that does not verify.
			i := bytes.LastIndex(p.Checkpoint, []byte(" ")) + 40
			if p.Checkpoint[i] == 'A' {
				p.Checkpoint[i] = 'B'
			} else {
				p.Checkpoint[i] = 'A'
			}
		}, "invalid signature"},
		{"bad signature: the text changed", v, func(p *client.Proofs, _ []*audittrail.Event) {
			p.Checkpoint = bytes.Replace(p.Checkpoint, []byte("\n"+itoa(p.TreeSize)+"\n"), []byte("\n"+itoa(p.TreeSize+1)+"\n"), 1)
			p.TreeSize++
		}, "signed checkpoint"},
		{"bad signature: another key with the log's name", otherVerifier, func(*client.Proofs, []*audittrail.Event) {}, "signed checkpoint"},
		{"tampered event", v, func(_ *client.Proofs, evs []*audittrail.Event) { evs[2].Action += "X" }, "not proven"},
		{"tampered event: receive time off by 1 ns", v, func(_ *client.Proofs, evs []*audittrail.Event) {
			evs[2].ReceiveTime = evs[2].ReceiveTime.Add(time.Nanosecond)
		}, "not proven"},
		{"events reordered", v, func(_ *client.Proofs, evs []*audittrail.Event) { evs[0], evs[1] = evs[1], evs[0] }, "not for the event"},
		{"an event left out", v, func(p *client.Proofs, _ []*audittrail.Event) { p.Inclusions = p.Inclusions[1:] }, "inclusions for"},
		{"claimed pending inside the tree", v, func(p *client.Proofs, _ []*audittrail.Event) {
			p.Inclusions[6].Pending = true
		}, "claimed pending"},
		{"a proof without a checkpoint", v, func(p *client.Proofs, _ []*audittrail.Event) { p.Checkpoint = nil }, "no checkpoint"},
	}
	for _, fc := range forgeries {
		t.Run(fc.name, func(t *testing.T) {
			p2, evs := cloneProofs(p), cloneEvents(res.Events)
			fc.change(p2, evs)
			_, _, err := p2.Verify(fc.verifier, evs)
			if err == nil || !strings.Contains(err.Error(), fc.want) {
				t.Errorf("Verify: %v, want an error about %q", err, fc.want)
			}
		})
	}
	// An event given twice, with its inclusion: the multi-proof accepts a
	// leaf given twice (merkle.VerifyMultiInclusion), so Verify must refuse
	// the repeat; a page holds each event once.
	p2, evs := cloneProofs(p), cloneEvents(res.Events)
	p2.Inclusions, evs = append(p2.Inclusions, p2.Inclusions[3]), append(evs, evs[3].Clone())
	if _, _, err := p2.Verify(v, evs); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("Verify of an answer with an event twice: %v, want it refused", err)
	}
	// And the untouched copy still verifies (the copies are deep).
	if _, _, err := cloneProofs(p).Verify(v, cloneEvents(res.Events)); err != nil {
		t.Fatal(err)
	}
	// Verify derived each event's own audit path: the single-leaf proof
	// that "audittrail verify inclusion" reads, and that the server's
	// GetInclusionProof gives.
	for i, in := range p.Inclusions {
		e := res.Events[i].Clone()
		e.Seq = in.LeafIndex + 1
		if err := merkle.VerifyEventInclusion(cp, e, in.Proof); err != nil {
			t.Fatalf("%s: %v", in.Name, err)
		}
	}
	if len(p.Hashes) >= 25*len(p.Inclusions[0].Proof.Hashes)/2 {
		t.Errorf("the page's proof has %d hashes, its single proofs %d each", len(p.Hashes), len(p.Inclusions[0].Proof.Hashes))
	}
}

func TestCreateWithReceipt(t *testing.T) {
	srv := testserver.Start(t)
	v := serverVerifier(t, srv)
	producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
	reqs, _ := sampleRequests(t, 13, 5, time.Now().Add(-time.Hour))

	e, receipt, err := producer.CreateEventWithReceipt(t.Context(), reqs[0].EventID, reqs[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	cp, pending, err := receipt.Verify(v, []*audittrail.Event{e})
	if err != nil || pending != 0 {
		t.Fatalf("receipt: %d pending, %v", pending, err)
	}
	if receipt.Inclusions[0].LeafIndex != 0 || cp.Size < 1 {
		t.Errorf("first event at leaf %d of %d", receipt.Inclusions[0].LeafIndex, cp.Size)
	}
	// The receipt is the proof "audittrail verify inclusion" reads.
	if receipt.Inclusions[0].Proof.TreeSize != cp.Size {
		t.Errorf("proof for size %d", receipt.Inclusions[0].Proof.TreeSize)
	}

	res, receipts, err := producer.BatchCreateEventsWithReceipts(t.Context(), reqs[1:])
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("batch: %v %v", res, err)
	}
	if _, pending, err := receipts.Verify(v, res.Events); err != nil || pending != 0 {
		t.Fatalf("batch receipts: %d pending, %v", pending, err)
	}
	for i, in := range receipts.Inclusions {
		if in.LeafIndex != uint64(i+1) {
			t.Errorf("batch item %d at leaf %d, want %d", i, in.LeafIndex, i+1)
		}
	}
	// A batch that sends one event twice gets it, and its receipt, twice:
	// receipts may repeat a leaf, a search's proofs may not.
	twice := []audittrail.CreateRequest{reqs[1], reqs[2], reqs[1]}
	res2, receipts2, err := producer.BatchCreateEventsWithReceipts(t.Context(), twice)
	if err != nil || len(res2.Failed) != 0 || len(receipts2.Inclusions) != 3 || receipts2.Inclusions[2].LeafIndex != receipts2.Inclusions[0].LeafIndex {
		t.Fatalf("batch with an event twice: %v %+v %v", res2, receipts2, err)
	}
	if _, _, err := receipts2.Verify(v, res2.Events); err != nil {
		t.Errorf("receipts with an event twice: %v", err)
	}
	receipts2.Receipts = false
	if _, _, err := receipts2.Verify(v, res2.Events); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("the same proofs as a search's: %v, want the repeat refused", err)
	}
	// A receipt does not prove another event.
	if _, _, err := receipt.Verify(v, []*audittrail.Event{res.Events[0]}); err == nil {
		t.Error("the receipt of one event verified another")
	}
	// The plain create has no receipt and the same event.
	again, err := producer.CreateEvent(t.Context(), reqs[0].EventID, reqs[0].Event)
	if err != nil || !cmp.Equal(again, e) {
		t.Errorf("plain retry: %v %v", again, err)
	}
}

func cloneProofs(p *client.Proofs) *client.Proofs {
	c := &client.Proofs{Checkpoint: bytes.Clone(p.Checkpoint), TreeSize: p.TreeSize, Inclusions: make([]client.Inclusion, len(p.Inclusions)), Hashes: slices.Clone(p.Hashes)}
	for i, in := range p.Inclusions {
		c.Inclusions[i] = in
		if in.Proof != nil {
			pr := *in.Proof
			pr.Hashes = append(pr.Hashes[:0:0], in.Proof.Hashes...)
			c.Inclusions[i].Proof = &pr
		}
	}
	return c
}

func cloneEvents(evs []*audittrail.Event) []*audittrail.Event {
	out := make([]*audittrail.Event, len(evs))
	for i, e := range evs {
		out[i] = e.Clone()
	}
	return out
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestVerifiedEvents: the verified iteration yields exactly what Events
// yields, each event proven against a verified checkpoint, also when the
// log signs new checkpoints between pages (then the iteration checks them
// consistent with the earlier ones); with another key it stops at once.
func TestVerifiedEvents(t *testing.T) {
	srv := testserver.Start(t)
	v := serverVerifier(t, srv)
	producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
	auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))
	reqs, _ := sampleRequests(t, 21, 30, time.Now().Add(-time.Hour))
	createAll(t, producer, reqs)
	end := time.Now().Add(-30 * time.Minute)
	filter := audittrail.Filter{EndTime: &end}
	// Wait until a checkpoint covers the events.
	searchProven(t, auditor, v, audittrail.SearchEventsRequest{Filter: filter, PageSize: 30})

	var want []*audittrail.Event
	for e, err := range auditor.Events(t.Context(), filter, 7) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	var got []*audittrail.Event
	sizes := map[uint64]bool{}
	for pe, err := range auditor.VerifiedEvents(t.Context(), filter, 7, v) {
		if err != nil {
			t.Fatal(err)
		}
		if pe.Checkpoint == nil || pe.Proof == nil {
			t.Fatalf("%s: pending", pe.Event.Name())
		}
		e := pe.Event.Clone()
		e.Seq = pe.Proof.LeafIndex + 1
		if err := merkle.VerifyEventInclusion(pe.Checkpoint, e, pe.Proof); err != nil {
			t.Fatal(err)
		}
		got = append(got, pe.Event)
		if !sizes[pe.Checkpoint.Size] && len(got) < len(want) {
			// A new checkpoint before the next page: more events (after
			// the filter's end), then wait until the log signs them.
			sizes[pe.Checkpoint.Size] = true
			more, _ := sampleRequests(t, int64(100+len(got)), 3, time.Now())
			for i := range more {
				more[i].Event.Event.EventTime = time.Now()
			}
			createAll(t, producer, more)
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				note, err := auditor.Checkpoint(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if cp, err := merkle.OpenCheckpoint(note, v); err == nil && cp.Size > pe.Checkpoint.Size {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no new checkpoint")
				}
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verified iteration differs from Events (-Events +verified):\n%s", diff)
	}
	if len(sizes) < 2 {
		t.Errorf("the iteration saw checkpoints of %d sizes, want several", len(sizes))
	}

	_, otherVkey, err := merkle.GenerateKey(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := merkle.NewVerifier([]byte(otherVkey))
	n := 0
	for _, err := range auditor.VerifiedEvents(t.Context(), filter, 7, other) {
		if err == nil {
			n++
			continue
		}
		if !strings.Contains(err.Error(), "checkpoint") {
			t.Errorf("with another key: %v", err)
		}
	}
	if n != 0 {
		t.Errorf("%d events yielded with another key", n)
	}
}
