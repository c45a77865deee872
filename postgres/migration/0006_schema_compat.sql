-- 0006: the oldest build that may use the database (docs/postgres.md,
-- "Upgrades"; docs/design/postgres.md, "Migrations").
--
-- schema_compat.min_build_version is a schema version (a migration
-- number): a build whose newest migration is below it must not use this
-- database, and refuses to open it (serve, verify store), naming both
-- versions. Every build from this migration on checks it at Open, before
-- it migrates. Migrations keep the schema usable by the previous release
-- (expand, then contract a release later), so it stays 1: no build is
-- refused, and old replicas go on during a rolling upgrade. A migration
-- that breaks the builds before version N raises it, in its own
-- transaction:
--
--     UPDATE schema_compat SET min_build_version = greatest(min_build_version, N);
--
-- Builds before this migration do not read it (they run on a newer schema
-- with a warning, as before).
CREATE TABLE schema_compat (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    min_build_version integer NOT NULL CHECK (min_build_version >= 1)
);
INSERT INTO schema_compat (id, min_build_version) VALUES (true, 1);
