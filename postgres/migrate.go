package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema is a sequence of migrations, migration/NNNN_name.sql, applied
// in order, each in its own transaction together with its row in
// schema_migrations. A migration, once released, never changes: changes
// come as new files.
//
//go:embed migration/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock that serialises migrations of one
// database (several replicas starting together).
const migrateLockKey int64 = 7243411203398457040

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migration/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: the name must be NNNN_name.sql", f)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations are not numbered 1, 2, ...: %d is at position %d", m.version, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the version of the newest migration of this build.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies the migrations the database lacks. It holds a session
// advisory lock on a connection of its own, so that concurrent Opens apply
// each migration once, the others waiting and then finding it applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: closing it releases the lock even
	// when unlocking fails.
	raw := conn.Hijack()
	defer raw.Close(context.WithoutCancel(ctx))
	if _, err := raw.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return err
	}
	defer raw.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey) //nolint:errcheck // the close releases it anyway
	// DDL of a migration may wait for locks and take time on a big table.
	if _, err := raw.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return err
	}
	if _, err := raw.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	rows, err := raw.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return err
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return err
	}
	done := map[int]bool{}
	newest := 0
	for _, v := range applied {
		done[int(v)] = true
		newest = max(newest, int(v))
	}
	if latest := ms[len(ms)-1].version; newest > latest {
		// A newer build migrated the database. Migrations keep the schema
		// usable by the previous release (expand, then contract a release
		// later), so an older replica may go on during a rolling upgrade.
		log.Warn("postgres: the database schema is newer than this build", "schema_version", newest, "build_version", latest)
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, raw, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
		}
		log.Info("postgres: applied migration", "version", m.version, "name", m.name)
	}
	return nil
}

// checkMigrated fails unless the database has every migration of this
// build: a read-only store (Config.ReadOnly) may not apply them.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("postgres: reading the schema version: %w", err)
	}
	applied := map[int32]bool{}
	if exists {
		rows, err := pool.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("postgres: reading the schema version: %w", err)
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("postgres: reading the schema version: %w", err)
		}
		for _, v := range vs {
			applied[v] = true
		}
	}
	for _, m := range ms {
		if !applied[int32(m.version)] {
			return fmt.Errorf("postgres: the database lacks migration %04d_%s, and a read-only store applies none: "+
				"let the service (a replica of this build, whose role may change the schema) apply it first", m.version, m.name)
		}
	}
	return nil
}
