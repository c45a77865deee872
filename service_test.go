package audittrail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

// fakeStore is a func-field fake of audittrail.Store that records calls.
type fakeStore struct {
	AppendFn func(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error)
	SearchFn func(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error)

	appends  [][]*audittrail.Event
	searches []audittrail.SearchRequest
}

func (s *fakeStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	s.appends = append(s.appends, events)
	if s.AppendFn == nil {
		out := make([]audittrail.AppendResult, len(events))
		for i, e := range events {
			c := *e
			c.Seq = uint64(i + 1)
			out[i].Event = &c
		}
		return out, nil
	}
	return s.AppendFn(ctx, events)
}

func (s *fakeStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	s.searches = append(s.searches, req)
	if s.SearchFn == nil {
		return &audittrail.SearchResult{}, nil
	}
	return s.SearchFn(ctx, req)
}

func (s *fakeStore) Close() error { return nil }

var (
	svcNow = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	svcKey = bytes.Repeat([]byte{3}, audittrail.PageTokenKeySize)
)

func newTestService(st audittrail.Store) (*audittrail.Service, *time.Time) {
	clock := svcNow
	return &audittrail.Service{Store: st, PageTokenKey: svcKey, Now: func() time.Time { return clock }}, &clock
}

func auditor(name string) context.Context {
	return audittrail.NewContextWithPrincipal(context.Background(), &audittrail.Principal{Name: name, Roles: []audittrail.Role{audittrail.RoleAuditor}})
}

func TestServicePageSize(t *testing.T) {
	for _, c := range []struct{ size, limit int }{
		{0, 50}, {1, 1}, {49, 49}, {50, 50}, {1000, 1000}, {1001, 1000}, {math.MaxInt32, 1000}, {math.MaxInt, 1000},
	} {
		st := &fakeStore{}
		svc, _ := newTestService(st)
		if _, err := svc.SearchEvents(auditor("users/a"), audittrail.SearchEventsRequest{PageSize: c.size}); err != nil {
			t.Fatalf("page size %d: %v", c.size, err)
		}
		if len(st.searches) != 1 || st.searches[0].Limit != c.limit {
			t.Errorf("page size %d: store asked for %+v, want limit %d", c.size, st.searches, c.limit)
		}
	}
	for _, size := range []int{-1, math.MinInt} {
		st := &fakeStore{}
		svc, _ := newTestService(st)
		_, err := svc.SearchEvents(auditor("users/a"), audittrail.SearchEventsRequest{PageSize: size})
		if audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Errorf("page size %d: %v, want EInvalid", size, err)
		}
		if len(st.searches) != 0 {
			t.Errorf("page size %d: the store was searched", size)
		}
	}
}

func TestServiceSearchPaging(t *testing.T) {
	st := &fakeStore{}
	svc, clock := newTestService(st)
	svc.MaxScan = 1234
	ctx := auditor("users/alice")
	mid := time.Date(2025, 8, 15, 0, 0, 0, 5, time.UTC)
	ev := &audittrail.Event{ID: "x", EventTime: mid, Seq: 9}
	st.SearchFn = func(_ context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
		if req.After == nil {
			return &audittrail.SearchResult{Events: []*audittrail.Event{ev}, Next: &audittrail.Cursor{Time: mid.UnixNano(), Seq: 9}}, nil
		}
		return &audittrail.SearchResult{}, nil
	}
	filter := audittrail.Filter{Regex: [audittrail.NumFields]string{audittrail.FieldAction: "CREATE"}}
	first, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	req := st.searches[0]
	if req.After != nil || req.MaxScan != 1234 || !req.Query.End.Equal(svcNow) || !req.Query.Start.Equal(audittrail.DefaultStartTime) {
		t.Errorf("first page: store request %+v (query range [%v, %v))", req, req.Query.Start, req.Query.End)
	}
	if first.NextPageToken == "" || !first.SearchedUntil.Equal(mid) || len(first.Events) != 1 {
		t.Errorf("first page: %+v", first)
	}
	// The clock moves on; the second page keeps the end of the first.
	*clock = svcNow.Add(time.Hour)
	second, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: 7, PageToken: first.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	req = st.searches[1]
	if req.After == nil || *req.After != (audittrail.Cursor{Time: mid.UnixNano(), Seq: 9}) {
		t.Errorf("second page: after %+v, want the cursor of the first", req.After)
	}
	if !req.Query.End.Equal(svcNow) || req.Limit != 7 {
		t.Errorf("second page: end %v limit %d, want %v and 7", req.Query.End, req.Limit, svcNow)
	}
	if second.NextPageToken != "" || !second.SearchedUntil.Equal(audittrail.DefaultStartTime) {
		t.Errorf("last page: token %q, searched_until %v", second.NextPageToken, second.SearchedUntil)
	}
	// A new search takes the new clock.
	if _, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter}); err != nil {
		t.Fatal(err)
	}
	if !st.searches[2].Query.End.Equal(svcNow.Add(time.Hour)) {
		t.Errorf("new search: end %v", st.searches[2].Query.End)
	}
	// An explicit end is used as given.
	end := time.Date(2025, 8, 20, 0, 0, 0, 0, time.UTC)
	if _, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: audittrail.Filter{EndTime: &end}}); err != nil {
		t.Fatal(err)
	}
	if !st.searches[3].Query.End.Equal(end) {
		t.Errorf("explicit end: %v", st.searches[3].Query.End)
	}

	// Refusals happen before the store is asked.
	n := len(st.searches)
	for name, r := range map[string]struct {
		ctx context.Context
		req audittrail.SearchEventsRequest
	}{
		"bad token":     {ctx, audittrail.SearchEventsRequest{Filter: filter, PageToken: "x"}},
		"other filter":  {ctx, audittrail.SearchEventsRequest{PageToken: first.NextPageToken}},
		"other caller":  {auditor("users/bob"), audittrail.SearchEventsRequest{Filter: filter, PageToken: first.NextPageToken}},
		"no caller":     {context.Background(), audittrail.SearchEventsRequest{Filter: filter, PageToken: first.NextPageToken}},
		"bad regex":     {ctx, audittrail.SearchEventsRequest{Filter: audittrail.Filter{StatusCodeRegex: "("}}},
		"empty range":   {ctx, audittrail.SearchEventsRequest{Filter: audittrail.Filter{StartTime: &end, EndTime: &end}}},
		"negative size": {ctx, audittrail.SearchEventsRequest{PageSize: -5}},
	} {
		if _, err := svc.SearchEvents(r.ctx, r.req); audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Errorf("%s: %v, want EInvalid", name, err)
		}
	}
	if len(st.searches) != n {
		t.Errorf("the store was searched for refused requests")
	}
	// Metadata maps over the limit are refused before anything is done
	// with them (the fingerprint sorted them), the page token included.
	many := map[string]string{}
	for i := range audittrail.MaxFilterMapItems + 1 {
		many[strconv.Itoa(i)] = "v"
	}
	_, err = svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: audittrail.Filter{MetadataExact: many}, PageToken: "x"})
	if audittrail.ErrorCode(err) != audittrail.EInvalid || !strings.Contains(err.Error(), "at most 64 entries") {
		t.Errorf("a filter over the map limit with a bad page token: %v, want the map limit's error", err)
	}
	// Another key refuses the token.
	other := &audittrail.Service{Store: st, PageTokenKey: bytes.Repeat([]byte{4}, 32), Now: svc.Now}
	if _, err := other.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter, PageToken: first.NextPageToken}); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("other key: %v, want EInvalid", err)
	}
	// Store errors pass through.
	boom := errors.New("disk on fire")
	st.SearchFn = func(context.Context, audittrail.SearchRequest) (*audittrail.SearchResult, error) { return nil, boom }
	if _, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{}); !errors.Is(err, boom) {
		t.Errorf("store error: %v", err)
	}
}

func TestServiceCreateEvent(t *testing.T) {
	st := &fakeStore{}
	svc, _ := newTestService(st)
	svc.RedactPrivateIPs = true
	in := validEvent()
	in.Event.SourceIP = "192.168.0.1"
	got, err := svc.CreateEvent(context.Background(), validID, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.appends) != 1 || len(st.appends[0]) != 1 {
		t.Fatalf("appends: %v", st.appends)
	}
	sent := st.appends[0][0]
	if sent.SourceIP != "private" || !sent.ReceiveTime.Equal(svcNow) || sent.Workspace != "workspaces/w1" || sent.ID != validID {
		t.Errorf("stored event %+v", sent)
	}
	if got.Seq != 1 || got.SourceIP != "private" {
		t.Errorf("returned event %+v", got)
	}
	// Invalid events never reach the store.
	bad := validEvent()
	bad.Event.Action = ""
	if _, err := svc.CreateEvent(context.Background(), validID, bad); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("invalid event: %v", err)
	}
	if len(st.appends) != 1 {
		t.Error("an invalid event was appended")
	}
	// Conflicts and store errors are returned.
	st.AppendFn = func(context.Context, []*audittrail.Event) ([]audittrail.AppendResult, error) {
		return []audittrail.AppendResult{{Err: audittrail.Errorf(audittrail.EConflict, "used")}}, nil
	}
	if _, err := svc.CreateEvent(context.Background(), validID, in); audittrail.ErrorCode(err) != audittrail.EConflict {
		t.Errorf("conflict: %v", err)
	}
	boom := errors.New("boom")
	st.AppendFn = func(context.Context, []*audittrail.Event) ([]audittrail.AppendResult, error) { return nil, boom }
	if _, err := svc.CreateEvent(context.Background(), validID, in); !errors.Is(err, boom) {
		t.Errorf("store error: %v", err)
	}
}

func TestServiceBatchCreateEvents(t *testing.T) {
	st := &fakeStore{}
	svc, _ := newTestService(st)
	ids := []string{
		"00000000-0000-4000-8000-000000000001",
		"invalid",
		"00000000-0000-4000-8000-000000000003",
		"00000000-0000-4000-8000-000000000004",
		"00000000-0000-4000-8000-000000000005",
	}
	bad := validEvent()
	bad.Event.Metadata = map[string]string{"Bad": ""}
	reqs := []audittrail.CreateRequest{
		{EventID: ids[0], Event: validEvent()},
		{EventID: ids[1], Event: validEvent()},
		{EventID: ids[2], Event: bad},
		{EventID: ids[3], Event: validEvent()},
		{EventID: ids[4], Event: validEvent()},
	}
	// The store reports a conflict for its second event (request 3).
	st.AppendFn = func(_ context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
		out := make([]audittrail.AppendResult, len(events))
		for i, e := range events {
			if i == 1 {
				out[i].Err = audittrail.Errorf(audittrail.EConflict, "event %s exists", e.ID)
				continue
			}
			c := *e
			c.Seq = uint64(10 + i)
			out[i].Event = &c
		}
		return out, nil
	}
	res, err := svc.BatchCreateEvents(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{st.appends[0][0].ID, st.appends[0][1].ID, st.appends[0][2].ID}; len(st.appends[0]) != 3 || !cmp.Equal(got, []string{ids[0], ids[3], ids[4]}) {
		t.Errorf("appended %v, want the three valid events", got)
	}
	for _, e := range st.appends[0] {
		if !e.ReceiveTime.Equal(svcNow) {
			t.Errorf("receive_time %v, want the batch's %v", e.ReceiveTime, svcNow)
		}
	}
	if got := []string{res.Events[0].ID, res.Events[1].ID}; len(res.Events) != 2 || !cmp.Equal(got, []string{ids[0], ids[4]}) {
		t.Errorf("events %v", got)
	}
	want := map[int]string{1: audittrail.EInvalid, 2: audittrail.EInvalid, 3: audittrail.EConflict}
	if len(res.Failed) != len(want) {
		t.Errorf("failed %v, want indexes 1, 2, 3", res.Failed)
	}
	for i, code := range want {
		if res.Failed[i] == nil || res.Failed[i].Code != code {
			t.Errorf("failed[%d] = %v, want %s", i, res.Failed[i], code)
		}
	}
	if res.Failed[1] != nil && res.Failed[1].Message != "event_id must be in UUIDv4 format" {
		t.Errorf("failed[1] message %q", res.Failed[1].Message)
	}

	// Nothing valid: the store is not called.
	st.appends = nil
	res, err = svc.BatchCreateEvents(context.Background(), reqs[1:3])
	if err != nil || len(res.Events) != 0 || len(res.Failed) != 2 || len(st.appends) != 0 {
		t.Errorf("all invalid: %+v, %v, %d appends", res, err, len(st.appends))
	}
	res, err = svc.BatchCreateEvents(context.Background(), nil)
	if err != nil || len(res.Events) != 0 || len(res.Failed) != 0 || res.Failed == nil {
		t.Errorf("empty batch: %+v, %v", res, err)
	}
	// Over the limit: refused as a whole.
	many := make([]audittrail.CreateRequest, audittrail.MaxBatch+1)
	if _, err := svc.BatchCreateEvents(context.Background(), many); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("1001 requests: %v, want EInvalid", err)
	}
	if len(st.appends) != 0 {
		t.Error("a refused batch reached the store")
	}
	// A store error fails the call.
	boom := errors.New("boom")
	st.AppendFn = func(context.Context, []*audittrail.Event) ([]audittrail.AppendResult, error) { return nil, boom }
	if _, err := svc.BatchCreateEvents(context.Background(), reqs); !errors.Is(err, boom) {
		t.Errorf("store error: %v", err)
	}
}

// pagedStore serves newest-first pages of n events, one per second, and
// counts its searches; it is safe for the service's reads ahead.
type pagedStore struct {
	fakeStore
	mu       sync.Mutex
	events   []*audittrail.Event
	searched int
	failOn   int // this search (counted from 1) fails
}

func newPagedStore(n int) *pagedStore {
	st := &pagedStore{}
	for i := range n {
		st.events = append(st.events, &audittrail.Event{ID: fmt.Sprint("e", i), EventTime: svcNow.Add(-time.Duration(i+1) * time.Second), Seq: uint64(n - i)})
	}
	return st
}

func (st *pagedStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.searched++
	if st.searched == st.failOn {
		return nil, errors.New("disk on fire")
	}
	i := 0
	if req.After != nil {
		for i < len(st.events) && st.events[i].Seq >= req.After.Seq {
			i++
		}
	}
	res := &audittrail.SearchResult{}
	for ; i < len(st.events) && len(res.Events) < req.Limit; i++ {
		c := *st.events[i]
		res.Events = append(res.Events, &c)
	}
	if i < len(st.events) {
		last := res.Events[len(res.Events)-1]
		res.Next = &audittrail.Cursor{Time: last.EventTime.UnixNano(), Seq: last.Seq}
	}
	return res, nil
}

func (st *pagedStore) searches() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.searched
}

// waitSearches waits until the store has been searched n times.
func (st *pagedStore) waitSearches(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); st.searches() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store was searched %d times, want %d", st.searches(), n)
		}
	}
}

// TestServicePrefetch: a full page of PrefetchMinPage events or more gets
// its next page searched before it is asked for, and the request with its
// token gets that page; the pages are those of a service that does not
// read ahead. Small pages, partial pages and other callers start or take
// nothing.
func TestServicePrefetch(t *testing.T) {
	ctx := auditor("users/alice")
	drain := func(svc *audittrail.Service, st *pagedStore, size int, between func(page int)) (ids []string) {
		t.Helper()
		token := ""
		for page := 1; ; page++ {
			res, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: size, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range res.Events {
				ids = append(ids, e.ID)
			}
			if token = res.NextPageToken; token == "" {
				return ids
			}
			between(page)
		}
	}
	// 2,500 events in pages of 1,000: the second and third pages are read
	// ahead, each before its request.
	st := newPagedStore(2500)
	svc, _ := newTestService(st)
	svc.PrefetchMinPage = 500
	got := drain(svc, st, 1000, func(page int) {
		st.waitSearches(t, page+1) // the next page, without a request
	})
	if n := st.searches(); n != 3 {
		t.Errorf("draining three pages searched the store %d times, want 3", n)
	}
	plain := newPagedStore(2500)
	psvc, _ := newTestService(plain)
	if want := drain(psvc, plain, 1000, func(int) {}); !slices.Equal(got, want) {
		t.Errorf("pages read ahead differ from pages searched on request")
	}

	// Pages below PrefetchMinPage start nothing.
	st = newPagedStore(2500)
	svc, _ = newTestService(st)
	svc.PrefetchMinPage = 500
	drain(svc, st, 499, func(int) {})
	if n := st.searches(); n != 6 {
		t.Errorf("six pages of 499: %d searches, want 6", n)
	}

	// Another caller with the token is refused before the store is asked,
	// and the page waits for its caller; a failed read ahead leaves the
	// request to search itself.
	st = newPagedStore(2500)
	svc, _ = newTestService(st)
	svc.PrefetchMinPage = 500
	first, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	st.waitSearches(t, 2)
	if _, err := svc.SearchEvents(auditor("users/bob"), audittrail.SearchEventsRequest{PageSize: 1000, PageToken: first.NextPageToken}); audittrail.ErrorCode(err) != audittrail.EInvalid {
		t.Errorf("another caller: %v, want EInvalid", err)
	}
	second, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: 1000, PageToken: first.NextPageToken})
	if err != nil || len(second.Events) != 1000 || second.Events[0].ID != "e1000" {
		t.Fatalf("second page: %v, %v", second, err)
	}
	st.waitSearches(t, 3) // the third page, ahead
	if n := st.searches(); n != 3 {
		t.Errorf("%d searches after the second page, want 3 (the second page read ahead, then the third)", n)
	}

	st = newPagedStore(2500)
	st.failOn = 2 // the read ahead of the second page
	svc, _ = newTestService(st)
	svc.PrefetchMinPage = 500
	if first, err = svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: 1000}); err != nil {
		t.Fatal(err)
	}
	st.waitSearches(t, 2)
	second, err = svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: 1000, PageToken: first.NextPageToken})
	if err != nil || len(second.Events) != 1000 || second.Events[0].ID != "e1000" {
		t.Fatalf("second page after a failed read ahead: %v, %v", second, err)
	}
	if n := st.searches(); n < 3 {
		t.Errorf("%d searches: the second page was not searched again after its read ahead failed", n)
	}
}
