package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/merkle"
)

func dialLog(t *testing.T, addr string) pb.LogServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewLogServiceClient(conn)
}

// TestLogServiceGRPC creates an event, waits for a signed checkpoint
// covering it and verifies its inclusion proof, over gRPC on both listeners.
func TestLogServiceGRPC(t *testing.T) {
	srv := testserver.Start(t)
	events := dialGRPC(t, srv.InternalAddr)
	producer, reader := withToken(t, srv.ProducerToken), withToken(t, srv.ReaderToken)
	created, err := events.CreateEvent(producer, &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC), "//log/1")})
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile(filepath.Join(srv.DataDir, "log-verification.key"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := merkle.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{srv.PublicAddr, srv.InternalAddr} {
		lc := dialLog(t, addr)
		_, err := lc.GetCheckpoint(producer, &pb.GetCheckpointRequest{})
		wantCode(t, err, codes.PermissionDenied, "")
		var cp *merkle.Checkpoint
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := lc.GetCheckpoint(reader, &pb.GetCheckpointRequest{})
			if err == nil {
				if cp, err = merkle.OpenCheckpoint([]byte(res.Checkpoint), verifier); err != nil {
					t.Fatal(err)
				}
				if cp.Size >= 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		incl, err := lc.GetInclusionProof(reader, &pb.GetInclusionProofRequest{Name: created.Event.Name, TreeSize: cp.Size})
		if err != nil {
			t.Fatal(err)
		}
		var p merkle.Inclusion
		if err := json.Unmarshal([]byte(incl.Proof), &p); err != nil {
			t.Fatal(err)
		}
		e, err := wire.EventFromOutputProto(created.Event)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = incl.Seq
		if err := merkle.VerifyEventInclusion(cp, e, &p); err != nil {
			t.Errorf("inclusion of the created event: %v", err)
		}
		_, err = lc.GetInclusionProof(reader, &pb.GetInclusionProofRequest{Name: "events/" + newID()})
		wantCode(t, err, codes.NotFound, "")
		cons, err := lc.GetConsistencyProof(reader, &pb.GetConsistencyProofRequest{First: 0, Second: cp.Size})
		if err != nil || cons.Proof == "" {
			t.Errorf("consistency: %v %v", cons, err)
		}
	}
}

// TestLogEntriesREST reads the log's entries over REST: the events in seq
// order from the requested leaf, as a search shows them, and the refusals.
func TestLogEntriesREST(t *testing.T) {
	srv := testserver.Start(t)
	var ids []string
	for i := range 3 {
		ev := createREST(t, srv, newID(), eventBody("2026-04-01T12:00:0"+strconv.Itoa(i)+"Z", "//entries/"+strconv.Itoa(i)))
		ids = append(ids, ev["name"].(string))
	}
	r := call(t, "GET", srv.PublicURL+"/v1/log/entries?start=1&pageSize=2", srv.ReaderToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/log/entries: %s", r)
	}
	v := r.json(t)
	if got := sortedKeys(v); !slices.Equal(got, []string{"committedSize", "deletedLeafHashes", "events", "start"}) || len(v["deletedLeafHashes"].([]any)) != 0 {
		t.Errorf("keys %v", got)
	}
	events, _ := v["events"].([]any)
	if v["start"] != "1" || len(events) != 2 || v["committedSize"] != "3" {
		t.Fatalf("entries from leaf 1: %s", r.body)
	}
	for i, e := range events {
		checkEventKeys(t, e)
		if name := e.(map[string]any)["name"]; name != ids[i+1] {
			t.Errorf("leaf %d is %v, want %s (the order of creation)", i+1, name, ids[i+1])
		}
	}
	// The read was recorded; the next leaf is its self-audit event.
	r = call(t, "GET", srv.PublicURL+"/v1/log/entries?start=3", srv.ReaderToken, "")
	events, _ = r.json(t)["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["action"] != audittrail.ActionReadLogEntries {
		t.Errorf("the entry after the events: %s, want the self-audit event of the first read", r.body)
	}

	// With proofs: the same answer and a "proofs" object, one inclusion
	// per entry (pending until a checkpoint covers them).
	r = call(t, "GET", srv.PublicURL+"/v1/log/entries?start=0&pageSize=3&includeProofs=true", srv.ReaderToken, "")
	v = r.json(t)
	proofs, _ := v["proofs"].(map[string]any)
	if inclusions, _ := proofs["inclusions"].([]any); r.status != http.StatusOK || len(inclusions) != 3 {
		t.Errorf("entries with proofs: %s", r)
	}
	if r := call(t, "GET", srv.PublicURL+"/v1/log/entries?start=0&pageSize=3", srv.ReaderToken, ""); strings.Contains(string(r.body), "proofs") {
		t.Errorf("entries without proofs carry proofs: %s", r)
	}

	wantStatus(t, call(t, "GET", srv.PublicURL+"/v1/log/entries", srv.ProducerToken, ""), http.StatusForbidden, 7, "auditor role")
	wantStatus(t, call(t, "GET", srv.PublicURL+"/v1/log/entries", "", ""), http.StatusUnauthorized, 16, "")
	wantStatus(t, call(t, "GET", srv.PublicURL+"/v1/log/entries?pageSize=-1", srv.ReaderToken, ""), http.StatusBadRequest, 3, "page_size must not be negative")
	wantStatus(t, call(t, "GET", srv.PublicURL+"/v1/log/entries?start=x", srv.ReaderToken, ""), http.StatusBadRequest, 3, "start")
}
