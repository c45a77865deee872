// Package policy binds identities to roles: a JSON file of bindings, each
// naming principals, groups or claim values and the roles (and workspaces) it
// grants. The file is reloaded when it changes, without a restart.
//
//	{
//	  "bindings": [
//	    {"principals": ["users/5f2c..."], "roles": ["auditor"]},
//	    {"groups": ["security-team"], "roles": ["auditor"]},
//	    {"claims": {"realm_access.roles": "ws-auditor"}, "roles": ["workspace_auditor"],
//	     "workspaces": ["workspaces/w1", "w2"]},
//	    {"principals": ["services/appstore"], "roles": ["producer"]}
//	  ]
//	}
//
// A binding applies when the principal is listed, or one of the caller's
// groups is listed, or every claim condition holds (a claim holds when its
// value, or one element of its array value, equals the given string; dotted
// names reach into nested objects). A binding with an issuer applies only
// to tokens of that issuer (claim iss), never to client certificates: with
// several OIDC issuers, each names its users users/<sub> and its groups as
// it likes, so the same name can come from two of them. The roles and
// workspaces of all applying bindings add up. The policy applies to
// identities from OIDC tokens and client certificates; API tokens and the
// static tokens carry their roles.
package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/audittrail/audittrail"
)

// Binding grants roles to the identities it names.
type Binding struct {
	Issuer     string            `json:"issuer,omitempty"`
	Principals []string          `json:"principals,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Claims     map[string]string `json:"claims,omitempty"`
	Roles      []string          `json:"roles"`
	Workspaces []string          `json:"workspaces,omitempty"`

	roles      []audittrail.Role
	workspaces []string
}

// Policy is a parsed policy file.
type Policy struct {
	Bindings []*Binding `json:"bindings"`
}

// Identity is what the policy is evaluated on.
type Identity struct {
	Principal string
	Groups    []string
	Claims    map[string]any // the token's claims; nil for certificates
}

// Parse parses and validates a policy document.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	for i, b := range p.Bindings {
		if b == nil {
			return nil, fmt.Errorf("policy: binding %d is null", i)
		}
		if len(b.Principals)+len(b.Groups)+len(b.Claims) == 0 {
			return nil, fmt.Errorf("policy: binding %d names no principals, groups or claims", i)
		}
		if len(b.Roles) == 0 {
			return nil, fmt.Errorf("policy: binding %d grants no roles", i)
		}
		for _, pr := range b.Principals {
			if err := audittrail.ValidatePrincipalName(pr); err != nil {
				return nil, fmt.Errorf("policy: binding %d: %s", i, audittrail.ErrorMessage(err))
			}
		}
		for _, r := range b.Roles {
			role, err := audittrail.ParseRole(r)
			if err != nil {
				return nil, fmt.Errorf("policy: binding %d: %s", i, audittrail.ErrorMessage(err))
			}
			b.roles = append(b.roles, role)
		}
		for _, w := range b.Workspaces {
			n, err := audittrail.NormalizeWorkspace(w)
			if err != nil {
				return nil, fmt.Errorf("policy: binding %d: %s", i, audittrail.ErrorMessage(err))
			}
			b.workspaces = append(b.workspaces, n)
		}
		if slices.Contains(b.roles, audittrail.RoleWorkspaceAuditor) != (len(b.workspaces) > 0) {
			return nil, fmt.Errorf("policy: binding %d: workspaces go with the workspace_auditor role, and that role needs workspaces", i)
		}
	}
	return &p, nil
}

// Grant returns the roles and workspaces the policy grants to id, sorted and
// without duplicates. A nil policy grants nothing.
func (p *Policy) Grant(id Identity) (roles []audittrail.Role, workspaces []string) {
	if p == nil {
		return nil, nil
	}
	for _, b := range p.Bindings {
		if !b.applies(id) {
			continue
		}
		roles = append(roles, b.roles...)
		workspaces = append(workspaces, b.workspaces...)
	}
	slices.Sort(roles)
	slices.Sort(workspaces)
	return slices.Compact(roles), slices.Compact(workspaces)
}

func (b *Binding) applies(id Identity) bool {
	if b.Issuer != "" {
		if iss, _ := id.Claims["iss"].(string); iss != b.Issuer {
			return false
		}
	}
	if slices.Contains(b.Principals, id.Principal) {
		return true
	}
	for _, g := range b.Groups {
		if slices.Contains(id.Groups, g) {
			return true
		}
	}
	if len(b.Claims) == 0 || id.Claims == nil {
		return false
	}
	for name, want := range b.Claims {
		if !ClaimHas(id.Claims, name, want) {
			return false
		}
	}
	return true
}

// Claim returns the claim at a dotted path ("realm_access.roles"); a name
// that exists as a top-level key is taken as is.
func Claim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// ClaimHas reports whether the claim equals want, or is an array with an
// element equal to want.
func ClaimHas(claims map[string]any, name, want string) bool {
	v, ok := Claim(claims, name)
	if !ok {
		return false
	}
	switch x := v.(type) {
	case string:
		return x == want
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	case bool:
		return fmt.Sprint(x) == want
	case float64:
		return fmt.Sprint(x) == want
	}
	return false
}

// ClaimStrings returns a string claim as one string, or the strings of an
// array claim.
func ClaimStrings(claims map[string]any, name string) []string {
	v, ok := Claim(claims, name)
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// File is a policy file that is reloaded when its content changes. The
// zero File, and a File without a path, hold no bindings.
type File struct {
	path    string
	log     *slog.Logger
	current atomic.Pointer[Policy]
	digest  [32]byte
}

// Load reads the policy file at path; it fails when the file cannot be read
// or parsed. Watch reloads it later.
func Load(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &File{path: path, log: log}
	if path == "" {
		f.current.Store(&Policy{})
		return f, nil
	}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Policy returns the policy in force.
func (f *File) Policy() *Policy {
	if f == nil {
		return nil
	}
	return f.current.Load()
}

// reload reads the file and, when its content changed and parses, puts it
// in force. It reports whether the policy changed.
func (f *File) reload() (bool, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return false, fmt.Errorf("policy: %w", err)
	}
	d := sha256.Sum256(data)
	if d == f.digest && f.current.Load() != nil {
		return false, nil
	}
	p, err := Parse(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", f.path, err)
	}
	f.current.Store(p)
	f.digest = d
	return true, nil
}

// Watch checks the file every interval until ctx ends, and puts a changed
// file in force. A file that cannot be read or parsed is logged and the
// policy in force is kept: a broken edit never opens or closes access
// silently.
func (f *File) Watch(ctx context.Context, interval time.Duration) {
	if f.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := f.reload()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				f.log.Error("policy file not reloaded: keeping the policy in force", "path", f.path, "err", err)
			}
			lastErr = err.Error()
		case changed:
			lastErr = ""
			f.log.Info("policy file reloaded", "path", f.path, "bindings", len(f.current.Load().Bindings))
		}
	}
}
