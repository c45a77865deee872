package postgres

import (
	"context"
	"embed"
	"errors"
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

// readOnlyNeeds is the newest migration whose schema a read-only store
// (Config.ReadOnly: searches, the log's reads, the retention cutoff) reads:
// 0004_retention. A read-only Open accepts a database that has migrations
// 1 to readOnlyNeeds and lacks later ones (0005 is the retention pass's,
// 0006 the compatibility guard's), so that "verify store" audits the
// database of the previous release before the upgrade. A migration that
// the read-only path comes to need raises it (TestReadOnlyOldSchema runs
// the read-only path on a database of exactly this version).
const readOnlyNeeds = 4

// querier is what reading the schema's state needs: a connection or the
// pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaState is what the database says about its schema: the migrations
// applied (empty when it has no schema_migrations), the newest of them, and
// the minimum build version of schema_compat (0 when the schema predates
// migration 0006, or has no row).
type schemaState struct {
	applied  map[int]bool
	newest   int
	minBuild int
}

func readSchemaState(ctx context.Context, q querier) (schemaState, error) {
	st := schemaState{applied: map[int]bool{}}
	var migrated, guarded bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL, to_regclass('schema_compat') IS NOT NULL").
		Scan(&migrated, &guarded); err != nil {
		return st, err
	}
	if migrated {
		rows, err := q.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return st, err
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return st, err
		}
		for _, v := range vs {
			st.applied[int(v)] = true
			st.newest = max(st.newest, int(v))
		}
	}
	if guarded {
		var m int32
		if err := q.QueryRow(ctx, "SELECT coalesce(max(min_build_version), 0) FROM schema_compat").Scan(&m); err != nil {
			return st, err
		}
		st.minBuild = int(m)
	}
	return st, nil
}

// ErrBuildTooOld is the error (errors.Is) of an Open refused because the
// database's schema_compat says builds of this schema version must not use
// it: a newer build's migration changed what this one needs.
var ErrBuildTooOld = errors.New("this build is too old for the database's schema")

// check refuses a build whose newest migration (build) is below the
// database's minimum, and warns when the schema is newer than the build.
func (st schemaState) check(build int, log *slog.Logger) error {
	if build < st.minBuild {
		return fmt.Errorf("postgres: %w: the database (schema version %d) may only be used by builds whose newest migration is %04d or later, "+
			"and this build's is %04d: upgrade audittrail to a release with migration %04d or later "+
			"(\"audittrail version\" prints a build's schema version)", ErrBuildTooOld, st.newest, st.minBuild, build, st.minBuild)
	}
	if st.newest > build {
		// A newer build migrated the database. Migrations keep the schema
		// usable by the previous release (expand, then contract a release
		// later), so an older replica may go on during a rolling upgrade;
		// a migration that does not raises schema_compat's minimum.
		log.Warn("postgres: the database schema is newer than this build", "schema_version", st.newest, "build_version", build,
			"min_build_version", st.minBuild)
	}
	return nil
}

// migrate applies the migrations the database lacks, those of a build
// whose newest migration is build. It holds a session advisory lock on a
// connection of its own, so that concurrent Opens apply each migration
// once, the others waiting and then finding it applied. It refuses, before
// applying anything, a database whose schema_compat excludes the build.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, build int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	ms = ms[:min(build, len(ms))]
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
	// Under the lock: a newer replica that raises the minimum does it
	// before or after this reading, never during.
	st, err := readSchemaState(ctx, raw)
	if err != nil {
		return err
	}
	if err := st.check(build, log); err != nil {
		return err
	}
	for _, m := range ms {
		if st.applied[m.version] {
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

// checkMigrated fails unless the database has the migrations a read-only
// store (Config.ReadOnly) reads, 1 to readOnlyNeeds (it may not apply
// them), or when its schema_compat excludes this build.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, build int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	st, err := readSchemaState(ctx, pool)
	if err != nil {
		return fmt.Errorf("postgres: reading the schema version: %w", err)
	}
	if err := st.check(build, log); err != nil {
		return err
	}
	for _, m := range ms[:min(readOnlyNeeds, build, len(ms))] {
		if !st.applied[m.version] {
			has := "none"
			if st.newest > 0 {
				has = fmt.Sprintf("up to %04d", st.newest)
			}
			return fmt.Errorf("postgres: the database lacks migration %04d_%s (it has %s), which a read-only store reads and does not apply: "+
				"start \"audittrail serve --store\" of this build on it once, with a role that may change the schema, to apply it", m.version, m.name, has)
		}
	}
	return nil
}
