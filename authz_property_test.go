package audittrail_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/policy"
)

// memStore is a brute-force Store: every search scans every event with
// Query.Match. It is the oracle of the property test.
type memStore struct{ events []*audittrail.Event }

func (s *memStore) Append(_ context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	out := make([]audittrail.AppendResult, len(events))
	for i, e := range events {
		c := *e
		c.Seq = uint64(len(s.events) + 1)
		s.events = append(s.events, &c)
		out[i].Event = &c
	}
	return out, nil
}

func newestFirst(a, b *audittrail.Event) int {
	if c := b.EventTime.Compare(a.EventTime); c != 0 {
		return c
	}
	return int(int64(b.Seq) - int64(a.Seq))
}

func (s *memStore) Search(_ context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	var match []*audittrail.Event
	for _, e := range s.events {
		if !req.Query.Match(e) {
			continue
		}
		if req.After != nil && !req.After.Before(e.EventTime.UnixNano(), e.Seq) {
			continue
		}
		match = append(match, e)
	}
	slices.SortFunc(match, newestFirst)
	res := &audittrail.SearchResult{}
	if len(match) > req.Limit {
		last := match[req.Limit-1]
		res.Next = &audittrail.Cursor{Time: last.EventTime.UnixNano(), Seq: last.Seq}
		match = match[:req.Limit]
	}
	res.Events = match
	return res, nil
}

func (s *memStore) Close() error { return nil }

// TestPropertyWorkspaceScope: random policies, random events across many
// workspaces, random filters and pages. A workspace auditor never receives
// an event outside its workspaces and receives exactly the brute-force
// answer within them; an auditor receives exactly the brute-force answer.
// At least 10,000 probes (search calls, one per page).
func TestPropertyWorkspaceScope(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	workspaces := []string{""}
	for i := range 24 {
		workspaces = append(workspaces, fmt.Sprintf("workspaces/w%d", i))
	}
	workspaces = append(workspaces, "workspaces/w1x", "workspaces/a.b", "workspaces/(x)")
	principals := []string{"users/alice", "users/bob", "users/carol", "services/appstore", "users/dave"}
	actions := []string{"actions/a/CREATE", "actions/a/DELETE", "actions/b/GET"}
	st := &memStore{}
	svc := &audittrail.Service{Store: st, PageTokenKey: make([]byte, audittrail.PageTokenKeySize), Now: func() time.Time { return base.Add(48 * time.Hour) }}
	for i := range 1500 {
		ws := workspaces[rng.IntN(len(workspaces))]
		override := ws
		in := audittrail.NewEvent{Event: audittrail.Event{
			EventTime:   base.Add(time.Duration(rng.IntN(36*60)) * time.Minute),
			EventSource: "src",
			Action:      actions[rng.IntN(len(actions))],
			Principal:   principals[rng.IntN(len(principals))],
			SourceIP:    "1.2.3.4",
			ReadOnly:    rng.IntN(2) == 0,
			Type:        audittrail.EventType(rng.IntN(3)),
		}, WorkspaceOverride: &override}
		if _, err := svc.CreateEvent(context.Background(), uuid.NewString(), in); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	randomPolicy := func() *policy.Policy {
		var doc struct {
			Bindings []map[string]any `json:"bindings"`
		}
		for _, p := range principals {
			switch rng.IntN(4) {
			case 0:
				doc.Bindings = append(doc.Bindings, map[string]any{"principals": []string{p}, "roles": []string{"auditor"}})
			case 1, 2:
				var ws []string
				for range 1 + rng.IntN(4) {
					if w := workspaces[1+rng.IntN(len(workspaces)-1)]; true {
						ws = append(ws, w)
					}
				}
				doc.Bindings = append(doc.Bindings, map[string]any{"principals": []string{p}, "roles": []string{"workspace_auditor"}, "workspaces": ws})
			}
		}
		b, _ := json.Marshal(doc)
		pol, err := policy.Parse(b)
		if err != nil {
			t.Fatalf("policy %s: %v", b, err)
		}
		return pol
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	randomFilter := func() audittrail.Filter {
		var f audittrail.Filter
		if rng.IntN(2) == 0 {
			s := base.Add(time.Duration(rng.IntN(30*60)) * time.Minute)
			f.StartTime = &s
			if rng.IntN(2) == 0 {
				e := s.Add(time.Duration(1+rng.IntN(12*60)) * time.Minute)
				f.EndTime = &e
			}
		}
		switch rng.IntN(6) {
		case 0:
			f.Exact[audittrail.FieldWorkspace] = pick(workspaces)
		case 1:
			f.Regex[audittrail.FieldWorkspace] = pick([]string{"w1", "^workspaces/w2", "x|y", "^$", "a\\.b", "\\(", "w[0-9]$"})
		case 2:
			f.Exact[audittrail.FieldWorkspace] = pick(workspaces)
			f.Regex[audittrail.FieldWorkspace] = pick([]string{"1", "w"})
		}
		if rng.IntN(3) == 0 {
			f.Exact[audittrail.FieldAction] = pick(actions)
		}
		if rng.IntN(4) == 0 {
			f.Regex[audittrail.FieldPrincipal] = pick([]string{"alice|bob", "^services/"})
		}
		if rng.IntN(5) == 0 {
			ro := rng.IntN(2) == 0
			f.ReadOnly = &ro
		}
		if rng.IntN(5) == 0 {
			f.IncludeTypes = []audittrail.EventType{audittrail.EventType(rng.IntN(3))}
		}
		return f
	}
	probes, queries := 0, 0
	var pol *policy.Policy
	for probes < 10_000 {
		if queries%50 == 0 {
			pol = randomPolicy()
		}
		queries++
		name := pick(principals)
		roles, ws := pol.Grant(policy.Identity{Principal: name})
		p := &audittrail.Principal{Name: name, Roles: roles, Workspaces: ws}
		ctx := audittrail.NewContextWithPrincipal(context.Background(), p)
		f := randomFilter()
		scope, scopeErr := audittrail.SearchScope(p)
		// The brute-force answer.
		q, err := f.Compile(svc.Now())
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		var all []*audittrail.Event
		for _, e := range st.events {
			if q.Match(e) && scope.Allows(e.Workspace) {
				all = append(all, e)
			}
		}
		slices.SortFunc(all, newestFirst)
		for _, e := range all {
			want = append(want, e.ID)
		}
		var got []string
		token := ""
		for {
			probes++
			resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: f, PageSize: 1 + rng.IntN(40), PageToken: token})
			if scopeErr != nil {
				if audittrail.ErrorCode(err) != audittrail.EPermissionDenied {
					t.Fatalf("principal %+v without a search role: %v, want permission denied", p, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("search %+v as %+v: %v", f, p, err)
			}
			for _, e := range resp.Events {
				if !scope.Allows(e.Workspace) {
					t.Fatalf("%s with workspaces %v received event %s of workspace %q (filter %+v)", name, ws, e.ID, e.Workspace, f)
				}
				got = append(got, e.ID)
			}
			if token = resp.NextPageToken; token == "" {
				break
			}
		}
		if scopeErr == nil && !slices.Equal(got, want) {
			t.Fatalf("query %d: %s (roles %v, workspaces %v), filter %+v:\n got %d events\nwant %d", queries, name, roles, ws, f, len(got), len(want))
		}
	}
	t.Logf("%d probes in %d queries", probes, queries)
}
