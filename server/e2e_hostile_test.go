package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/server"
)

// TestE2ERequestReadTimeout: a request whose body or message stops arriving
// is dropped after --request-read-timeout, over HTTP/1.1 and HTTP/2 (REST:
// 408 DEADLINE_EXCEEDED) and on gRPC's transport (CANCELLED), instead of
// being held, with what arrived of it, for as long as its connection stays
// open. The server goes on serving the connection's other calls. The
// deadlines of the test only bound a hang.
func TestE2ERequestReadTimeout(t *testing.T) {
	srv := testserver.Start(t, "--request-read-timeout", "1s")
	const msg = "the request body did not arrive within 1s of its headers"

	t.Run("HTTP/1.1", func(t *testing.T) {
		for _, addr := range []string{srv.PublicAddr, srv.InternalAddr} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			// No token: the body of a caller that did not
			// authenticate is drained (not decoded) before its 401,
			// within the same read timeout.
			fmt.Fprintf(conn, "POST /v1/events:search HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
				"Content-Length: 1000000\r\n\r\n{\"filter\": {\"resourceRegex\": \"aaaa", addr)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantStatus(t, &response{status: resp.StatusCode, header: resp.Header, body: b}, http.StatusRequestTimeout, 4, msg)
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		c := h2cClient(30 * time.Second)
		pr, pw := io.Pipe()
		defer pw.Close()
		go fmt.Fprint(pw, `{"filter": {"resourceRegex": "aaaa`)
		req, _ := http.NewRequest("POST", srv.InternalURL+"/v1/events:search", pr)
		req.Header.Set("Authorization", "Bearer "+srv.ReaderToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("answered over %s, want HTTP/2", resp.Proto)
		}
		wantStatus(t, &response{status: resp.StatusCode, header: resp.Header, body: b}, http.StatusRequestTimeout, 4, msg)
	})

	t.Run("gRPC", func(t *testing.T) {
		conn, err := grpc.NewClient(srv.InternalAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(withToken(t, srv.ReaderToken), 30*time.Second)
		defer cancel()
		// A unary call as a stream whose message is never sent: the
		// server waits for it.
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.EventService_SearchEvents_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		err = st.RecvMsg(&pb.SearchEventsResponse{})
		if s, _ := status.FromError(err); s.Code() != codes.Canceled {
			t.Errorf("a call whose message never came: %v, want CANCELLED from the server", err)
		}
		if ctx.Err() != nil {
			t.Errorf("the call ended with the test's deadline: %v", err)
		}
		// The connection serves the next call.
		if _, err := pb.NewEventServiceClient(conn).SearchEvents(ctx, &pb.SearchEventsRequest{}); err != nil {
			t.Errorf("a search on the same connection: %v", err)
		}
	})
}

// receivingConn returns a gRPC connection to srv's internal listener and a
// context of the reader's, whose 30 s deadline only bounds a hang of the
// --max-receiving tests.
func receivingConn(t *testing.T, srv *testserver.Server) (*grpc.ClientConn, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(srv.InternalAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(withToken(t, srv.ReaderToken), 30*time.Second)
	t.Cleanup(cancel)
	return conn, ctx
}

// stallCall starts a SearchEvents call on conn whose message never comes.
// It returns what ends the call, and a channel that receives how it ended.
func stallCall(t *testing.T, ctx context.Context, conn *grpc.ClientConn) (context.CancelFunc, chan error) {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	s, err := conn.NewStream(sctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.EventService_SearchEvents_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- s.RecvMsg(new(pb.SearchEventsResponse)) }()
	return cancel, ended
}

// TestE2EMaxReceiving: with --max-receiving 2, requests that have arrived
// give their place back (many in a row pass, over REST and gRPC); two gRPC
// calls whose message never comes hold both places of their listener, so
// that the next gRPC call and the next REST request with a body are refused
// with RESOURCE_EXHAUSTED, while the other listener and bodiless requests
// are served; once one of the stalled calls ends, its place is free again.
// The deadlines of the test only bound a hang.
func TestE2EMaxReceiving(t *testing.T) {
	srv := testserver.Start(t, "--max-receiving", "2")
	const msg = "the server is receiving 2 requests at once on this listener"
	conn, ctx := receivingConn(t, srv)
	client := pb.NewEventServiceClient(conn)
	for i := range 10 {
		if _, err := client.SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1}); err != nil {
			t.Fatalf("gRPC search %d: %v", i, err)
		}
		if r := call(t, "POST", srv.InternalURL+"/v1/events:search", srv.ReaderToken, `{"pageSize": 1}`); r.status != http.StatusOK {
			t.Fatalf("REST search %d: %s", i, r)
		}
	}

	// Two calls whose message never comes, on one connection: their
	// headers reach the server, in order, before the next call's.
	var stalled []context.CancelFunc
	for range 2 {
		cancel, _ := stallCall(t, ctx, conn)
		stalled = append(stalled, cancel)
	}
	_, err := client.SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1})
	if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted || !strings.Contains(s.Message(), msg) {
		t.Fatalf("a gRPC call while two stalled ones hold the places: %v, want RESOURCE_EXHAUSTED %q", err, msg)
	}
	r := call(t, "POST", srv.InternalURL+"/v1/events:search", srv.ReaderToken, `{"pageSize": 1}`)
	wantStatus(t, r, http.StatusTooManyRequests, 8, msg)
	// The gateway's error bodies, byte for byte (writeStatus).
	if want := `{"code":8,"message":"` + msg + `, its limit: try again in a moment","details":[]}`; string(r.body) != want {
		t.Errorf("the 429's body %#q, want %#q", r.body, want)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("the 429 has no Retry-After")
	}
	// A request without a body takes no place; the public listener has
	// its own.
	if r := call(t, "GET", srv.InternalURL+"/v1/log/checkpoint", srv.ReaderToken, ""); r.status == http.StatusTooManyRequests {
		t.Errorf("a GET while the places are taken: %s", r)
	}
	if r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, `{"pageSize": 1}`); r.status != http.StatusOK {
		t.Errorf("the public listener while the internal one's places are taken: %s", r)
	}

	// A stalled call that ends gives its place back.
	stalled[0]()
	for {
		_, err := client.SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1})
		if err == nil {
			break
		}
		if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted || ctx.Err() != nil {
			t.Fatalf("after a stalled call ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestE2EMaxReceivingThroughNetHTTP: the refusal of --max-receiving reaches
// a gRPC call that net/http serves (refuseReceiving's trailers-only answer),
// which TestE2EMaxReceiving, on gRPC's own transport, does not reach. The
// splitter (server/split.go) hands a connection to net/http when the
// client's first request's headers do not fit in what it reads before it
// decides (64 KiB): the connection's first call carries metadata past that,
// and every call of the connection is then served through net/http. The
// refusal's Retry-After trailer is written there only (the transport's tap
// cannot add one), which tells that the calls took that path. The deadlines
// of the test only bound a hang.
func TestE2EMaxReceivingThroughNetHTTP(t *testing.T) {
	srv := testserver.Start(t, "--max-receiving", "2")
	const msg = "the server is receiving 2 requests at once on this listener, its limit: try again in a moment"
	conn, ctx := receivingConn(t, srv)
	client := pb.NewEventServiceClient(conn)
	// The first call's headers, over 64 KiB, route the connection to
	// net/http; it is served there.
	big := metadata.AppendToOutgoingContext(ctx, "x-pad", strings.Repeat("a", 80<<10))
	if _, err := client.SearchEvents(big, &pb.SearchEventsRequest{PageSize: 1}); err != nil {
		t.Fatalf("the first call, through net/http: %v", err)
	}
	for i := range 5 { // calls that have arrived give their place back
		if _, err := client.SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1}); err != nil {
			t.Fatalf("gRPC search %d through net/http: %v", i, err)
		}
	}

	// Two calls whose message never comes hold both places. net/http
	// serves each stream in a goroutine of its own (gRPC's transport runs
	// its tap in order), so a stalled call's handler may take its place
	// after a later call has taken one, and be the one refused: a stalled
	// call refused is started again, and calls may succeed until both
	// places are held.
	stall := func() chan error {
		_, ended := stallCall(t, ctx, conn)
		return ended
	}
	stalled := []chan error{stall(), stall()}
	var trailer metadata.MD
	var err error
	for {
		_, err = client.SearchEvents(ctx, &pb.SearchEventsRequest{PageSize: 1}, grpc.Trailer(&trailer))
		if err != nil || ctx.Err() != nil {
			break
		}
		for i, ended := range stalled {
			select {
			case serr := <-ended:
				if s, _ := status.FromError(serr); s.Code() != codes.ResourceExhausted {
					t.Fatalf("a stalled call ended: %v", serr)
				}
				stalled[i] = stall()
			default:
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted || s.Message() != msg {
		t.Fatalf("a gRPC call through net/http while two stalled ones hold the places: %v, want RESOURCE_EXHAUSTED %q", err, msg)
	}
	if got := trailer.Get("retry-after"); len(got) != 1 || got[0] != "1" {
		t.Errorf("the refusal's retry-after: %q, want [1] (written by refuseReceiving, through net/http)", got)
	}
}

// TestE2EAuthBeforeDecoding: the caller's credentials are checked before its
// request is decoded, on both listeners, over REST, gRPC's own transport and
// gRPC through net/http. A request that cannot be decoded (a JSON number
// for a metadata value; a protobuf string that is not UTF-8) is refused
// with UNAUTHENTICATED when anonymous, not with the decoder's
// INVALID_ARGUMENT, which only an authenticated caller gets; a large
// anonymous body is drained, answered 401, and its HTTP/1.1 connection
// serves the next request. An address over its limit of failed
// authentications is refused with RESOURCE_EXHAUSTED before its credential
// is checked, whatever its body.
func TestE2EAuthBeforeDecoding(t *testing.T) {
	srv := testserver.Start(t, "--rate-limit", "0.001", "--rate-burst", "50")
	const restBody = `{"filter": {"metadataExact": {"k": 7}}}`
	const decodeErr = "invalid value for string field value: 7"
	// SearchEventsRequest{filter: {metadata_exact: {"k": "\xff"}}}, by
	// hand: the generated code would not marshal a string that is not
	// UTF-8.
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "k")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, "\xff")
	filter := protowire.AppendTag(nil, 13, protowire.BytesType)
	filter = protowire.AppendBytes(filter, entry)
	msg := protowire.AppendTag(nil, 1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, filter)
	const utf8Err = "not valid UTF-8"

	for _, l := range []struct{ name, url, addr string }{{"public", srv.PublicURL, srv.PublicAddr}, {"internal", srv.InternalURL, srv.InternalAddr}} {
		t.Run(l.name+"/REST", func(t *testing.T) {
			wantStatus(t, call(t, "POST", l.url+"/v1/events:search", "", restBody), http.StatusUnauthorized, 16, "missing or invalid bearer token")
			wantStatus(t, call(t, "POST", l.url+"/v1/events:search", "wrong", restBody), http.StatusUnauthorized, 16, "missing or invalid bearer token")
			wantStatus(t, call(t, "POST", l.url+"/v1/events:search", srv.ReaderToken, restBody), http.StatusBadRequest, 3, decodeErr)
		})
		t.Run(l.name+"/gRPC", func(t *testing.T) {
			conn, err := grpc.NewClient(l.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, tc := range []struct {
				token string
				code  codes.Code
				want  string
			}{{"", codes.Unauthenticated, "missing or invalid bearer token"}, {srv.ReaderToken, codes.InvalidArgument, utf8Err}} {
				err := conn.Invoke(withToken(t, tc.token), pb.EventService_SearchEvents_FullMethodName, &msg, &[]byte{}, grpc.ForceCodec(rawCodec{}))
				if s, _ := status.FromError(err); s.Code() != tc.code || !strings.Contains(s.Message(), tc.want) {
					t.Errorf("token %q: %v, want %v %q", tc.token, err, tc.code, tc.want)
				}
			}
		})
		t.Run(l.name+"/gRPC through net/http", func(t *testing.T) {
			c := h2cClient(30 * time.Second)
			// A first request that is not gRPC sends the connection to
			// net/http (split.go); the calls follow on it.
			if resp, err := c.Get(l.url + "/healthz"); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			for _, tc := range []struct {
				token string
				code  codes.Code
				want  string
			}{{"", codes.Unauthenticated, "missing or invalid bearer token"}, {srv.ReaderToken, codes.InvalidArgument, utf8Err}} {
				frame := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
				req, _ := http.NewRequest("POST", l.url+pb.EventService_SearchEvents_FullMethodName, bytes.NewReader(frame))
				req.Header.Set("Content-Type", "application/grpc")
				req.Header.Set("TE", "trailers")
				if tc.token != "" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
				if got == "" {
					got, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
				}
				if got != fmt.Sprint(int(tc.code)) || !strings.Contains(msg, tc.want) {
					t.Errorf("token %q: grpc-status %s %q, want %d %q", tc.token, got, msg, tc.code, tc.want)
				}
			}
		})
	}

	t.Run("large anonymous body", func(t *testing.T) {
		// A body that decodes (a filter the search refuses), 3 MB of
		// metadata: answered 401 once drained, on a connection that
		// serves the next request.
		var b strings.Builder
		b.WriteString(`{"filter": {"metadataExact": {`)
		for i := 0; b.Len() < 3<<20; i++ {
			fmt.Fprintf(&b, `"k%d": "v", `, i)
		}
		b.WriteString(`"k": "v"}}}`)
		c := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second}
		defer c.CloseIdleConnections()
		var reused []bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		for _, tok := range []string{"", srv.ReaderToken} {
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "POST", srv.PublicURL+"/v1/events:search", strings.NewReader(b.String()))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := &response{status: resp.StatusCode, header: resp.Header, body: body}
			if tok == "" {
				wantStatus(t, r, http.StatusUnauthorized, 16, "missing or invalid bearer token")
			} else {
				wantStatus(t, r, http.StatusBadRequest, 3, "at most 64 entries")
			}
		}
		if len(reused) != 2 || !reused[1] {
			t.Errorf("connections reused %v: the request after the 401 needed a new connection", reused)
		}
	})

	t.Run("over the limit of failed authentications", func(t *testing.T) {
		// The burst of 50 failed attempts is spent by now or here; then
		// even the right token with an undecodable body is refused
		// before anything is checked or decoded.
		for range 50 {
			if r := call(t, "POST", srv.PublicURL+"/v1/events:search", "", restBody); r.status == http.StatusTooManyRequests {
				break
			}
		}
		// (A RetryInfo in the details: not wantStatus.)
		if r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, restBody); r.status != http.StatusTooManyRequests ||
			!strings.Contains(string(r.body), "too many failed authentications") {
			t.Errorf("the right token with an undecodable body, over the limit: %s, want 429", r)
		}
		conn, err := grpc.NewClient(srv.PublicAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		err = conn.Invoke(withToken(t, srv.ReaderToken), pb.EventService_SearchEvents_FullMethodName, &msg, &[]byte{}, grpc.ForceCodec(rawCodec{}))
		if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted {
			t.Errorf("gRPC over the limit: %v, want RESOURCE_EXHAUSTED", err)
		}
	})
}

// TestE2EGRPCMalformed: a request whose bytes are not protobuf (here a field
// that claims more bytes than follow) is the caller's fault:
// INVALID_ARGUMENT naming the message, on both listeners and both gRPC
// transports' codec, where grpc-go alone would answer INTERNAL. The
// connection serves the next call.
func TestE2EGRPCMalformed(t *testing.T) {
	srv := testserver.Start(t)
	truncated := []byte{0x0a, 0x05, 'x'}
	for _, tc := range []struct {
		addr, token, method, want string
	}{
		{srv.PublicAddr, srv.ReaderToken, pb.EventService_SearchEvents_FullMethodName, "the request is not a valid protobuf SearchEventsRequest"},
		{srv.InternalAddr, srv.ReaderToken, pb.EventService_SearchEvents_FullMethodName, "the request is not a valid protobuf SearchEventsRequest"},
		{srv.InternalAddr, srv.ProducerToken, pb.EventService_CreateEvent_FullMethodName, "the request is not a valid protobuf CreateEventRequest"},
		{srv.InternalAddr, srv.ProducerToken, pb.EventService_BatchCreateEvents_FullMethodName, "the request is not a valid protobuf BatchCreateEventsRequest"},
	} {
		conn, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		err = conn.Invoke(withToken(t, tc.token), tc.method, &truncated, &[]byte{}, grpc.ForceCodec(rawCodec{}))
		wantCode(t, err, codes.InvalidArgument, tc.want)
		_, err = pb.NewEventServiceClient(conn).SearchEvents(withToken(t, srv.ReaderToken), &pb.SearchEventsRequest{PageSize: 1})
		if err != nil {
			t.Errorf("%s: the search after the malformed call: %v", tc.method, err)
		}
	}
}

// rawCodec sends a *[]byte as the message, as it is, and keeps the answer's
// bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestE2EUndecodableCharged: a request of an authenticated caller that
// cannot be decoded ends before the interceptors (REST: the gateway's
// decoding; gRPC: the error the codec kept), and is charged as any other
// request: the caller takes a token of its rate limit (over it, the answer
// is RESOURCE_EXHAUSTED instead of the decoding error) and is named in the
// request's log line.
func TestE2EUndecodableCharged(t *testing.T) {
	srv := testserver.Start(t, "--rate-limit", "0.001", "--rate-burst", "3")
	const restBody = `{"filter": {"metadataExact": {"k": 7}}}`
	for range 3 {
		wantStatus(t, call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, restBody),
			http.StatusBadRequest, 3, "invalid value for string field value: 7")
	}
	// Over the limit (the body carries RetryInfo), and the tokens went: a
	// valid search is refused too.
	for _, body := range []string{restBody, `{"pageSize": 1}`} {
		r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, body)
		if r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), "rate limit exceeded for "+server.ReaderPrincipal) ||
			r.header.Get("Retry-After") == "" {
			t.Errorf("%s, once the burst went on bodies that do not decode: %s, want 429 with Retry-After", body, r)
		}
	}
	if !regexp.MustCompile(`status=400 .*caller=` + regexp.QuoteMeta(server.ReaderPrincipal)).MatchString(srv.Logs()) {
		t.Errorf("no log line of a 400 names its caller:\n%s", srv.Logs())
	}

	// A request refused after the interceptors (the producer may not
	// search) takes one token, not two: the gRPC calls below get the two
	// left.
	if r := call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ProducerToken, `{"pageSize": 1}`); r.status != http.StatusForbidden {
		t.Errorf("the producer's search: %s, want 403", r)
	}

	// gRPC: the producer's events with a string that is not UTF-8 (the
	// client's codec writes with generated code, which does not check).
	conn, err := grpc.NewClient(srv.InternalAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wire.ClientCodec())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewEventServiceClient(conn)
	bad := pbEvent(time.Now(), "utf8/bad")
	bad.Action = "actions/x/y/\xff"
	_, err = client.CreateEvent(withToken(t, srv.ProducerToken), &pb.CreateEventRequest{EventId: newID(), Event: bad})
	wantCode(t, err, codes.InvalidArgument, "event.action is not valid UTF-8")
	// Bytes that are not protobuf at all are charged the same way.
	truncated := []byte{0x0a, 0x05, 'x'}
	err = conn.Invoke(withToken(t, srv.ProducerToken), pb.EventService_CreateEvent_FullMethodName, &truncated, &[]byte{}, grpc.ForceCodec(rawCodec{}))
	wantCode(t, err, codes.InvalidArgument, "the request is not a valid protobuf CreateEventRequest")
	_, err = client.CreateEvent(withToken(t, srv.ProducerToken), &pb.CreateEventRequest{EventId: newID(), Event: bad})
	wantCode(t, err, codes.ResourceExhausted, "rate limit exceeded for "+server.ProducerPrincipal)
	if !regexp.MustCompile(`grpc_code=InvalidArgument .*caller=` + regexp.QuoteMeta(server.ProducerPrincipal)).MatchString(srv.Logs()) {
		t.Errorf("no log line of an INVALID_ARGUMENT names its caller:\n%s", srv.Logs())
	}
}
