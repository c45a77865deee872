// Package bench is the benchmark harness of the audit trail service: it
// generates a deterministic event load (package internal/sample), ingests it
// through the real API into the server binary (on the embedded store and,
// when the binary supports it, on the PostgreSQL store), runs a suite of
// searches through the public REST API and gRPC, runs the same searches as
// hand-written SQL on a throwaway PostgreSQL with a conventional schema, checks
// that every system returns the same events, and writes BENCHMARKS.md.
//
// Every system of a size is loaded first; the suite then runs each query on
// every system in turn, so that the figures a ratio compares are measured
// seconds apart (the development machine's speed moves between minutes).
//
// The command is bench/cmd/auditbench; `make bench` runs it. See
// BENCHMARKS.md for what it measures and docs/design/performance.md for what
// the measurements show. bench/cmd/pagetail, a diagnostic beside it, times
// first pages against a running server and splits each into the server's
// part, the transfer and the client's decoding.
//
// Everything the suite asks is derived from the generated stream itself (a
// counting pass before any store is loaded), never from a store: the popular
// and the rare principal, the workspace with about 10,000 events, the rare
// resource name, the request id of one event. The same pass evaluates every
// query with the reference semantics (audittrail.Query.Match), so each
// system's answer is checked against an oracle as well as against the others.
package bench
