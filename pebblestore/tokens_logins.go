package pebblestore

import (
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/audittrail/audittrail"
)

// Login names (audittrail.LoginNames) live in their own key range:
//
//	l + principal → login name
// (prefix: keys.go)

var _ audittrail.LoginNames = (*Store)(nil)

func loginKey(principal string) []byte {
	return append([]byte{pfxLogin}, principal...)
}

// SetLoginName implements audittrail.LoginNames.
func (s *Store) SetLoginName(ctx context.Context, principal, name string) error {
	return s.withDB(ctx, func() error {
		return s.db.Set(loginKey(principal), []byte(name), pebble.Sync)
	})
}

// LoginNames implements audittrail.LoginNames.
func (s *Store) LoginNames(ctx context.Context, principals []string) (map[string]string, error) {
	out := make(map[string]string, len(principals))
	err := s.withDB(ctx, func() error {
		for _, p := range principals {
			v, closer, err := s.db.Get(loginKey(p))
			if err == pebble.ErrNotFound {
				continue
			} else if err != nil {
				return err
			}
			out[p] = string(v)
			closer.Close()
		}
		return nil
	})
	return out, err
}
