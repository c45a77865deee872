package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
)

// TestReceivedBeforeHandler: the first interceptor ends the request's read
// deadline before the handler runs, so a call that takes longer than
// --request-read-timeout to answer (a search of costly regular expressions)
// is not cancelled by it. Without it, such a gRPC search ended CANCELLED
// once the read timeout passed.
func TestReceivedBeforeHandler(t *testing.T) {
	stopped := false
	ctx := context.WithValue(t.Context(), receivingKey{}, &receiving{stop: func() { stopped = true }})
	_, err := rpcInterceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		if !stopped {
			t.Error("the handler runs under the request's read deadline")
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
