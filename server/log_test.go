package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

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
