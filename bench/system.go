package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// Searcher runs the queries of the suite on one system.
type Searcher interface {
	// Name names the system and protocol ("embedded, REST").
	Name() string
	// Page returns the next page of q of at most size events, resuming
	// at cursor (nil: the first page). The returned cursor is nil when no
	// matching event remains.
	Page(ctx context.Context, q *Query, size int, cursor any) (Page, error)
}

// Drainer is a Searcher with a way of its own to read every page of a
// result (pages of size). The Go client has one, Pages, which asks for each
// page while it decodes the one before: what a program that drains a result
// with it does.
type Drainer interface {
	Drain(ctx context.Context, q *Query, size int, each func(id string)) (requests int, err error)
}

// Page is one page of results.
type Page struct {
	IDs      []string
	Cursor   any // where the next page resumes; nil when the search is done
	Requests int // round trips it took
}

// pageTokenCursor is the cursor of the API: a page token, and the filter's
// end time is bound in it.
type pageTokenCursor string

// apiSearch is the API side of Page: it asks for the remaining events until
// it has size of them or the search is done. A server may end a page early
// (it bounds the work of one request with --max-scan, and returns a token);
// a client that wants a page keeps asking, and so does the benchmark, so
// that every system does the work of a complete answer.
func apiSearch(ctx context.Context, q *Query, size int, cursor any,
	call func(ctx context.Context, f *audittrail.Filter, size int, token string) (ids []string, next string, err error)) (Page, error) {
	var p Page
	token := ""
	if cursor != nil {
		token = string(cursor.(pageTokenCursor))
	}
	for {
		ids, next, err := call(ctx, &q.Filter, size-len(p.IDs), token)
		p.Requests++
		if err != nil {
			return p, err
		}
		p.IDs = append(p.IDs, ids...)
		if next == "" {
			return p, nil
		}
		token = next
		if len(p.IDs) >= size {
			p.Cursor = pageTokenCursor(token)
			return p, nil
		}
	}
}

// RESTSearcher searches through POST /v1/events:search of the public
// listener, in JSON, as the official Python client does.
type RESTSearcher struct {
	Label string
	URL   string // http://host:port of the public listener
	Token string
	HTTP  *http.Client
}

func (s *RESTSearcher) Name() string { return s.Label }

func (s *RESTSearcher) Page(ctx context.Context, q *Query, size int, cursor any) (Page, error) {
	return apiSearch(ctx, q, size, cursor, s.call)
}

func (s *RESTSearcher) call(ctx context.Context, f *audittrail.Filter, size int, token string) ([]string, string, error) {
	body, err := protojson.Marshal(&pb.SearchEventsRequest{Filter: wire.FilterToProto(f), PageSize: int32(size), PageToken: token})
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/events:search", bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("POST /v1/events:search: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var out RESTAnswer
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, "", fmt.Errorf("POST /v1/events:search: decoding the response: %v", err)
	}
	ids := make([]string, len(out.Events))
	for i, e := range out.Events {
		ids[i] = strings.TrimPrefix(e.Name, "events/")
	}
	return ids, out.NextPageToken, nil
}

// RESTAnswer is the JSON of a search response, decoded completely (every
// field of every event), as a REST client in Go would with encoding/json
// (RESTSearcher; bench/cmd/pagetail times the decoding).
type RESTAnswer struct {
	Events            []RESTEvent `json:"events"`
	NextPageToken     string      `json:"nextPageToken"`
	SearchedUntilTime time.Time   `json:"searchedUntilTime"`
}

// RESTEvent is an event of a RESTAnswer.
type RESTEvent struct {
	Name        string    `json:"name"`
	EventTime   time.Time `json:"eventTime"`
	ReceiveTime time.Time `json:"receiveTime"`
	EventSource string    `json:"eventSource"`
	Action      string    `json:"action"`
	ReadOnly    bool      `json:"readOnly"`
	Status      *struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	Principal         string            `json:"principal"`
	LoginPrincipal    string            `json:"loginPrincipal"`
	SourceIPAddress   string            `json:"sourceIpAddress"`
	UserAgent         string            `json:"userAgent"`
	Resource          string            `json:"resource"`
	Workspace         string            `json:"workspace"`
	RequestParameters map[string]string `json:"requestParameters"`
	Metadata          map[string]string `json:"metadata"`
	Type              string            `json:"type"`
}

// NewHTTPClient returns an HTTP client that keeps enough idle connections
// for the benchmark's concurrency.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t, Timeout: 30 * time.Minute}
}

// GRPCSearcher searches through the Go client (gRPC) on the public listener.
type GRPCSearcher struct {
	Label  string
	Client *client.Client
}

func (s *GRPCSearcher) Name() string { return s.Label }

func (s *GRPCSearcher) Page(ctx context.Context, q *Query, size int, cursor any) (Page, error) {
	return apiSearch(ctx, q, size, cursor, func(ctx context.Context, f *audittrail.Filter, size int, token string) ([]string, string, error) {
		resp, err := s.Client.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: *f, PageSize: size, PageToken: token})
		if err != nil {
			return nil, "", err
		}
		ids := make([]string, len(resp.Events))
		for i, e := range resp.Events {
			ids[i] = e.ID
		}
		return ids, resp.NextPageToken, nil
	})
}

// Drain reads every page of q through the client's Pages.
func (s *GRPCSearcher) Drain(ctx context.Context, q *Query, size int, each func(id string)) (int, error) {
	requests := 0
	for page, err := range s.Client.Pages(ctx, q.Filter, size) {
		if err != nil {
			return requests, err
		}
		requests++
		for _, e := range page.Events {
			each(e.ID)
		}
	}
	return requests, nil
}
