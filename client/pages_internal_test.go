package client

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// twoPages answers a first page of one event with a token, and holds the
// request for the second page until it is cancelled.
type twoPages struct {
	pb.UnimplementedEventServiceServer
}

func (twoPages) SearchEvents(ctx context.Context, r *pb.SearchEventsRequest) (*pb.SearchEventsResponse, error) {
	if r.PageToken == "" {
		return &pb.SearchEventsResponse{
			Events:        []*pb.Event{{Name: "events/00000000-0000-4000-8000-000000000001"}},
			NextPageToken: "second",
		}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPagesWaitsForItsReadAhead checks that a loop over Pages that stops
// while the next page is being read returns only once the goroutine reading
// it has ended: no goroutine of the iterator outlives the loop. The read
// ahead's call is held, after its cancellation, by an interceptor on the
// client's connection until the test lets it go; the loop must still be
// running then. (TestPagesStopCancelsReadAhead, in the external tests,
// checks the cancellation itself.)
func TestPagesWaitsForItsReadAhead(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterEventServiceServer(srv, twoPages{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	inFlight, release := make(chan struct{}), make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	t.Cleanup(letGo)      // a failing test does not leave the call held
	var ended atomic.Bool // the read ahead's call has returned
	hold := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if req.(*pb.SearchEventsRequest).PageToken == "" {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		close(inFlight)
		err := invoker(ctx, method, req, reply, cc, opts...) // returns when the loop cancels it
		<-release
		ended.Store(true)
		return err
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wire.ClientCodec())),
		grpc.WithUnaryInterceptor(hold))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &Client{conn: conn, rpc: pb.NewEventServiceClient(conn), retry: retryPolicy{attempts: 1, base: DefaultBackoff, max: MaxBackoff}}

	done := make(chan bool) // sends whether the read ahead had ended when the loop returned
	go func() {
		for _, err := range c.Pages(t.Context(), audittrail.Filter{}, 1) {
			if err != nil {
				t.Error(err)
			}
			<-inFlight
			break
		}
		done <- ended.Load()
	}()
	select {
	case <-done:
		t.Fatal("the loop returned while its read ahead was still running")
	case <-time.After(200 * time.Millisecond):
		// The loop is waiting (or slow to return: then the check after
		// the release still holds, it only proves less).
	}
	letGo()
	select {
	case waited := <-done:
		if !waited {
			t.Fatal("the loop returned before its read ahead ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not return once its read ahead ended")
	}
}
