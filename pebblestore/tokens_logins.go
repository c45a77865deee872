package pebblestore

import (
	"context"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/audittrail/audittrail"
)

// Login names (audittrail.LoginNames) live in their own key range:
//
//	l + principal → login name
// (prefix: keys.go)
//
// and in memory: every search looks up the login name of each distinct
// principal of its page (37 of 50 in the benchmark), and a Pebble Get per
// principal was a quarter of the server's CPU per first page (profiled on
// 1M events). Pebble locks the directory, so every write goes through
// SetLoginName in this process and the map is exact. It holds one entry per
// principal that has a login name (people, not events).

var _ audittrail.LoginNames = (*Store)(nil)

// logins is the in-memory copy of the login name range.
type logins struct {
	mu sync.RWMutex // write: SetLoginName, so that the map follows the database's order
	m  map[string]string
}

func loginKey(principal string) []byte {
	return append([]byte{pfxLogin}, principal...)
}

// loadLogins reads the login name range into memory.
func (s *Store) loadLogins() error {
	s.logins.m = map[string]string{}
	return scan(s.db, []byte{pfxLogin}, func(k, v []byte) error {
		s.logins.m[string(k[1:])] = string(v)
		return nil
	})
}

// SetLoginName implements audittrail.LoginNames.
func (s *Store) SetLoginName(ctx context.Context, principal, name string) error {
	return s.withDB(ctx, func() error {
		s.logins.mu.Lock()
		defer s.logins.mu.Unlock()
		if err := s.db.Set(loginKey(principal), []byte(name), pebble.Sync); err != nil {
			return err
		}
		s.logins.m[principal] = name
		return nil
	})
}

// LoginNames implements audittrail.LoginNames.
func (s *Store) LoginNames(ctx context.Context, principals []string) (map[string]string, error) {
	out := make(map[string]string, len(principals))
	err := s.withDB(ctx, func() error {
		s.logins.mu.RLock()
		defer s.logins.mu.RUnlock()
		for _, p := range principals {
			if name, ok := s.logins.m[p]; ok {
				out[p] = name
			}
		}
		return nil
	})
	return out, err
}
