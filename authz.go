package audittrail

import (
	"regexp"
	"slices"
	"strings"
)

// Authorization decisions are plain functions of the principal so that they
// can be tested without servers. The transport authenticates (turns a
// credential into a *Principal) and calls these; it decides nothing itself.
//
//	role               search                          create                      tokens
//	auditor            every event                     no                          no
//	workspace_auditor  events of its workspaces only   no                          no
//	producer           no                              yes, service principals     no
//	admin              no                              no                          create, list, revoke; backups
//
// A principal may hold several roles; the grants add up. That the create
// methods are served on the internal listener only is the transport's part
// (the public listener refuses them before authentication).

var errNoCaller = Errorf(EUnauthenticated, "missing or invalid bearer token")

// Scope is the part of the events a principal may read.
type Scope struct {
	// All: every event (the auditor role).
	All bool
	// Workspaces, sorted and without duplicates: the workspaces whose
	// events may be read when All is false. Events without a workspace are
	// outside every such scope.
	Workspaces []string
}

// SearchScope returns what p may read, or the error to return when p may not
// search at all.
func SearchScope(p *Principal) (Scope, error) {
	if p == nil {
		return Scope{}, errNoCaller
	}
	if p.HasRole(RoleAuditor) {
		return Scope{All: true}, nil
	}
	if p.HasRole(RoleWorkspaceAuditor) {
		ws := slices.Clone(p.Workspaces)
		slices.Sort(ws)
		return Scope{Workspaces: slices.Compact(ws)}, nil
	}
	return Scope{}, Errorf(EPermissionDenied, "principal %q may not search events: it needs the auditor or workspace_auditor role", p.Name)
}

// CanSearch reports whether p may search events, as an error to return.
func CanSearch(p *Principal) error {
	_, err := SearchScope(p)
	return err
}

// Allows reports whether an event in workspace ws is inside the scope.
func (s Scope) Allows(ws string) bool {
	if s.All {
		return true
	}
	_, found := slices.BinarySearch(s.Workspaces, ws)
	return found && ws != ""
}

// Restrict narrows q to the scope, so that a search returns exactly the
// events that match q and are inside the scope. It reports false when no
// event can match (then q must not be run: the answer is an empty page).
//
// A workspace filter of the caller naming a workspace outside the scope is
// not an error: the search is silently restricted, and finds nothing there.
func (s Scope) Restrict(q *Query) bool {
	if s.All {
		return true
	}
	if exact := q.Exact[FieldWorkspace]; exact != nil {
		return s.Allows(*exact)
	}
	// The workspaces of the scope that the caller's regex (if any) admits.
	// An event inside the scope matches the caller's regex exactly when its
	// workspace is one of these, so the regex can be replaced by them.
	var ws []string
	for _, w := range s.Workspaces {
		if w != "" && (q.Regex[FieldWorkspace] == nil || q.Regex[FieldWorkspace].MatchString(w)) {
			ws = append(ws, w)
		}
	}
	switch len(ws) {
	case 0:
		return false
	case 1:
		q.Exact[FieldWorkspace] = &ws[0]
		return true
	}
	quoted := make([]string, len(ws))
	for i, w := range ws {
		quoted[i] = regexp.QuoteMeta(w)
	}
	q.Regex[FieldWorkspace] = regexp.MustCompile(`^(?:` + strings.Join(quoted, "|") + `)$`)
	return true
}

// CanCreate reports whether p may create events, as an error to return:
// it needs the producer role and must be a service principal (a user's
// credential never creates events, whatever its roles).
func CanCreate(p *Principal) error {
	if p == nil {
		return errNoCaller
	}
	if !p.HasRole(RoleProducer) {
		return Errorf(EPermissionDenied, "principal %q may not create events: it needs the producer role", p.Name)
	}
	if !p.IsService() {
		return Errorf(EPermissionDenied, "principal %q may not create events: the producer role is effective for service principals (services/...) only", p.Name)
	}
	return nil
}

// CanManageTokens reports whether p may create, list and revoke API tokens.
func CanManageTokens(p *Principal) error {
	if p == nil {
		return errNoCaller
	}
	if !p.HasRole(RoleAdmin) {
		return Errorf(EPermissionDenied, "principal %q may not manage API tokens: it needs the admin role", p.Name)
	}
	return nil
}

// CanBackup reports whether p may take a backup of the store: a copy of
// every event, so the admin role, as for tokens.
func CanBackup(p *Principal) error {
	if p == nil {
		return errNoCaller
	}
	if !p.HasRole(RoleAdmin) {
		return Errorf(EPermissionDenied, "principal %q may not take backups: it needs the admin role", p.Name)
	}
	return nil
}
