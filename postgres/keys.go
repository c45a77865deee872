package postgres

import (
	"context"
	"crypto/rand"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
)

// PageTokenKey returns the key that authenticates page tokens
// (audittrail.Service.PageTokenKey), kept in the database so that every
// replica uses the same one and tokens work across replicas and restarts.
// The first call on a database creates it: audittrail.PageTokenKeySize
// random bytes.
func (s *Store) PageTokenKey(ctx context.Context) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	fresh := make([]byte, audittrail.PageTokenKeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	// Two replicas creating the key at once: the second inserts nothing
	// and, its snapshot being older than the first's commit, may read
	// nothing either; it then reads again.
	for range 3 {
		var key []byte
		err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO service_keys (name, key) VALUES ('page_token', $1::bytea)
			ON CONFLICT (name) DO NOTHING RETURNING key
		)
		SELECT key FROM ins UNION ALL SELECT key FROM service_keys WHERE name = 'page_token' LIMIT 1`, fresh).Scan(&key)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			s.recoverFrom(err)
			return nil, s.fail(ctx, "page token key", err)
		}
		if len(key) != audittrail.PageTokenKeySize {
			return nil, errors.New("postgres: the stored page token key has the wrong size")
		}
		return key, nil
	}
	return nil, errors.New("postgres: the page token key could not be read")
}
