package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// h2cClient speaks HTTP/2 without TLS (prior knowledge), as gRPC clients do:
// with a REST request first, its connection goes to net/http (split.go).
// timeout 0: none.
func h2cClient(timeout time.Duration) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: timeout}
}

// The end-to-end tests run the built binary (internal/testserver) and talk to
// it over real sockets, REST with net/http and gRPC with the generated
// client, the way the Python client and producers do.

var httpClient = &http.Client{Timeout: 60 * time.Second}

// response is an HTTP answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value, failing the test when it is
// not JSON.
func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return v
}

func (r *response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// call sends a request with an optional bearer token and JSON body.
func call(t *testing.T, method, url, token, body string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantStatus checks an error answer: the HTTP status and a google.rpc.Status
// body with exactly the keys code, message and details, the given code, and a
// message containing want.
func wantStatus(t *testing.T, r *response, httpStatus int, code int, want string) map[string]any {
	t.Helper()
	if r.status != httpStatus {
		t.Fatalf("got %s, want HTTP %d", r, httpStatus)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	v := r.json(t)
	if got := sortedKeys(v); !slices.Equal(got, []string{"code", "details", "message"}) {
		t.Errorf("error body keys %v, want code, details, message: %s", got, r.body)
	}
	if got := fmt.Sprint(v["code"]); got != fmt.Sprint(code) {
		t.Errorf("code %s, want %d: %s", got, code, r.body)
	}
	if msg, _ := v["message"].(string); !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
	if d, ok := v["details"].([]any); !ok || len(d) != 0 {
		t.Errorf("details %v, want []", v["details"])
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eventKeys are the JSON keys of an Event in every response.
var eventKeys = []string{"action", "eventSource", "eventTime", "loginPrincipal", "metadata", "name", "principal",
	"readOnly", "receiveTime", "requestParameters", "resource", "sourceIpAddress", "status", "type", "userAgent", "workspace"}

// checkEventKeys checks that a JSON event carries every key, with no null
// value. Only an event stored without a status has no "status" key.
func checkEventKeys(t *testing.T, e any) {
	t.Helper()
	m, ok := e.(map[string]any)
	if !ok {
		t.Fatalf("event is %T, want an object", e)
	}
	want := eventKeys
	if _, ok := m["status"]; !ok {
		want = slices.DeleteFunc(slices.Clone(eventKeys), func(k string) bool { return k == "status" })
	}
	if got := sortedKeys(m); !slices.Equal(got, want) {
		t.Errorf("event keys\n got %v\nwant %v", got, eventKeys)
	}
	for k, v := range m {
		if v == nil {
			t.Errorf("event key %q is null (the Python client rejects null)", k)
		}
	}
}

// eventBody is the JSON of a valid event with the given time and resource.
func eventBody(eventTime, resource string) string {
	return fmt.Sprintf(`{"eventTime": %q, "eventSource": "h2oai-enginemanager-server", "action": "actions/enginemanager/daiEngines/CREATE",
		"readOnly": false, "status": {"code": 0, "message": ""}, "principal": "users/jane", "sourceIpAddress": "1.1.1.1",
		"userAgent": "e2e", "resource": %q, "type": "TYPE_API"}`, eventTime, resource)
}

func newID() string { return uuid.NewString() }

// createREST creates one event through the internal listener and returns the
// stored event as JSON.
func createREST(t *testing.T, srv *testserver.Server, id, body string) map[string]any {
	t.Helper()
	r := call(t, "POST", srv.InternalURL+"/v1/events?eventId="+id, srv.ProducerToken, body)
	if r.status != http.StatusOK {
		t.Fatalf("create: %s", r)
	}
	wantContentLength(t, r)
	ev, _ := r.json(t)["event"].(map[string]any)
	if ev == nil {
		t.Fatalf("create: no event in %s", r.body)
	}
	return ev
}

// searchREST searches through the given base URL with the reader token and
// returns the decoded response.
func searchREST(t *testing.T, srv *testserver.Server, base, body string) map[string]any {
	t.Helper()
	r := call(t, "POST", base+"/v1/events:search", srv.ReaderToken, body)
	if r.status != http.StatusOK {
		t.Fatalf("search %s: %s", body, r)
	}
	wantContentLength(t, r)
	return r.json(t)
}

// wantContentLength checks that an answer declares its length (the
// gateway's WithWriteContentLength) instead of coming in chunks: a client
// knows the size before reading, and the server writes it with one system
// call fewer.
func wantContentLength(t *testing.T, r *response) {
	t.Helper()
	if got, want := r.header.Get("Content-Length"), strconv.Itoa(len(r.body)); got != want {
		t.Errorf("Content-Length %q (Transfer-Encoding %q), want %s", got, r.header.Get("Transfer-Encoding"), want)
	}
}

// names returns the names of the events of a JSON search or batch response.
func names(t *testing.T, resp map[string]any) []string {
	t.Helper()
	evs, ok := resp["events"].([]any)
	if !ok {
		t.Fatalf("events is %T, want an array", resp["events"])
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i], _ = e.(map[string]any)["name"].(string)
	}
	return out
}

// dialGRPC connects to a listener with the generated gRPC client.
func dialGRPC(t *testing.T, addr string) pb.EventServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewEventServiceClient(conn)
}

// withToken returns a context that sends the bearer token.
func withToken(t *testing.T, token string) context.Context {
	ctx := t.Context()
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// wantSplitterSettings checks that a connection made by dial gets the
// splitter's empty SETTINGS frame in answer to an HTTP/2 preface (net/http
// alone would send its own settings): the listener splits connections
// (server/split.go).
func wantSplitterSettings(t *testing.T, what string, dial func() (net.Conn, error)) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	b := make([]byte, 9)
	_, err = io.ReadFull(c, b)
	if want := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}; err != nil || !bytes.Equal(b, want) {
		t.Errorf("%s: after the HTTP/2 preface read % x (%v), want the splitter's empty SETTINGS % x", what, b, err, want)
	}
}
