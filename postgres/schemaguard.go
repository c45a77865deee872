package postgres

import (
	"github.com/audittrail/audittrail"
)

// A replica that runs while a newer build migrates the database.
//
// Open refuses a database whose schema_compat.min_build_version is above
// this build's schema version (migrate.go), but a replica opened before a
// newer build raised the minimum would go on: writing rows and reading
// tables whose meaning the breaking migration changed. The documented
// upgrade stops older replicas first; this makes the rule hold when an
// operator does not. Every append of a guarded store reads the minimum
// under a share lock of its row (insertGuardedSQL), so the raising UPDATE
// and the appends are serialised: an append that commits before it was
// written under the old schema's rules, and every append after it stores
// nothing. The readiness check (Ping) reads the minimum too, so that a
// replica that only serves searches is taken out of its load balancer at
// the next probe. Once excluded, every operation of the store fails with
// EUnavailable naming both versions, until the process is replaced by an
// upgraded build: the minimum never goes down.
//
// Rejected: reading the minimum before every search (a round trip per
// search, for an event that happens once per breaking release, and that
// the readiness probe reports within its period); a trigger on the event
// tables (it would run for every row, and an older build's own statements
// are what must stop, not be rewritten).

// compatMigration is the migration that created schema_compat (0006): a
// store acting as an older build (tests) does not read it.
const compatMigration = 6

// exclude records that the database's schema_compat excludes this build,
// and returns the error every operation of the store fails with from now.
func (s *Store) exclude(minBuild int) error {
	var err error = audittrail.Errorf(audittrail.EUnavailable,
		"this replica's build is too old for the database: a newer release's migration requires builds of schema version %d or later, "+
			"and this build's is %d; upgrade it (\"audittrail version\" prints a build's schema version)", minBuild, s.build)
	if s.excluded.CompareAndSwap(nil, &err) {
		s.log.Error("postgres: the database no longer admits this build; every operation fails until it is upgraded",
			"min_build_version", minBuild, "build_version", s.build)
		// The integrator lock's session outlives the store's operations
		// (LeadLog refuses at enter and never reaches it): held, it
		// would keep every upgraded replica from integrating and signing
		// the log until this process ends. TestExcludedReplicaResigns.
		s.ResignLog()
	}
	return *s.excluded.Load()
}
