package pebblestore

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// idFilterBitsPerKey sizes the id filters: about 1% false positives.
const idFilterBitsPerKey = 10

// idFilterPolicy is a bloom filter over the id keys of a table only.
//
// The only lookups a filter serves here are the idempotency checks, one per
// appended event (a SeekPrefixGE on its i key, almost always a miss). Every
// other read is a range scan or a Get of a key that nearly always exists (a
// record, a tree hash, the format), which a filter cannot save. Pebble's
// bloom filter over every key cost 1.25 bytes per key, about 11 keys per
// event: 13-14 bytes per event on disk (4 % of the store at 10M events),
// filter blocks competing with data blocks for the block cache, and hashing
// every key in every flush and compaction. Keeping only the i keys makes it
// about 1.25 bytes per event.
//
// MayContain answers true for every other key, so a Get of any key reads the
// table as if it had no filter. The policy has its own name: Pebble matches
// a table's filter to a policy by name, so tables written before (the
// built-in name, every key in the filter) are read with the built-in policy,
// and older builds, which do not know this name, read the new tables as
// tables without a filter instead of trusting a filter that lacks most keys.
type idFilterPolicy struct{}

const idFilterName = "audittrail.IDKeysBloomFilter"

var builtinBloom = bloom.FilterPolicy(idFilterBitsPerKey)

func isIDKey(key []byte) bool { return len(key) == 1+16 && key[0] == pfxID }

func (idFilterPolicy) Name() string { return idFilterName }

func (idFilterPolicy) MayContain(ftype pebble.FilterType, filter, key []byte) bool {
	if !isIDKey(key) {
		return true
	}
	return builtinBloom.MayContain(ftype, filter, key)
}

func (idFilterPolicy) NewWriter(ftype pebble.FilterType) pebble.FilterWriter {
	return idFilterWriter{builtinBloom.NewWriter(ftype)}
}

type idFilterWriter struct{ bloom pebble.FilterWriter }

func (w idFilterWriter) AddKey(key []byte) {
	if isIDKey(key) {
		w.bloom.AddKey(key)
	}
}

func (w idFilterWriter) Finish(dst []byte) []byte { return w.bloom.Finish(dst) }

// filterPolicy is the filter the store writes into new tables.
func filterPolicy() pebble.FilterPolicy {
	if earlierBuildFilters {
		return builtinBloom
	}
	return idFilterPolicy{}
}

// knownFilterPolicies are the filters the store reads: ours, and the
// built-in bloom filter of tables written by earlier builds.
func knownFilterPolicies() map[string]pebble.FilterPolicy {
	known := map[string]pebble.FilterPolicy{builtinBloom.Name(): builtinBloom}
	if !earlierBuildFilters {
		known[idFilterName] = idFilterPolicy{}
	}
	return known
}

// earlierBuildFilters makes the store write and read filters as builds
// before idFilterPolicy did (a bloom filter over every key, and no knowledge
// of idFilterName), for the compatibility tests.
var earlierBuildFilters bool
