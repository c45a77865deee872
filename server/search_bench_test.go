package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

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
	const events = 100_000
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// 20 workspaces: about 5,000 events each, so that a page of 1,000 of
	// one workspace is full.
	g := sample.New(1, sample.Options{Events: events, Span: 240 * time.Hour, End: time.Now().Add(-time.Hour), Workspaces: 20})
	now := time.Now()
	var workspace string
	for done := 0; done < events; done += audittrail.MaxBatch {
		batch := make([]*audittrail.Event, 0, audittrail.MaxBatch)
		for range audittrail.MaxBatch {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, now, true)
			if err != nil {
				b.Fatal(err)
			}
			if workspace == "" {
				workspace = e.Workspace
			}
			batch = append(batch, e)
		}
		if _, err := st.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if workspace == "" {
		b.Fatal("no event with a workspace")
	}
	srv, err := server.New(server.Config{
		Service: &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize),
			RedactPrivateIPs: true, Logins: st},
		Authenticator: server.NewStaticTokens("r", "p"),
		Logger:        quiet,
		SelfAudit:     &audittrail.SelfAuditor{Store: discardStore{}},
	})
	if err != nil {
		b.Fatal(err)
	}
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
				req := httptest.NewRequest("POST", "/v1/events:search", strings.NewReader(q.body))
				req.Header.Set("Authorization", "Bearer r")
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}

	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.Start(public, internal)
	defer srv.Shutdown(ctx)
	conn, err := grpc.NewClient(public.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
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
