package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/merkle"
)

// editedSearch is a server that alters its answers of SearchEvents.
type editedSearch struct {
	pb.EventServiceClient
	edit func(*pb.SearchEventsRequest, *pb.SearchEventsResponse)
}

func (s *editedSearch) SearchEvents(ctx context.Context, in *pb.SearchEventsRequest, opts ...grpc.CallOption) (*pb.SearchEventsResponse, error) {
	resp, err := s.EventServiceClient.SearchEvents(ctx, in, opts...)
	if err == nil {
		s.edit(in, resp)
	}
	return resp, err
}

// TestVerifiedEventsPendingCovered: events a later page calls pending (as a
// replica behind would, or a server hiding a change) that a checkpoint the
// iteration already verified covers are proven against that checkpoint:
// honest ones come out proven, a changed one ends the iteration. Without a
// checkpoint of its own, the page's Verify has nothing to hold the claim
// against; the iteration has.
func TestVerifiedEventsPendingCovered(t *testing.T) {
	ctx := t.Context()
	_, producer, reader, verifier := startLogServer(t)
	g := sample.New(1, sample.Options{Events: 30, Span: time.Hour, End: time.Now()})
	reqs := make([]audittrail.CreateRequest, 30)
	for i := range reqs {
		reqs[i].EventID, reqs[i].Event = g.Next()
	}
	if res, err := producer.BatchCreateEvents(ctx, reqs); err != nil || len(res.Failed) > 0 {
		t.Fatalf("creating events: %v %v", err, res)
	}
	created := map[string]bool{}
	for _, r := range reqs {
		created[r.EventID] = true
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if text, err := reader.Checkpoint(ctx); err == nil {
			if cp, err := merkle.OpenCheckpoint(text, verifier); err == nil && cp.Size >= 30 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of 30 leaves")
		}
	}
	count := func() (proven, pending int, err error) {
		for pe, err := range reader.VerifiedEvents(ctx, audittrail.Filter{}, 10, verifier) {
			if err != nil {
				return proven, pending, err
			}
			if !created[pe.Event.ID] {
				continue // the searches' own self-audit events
			}
			if pe.Checkpoint != nil {
				proven++
			} else {
				pending++
			}
		}
		return proven, pending, nil
	}
	if proven, pending, err := count(); err != nil || proven != 30 || pending != 0 {
		t.Fatalf("the honest answers: %d proven, %d pending, %v", proven, pending, err)
	}
	honest := reader.rpc
	defer func() { reader.rpc = honest }()
	// Every page after the first claims all its events pending, without a
	// checkpoint; changed says whether it also changes its first event.
	behind := func(changed bool) *editedSearch {
		return &editedSearch{EventServiceClient: honest, edit: func(in *pb.SearchEventsRequest, r *pb.SearchEventsResponse) {
			if in.GetPageToken() == "" {
				return
			}
			for _, e := range r.Events {
				if changed && created[strings.TrimPrefix(e.GetName(), "events/")] {
					e.Resource += "x"
					break
				}
			}
			r.Proofs.Checkpoint, r.Proofs.TreeSize, r.Proofs.Hashes = "", 0, nil
			for _, in := range r.Proofs.Inclusions {
				in.Pending = true
			}
		}}
	}
	reader.rpc = behind(false)
	if proven, pending, err := count(); err != nil || proven != 30 || pending != 0 {
		t.Fatalf("pages behind the first: %d proven, %d pending, %v; want all 30 proven against the first page's checkpoint", proven, pending, err)
	}
	reader.rpc = behind(true)
	if proven, pending, err := count(); err == nil || !strings.Contains(err.Error(), "claimed pending") {
		t.Fatalf("a changed event claimed pending: %d proven, %d pending, %v; want an error", proven, pending, err)
	}
}
