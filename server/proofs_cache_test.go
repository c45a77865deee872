package server_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/server"
)

// uncachedLog hides logsign.Log's CachedMultiProofHashes: the server proves
// with InclusionProofs, from storage.
type uncachedLog struct{ server.VerifiableLog }

// TestSearchProofsCachedEqualsUncached: the proofs of a search answer are
// the same whether the log serves them from its proof cache or the server
// proves them from storage, and they verify, in trees of several sizes.
func TestSearchProofsCachedEqualsUncached(t *testing.T) {
	f := startWithLog(t, 0)
	_, _, internal := serve(t, server.Config{
		Service:       &audittrail.Service{Store: f.store, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Log:           uncachedLog{f.log},
	}, nil)
	uncached := dialGRPC(t, internal)
	producer, reader := tokenCtx("p"), tokenCtx("r")
	n := 0
	for _, add := range []int{1, 2, 5, 30, 64} {
		for range add {
			req := &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Date(2026, 8, 1, 0, 0, n, 0, time.UTC), "cache/r")}
			if _, err := f.internal.CreateEvent(producer, req); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := f.log.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		req := &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: proto.String("cache/r")}, IncludeProofs: true, PageSize: 50}
		got, err := f.internal.SearchEvents(reader, req)
		if err != nil {
			t.Fatal(err)
		}
		want, err := uncached.SearchEvents(reader, req)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Proofs, want.Proofs) {
			t.Fatalf("%d events: cached proofs differ from proofs read from storage", n)
		}
		if pending, err := checkLogProofs(f.verifier, got.Events, got.Proofs); err != nil || pending != 0 {
			t.Fatalf("%d events: %d pending, %v", n, pending, err)
		}
	}
}
