package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/server"
)

// The in-process tests of proofs.go drive the log's integrator by hand
// (logsign.Log.Flush instead of Run), so that what is pending is exact.

type logFixture struct {
	log      *logsign.Log
	store    *pebblestore.Store
	verifier note.Verifier
	internal pb.EventServiceClient
	public   pb.EventServiceClient
	// internalAddr is the internal listener's host:port (HTTP too: /metrics).
	internalAddr string
}

// startWithLog serves a fresh embedded store with a verifiable log that
// integrates only when the test flushes it.
func startWithLog(t *testing.T, receiptWait time.Duration) *logFixture {
	t.Helper()
	ctx := context.Background()
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := merkle.GenerateKey(rand.Reader, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := merkle.NewSigner([]byte(skey))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := merkle.NewVerifier([]byte(vkey))
	if err != nil {
		t.Fatal(err)
	}
	l, err := logsign.New(ctx, logsign.Config{Store: st, Signer: signer, VerifierKey: vkey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, public, internal := serve(t, server.Config{
		Service:       &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Log:           l,
		ReceiptWait:   receiptWait,
	}, st)
	return &logFixture{log: l, store: st, verifier: verifier, internal: dialGRPC(t, internal), public: dialGRPC(t, public), internalAddr: internal}
}

// serve starts a server with cfg on loopback ports; the store closes after
// the server has stopped.
func serve(t testing.TB, cfg server.Config, st audittrail.Store) (*server.Server, string, string) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(pl, il)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if st != nil {
			st.Close()
		}
	})
	return srv, pl.Addr().String(), il.Addr().String()
}

func tokenCtx(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func TestSearchProofsPending(t *testing.T) {
	f := startWithLog(t, 0)
	producer, reader := tokenCtx("p"), tokenCtx("r")
	mk := func(i int) *pb.CreateEventRequest {
		return &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Date(2026, 8, 1, 0, 0, i, 0, time.UTC), "pending/r")}
	}
	for i := range 3 {
		if _, err := f.internal.CreateEvent(producer, mk(i)); err != nil {
			t.Fatal(err)
		}
	}
	search := func() *pb.SearchEventsResponse {
		t.Helper()
		res, err := f.public.SearchEvents(reader, &pb.SearchEventsRequest{
			Filter: &pb.SearchEventsRequest_Filter{ResourceExact: proto.String("pending/r")}, IncludeProofs: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Before the first signature: no checkpoint, every event pending, at
	// its leaf (seq - 1; newest first).
	res := search()
	if res.Proofs.Checkpoint != "" || res.Proofs.TreeSize != 0 || len(res.Proofs.Hashes) != 0 {
		t.Errorf("checkpoint before the first signature: %q, size %d", res.Proofs.Checkpoint, res.Proofs.TreeSize)
	}
	for i, in := range res.Proofs.Inclusions {
		if !in.Pending || in.LeafIndex != uint64(2-i) || in.Name != res.Events[i].Name {
			t.Errorf("inclusion %d: %v", i, in)
		}
	}
	if pending, err := checkLogProofs(f.verifier, res.Events, res.Proofs); err != nil || pending != 3 {
		t.Errorf("%d pending, %v", pending, err)
	}

	// Integrated and signed: every event proven.
	if err := f.log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	res = search()
	if pending, err := checkLogProofs(f.verifier, res.Events, res.Proofs); err != nil || pending != 0 {
		t.Fatalf("after the flush: %d pending, %v", pending, err)
	}
	signed := res.Proofs.Checkpoint

	// A newer event is pending, the older ones proven against the same
	// checkpoint.
	if _, err := f.internal.CreateEvent(producer, mk(9)); err != nil {
		t.Fatal(err)
	}
	res = search()
	if res.Proofs.Checkpoint != signed {
		t.Errorf("the checkpoint changed without a flush")
	}
	if pending, err := checkLogProofs(f.verifier, res.Events, res.Proofs); err != nil || pending != 1 || !res.Proofs.Inclusions[0].Pending {
		t.Fatalf("one new event: %d pending, %v", pending, err)
	}
	if in := res.Proofs.Inclusions[0]; in.LeafIndex < res.Proofs.TreeSize {
		t.Errorf("pending leaf %d inside the tree of %d", in.LeafIndex, res.Proofs.TreeSize)
	}
}

// receiptMarginForTest is server.receiptMargin (100 ms), the time the server
// keeps before a caller's deadline.
const receiptMarginForTest = 100 * time.Millisecond

func TestReceiptWaitIsBounded(t *testing.T) {
	const wait = 300 * time.Millisecond
	f := startWithLog(t, wait)
	producer := tokenCtx("p")
	req := &pb.CreateEventRequest{EventId: newID(), Event: pbEvent(time.Date(2026, 8, 2, 0, 0, 0, 0, time.UTC), "receipt/wait"), IncludeReceipt: true}

	// Nobody integrates: the create answers after the wait, stored, with a
	// pending receipt.
	start := time.Now()
	res, err := f.internal.CreateEvent(producer, req)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < wait || took > wait+5*time.Second {
		t.Errorf("create with a receipt took %v, want about %v", took, wait)
	}
	if in := res.Receipt.GetInclusions(); len(in) != 1 || !in[0].Pending || in[0].LeafIndex != 0 || res.Receipt.Checkpoint != "" {
		t.Fatalf("receipt %v", res.Receipt)
	}

	// A caller's deadline shorter than the wait: the answer comes before it,
	// pending, rather than DEADLINE_EXCEEDED for an event that is stored.
	ctx, cancel := context.WithTimeout(producer, wait/2+receiptMarginForTest)
	defer cancel()
	res, err = f.internal.CreateEvent(ctx, req)
	if err != nil {
		t.Fatalf("create with a deadline shorter than the wait: %v", err)
	}
	if in := res.Receipt.GetInclusions(); len(in) != 1 || !in[0].Pending {
		t.Fatalf("receipt %v", res.Receipt)
	}

	// The retry of the same create, while the log signs: proven.
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.log.Flush(context.Background())
	}()
	res, err = f.internal.CreateEvent(producer, req)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := checkLogProofs(f.verifier, []*pb.Event{res.Event}, res.Receipt); err != nil || pending != 0 {
		t.Fatalf("retry: %d pending, %v", pending, err)
	}

	// A batch whose items all fail has an empty receipt at once.
	start = time.Now()
	b, err := f.internal.BatchCreateEvents(producer, &pb.BatchCreateEventsRequest{
		Requests: []*pb.CreateEventRequest{{EventId: "bad", Event: req.Event}}, IncludeReceipts: true})
	if err != nil || len(b.FailedRequests) != 1 || b.Receipts == nil || len(b.Receipts.Inclusions) != 0 {
		t.Fatalf("failed batch: %v %v", b, err)
	}
	if took := time.Since(start); took >= wait {
		t.Errorf("an empty batch waited %v", took)
	}
}

// TestProofsWithoutLog: a server without a verifiable log (a store that keeps none)
// refuses proofs and receipts with UNIMPLEMENTED, and stores nothing for a
// refused create.
func TestProofsWithoutLog(t *testing.T) {
	ctx := context.Background()
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, public, internal := serve(t, server.Config{
		Service:       &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, st)
	pc, ic := dialGRPC(t, public), dialGRPC(t, internal)
	_, err = pc.SearchEvents(tokenCtx("r"), &pb.SearchEventsRequest{IncludeProofs: true})
	wantCode(t, err, codes.Unimplemented, "verifiable log")
	ev := pbEvent(time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC), "nolog")
	_, err = ic.CreateEvent(tokenCtx("p"), &pb.CreateEventRequest{EventId: newID(), Event: ev, IncludeReceipt: true})
	wantCode(t, err, codes.Unimplemented, "verifiable log")
	_, err = ic.BatchCreateEvents(tokenCtx("p"), &pb.BatchCreateEventsRequest{Requests: []*pb.CreateEventRequest{{EventId: newID(), Event: ev}}, IncludeReceipts: true})
	wantCode(t, err, codes.Unimplemented, "verifiable log")
	res, err := pc.SearchEvents(tokenCtx("r"), &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{ResourceExact: proto.String("nolog")}})
	if err != nil || len(res.Events) != 0 || res.Proofs != nil {
		t.Fatalf("search without proofs: %v, %v", res, err)
	}
}

// TestLogMetrics: the log's gauges follow its latest signed checkpoint; its
// failures are counted (logsign's TestFailuresCounted makes some).
func TestLogMetrics(t *testing.T) {
	f := startWithLog(t, 0)
	gauges := func() map[string]float64 {
		t.Helper()
		resp, err := http.Get("http://" + f.internalAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		out := map[string]float64{}
		for _, line := range strings.Split(string(b), "\n") {
			name, value, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(name, "audittrail_log_") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			out[name] = v
		}
		return out
	}
	const size, horizon, failures = "audittrail_log_signed_tree_size", "audittrail_log_horizon_timestamp_seconds", "audittrail_log_failures_total"
	const keys, thinned, withheld = "audittrail_log_public_keys", "audittrail_log_checkpoints_thinned_total", "audittrail_log_checkpoints_withheld_total"
	if g := gauges(); len(g) != 6 || g[size] != 0 || g[horizon] != 0 || g[failures] != 0 || g[keys] != 1 || g[thinned] != 0 || g[withheld] != 0 {
		t.Errorf("before the first checkpoint: %v, want the gauges and the counters at 0, one public key", g)
	}
	for i := range 3 {
		ev := pbEvent(time.Date(2026, 8, 1, 0, 0, i, 0, time.UTC), "metrics/r")
		if _, err := f.internal.CreateEvent(tokenCtx("p"), &pb.CreateEventRequest{EventId: newID(), Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, cp := f.log.Checkpoint()
	if cp == nil || cp.Size != 3 {
		t.Fatalf("checkpoint %v, want size 3", cp)
	}
	g := gauges()
	if g[size] != 3 {
		t.Errorf("%s = %v, want 3", size, g[size])
	}
	if want := float64(cp.ReceivedBefore.UnixNano()) / 1e9; math.Abs(g[horizon]-want) > 1e-6 {
		t.Errorf("%s = %v, want %v (the checkpoint's received-before)", horizon, g[horizon], want)
	}
}
