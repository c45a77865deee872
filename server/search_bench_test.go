package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/server"
)

// BenchmarkSearch measures the server's cost of one search, in process, on
// an embedded store of 100,000 events, with login names looked up in the
// store as `audittrail serve` does:
//
//   - rest/...: the public listener's handler (no socket, no HTTP/1.1
//     parsing): the gateway's decoding, the interceptor chain, the
//     Service and the store, the conversion to protobuf and the JSON;
//   - grpc/...: a gRPC client over loopback h2c to the served listener
//     (the client's CPU is in the figure too).
//
// The self-audit records go to a store that keeps nothing, so that the
// figures are the CPU of the server and the store's search, without the
// synced write that every search adds (measured by the store's own
// benchmarks).
//
//	go test ./server -run '^$' -bench '^BenchmarkSearch$' -benchtime 2000x
func BenchmarkSearch(b *testing.B) {
	benchSearch(b, discardStore{})
}

// BenchmarkSearchAudited is BenchmarkSearch with the self-audit records
// appended durably to an embedded store of their own (a group commit and an
// fsync per search, as `audittrail serve` does), so that the figures are
// one search's latency with its write (BenchmarkSearch's figures are the
// rest of it).
//
//	go test ./server -run '^$' -bench '^BenchmarkSearchAudited$' -benchtime 2000x
func BenchmarkSearchAudited(b *testing.B) {
	audit, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: b.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer audit.Close()
	benchSearch(b, audit)
}

// benchSearch runs BenchmarkSearch's searches with the self-audit records
// going to audit.
func benchSearch(b *testing.B, audit audittrail.Store) {
	const events = 100_000
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// 20 workspaces: about 5,000 events each, so that a page of 1,000 of
	// one workspace is full.
	st, stored := benchStore(b, quiet, sample.Options{Events: events, Workspaces: 20})
	defer st.Close()
	var workspace string
	for _, e := range stored {
		if e.Workspace != "" {
			workspace = e.Workspace
			break
		}
	}
	if workspace == "" {
		b.Fatal("no event with a workspace")
	}
	// Served on loopback listeners for the gRPC runs; the REST runs call
	// its public handler directly.
	srv, public, _ := serve(b, server.Config{
		Service: &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize),
			RedactPrivateIPs: true, Logins: st},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        quiet,
		SelfAudit:     &audittrail.SelfAuditor{Store: audit},
	}, nil)
	queries := []struct {
		name   string
		filter *pb.SearchEventsRequest_Filter
		size   int32
		body   string
		want   int
	}{
		{"first-page-50", nil, 50, `{"pageSize": 50}`, 50},
		{"workspace-1000", &pb.SearchEventsRequest_Filter{WorkspaceExact: &workspace}, 1000,
			`{"filter": {"workspaceExact": "` + workspace + `"}, "pageSize": 1000}`, 1000},
	}

	h := srv.PublicHandler()
	for _, q := range queries {
		b.Run("rest/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				restSearch(b, h, q.body)
			}
		})
	}

	conn, err := grpc.NewClient(public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewEventServiceClient(conn)
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer r")
	for _, q := range queries {
		b.Run("grpc/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := client.SearchEvents(authed, &pb.SearchEventsRequest{Filter: q.filter, PageSize: q.size})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Events) != q.want {
					b.Fatalf("%d events, want %d", len(res.Events), q.want)
				}
			}
		})
	}
}

// benchStore opens an embedded store in a temporary directory and appends
// the sample events of opts (over the ten days before the last hour), in
// batches; it returns the store and the first event of each batch.
func benchStore(b *testing.B, log *slog.Logger, opts sample.Options) (*pebblestore.Store, []*audittrail.Event) {
	b.Helper()
	ctx := context.Background()
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	opts.Span, opts.End = 240*time.Hour, time.Now().Add(-time.Hour)
	g := sample.New(1, opts)
	now := time.Now()
	var firsts []*audittrail.Event
	for done := 0; done < opts.Events; done += audittrail.MaxBatch {
		batch := make([]*audittrail.Event, 0, audittrail.MaxBatch)
		for range min(audittrail.MaxBatch, opts.Events-done) {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, now, true)
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, e)
		}
		if _, err := st.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		firsts = append(firsts, batch[0])
	}
	return st, firsts
}

// restSearch posts body to the search endpoint of h as the reader "r" and
// returns the answer's size.
func restSearch(b *testing.B, h http.Handler, body string) int {
	req := httptest.NewRequest("POST", "/v1/events:search", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer r")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return rec.Body.Len()
}

// BenchmarkLargeSearch measures the server's cost of a search of 4 MB that
// the search refuses (266,001 metadataExact entries, at most 64 are
// allowed), on the public listener, in process: anonymous (refused before
// the request is decoded) and as the reader (decoded, then refused).
//
//   - rest/...: the public listener's handler (no socket);
//
//   - grpc/...: a gRPC client over loopback h2c sending the message's
//     bytes as they are (marshalled once), so that the client's CPU in the
//     figure is little more than the copy to the socket.
//
//     go test ./server -run '^$' -bench '^BenchmarkLargeSearch$' -benchtime 10x
func BenchmarkLargeSearch(b *testing.B) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, public, _ := serve(b, server.Config{
		Service:       &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        quiet,
		SelfAudit:     &audittrail.SelfAuditor{Store: discardStore{}},
	}, nil)
	m := map[string]string{}
	req := &pb.SearchEventsRequest{Filter: &pb.SearchEventsRequest_Filter{MetadataExact: m}}
	for i := 0; ; i++ {
		m["k"+strconv.Itoa(1000000+i)] = "v"
		if i%1000 == 0 && proto.Size(req) > 3_990_000 {
			break
		}
	}
	msg, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"filter": map[string]any{"metadataExact": m}})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	h := srv.PublicHandler()
	for _, c := range []struct {
		who, token string
		status     int
		code       codes.Code
	}{{"anonymous", "", http.StatusUnauthorized, codes.Unauthenticated}, {"reader", "r", http.StatusBadRequest, codes.InvalidArgument}} {
		b.Run("rest/"+c.who, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/events:search", bytes.NewReader(body))
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != c.status {
					b.Fatalf("%d %s, want %d", rec.Code, rec.Body, c.status)
				}
			}
		})
		b.Run("grpc/"+c.who, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			ctx := ctx
			if c.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
			}
			for b.Loop() {
				err := conn.Invoke(ctx, pb.EventService_SearchEvents_FullMethodName, &msg, &[]byte{}, grpc.ForceCodec(rawCodec{}))
				if status.Code(err) != c.code {
					b.Fatalf("%v, want %v", err, c.code)
				}
			}
		})
	}
}
