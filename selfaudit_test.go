package audittrail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

func TestSearchScope(t *testing.T) {
	ws := &audittrail.Principal{Name: "users/w", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor},
		Workspaces: []string{"workspaces/b", "workspaces/a", "workspaces/b"}}
	s, err := audittrail.SearchScope(ws)
	if err != nil || s.All || !slicesEqual(s.Workspaces, []string{"workspaces/a", "workspaces/b"}) {
		t.Fatalf("scope %+v, %v", s, err)
	}
	for w, want := range map[string]bool{"workspaces/a": true, "workspaces/b": true, "workspaces/c": false, "": false} {
		if s.Allows(w) != want {
			t.Errorf("Allows(%q) = %v", w, !want)
		}
	}
	if s, err := audittrail.SearchScope(&audittrail.Principal{Name: "users/x", Roles: []audittrail.Role{audittrail.RoleAuditor, audittrail.RoleWorkspaceAuditor}}); err != nil || !s.All {
		t.Errorf("auditor and workspace auditor: %+v, %v (the grants add up)", s, err)
	}
	if _, err := audittrail.SearchScope(&audittrail.Principal{Name: "services/p", Roles: []audittrail.Role{audittrail.RoleProducer, audittrail.RoleAdmin}}); audittrail.ErrorCode(err) != audittrail.EPermissionDenied {
		t.Errorf("producer and admin may search: %v", err)
	}
	if _, err := audittrail.SearchScope(nil); audittrail.ErrorCode(err) != audittrail.EUnauthenticated {
		t.Errorf("nil: %v", err)
	}

	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	compile := func(f audittrail.Filter) *audittrail.Query {
		q, err := f.Compile(end)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	var f audittrail.Filter
	f.Exact[audittrail.FieldWorkspace] = "workspaces/c"
	if s.Restrict(compile(f)) {
		t.Error("a filter on another workspace may match")
	}
	f.Exact[audittrail.FieldWorkspace] = "workspaces/a"
	if q := compile(f); !s.Restrict(q) || *q.Exact[audittrail.FieldWorkspace] != "workspaces/a" {
		t.Error("a filter on an own workspace is changed")
	}
	f = audittrail.Filter{}
	f.Regex[audittrail.FieldWorkspace] = "b$"
	if q := compile(f); !s.Restrict(q) || q.Exact[audittrail.FieldWorkspace] == nil || *q.Exact[audittrail.FieldWorkspace] != "workspaces/b" {
		t.Errorf("regex narrowed to one workspace: %+v", q.Exact[audittrail.FieldWorkspace])
	}
	f.Regex[audittrail.FieldWorkspace] = "zzz"
	if s.Restrict(compile(f)) {
		t.Error("a regex matching no own workspace may match")
	}
	q := compile(audittrail.Filter{})
	if !s.Restrict(q) {
		t.Fatal("no filter: nothing matches")
	}
	for w, want := range map[string]bool{"workspaces/a": true, "workspaces/b": true, "workspaces/ab": false, "xworkspaces/a": false, "": false} {
		if got := q.Regex[audittrail.FieldWorkspace].MatchString(w); got != want {
			t.Errorf("restricted regex on %q: %v", w, got)
		}
	}
	empty, _ := audittrail.SearchScope(&audittrail.Principal{Name: "users/e", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor}})
	if empty.Restrict(compile(audittrail.Filter{})) {
		t.Error("a workspace auditor without workspaces may see something")
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestCanCreateNeedsAService(t *testing.T) {
	user := &audittrail.Principal{Name: "users/alice", Roles: []audittrail.Role{audittrail.RoleProducer}}
	if err := audittrail.CanCreate(user); audittrail.ErrorCode(err) != audittrail.EPermissionDenied {
		t.Errorf("a user with the producer role may create: %v", err)
	}
	if err := audittrail.CanManageTokens(&audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAuditor}}); audittrail.ErrorCode(err) != audittrail.EPermissionDenied {
		t.Errorf("an auditor may manage tokens: %v", err)
	}
	if err := audittrail.CanManageTokens(&audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAdmin}}); err != nil {
		t.Errorf("admin: %v", err)
	}
}

type failStore struct{ memStore }

func (failStore) Append(context.Context, []*audittrail.Event) ([]audittrail.AppendResult, error) {
	return nil, errors.New("disk full")
}

func TestSelfAuditor(t *testing.T) {
	st := &memStore{}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := &audittrail.SelfAuditor{Store: st, RedactPrivateIPs: true, Now: func() time.Time { return now }}
	long := strings.Repeat("x", 10000)
	f := &audittrail.Filter{MetadataRegex: map[string]string{"k": long}}
	f.Exact[audittrail.FieldWorkspace] = "workspaces/w1"
	arrival := now.Add(-time.Second)
	err := a.Record(context.Background(), audittrail.AuditRecord{
		Time: arrival, Principal: "users/alice", SourceIP: "10.0.0.1:5555", UserAgent: "ua\xff",
		Action: audittrail.ActionSearchEvents, Resource: audittrail.SearchResource, ReadOnly: true,
		Status: audittrail.Status{Code: 7, Message: "denied"}, Parameters: audittrail.SearchParameters(f, 5, "tok"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := st.events[0]
	if e.EventSource != audittrail.DefaultSelfAuditSource || e.Action != audittrail.ActionSearchEvents || !e.ReadOnly ||
		e.Principal != "users/alice" || e.SourceIP != "private" || !e.EventTime.Equal(arrival) || !e.ReceiveTime.Equal(now) ||
		e.Status.Code != 7 || e.Workspace != "" || e.Type != audittrail.TypeAPI {
		t.Errorf("event %+v", e)
	}
	p := e.RequestParameters
	if p["filter.workspace_exact"] != "workspaces/w1" || p["page_size"] != "5" || p["page_token"] != "present" ||
		len(p["filter.metadata_regex"]) > 600 || strings.Contains(strings.Join(mapValues(p), ""), "tok\x00") {
		t.Errorf("parameters %v", p)
	}
	// Anonymous caller, unknown address, custom source, no redaction.
	a2 := &audittrail.SelfAuditor{Store: st, Source: "my-audit", Now: a.Now}
	if err := a2.Record(context.Background(), audittrail.AuditRecord{Action: "a", SourceIP: "pipe", Status: audittrail.Status{Code: 16}}); err != nil {
		t.Fatal(err)
	}
	if e := st.events[1]; e.Principal != audittrail.AnonymousPrincipal || e.SourceIP != "0.0.0.0" || e.EventSource != "my-audit" || !e.EventTime.Equal(now) {
		t.Errorf("anonymous event %+v", e)
	}
	// Failures: closed refuses, open answers; both are reported.
	failures := 0
	closed := &audittrail.SelfAuditor{Store: &failStore{}, OnFailure: func(*audittrail.AuditRecord, error) { failures++ }}
	if err := closed.Record(context.Background(), audittrail.AuditRecord{Action: "a"}); audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("fail closed: %v", err)
	}
	open := &audittrail.SelfAuditor{Store: &failStore{}, FailOpen: true, OnFailure: closed.OnFailure}
	if err := open.Record(context.Background(), audittrail.AuditRecord{Action: "a"}); err != nil {
		t.Errorf("fail open: %v", err)
	}
	if failures != 2 {
		t.Errorf("%d failures reported, want 2", failures)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestNewAPIToken(t *testing.T) {
	now := time.Now()
	tok, secret, err := audittrail.NewAPIToken(audittrail.NewTokenRequest{Principal: "users/alice", Roles: []audittrail.Role{"auditor"}, TTL: time.Hour}, "users/admin", now)
	if err != nil || !strings.HasPrefix(secret, audittrail.APITokenPrefix) || tok.Digest != audittrail.TokenDigest(secret) ||
		!tok.Active(now) || tok.Active(now.Add(2*time.Hour)) || tok.Creator != "users/admin" {
		t.Fatalf("%+v %q %v", tok, secret, err)
	}
	for name, req := range map[string]audittrail.NewTokenRequest{
		"bad principal":      {Principal: "alice", Roles: []audittrail.Role{"auditor"}},
		"no role":            {Principal: "users/a"},
		"unknown role":       {Principal: "users/a", Roles: []audittrail.Role{"root"}},
		"user producer":      {Principal: "users/a", Roles: []audittrail.Role{"producer"}},
		"ws without role":    {Principal: "users/a", Roles: []audittrail.Role{"auditor"}, Workspaces: []string{"w1"}},
		"ws role without ws": {Principal: "users/a", Roles: []audittrail.Role{"workspace_auditor"}},
		"bad workspace":      {Principal: "users/a", Roles: []audittrail.Role{"workspace_auditor"}, Workspaces: []string{"a/b"}},
		"negative ttl":       {Principal: "users/a", Roles: []audittrail.Role{"auditor"}, TTL: -1},
	} {
		if _, _, err := audittrail.NewAPIToken(req, "users/admin", now); audittrail.ErrorCode(err) != audittrail.EInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	tok, _, err = audittrail.NewAPIToken(audittrail.NewTokenRequest{Principal: "users/w", Roles: []audittrail.Role{"workspace_auditor"}, Workspaces: []string{"w1", "workspaces/w1"}}, "", now)
	if err != nil || len(tok.Workspaces) != 1 || tok.Workspaces[0] != "workspaces/w1" {
		t.Errorf("%+v %v", tok, err)
	}
	tok.RevokeTime = now
	if tok.Active(now) {
		t.Error("a revoked token is active")
	}
}

// TestSearchParametersOversizedMap: a metadata map over MaxFilterMapItems
// (which the search refuses) is recorded by its size, not sorted and joined:
// 266,000 entries fit in a 4 MB request, and their summary cost a third of
// the server's CPU for the refused search. A map within the limit is
// recorded as before, sorted.
func TestSearchParametersOversizedMap(t *testing.T) {
	over, within := map[string]string{}, map[string]string{}
	for i := range audittrail.MaxFilterMapItems + 1 {
		over[fmt.Sprintf("k%03d", i)] = "v"
		if i < audittrail.MaxFilterMapItems {
			within[fmt.Sprintf("k%03d", i)] = "v"
		}
	}
	p := audittrail.SearchParameters(&audittrail.Filter{MetadataExact: over, MetadataRegex: within}, 5, "")
	if got, want := p["filter.metadata_exact"], "65 entries, over the limit of 64: not recorded"; got != want {
		t.Errorf("metadata_exact over the limit recorded as %q, want %q", got, want)
	}
	if got := p["filter.metadata_regex"]; !strings.HasPrefix(got, "k000=v, k001=v, ") {
		t.Errorf("metadata_regex within the limit recorded as %q, want its sorted entries", got)
	}
}
