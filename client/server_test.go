package client_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/internal/testserver"
)

// The tests in this file run the client against the real server: the
// audittrail binary, started by package testserver.

func TestMain(m *testing.M) { testserver.Main(m) }

// sampleRequests returns n generated events as create requests, and the
// events the server is expected to store for them.
func sampleRequests(t *testing.T, seed int64, n int, end time.Time) ([]audittrail.CreateRequest, []*audittrail.Event) {
	t.Helper()
	g := sample.New(seed, sample.Options{Events: n, Span: 48 * time.Hour, End: end})
	reqs := make([]audittrail.CreateRequest, n)
	want := make([]*audittrail.Event, n)
	for i := range reqs {
		reqs[i].EventID, reqs[i].Event = g.Next()
		e, err := audittrail.PrepareNewEvent(reqs[i].EventID, reqs[i].Event, time.Now(), true)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = e
	}
	return reqs, want
}

// createAll creates the events in batches of the largest size.
func createAll(t *testing.T, c *client.Client, reqs []audittrail.CreateRequest) {
	t.Helper()
	for start := 0; start < len(reqs); start += audittrail.MaxBatch {
		res, err := c.BatchCreateEvents(t.Context(), reqs[start:min(start+audittrail.MaxBatch, len(reqs))])
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failed) > 0 {
			t.Fatalf("batch at %d: failures %v", start, res.Failed)
		}
	}
}

var ignoreServerFields = cmpopts.IgnoreFields(audittrail.Event{}, "ReceiveTime", "Seq")

func TestEventsDrainsEverything(t *testing.T) {
	srv := testserver.Start(t, "--redact-private-ips=true")
	producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
	auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))

	end := time.Now().Add(-time.Hour).Truncate(time.Second)
	reqs, stored := sampleRequests(t, 21, 2345, end)
	createAll(t, producer, reqs)

	// Newest first: the generator's times never decrease, and events with
	// the same time come newest-created first.
	slices.Reverse(stored)
	tests := []struct {
		name     string
		filter   audittrail.Filter
		pageSize int
	}{
		{"everything in pages of 100", audittrail.Filter{}, 100},
		{"everything in pages of 1000", audittrail.Filter{}, 1000},
		{"the default page size", audittrail.Filter{}, 0},
		{"read-only API events in pages of 7", audittrail.Filter{ReadOnly: new(true), IncludeTypes: []audittrail.EventType{audittrail.TypeAPI}}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.filter.EndTime = &end
			q, err := tt.filter.Compile(end)
			if err != nil {
				t.Fatal(err)
			}
			var want []*audittrail.Event
			for _, e := range stored {
				if q.Match(e) {
					want = append(want, e)
				}
			}
			if len(want) < 50 {
				t.Fatalf("only %d events match: the test would prove little", len(want))
			}
			var got []*audittrail.Event
			for e, err := range auditor.Events(t.Context(), tt.filter, tt.pageSize) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if diff := cmp.Diff(want, got, ignoreServerFields); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateIsIdempotent checks what makes retried creates safe: the same
// id with the same content returns the stored event, once stored.
func TestCreateIsIdempotent(t *testing.T) {
	srv := testserver.Start(t)
	producer := dial(t, srv.InternalAddr, client.WithToken(srv.ProducerToken))
	auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))
	reqs, _ := sampleRequests(t, 5, 2, time.Now().Add(-time.Minute))

	first, err := producer.CreateEvent(t.Context(), reqs[0].EventID, reqs[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	again, err := producer.CreateEvent(t.Context(), reqs[0].EventID, reqs[0].Event)
	if err != nil {
		t.Fatalf("repeated create: %v", err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("the repeated create returned another event (-first +again):\n%s", diff)
	}
	res, err := producer.BatchCreateEvents(t.Context(), []audittrail.CreateRequest{reqs[0], reqs[1], reqs[1]})
	if err != nil || len(res.Failed) != 0 || len(res.Events) != 3 {
		t.Fatalf("repeated batch: %+v, %v", res, err)
	}
	n := 0
	for _, err := range auditor.Events(t.Context(), audittrail.Filter{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}

	other := reqs[1].Event
	_, err = producer.CreateEvent(t.Context(), reqs[0].EventID, other)
	if audittrail.ErrorCode(err) != audittrail.EConflict {
		t.Errorf("another event under a used id: %v, want a conflict", err)
	}
}

func TestServerErrors(t *testing.T) {
	srv := testserver.Start(t)
	reqs, _ := sampleRequests(t, 5, 1, time.Now())
	tests := []struct {
		name  string
		addr  string
		token string
		call  func(c *client.Client) error
		want  string
	}{
		{"search without token", srv.PublicAddr, "", search, audittrail.EUnauthenticated},
		{"search with a bad token", srv.PublicAddr, "nope", search, audittrail.EUnauthenticated},
		{"search as the producer", srv.InternalAddr, srv.ProducerToken, search, audittrail.EPermissionDenied},
		{"create as the reader", srv.InternalAddr, srv.ReaderToken, create(reqs[0]), audittrail.EPermissionDenied},
		{"create on the public listener", srv.PublicAddr, srv.ProducerToken, create(reqs[0]), audittrail.EUnimplemented},
		{"create with a bad id", srv.InternalAddr, srv.ProducerToken, create(audittrail.CreateRequest{EventID: "x", Event: reqs[0].Event}), audittrail.EInvalid},
		{"bad regex", srv.PublicAddr, srv.ReaderToken, func(c *client.Client) error {
			var f audittrail.Filter
			f.Regex[audittrail.FieldAction] = "(("
			_, err := c.SearchEvents(t.Context(), audittrail.SearchEventsRequest{Filter: f})
			return err
		}, audittrail.EInvalid},
		{"bad page token", srv.PublicAddr, srv.ReaderToken, func(c *client.Client) error {
			_, err := c.SearchEvents(t.Context(), audittrail.SearchEventsRequest{PageToken: "garbage"})
			return err
		}, audittrail.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []client.Option
			if tt.token != "" {
				opts = append(opts, client.WithToken(tt.token))
			}
			err := tt.call(dial(t, tt.addr, opts...))
			if got := audittrail.ErrorCode(err); got != tt.want {
				t.Errorf("error %v: code %q, want %q", err, got, tt.want)
			}
		})
	}
}

func search(c *client.Client) error {
	_, err := c.SearchEvents(context.Background(), audittrail.SearchEventsRequest{})
	return err
}

func create(r audittrail.CreateRequest) func(c *client.Client) error {
	return func(c *client.Client) error {
		_, err := c.CreateEvent(context.Background(), r.EventID, r.Event)
		return err
	}
}

// TestRetryAcrossRestart stops the server, starts a create, and starts the
// server again on the same port: the create, retrying meanwhile, succeeds
// once the server is back, and the event is stored once.
func TestRetryAcrossRestart(t *testing.T) {
	internal := freeAddr(t)
	srv := testserver.Start(t, "--internal-addr", internal)
	producer := dial(t, internal, client.WithToken(srv.ProducerToken), client.WithRetry(200, 20*time.Millisecond))
	reqs, want := sampleRequests(t, 8, 1, time.Now())
	if _, err := producer.BatchCreateEvents(t.Context(), nil); err != nil {
		t.Fatalf("the server does not answer: %v", err)
	}

	srv.Stop()
	done := make(chan error, 1)
	go func() {
		_, err := producer.CreateEvent(t.Context(), reqs[0].EventID, reqs[0].Event)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the create returned while the server was down: %v", err)
	default:
	}
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("create across the restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the create did not finish after the server came back")
	}

	auditor := dial(t, srv.PublicAddr, client.WithToken(srv.ReaderToken))
	var got []*audittrail.Event
	for e, err := range auditor.Events(t.Context(), audittrail.Filter{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if diff := cmp.Diff(want, got, ignoreServerFields); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}

// TestStoppedServer checks the error after the retries run out.
func TestStoppedServer(t *testing.T) {
	srv := testserver.Start(t)
	addr := srv.PublicAddr
	srv.Stop()
	c := dial(t, addr, client.WithToken(srv.ReaderToken), client.WithRetry(3, 10*time.Millisecond))
	_, err := c.SearchEvents(t.Context(), audittrail.SearchEventsRequest{})
	if audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("error %v, want EUnavailable", err)
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}
