// Package audittrail is the domain of the audit trail service: the system of
// record for who did what, to which resource, when, from where, and with what
// result.
//
// Producers (services of the platform) send Events through the internal
// listener; auditors search them through the public one. Every stored event
// gets a sequence number, gap-free and increasing in commit order, which fixes
// its place in the log. Searches run newest first over a time range with the
// filters of the H2O Audit Trail API (exact values, RE2 regular expressions,
// metadata, types), one page at a time; page tokens are authenticated and
// bound to the filter and the caller they were issued for.
//
// This package holds the types (Event, Filter, Query, Cursor, Principal), the
// rules (validation, workspace derivation, page sizes and tokens, in Service),
// the Store contract that every storage engine implements, the error type
// with its codes, and authorization as plain functions. It imports no
// transport or storage technology: package pebblestore is the embedded store,
// package server the gRPC and REST transport, package client the Go client,
// and cmd/audittrail wires them into one binary.
package audittrail
