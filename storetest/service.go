package storetest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
)

// testService covers the rules audittrail.Service applies on top of the
// store: default range, page sizes, create and batch create.
func (s *suite) testService(t *testing.T) {
	t.Run("DefaultRange", func(t *testing.T) {
		f := s.open(t)
		var g ids
		ds := audittrail.DefaultStartTime
		stored := f.append(
			mkEvent(t, g.next(), ds.Add(-1)),         // 0: before the default start
			mkEvent(t, g.next(), ds),                 // 1: at the default start (inclusive)
			mkEvent(t, g.next(), now.Add(-1)),        // 2: just before now
			mkEvent(t, g.next(), now),                // 3: at now (exclusive)
			mkEvent(t, g.next(), now.Add(time.Hour)), // 4: in the future
		)
		svc := newService(f.store, key1)
		ctx := as("users/auditor")
		for _, c := range []struct {
			name   string
			filter audittrail.Filter
			want   []*audittrail.Event
		}{
			{"defaults", audittrail.Filter{}, []*audittrail.Event{stored[2], stored[1]}},
			{"start given", audittrail.Filter{StartTime: ptr(ds.Add(-1))}, []*audittrail.Event{stored[2], stored[1], stored[0]}},
			{"end given", audittrail.Filter{EndTime: ptr(now.Add(1))}, []*audittrail.Event{stored[3], stored[2], stored[1]}},
			{"end in the future", audittrail.Filter{EndTime: ptr(now.Add(2 * time.Hour))}, []*audittrail.Event{stored[4], stored[3], stored[2], stored[1]}},
		} {
			for _, size := range []int{0, 1} {
				got := drain(t, ctx, svc, c.filter, size) // checks searched_until == start at the end
				if d := diffEvents(c.want, got); d != "" {
					t.Errorf("%s, page size %d: %s", c.name, size, d)
				}
			}
		}
		resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.SearchedUntil.Equal(ds) || resp.NextPageToken != "" {
			t.Errorf("default search: searched_until %v, token %q; want %v and no token", resp.SearchedUntil, resp.NextPageToken, ds)
		}
		for _, c := range []struct {
			name   string
			filter audittrail.Filter
		}{
			{"start == end", audittrail.Filter{StartTime: ptr(base), EndTime: ptr(base)}},
			{"start > end", audittrail.Filter{StartTime: ptr(base.Add(1)), EndTime: ptr(base)}},
			{"start after now, no end", audittrail.Filter{StartTime: ptr(now.Add(time.Second))}},
			{"end before default start, no start", audittrail.Filter{EndTime: ptr(ds.Add(-time.Second))}},
			{"start before 1970", audittrail.Filter{StartTime: ptr(audittrail.MinEventTime.Add(-1))}},
			{"bad regex", audittrail.Filter{StatusCodeRegex: "("}},
		} {
			_, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: c.filter})
			wantCode(t, err, audittrail.EInvalid, c.name)
		}
	})

	// Pages read ahead (Service.PrefetchMinPage) are the pages a search on
	// request returns, for every scope and filter, ties of event time
	// included; the reads ahead run beside the requests' own searches.
	t.Run("PrefetchedPages", func(t *testing.T) {
		f := s.open(t)
		var g ids
		var in []*audittrail.Event
		for i := range 300 {
			ws := fmt.Sprint("w", 1+i%3)
			in = append(in, mkEvent(t, g.next(), base.Add(time.Duration(i/4)*time.Second), func(n *audittrail.NewEvent) {
				n.Event.Resource = "//engine-manager/workspaces/" + ws + "/daiEngines/e" + fmt.Sprint(i)
			}))
		}
		f.append(in...)
		plain := newService(f.store, key1)
		ahead := newService(f.store, key1)
		ahead.PrefetchMinPage = 5
		workspaceAuditor := audittrail.NewContextWithPrincipal(context.Background(), &audittrail.Principal{
			Name: "users/wa", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor}, Workspaces: []string{"workspaces/w2"}})
		var regex audittrail.Filter
		regex.Regex[audittrail.FieldResource] = "/w[13]/"
		for _, c := range []struct {
			name   string
			ctx    context.Context
			filter audittrail.Filter
			want   int
		}{
			{"auditor", as("users/auditor"), audittrail.Filter{}, 300},
			{"workspace auditor", workspaceAuditor, audittrail.Filter{}, 100},
			{"regex", as("users/auditor"), regex, 200},
		} {
			for _, size := range []int{5, 7} {
				want := drain(t, c.ctx, plain, c.filter, size)
				got := drain(t, c.ctx, ahead, c.filter, size)
				if len(want) != c.want {
					t.Fatalf("%s: %d events, want %d", c.name, len(want), c.want)
				}
				if d := diffEvents(want, got); d != "" {
					t.Errorf("%s, pages of %d read ahead: %s", c.name, size, d)
				}
			}
		}
	})

	t.Run("PageSize", func(t *testing.T) {
		f := s.open(t)
		var g ids
		var in []*audittrail.Event
		const n = audittrail.MaxPageSize + 1
		for i := range n {
			in = append(in, mkEvent(t, g.next(), base.Add(time.Duration(i%97)*time.Second)))
		}
		stored := f.append(in...)
		all := newestFirst(stored)
		svc := newService(f.store, key1)
		ctx := as("users/auditor")
		for _, c := range []struct{ size, want int }{
			{0, audittrail.DefaultPageSize},
			{1, 1},
			{50, 50},
			{999, 999},
			{1000, 1000},
			{1001, 1000},
			{5000, 1000},
			{math.MaxInt32, 1000},
		} {
			resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: c.size})
			if err != nil {
				t.Fatalf("page size %d: %v", c.size, err)
			}
			if d := diffEvents(all[:c.want], resp.Events); d != "" {
				t.Errorf("page size %d: want the %d newest events: %s", c.size, c.want, d)
			}
			if resp.NextPageToken == "" {
				t.Errorf("page size %d: no next_page_token though events remain", c.size)
			}
		}
		_, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: -1})
		wantCode(t, err, audittrail.EInvalid, "page size -1")
		_, pages := drainPages(t, ctx, svc, audittrail.Filter{}, 0)
		if len(pages) != 21 {
			t.Errorf("draining %d events with the default page size took %d pages, want 21", n, len(pages))
		}
		if d := diffEvents(all, drain(t, ctx, svc, audittrail.Filter{}, 0)); d != "" {
			t.Error(d)
		}
	})

	t.Run("CreateEvent", func(t *testing.T) {
		f := s.open(t)
		clock := now.Add(-time.Hour)
		svc := &audittrail.Service{Store: f.store, PageTokenKey: key1, RedactPrivateIPs: true, Now: func() time.Time { return clock }}
		ctx := context.Background()
		in := audittrail.NewEvent{Event: audittrail.Event{
			EventTime: base.Add(123456), EventSource: "s", Action: "a", Principal: "users/p", SourceIP: "10.1.2.3",
			Resource: "workspaces/w7/x", Status: &audittrail.Status{Code: 5}, ReceiveTime: base, Seq: 99, LoginPrincipal: "x",
		}}
		id := "B096430B-C7A8-47F2-A129-D9AE58CF454F"
		got, err := svc.CreateEvent(ctx, id, in)
		if err != nil {
			t.Fatal(err)
		}
		want := in.Event
		want.ID, want.SourceIP, want.Workspace, want.ReceiveTime, want.Seq, want.LoginPrincipal =
			"b096430b-c7a8-47f2-a129-d9ae58cf454f", "private", "workspaces/w7", clock, 1, ""
		if d := gocmp.Diff(&want, got, eventOpts); d != "" {
			t.Errorf("CreateEvent (-want +got):\n%s", d)
		}
		// A retry later, with the id in lower case: the stored event.
		clock = clock.Add(time.Minute)
		again, err := svc.CreateEvent(ctx, want.ID, in)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if d := gocmp.Diff(got, again, eventOpts); d != "" {
			t.Errorf("retry (-want +got):\n%s", d)
		}
		other := in
		other.Event.Action = "b"
		_, err = svc.CreateEvent(ctx, id, other)
		wantCode(t, err, audittrail.EConflict, "CreateEvent with a used id and other content")
		_, err = svc.CreateEvent(ctx, "not-a-uuid", in)
		wantCode(t, err, audittrail.EInvalid, "CreateEvent with a bad id")
		found := drain(t, ctx, svc, audittrail.Filter{Exact: exact(audittrail.FieldSourceIP, "private")}, 0)
		if d := diffEvents([]*audittrail.Event{got}, found); d != "" {
			t.Errorf("search for the redacted address: %s", d)
		}
	})

	t.Run("BatchCreateEvents", func(t *testing.T) {
		f := s.open(t)
		svc := newService(f.store, key1)
		ctx := context.Background()
		ev := func(action string) audittrail.NewEvent {
			return audittrail.NewEvent{Event: audittrail.Event{
				EventTime: base, EventSource: "s", Action: action, Principal: "users/p", SourceIP: "1.1.1.1",
			}}
		}
		bad := ev("a")
		bad.Event.Principal = ""
		reqs := []audittrail.CreateRequest{
			{EventID: idOf(1), Event: ev("a")},
			{EventID: "invalid", Event: ev("a")},
			{EventID: idOf(1), Event: ev("a")}, // retry within the batch
			{EventID: idOf(1), Event: ev("b")}, // conflict within the batch
			{EventID: idOf(2), Event: ev("b")},
			{EventID: idOf(3), Event: bad},
		}
		res, err := svc.BatchCreateEvents(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		if got := idsOf(res.Events); !gocmp.Equal(got, []string{idOf(1), idOf(1), idOf(2)}) {
			t.Errorf("events: %v, want [%s %s %s]", got, idOf(1), idOf(1), idOf(2))
		}
		if len(res.Events) == 3 && (res.Events[0].Seq != 1 || res.Events[1].Seq != 1 || res.Events[2].Seq != 2) {
			t.Errorf("seqs: %d %d %d, want 1 1 2", res.Events[0].Seq, res.Events[1].Seq, res.Events[2].Seq)
		}
		wantFailed := map[int]string{1: audittrail.EInvalid, 3: audittrail.EConflict, 5: audittrail.EInvalid}
		if len(res.Failed) != len(wantFailed) {
			t.Errorf("failed: %v, want indexes 1, 3, 5", res.Failed)
		}
		for i, code := range wantFailed {
			if e := res.Failed[i]; e == nil || e.Code != code {
				t.Errorf("failed[%d] = %v, want code %s", i, e, code)
			}
		}
		if e := res.Failed[1]; e != nil && e.Message != "event_id must be in UUIDv4 format" {
			t.Errorf("failed[1] message %q", e.Message)
		}
		// Too many requests: nothing is written.
		var many []audittrail.CreateRequest
		for i := range audittrail.MaxBatch + 1 {
			many = append(many, audittrail.CreateRequest{EventID: idOf(uint64(100 + i)), Event: ev("many")})
		}
		_, err = svc.BatchCreateEvents(ctx, many)
		wantCode(t, err, audittrail.EInvalid, "batch of 1001")
		if got := drain(t, ctx, svc, audittrail.Filter{Exact: exact(audittrail.FieldAction, "many")}, 0); len(got) != 0 {
			t.Errorf("a refused batch stored %d events", len(got))
		}
		// A full batch is fine.
		res, err = svc.BatchCreateEvents(ctx, many[:audittrail.MaxBatch])
		if err != nil || len(res.Events) != audittrail.MaxBatch || len(res.Failed) != 0 {
			t.Fatalf("batch of 1000: %d events, %v failed, err %v", len(res.Events), res.Failed, err)
		}
		for i, e := range res.Events {
			if e.Seq != uint64(3+i) {
				t.Fatalf("batch of 1000: event %d has seq %d, want %d", i, e.Seq, 3+i)
			}
		}
	})
}
