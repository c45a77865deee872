package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audittrail/audittrail"
)

// API tokens (audittrail.TokenStore) and login names (audittrail.LoginNames)
// live in two tables of their own. They are created on first use, under an
// advisory lock, rather than by a numbered migration, so that this file does
// not take a place in the migration sequence of the events schema; moving
// the DDL into a migration later is compatible (IF NOT EXISTS).
//
// Their strings are stored escaped, as the events' are (text.go): the API
// allows the byte 0x00 in a principal or a description, which PostgreSQL
// text cannot hold, and a statement that sent one would fail as a whole
// (LoginNames asks for the principals of a page of events together).
// Strings without 0x00 and 0x01 (in practice all those stored before the
// escaping, as those with 0x00 failed) are stored unchanged and read back
// the same.
const tokensDDL = `
CREATE TABLE IF NOT EXISTS api_tokens (
	digest      bytea PRIMARY KEY,
	id          text NOT NULL UNIQUE,
	principal   text NOT NULL,
	roles       text[] NOT NULL,
	workspaces  text[] NOT NULL DEFAULT '{}',
	description text NOT NULL DEFAULT '',
	creator     text NOT NULL DEFAULT '',
	create_time timestamptz NOT NULL,
	expire_time timestamptz,
	revoke_time timestamptz
);
CREATE TABLE IF NOT EXISTS login_names (
	principal   text PRIMARY KEY,
	name        text NOT NULL,
	update_time timestamptz NOT NULL DEFAULT now()
);`

const tokensLockKey int64 = 7243411203398457041

var (
	_ audittrail.TokenStore = (*Store)(nil)
	_ audittrail.LoginNames = (*Store)(nil)
)

// tokenSchemaState remembers that the store's token tables exist
// (Store.tokens). It was kept in a package-level map by store, which kept
// every store that had served a token request, closed or not, with its
// pool and caches, for the life of the process (TestClosedStoreReleased).
type tokenSchemaState struct {
	mu   sync.Mutex
	done bool
}

// withTokens runs f on the pool once the tables exist.
func (s *Store) withTokens(ctx context.Context, op string, f func() error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	st := &s.tokens
	st.mu.Lock()
	if !st.done {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, tokensLockKey); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, tokensDDL)
			return err
		})
		if err != nil {
			st.mu.Unlock()
			s.recoverFrom(err)
			return s.fail(ctx, op, err)
		}
		st.done = true
	}
	st.mu.Unlock()
	if err := f(); err != nil {
		var ae *audittrail.Error
		if errors.As(err, &ae) {
			return err
		}
		s.recoverFrom(err)
		return s.fail(ctx, op, err)
	}
	return nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

const tokenColumns = `digest, id, principal, roles, workspaces, description, creator, create_time, expire_time, revoke_time`

func scanToken(row pgx.Row) (*audittrail.APIToken, error) {
	var t audittrail.APIToken
	var digest []byte
	var roles []string
	var expire, revoke *time.Time
	if err := row.Scan(&digest, &t.ID, &t.Principal, &roles, &t.Workspaces, &t.Description, &t.Creator, &t.CreateTime, &expire, &revoke); err != nil {
		return nil, err
	}
	copy(t.Digest[:], digest)
	t.ID, t.Principal = decodeText(t.ID), decodeText(t.Principal)
	t.Description, t.Creator = decodeText(t.Description), decodeText(t.Creator)
	for _, r := range roles {
		t.Roles = append(t.Roles, audittrail.Role(decodeText(r)))
	}
	for i, w := range t.Workspaces {
		t.Workspaces[i] = decodeText(w)
	}
	if len(t.Workspaces) == 0 {
		t.Workspaces = nil
	}
	t.CreateTime = t.CreateTime.UTC()
	if expire != nil {
		t.ExpireTime = expire.UTC()
	}
	if revoke != nil {
		t.RevokeTime = revoke.UTC()
	}
	return &t, nil
}

var errTokenNotFound = audittrail.Errorf(audittrail.ENotFound, "no such API token")

// CreateToken implements audittrail.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t *audittrail.APIToken) error {
	roles := make([]string, len(t.Roles))
	for i, r := range t.Roles {
		roles[i] = encodeText(string(r))
	}
	ws := make([]string, len(t.Workspaces))
	for i, w := range t.Workspaces {
		ws[i] = encodeText(w)
	}
	return s.withTokens(ctx, "create token", func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			t.Digest[:], encodeText(t.ID), encodeText(t.Principal), roles, ws, encodeText(t.Description), encodeText(t.Creator),
			t.CreateTime, nullTime(t.ExpireTime), nullTime(t.RevokeTime))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return audittrail.Errorf(audittrail.EConflict, "token id %q is used", t.ID)
		}
		return err
	})
}

func (s *Store) tokenWhere(ctx context.Context, op, where string, arg any) (*audittrail.APIToken, error) {
	var t *audittrail.APIToken
	err := s.withTokens(ctx, op, func() error {
		var err error
		t, err = scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE `+where, arg))
		if errors.Is(err, pgx.ErrNoRows) {
			return errTokenNotFound
		}
		return err
	})
	return t, err
}

// TokenByDigest implements audittrail.TokenStore.
func (s *Store) TokenByDigest(ctx context.Context, digest [32]byte) (*audittrail.APIToken, error) {
	return s.tokenWhere(ctx, "token by digest", "digest = $1", digest[:])
}

// TokenByID implements audittrail.TokenStore.
func (s *Store) TokenByID(ctx context.Context, id string) (*audittrail.APIToken, error) {
	return s.tokenWhere(ctx, "token by id", "id = $1", encodeText(id))
}

// ListTokens implements audittrail.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]*audittrail.APIToken, error) {
	var out []*audittrail.APIToken
	err := s.withTokens(ctx, "list tokens", func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY create_time, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// RevokeToken implements audittrail.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (*audittrail.APIToken, error) {
	var t *audittrail.APIToken
	err := s.withTokens(ctx, "revoke token", func() error {
		var err error
		t, err = scanToken(s.pool.QueryRow(ctx, `UPDATE api_tokens SET revoke_time = COALESCE(revoke_time, $2)
			WHERE id = $1 RETURNING `+tokenColumns, encodeText(id), at.UTC()))
		if errors.Is(err, pgx.ErrNoRows) {
			return errTokenNotFound
		}
		return err
	})
	return t, err
}

// SetLoginName implements audittrail.LoginNames.
func (s *Store) SetLoginName(ctx context.Context, principal, name string) error {
	return s.withTokens(ctx, "set login name", func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO login_names (principal, name) VALUES ($1, $2)
			ON CONFLICT (principal) DO UPDATE SET name = EXCLUDED.name, update_time = now()`, encodeText(principal), encodeText(name))
		return err
	})
}

// LoginNames implements audittrail.LoginNames.
func (s *Store) LoginNames(ctx context.Context, principals []string) (map[string]string, error) {
	out := make(map[string]string, len(principals))
	// The rows are keyed by the stored principals, the result by the
	// caller's.
	asGiven := make(map[string]string, len(principals))
	stored := make([]string, len(principals))
	for i, p := range principals {
		stored[i] = encodeText(p)
		asGiven[stored[i]] = p
	}
	err := s.withTokens(ctx, "login names", func() error {
		rows, err := s.pool.Query(ctx, `SELECT principal, name FROM login_names WHERE principal = ANY($1)`, stored)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p, n string
			if err := rows.Scan(&p, &n); err != nil {
				return err
			}
			out[asGiven[p]] = decodeText(n)
		}
		return rows.Err()
	})
	return out, err
}
