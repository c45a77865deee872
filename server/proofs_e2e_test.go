package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/merkle"
)

// The proofs attached to events (server/proofs.go) against the real binary:
// the default answers keep exactly their keys, searches with includeProofs
// and creates with receipts carry proofs that verify with the log's public
// key, over REST and gRPC.

func logVerifier(t *testing.T, srv *testserver.Server) note.Verifier {
	t.Helper()
	vkey, err := os.ReadFile(filepath.Join(srv.DataDir, "log-verification.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := merkle.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkLogProofs verifies p for events the way a client does: the
// checkpoint's signature, then the events' leaves (computed from the events
// as returned, at seq leaf_index+1) with the page's multi-inclusion proof
// against the checkpoint. It returns the number of pending events.
func checkLogProofs(v note.Verifier, events []*pb.Event, p *pb.LogProofs) (pending int, err error) {
	if p == nil {
		return 0, fmt.Errorf("no proofs")
	}
	if len(p.Inclusions) != len(events) {
		return 0, fmt.Errorf("%d inclusions for %d events", len(p.Inclusions), len(events))
	}
	var cp *merkle.Checkpoint
	if p.Checkpoint != "" {
		if cp, err = merkle.OpenCheckpoint([]byte(p.Checkpoint), v); err != nil {
			return 0, err
		}
		if cp.Size != p.TreeSize {
			return 0, fmt.Errorf("treeSize %d, the checkpoint says %d", p.TreeSize, cp.Size)
		}
	}
	var leaves []merkle.Leaf
	for i, in := range p.Inclusions {
		if in.Name != events[i].Name {
			return 0, fmt.Errorf("inclusion %d is for %s, the event is %s", i, in.Name, events[i].Name)
		}
		if in.Pending {
			if cp != nil && in.LeafIndex < cp.Size {
				return 0, fmt.Errorf("%s marked pending at leaf %d, inside the checkpoint's tree of %d", in.Name, in.LeafIndex, cp.Size)
			}
			pending++
			continue
		}
		if cp == nil {
			return 0, fmt.Errorf("%s: a proof without a checkpoint", in.Name)
		}
		e, err := wire.EventFromOutputProto(events[i])
		if err != nil {
			return 0, err
		}
		e.Seq = in.LeafIndex + 1
		leaves = append(leaves, merkle.Leaf{Index: in.LeafIndex, Hash: merkle.LeafHash(e)})
	}
	proof := &merkle.MultiInclusion{TreeSize: p.TreeSize, Hashes: make([]tlog.Hash, len(p.Hashes))}
	for j, h := range p.Hashes {
		if len(h) != tlog.HashSize {
			return 0, fmt.Errorf("hash %d has %d bytes", j, len(h))
		}
		copy(proof.Hashes[j][:], h)
	}
	if cp == nil {
		if len(proof.Hashes) != 0 {
			return 0, fmt.Errorf("hashes without a checkpoint")
		}
		return pending, nil
	}
	if _, err := merkle.VerifyMultiInclusion(cp, leaves, proof); err != nil {
		return 0, err
	}
	return pending, nil
}

// decodeSearch decodes a REST search answer strictly (no unknown field).
func decodeSearch(t *testing.T, r *response) *pb.SearchEventsResponse {
	t.Helper()
	var out pb.SearchEventsResponse
	if err := protojson.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("search answer: %v\n%s", err, r.body)
	}
	return &out
}

// TestE2EDefaultAnswersUnchanged pins the keys of the answers that do not
// ask for proofs: exactly those of the H2O API, so that the official client
// and byte-level comparisons see no difference.
func TestE2EDefaultAnswersUnchanged(t *testing.T) {
	srv := testserver.Start(t)
	id := newID()
	r := call(t, "POST", srv.InternalURL+"/v1/events?eventId="+id, srv.ProducerToken, eventBody("2026-07-01T00:00:00Z", "default/keys"))
	if r.status != http.StatusOK {
		t.Fatalf("create: %s", r)
	}
	if got := sortedKeys(r.json(t)); !slices.Equal(got, []string{"event"}) {
		t.Errorf("create answer keys %v, want [event]", got)
	}
	batch := fmt.Sprintf(`{"requests": [{"eventId": %q, "event": %s}]}`, newID(), eventBody("2026-07-01T00:00:01Z", "default/keys"))
	r = call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, batch)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	if got := sortedKeys(r.json(t)); !slices.Equal(got, []string{"events", "failedRequests"}) {
		t.Errorf("batch answer keys %v, want [events failedRequests]", got)
	}
	want := []string{"events", "nextPageToken", "searchedUntilTime"}
	for _, body := range []string{
		`{"filter": {"resourceExact": "default/keys"}}`,
		`{"filter": {"resourceExact": "default/keys"}, "includeProofs": false}`,
		`{"filter": {"resourceExact": "default/keys"}, "pageSize": 1}`,
		`{"filter": {"resourceExact": "no such resource"}}`,
	} {
		resp := searchREST(t, srv, srv.PublicURL, body)
		if got := sortedKeys(resp); !slices.Equal(got, want) {
			t.Errorf("search %s: keys %v, want %v", body, got, want)
		}
		for _, e := range resp["events"].([]any) {
			checkEventKeys(t, e)
		}
	}
	// The same search with proofs adds "proofs" and nothing else.
	resp := searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "default/keys"}, "includeProofs": true}`)
	if got := sortedKeys(resp); !slices.Equal(got, []string{"events", "nextPageToken", "proofs", "searchedUntilTime"}) {
		t.Errorf("search with proofs: keys %v", got)
	}
	p := resp["proofs"].(map[string]any)
	if got := sortedKeys(p); !slices.Equal(got, []string{"checkpoint", "hashes", "inclusions", "treeSize"}) {
		t.Errorf("proofs keys %v", got)
	}
	for _, in := range p["inclusions"].([]any) {
		if got := sortedKeys(in.(map[string]any)); !slices.Equal(got, []string{"leafIndex", "name", "pending"}) {
			t.Errorf("inclusion keys %v", got)
		}
	}
	// The self-audit records which searches asked for proofs.
	audit := searchREST(t, srv, srv.PublicURL, `{"filter": {"eventSourceExact": "`+audittrail.DefaultSelfAuditSource+`"}, "pageSize": 100}`)
	withFlag := 0
	for _, e := range audit["events"].([]any) {
		params, _ := e.(map[string]any)["requestParameters"].(map[string]any)
		if params["include_proofs"] != nil {
			if params["include_proofs"] != "true" {
				t.Errorf("include_proofs parameter %v", params["include_proofs"])
			}
			withFlag++
		}
	}
	if withFlag != 1 {
		t.Errorf("%d audited searches with include_proofs, want 1 of %d", withFlag, len(audit["events"].([]any)))
	}
}

// TestE2ESearchProofsREST searches with includeProofs until no event of the
// test is pending, and verifies every proof; then checks that a tampered
// event or proof fails the same verification.
func TestE2ESearchProofsREST(t *testing.T) {
	srv := testserver.Start(t)
	v := logVerifier(t, srv)
	var batch []string
	for i := range 7 {
		batch = append(batch, fmt.Sprintf(`{"eventId": %q, "event": %s}`, newID(), eventBody(fmt.Sprintf("2026-07-02T00:00:0%dZ", i), "proofs/rest")))
	}
	r := call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(batch, ", ")+`]}`)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	// Right after the create the events are (most likely) pending; within
	// a second or two a checkpoint covers them.
	var resp *pb.SearchEventsResponse
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken,
			`{"filter": {"resourceExact": "proofs/rest"}, "pageSize": 5, "includeProofs": true}`)
		if r.status != http.StatusOK {
			t.Fatalf("search: %s", r)
		}
		resp = decodeSearch(t, r)
		if len(resp.Events) != 5 {
			t.Fatalf("%d events, want a page of 5", len(resp.Events))
		}
		pending, err := checkLogProofs(v, resp.Events, resp.Proofs)
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d pending events", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The second page is proven too, against the then latest checkpoint.
	r = call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken,
		fmt.Sprintf(`{"filter": {"resourceExact": "proofs/rest"}, "pageSize": 5, "pageToken": %q, "includeProofs": true}`, resp.NextPageToken))
	page2 := decodeSearch(t, r)
	if len(page2.Events) != 2 || page2.NextPageToken != "" {
		t.Fatalf("page 2: %d events, token %q", len(page2.Events), page2.NextPageToken)
	}
	if pending, err := checkLogProofs(v, page2.Events, page2.Proofs); err != nil || pending != 0 {
		t.Fatalf("page 2: %d pending, %v", pending, err)
	}

	// The verification above can fail: a changed event, a changed hash,
	// a proof presented for another event each fail it.
	forged := []struct {
		name   string
		change func(evs []*pb.Event, p *pb.LogProofs)
	}{
		{"event field changed", func(evs []*pb.Event, p *pb.LogProofs) { evs[1].Principal = "users/mallory" }},
		{"hash bit flipped", func(evs []*pb.Event, p *pb.LogProofs) { p.Hashes[0][5] ^= 1 }},
		{"leaf index moved", func(evs []*pb.Event, p *pb.LogProofs) { p.Inclusions[0].LeafIndex++ }},
		{"events swapped", func(evs []*pb.Event, p *pb.LogProofs) {
			p.Inclusions[0].Name, p.Inclusions[1].Name = p.Inclusions[1].Name, p.Inclusions[0].Name
			evs[0], evs[1] = evs[1], evs[0]
		}},
		{"tree size changed", func(evs []*pb.Event, p *pb.LogProofs) { p.TreeSize-- }},
		{"pending inside the tree", func(evs []*pb.Event, p *pb.LogProofs) { p.Inclusions[3].Pending = true }},
	}
	for _, f := range forged {
		evs := make([]*pb.Event, len(resp.Events))
		for i, e := range resp.Events {
			evs[i] = proto.Clone(e).(*pb.Event)
		}
		p := proto.Clone(resp.Proofs).(*pb.LogProofs)
		f.change(evs, p)
		if _, err := checkLogProofs(v, evs, p); err == nil {
			t.Errorf("%s: verified", f.name)
		}
	}
}

// TestE2EProofsGRPC searches with include_proofs and creates with receipts
// over gRPC.
func TestE2EProofsGRPC(t *testing.T) {
	srv := testserver.Start(t)
	v := logVerifier(t, srv)
	internal := dialGRPC(t, srv.InternalAddr)
	public := dialGRPC(t, srv.PublicAddr)
	producer, reader := withToken(t, srv.ProducerToken), withToken(t, srv.ReaderToken)

	// A receipt: the create waits for a checkpoint covering the event.
	id := newID()
	created, err := internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: id, Event: pbEvent(time.Date(2026, 7, 3, 0, 0, 0, 0, time.UTC), "proofs/grpc"), IncludeReceipt: true})
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := checkLogProofs(v, []*pb.Event{created.Event}, created.Receipt); err != nil || pending != 0 {
		t.Fatalf("receipt: %d pending, %v", pending, err)
	}
	// Without the flag, no receipt.
	plain, err := internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Date(2026, 7, 3, 0, 0, 1, 0, time.UTC), "proofs/grpc")})
	if err != nil || plain.Receipt != nil {
		t.Fatalf("create without receipt: %v, receipt %v", err, plain.GetReceipt())
	}
	// A retry with the same id returns the same event at the same leaf.
	again, err := internal.CreateEvent(producer, &pb.CreateEventRequest{EventId: id, Event: pbEvent(time.Date(2026, 7, 3, 0, 0, 0, 0, time.UTC), "proofs/grpc"), IncludeReceipt: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Receipt.Inclusions[0].LeafIndex != created.Receipt.Inclusions[0].LeafIndex {
		t.Errorf("retry: leaf %d, first %d", again.Receipt.Inclusions[0].LeafIndex, created.Receipt.Inclusions[0].LeafIndex)
	}

	res, err := public.SearchEvents(reader, &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: proto.String("proofs/grpc")}, IncludeProofs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 {
		t.Fatalf("%d events", len(res.Events))
	}
	// The receipt's event is covered (its checkpoint is signed); the other
	// may be pending, never wrongly.
	pending, err := checkLogProofs(v, res.Events, res.Proofs)
	if err != nil || pending > 1 {
		t.Fatalf("search proofs: %d pending, %v", pending, err)
	}
	res, err = public.SearchEvents(reader, &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: proto.String("proofs/grpc")}})
	if err != nil || res.Proofs != nil {
		t.Fatalf("search without proofs: %v, proofs %v", err, res.GetProofs())
	}
}

// TestE2EReceiptsREST creates with includeReceipt (query parameter) and
// includeReceipts (batch body) over REST.
func TestE2EReceiptsREST(t *testing.T) {
	srv := testserver.Start(t)
	v := logVerifier(t, srv)
	r := call(t, "POST", srv.InternalURL+"/v1/events?eventId="+newID()+"&includeReceipt=true", srv.ProducerToken, eventBody("2026-07-04T00:00:00Z", "receipts/rest"))
	if r.status != http.StatusOK {
		t.Fatalf("create: %s", r)
	}
	if got := sortedKeys(r.json(t)); !slices.Equal(got, []string{"event", "receipt"}) {
		t.Errorf("keys %v", got)
	}
	var one pb.CreateEventResponse
	if err := protojson.Unmarshal(r.body, &one); err != nil {
		t.Fatal(err)
	}
	if pending, err := checkLogProofs(v, []*pb.Event{one.Event}, one.Receipt); err != nil || pending != 0 {
		t.Fatalf("receipt: %d pending, %v", pending, err)
	}

	var items []string
	for i := range 3 {
		items = append(items, fmt.Sprintf(`{"eventId": %q, "event": %s}`, newID(), eventBody(fmt.Sprintf("2026-07-04T00:00:0%dZ", i+1), "receipts/rest")))
	}
	items = append(items, fmt.Sprintf(`{"eventId": "not-a-uuid", "event": %s}`, eventBody("2026-07-04T00:00:09Z", "receipts/rest")))
	r = call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(items, ", ")+`], "includeReceipts": true}`)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	var batch pb.BatchCreateEventsResponse
	if err := protojson.Unmarshal(r.body, &batch); err != nil {
		t.Fatal(err)
	}
	if len(batch.Events) != 3 || len(batch.FailedRequests) != 1 {
		t.Fatalf("batch: %s", r.body)
	}
	if pending, err := checkLogProofs(v, batch.Events, batch.Receipts); err != nil || pending != 0 {
		t.Fatalf("batch receipts: %d pending, %v", pending, err)
	}
	for i, in := range batch.Receipts.Inclusions {
		if i > 0 && in.LeafIndex != batch.Receipts.Inclusions[i-1].LeafIndex+1 {
			t.Errorf("batch leaves %d then %d: not consecutive", batch.Receipts.Inclusions[i-1].LeafIndex, in.LeafIndex)
		}
	}
}
