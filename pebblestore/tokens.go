package pebblestore

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/audittrail/audittrail"
)

// API tokens (audittrail.TokenStore) live in their own key range, apart from
// the events:
//
//	t + digest(32) → JSON of tokenRecord
//
// Tokens are few (an operator creates them by hand), so lookups by id scan
// the range; lookups by digest, done on every authenticated request, are
// point reads.
// (prefix: keys.go)

var _ audittrail.TokenStore = (*Store)(nil)

// tokenMu serialises the read-modify-write of token records (revocations).
var tokenMu sync.Mutex

type tokenRecord struct {
	ID          string    `json:"id"`
	Principal   string    `json:"principal"`
	Roles       []string  `json:"roles"`
	Workspaces  []string  `json:"workspaces,omitempty"`
	Description string    `json:"description,omitempty"`
	Creator     string    `json:"creator,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	ExpireTime  time.Time `json:"expire_time,omitzero"`
	RevokeTime  time.Time `json:"revoke_time,omitzero"`
}

func tokenKey(digest [32]byte) []byte {
	return append([]byte{pfxToken}, digest[:]...)
}

func encodeToken(t *audittrail.APIToken) ([]byte, error) {
	r := tokenRecord{
		ID: t.ID, Principal: t.Principal, Workspaces: t.Workspaces, Description: t.Description,
		Creator: t.Creator, CreateTime: t.CreateTime, ExpireTime: t.ExpireTime, RevokeTime: t.RevokeTime,
	}
	for _, x := range t.Roles {
		r.Roles = append(r.Roles, string(x))
	}
	return json.Marshal(&r)
}

func decodeToken(key, v []byte) (*audittrail.APIToken, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil || len(key) != 1+32 {
		return nil, audittrail.Errorf(audittrail.EInternal, "pebblestore: corrupt token record %x", key)
	}
	t := &audittrail.APIToken{
		ID: r.ID, Principal: r.Principal, Workspaces: r.Workspaces, Description: r.Description,
		Creator: r.Creator, CreateTime: r.CreateTime, ExpireTime: r.ExpireTime, RevokeTime: r.RevokeTime,
	}
	copy(t.Digest[:], key[1:])
	for _, x := range r.Roles {
		t.Roles = append(t.Roles, audittrail.Role(x))
	}
	return t, nil
}

// withDB runs f while the store is open.
func (s *Store) withDB(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	return f()
}

// CreateToken implements audittrail.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t *audittrail.APIToken) error {
	v, err := encodeToken(t)
	if err != nil {
		return err
	}
	tokenMu.Lock()
	defer tokenMu.Unlock()
	return s.withDB(ctx, func() error {
		all, err := s.listTokens()
		if err != nil {
			return err
		}
		for _, x := range all {
			if x.ID == t.ID || x.Digest == t.Digest {
				return audittrail.Errorf(audittrail.EConflict, "token id %q is used", t.ID)
			}
		}
		return s.db.Set(tokenKey(t.Digest), v, pebble.Sync)
	})
}

var errTokenNotFound = audittrail.Errorf(audittrail.ENotFound, "no such API token")

// TokenByDigest implements audittrail.TokenStore.
func (s *Store) TokenByDigest(ctx context.Context, digest [32]byte) (*audittrail.APIToken, error) {
	var t *audittrail.APIToken
	err := s.withDB(ctx, func() error {
		k := tokenKey(digest)
		v, closer, err := s.db.Get(k)
		if err == pebble.ErrNotFound {
			return errTokenNotFound
		} else if err != nil {
			return err
		}
		defer closer.Close()
		t, err = decodeToken(k, v)
		return err
	})
	return t, err
}

// TokenByID implements audittrail.TokenStore.
func (s *Store) TokenByID(ctx context.Context, id string) (*audittrail.APIToken, error) {
	all, err := s.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if t.ID == id {
			return t, nil
		}
	}
	return nil, errTokenNotFound
}

// ListTokens implements audittrail.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]*audittrail.APIToken, error) {
	var out []*audittrail.APIToken
	err := s.withDB(ctx, func() (err error) {
		out, err = s.listTokens()
		return err
	})
	return out, err
}

func (s *Store) listTokens() ([]*audittrail.APIToken, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxToken}, UpperBound: []byte{pfxToken + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*audittrail.APIToken
	for it.First(); it.Valid(); it.Next() {
		t, err := decodeToken(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	sortTokens(out)
	return out, nil
}

func sortTokens(ts []*audittrail.APIToken) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && (ts[j].CreateTime.Before(ts[j-1].CreateTime) ||
			ts[j].CreateTime.Equal(ts[j-1].CreateTime) && ts[j].ID < ts[j-1].ID); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// RevokeToken implements audittrail.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (*audittrail.APIToken, error) {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	var t *audittrail.APIToken
	err := s.withDB(ctx, func() error {
		all, err := s.listTokens()
		if err != nil {
			return err
		}
		for _, x := range all {
			if x.ID == id {
				t = x
			}
		}
		if t == nil {
			return errTokenNotFound
		}
		if !t.RevokeTime.IsZero() {
			return nil
		}
		t.RevokeTime = at.UTC()
		v, err := encodeToken(t)
		if err != nil {
			return err
		}
		return s.db.Set(tokenKey(t.Digest), v, pebble.Sync)
	})
	return t, err
}
