package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

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

// issuerKeyPrefix names the service_keys rows of the built-in issuers'
// public keys, one per key id (token.PeerKeys).
const issuerKeyPrefix = "issuer_jwk:"

// PublishIssuerKey records a replica's built-in issuer public key (JWK JSON)
// under its key id, so that every replica accepts the access tokens any of
// them issues (token.BuiltinConfig.Peers); publishing it again sets its
// created_at to now, which for these rows means "last published" (the
// key itself never changes under its id). Only public keys are kept here:
// a reader of the database cannot sign tokens with them.
func (s *Store) PublishIssuerKey(ctx context.Context, kid string, jwk []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if _, err := s.pool.Exec(ctx, `INSERT INTO service_keys (name, key) VALUES ($1, $2::bytea)
		ON CONFLICT (name) DO UPDATE SET created_at = now()`,
		issuerKeyPrefix+kid, jwk); err != nil {
		s.recoverFrom(err)
		return s.fail(ctx, "issuer key", err)
	}
	return nil
}

// IssuerKeys returns the issuer public keys published within maxAge, by the
// database's clock (token.PeerKeys).
func (s *Store) IssuerKeys(ctx context.Context, maxAge time.Duration) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	rows, err := s.pool.Query(ctx, `SELECT key FROM service_keys WHERE starts_with(name, $1)
		AND created_at > now() - make_interval(secs => $2::float8) ORDER BY name`, issuerKeyPrefix, maxAge.Seconds())
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "issuer keys", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		s.recoverFrom(err)
		return nil, s.fail(ctx, "issuer keys", err)
	}
	return keys, nil
}
