// Package postgres is the PostgreSQL storage engine of the audit trail: an
// audittrail.Store on a PostgreSQL database (version 13 or later) that
// several replicas of the service share.
//
// It behaves as the embedded store does, which the conformance suite
// (package storetest) proves: the same sequence numbers, retries, order,
// cursors, work bound and filter semantics. What differs is inside:
//
//   - Sequence numbers come from a one-row counter (log_head) updated in the
//     transaction that stores the events. Its row lock serialises appenders
//     across replicas, so commit order is sequence order and a reader never
//     sees a sequence number whose predecessor is not yet visible.
//   - Events live in a table partitioned by month of event time, with one
//     B-tree per exact filter ordered by (event time, seq), so that every
//     search is an ordered index scan that stops after a page.
//   - Regular expressions keep RE2 semantics: they never reach PostgreSQL's
//     own regex dialect. A search pushes down what is safe (time range, exact
//     values, LIKE patterns implied by the literals of a regex, metadata
//     containment) and applies Query.Match in Go to every row it gets back.
//   - The same statement raises each new event's receive time above the
//     previous event's (log_head keeps the last one), so receive times
//     strictly increase with sequence numbers across replicas.
//   - It keeps the verifiable log's tree and checkpoints (audittrail.LogStore,
//     log.go) for all replicas, and elects the one that integrates and signs
//     with a session advisory lock (logsign.SharedStore); every tree write
//     is fenced by that lock and by the tree size it extends.
//   - Retention (retention.go) hides the events before a cutoff that every
//     replica reads, and drops the monthly partitions wholly before it.
//   - The schema is created and upgraded at Open by embedded, versioned
//     migrations under an advisory lock, and partitions for the coming months
//     are created ahead by the store itself.
//
// When the database cannot be reached, operations fail at once with an
// audittrail.EUnavailable error, and the store resumes by itself when the
// database is back. See docs/design/postgres.md for the design and the options
// rejected, and docs/postgres.md for operations.
package postgres
