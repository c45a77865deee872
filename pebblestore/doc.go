// Package pebblestore is the embedded storage engine of the audit trail: an
// audittrail.Store on a Pebble LSM database in one local directory.
//
// Events are stored once, clustered by (event time, seq), so the
// newest-first order of searches is a reverse scan of one key range. String
// fields, metadata pairs and user agents are dictionary-encoded: records
// hold small integer ids, kept with the dictionaries in memory, so filters
// test integers instead of strings and a regex is evaluated once per
// distinct value instead of once per event. Every indexed value has a
// posting list, in the same newest-first order. A search picks, by estimated
// cost, either the primary range or the posting lists of its most selective
// condition, checks the other conditions on each candidate by id, and stops
// at the page size or at its work budget (MaxScan), returning a cursor to
// resume from.
//
// Appends go to a single writer. It takes every queued call as one group,
// assigns gap-free sequence numbers in commit order, and commits the group
// in one synced batch (group commit) before acknowledging it. Retries are
// recognised by event id.
//
// Dictionaries are bounded (Config.DictionaryLimit): values beyond the
// limit, typically near-unique ones such as request ids, are stored inline
// with hashed postings. Memory therefore does not grow with the number of
// events.
//
// The key layout, planning, durability and the alternatives that were
// rejected are described in docs/design/storage.md.
package pebblestore
