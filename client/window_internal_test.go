package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
)

// editedLog is a server that alters its answers of GetLogEntries.
type editedLog struct {
	pb.LogServiceClient
	edit func(*pb.GetLogEntriesResponse)
}

func (l *editedLog) GetLogEntries(ctx context.Context, in *pb.GetLogEntriesRequest, opts ...grpc.CallOption) (*pb.GetLogEntriesResponse, error) {
	resp, err := l.LogServiceClient.GetLogEntries(ctx, in, opts...)
	if err == nil && l.edit != nil {
		l.edit(resp)
	}
	return resp, err
}

// startLogServer starts a server and returns it with a producer's client, a
// reader's, and the verifier of its log's key; the clients close with the
// test.
func startLogServer(t *testing.T) (srv *testserver.Server, producer, reader *Client, verifier note.Verifier) {
	t.Helper()
	srv = testserver.Start(t)
	dial := func(addr, token string) *Client {
		c, err := Dial(t.Context(), addr, WithToken(token))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	key, err := os.ReadFile(filepath.Join(srv.DataDir, logsign.VerificationKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if verifier, err = merkle.NewVerifier(key); err != nil {
		t.Fatal(err)
	}
	return srv, dial(srv.InternalAddr, srv.ProducerToken), dial(srv.PublicAddr, srv.ReaderToken), verifier
}

// TestVerifiedWindow proves the events between two checkpoints of the real
// server's log (more than one page of them) complete and in place, and
// fails on answers altered to leave an event out, change one, or move one
// while proving it at its true position.
func TestVerifiedWindow(t *testing.T) {
	ctx := t.Context()
	srv, producer, auditor, verifier := startLogServer(t)
	seed := int64(0)
	produce := func(n int) []string {
		seed++
		g := sample.New(seed, sample.Options{Events: n, Span: time.Hour, End: time.Now()})
		var ids []string
		for n > 0 {
			reqs := make([]audittrail.CreateRequest, min(n, audittrail.MaxBatch))
			for i := range reqs {
				reqs[i].EventID, reqs[i].Event = g.Next()
				ids = append(ids, reqs[i].EventID)
			}
			if res, err := producer.BatchCreateEvents(ctx, reqs); err != nil || len(res.Failed) > 0 {
				t.Fatalf("creating events: %v %v", err, res)
			}
			n -= len(reqs)
		}
		return ids
	}
	checkpoint := func(size uint64) *merkle.Checkpoint {
		deadline := time.Now().Add(20 * time.Second)
		for {
			text, err := auditor.Checkpoint(ctx)
			if err == nil {
				cp, err := merkle.OpenCheckpoint(text, verifier)
				if err != nil {
					t.Fatal(err)
				}
				if cp.Size >= size {
					return cp
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of %d leaves", size)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	produce(300)
	older := checkpoint(300)
	inside := produce(1500)
	newer := checkpoint(older.Size + 1500)
	produce(100)

	var got []*audittrail.Event
	for pe, err := range auditor.VerifiedWindow(ctx, older, newer, verifier) {
		if err != nil {
			t.Fatal(err)
		}
		if pe.Checkpoint == nil || pe.Proof == nil {
			t.Fatalf("event %s yielded without its proof", pe.Event.ID)
		}
		got = append(got, pe.Event)
	}
	if uint64(len(got)) != newer.Size-older.Size {
		t.Fatalf("%d events in the window, want %d", len(got), newer.Size-older.Size)
	}
	ids := map[string]bool{}
	for i, e := range got {
		if e.Seq != older.Size+uint64(i)+1 || e.ReceiveTime.Before(older.ReceivedBefore) || !e.ReceiveTime.Before(newer.ReceivedBefore) {
			t.Fatalf("event %d of the window: seq %d received %s, outside [%d, %d] or the horizons", i, e.Seq, e.ReceiveTime, older.Size+1, newer.Size)
		}
		ids[e.ID] = true
	}
	for _, id := range inside {
		if !ids[id] {
			t.Fatalf("event %s, created between the checkpoints, is not in the window", id)
		}
	}

	honestLog := auditor.log
	defer func() { auditor.log = honestLog }()
	for name, edit := range map[string]func(*pb.GetLogEntriesResponse){
		"an event changed": func(r *pb.GetLogEntriesResponse) { r.Events[3].Resource += "x" },
		"an event left out": func(r *pb.GetLogEntriesResponse) {
			r.Events = slices.Delete(r.Events, 5, 6)
			r.Proofs.Inclusions = slices.Delete(r.Proofs.Inclusions, 5, 6)
		},
		"two events moved, each proven where it is": func(r *pb.GetLogEntriesResponse) {
			r.Events[1], r.Events[2] = r.Events[2], r.Events[1]
			r.Proofs.Inclusions[1], r.Proofs.Inclusions[2] = r.Proofs.Inclusions[2], r.Proofs.Inclusions[1]
		},
	} {
		auditor.log = &editedLog{LogServiceClient: honestLog, edit: edit}
		var err error
		for _, err = range auditor.VerifiedWindow(ctx, older, newer, verifier) {
			if err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: the window verified", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}

	// Leaves whose events a retention policy deleted: the first page
	// answered as deleted leaf hashes (as a PostgreSQL store with a dropped
	// month answers; the real deletion is tested in cmd/audittrail,
	// TestVerifiedLogPostgres). Without WithDeletedLeaves the window stops
	// there; with it they are yielded, proven, and a wrong hash or a named
	// inclusion fails.
	asDeleted := func(change func(r *pb.GetLogEntriesResponse)) func(*pb.GetLogEntriesResponse) {
		return func(r *pb.GetLogEntriesResponse) {
			if r.Start != older.Size {
				return
			}
			for i, p := range r.Events {
				e, err := eventFromProto(p)
				if err != nil {
					t.Fatal(err)
				}
				e.Seq = r.Start + uint64(i) + 1
				h := merkle.LeafHash(e)
				r.DeletedLeafHashes = append(r.DeletedLeafHashes, h[:])
				r.Proofs.Inclusions[i].Name = ""
			}
			r.Events = nil
			if change != nil {
				change(r)
			}
		}
	}
	window := func(edit func(*pb.GetLogEntriesResponse), opts ...WindowOption) (deleted, events int, err error) {
		auditor.log = &editedLog{LogServiceClient: honestLog, edit: edit}
		for pe, err := range auditor.VerifiedWindow(ctx, older, newer, verifier, opts...) {
			if err != nil {
				return deleted, events, err
			}
			if pe.Deleted {
				if pe.Event != nil || pe.Proof == nil || pe.Proof.LeafIndex != older.Size+uint64(deleted) {
					t.Fatalf("deleted leaf %d yielded as %+v", older.Size+uint64(deleted), pe)
				}
				deleted++
			} else {
				events++
			}
		}
		return deleted, events, nil
	}
	if _, _, err := window(asDeleted(nil)); audittrail.ErrorCode(err) != audittrail.ENotFound {
		t.Errorf("a window across deleted leaves without WithDeletedLeaves: %v, want ENotFound", err)
	}
	deleted, events, err := window(asDeleted(nil), WithDeletedLeaves())
	if err != nil || deleted != audittrail.MaxLogEntries || uint64(deleted+events) != newer.Size-older.Size {
		t.Errorf("a window across deleted leaves: %d deleted, %d events, %v; want the first page deleted and %d leaves in all", deleted, events, err, newer.Size-older.Size)
	}
	for name, change := range map[string]func(r *pb.GetLogEntriesResponse){
		"another leaf hash": func(r *pb.GetLogEntriesResponse) { r.DeletedLeafHashes[7][0] ^= 1 },
		"a named inclusion": func(r *pb.GetLogEntriesResponse) { r.Proofs.Inclusions[2].Name = "events/x" },
		"a hash left out":   func(r *pb.GetLogEntriesResponse) { r.DeletedLeafHashes = r.DeletedLeafHashes[1:] },
		"two hashes swapped": func(r *pb.GetLogEntriesResponse) {
			r.DeletedLeafHashes[1], r.DeletedLeafHashes[2] = r.DeletedLeafHashes[2], r.DeletedLeafHashes[1]
		},
		"a hash of 31 bytes":    func(r *pb.GetLogEntriesResponse) { r.DeletedLeafHashes[0] = r.DeletedLeafHashes[0][1:] },
		"events and hashes too": func(r *pb.GetLogEntriesResponse) { r.Events = []*pb.Event{{}} },
	} {
		if _, _, err := window(asDeleted(change), WithDeletedLeaves()); err == nil {
			t.Errorf("deleted leaves with %s: the window verified", name)
		} else {
			t.Logf("deleted leaves with %s: %v", name, err)
		}
	}
	auditor.log = honestLog

	skey, err := os.ReadFile(filepath.Join(srv.DataDir, logsign.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := merkle.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	forged := *newer
	forged.Root[0] ^= 1
	text, err := merkle.Sign(&forged, signer)
	if err != nil {
		t.Fatal(err)
	}
	forgedCP, err := merkle.OpenCheckpoint(text, verifier)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]*merkle.Checkpoint{
		"a forged newer checkpoint": {older, forgedCP},
		"the checkpoints reversed":  {newer, older},
	} {
		var err error
		for _, err = range auditor.VerifiedWindow(ctx, pair[0], pair[1], verifier) {
			break
		}
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}
