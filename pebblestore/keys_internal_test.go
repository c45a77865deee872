package pebblestore

import "testing"

// TestKeyPrefixesDistinct guards against two kinds of keys sharing a prefix
// (it happened once: tree hashes were written under the API-token prefix and
// listing tokens read them as corrupt token records).
func TestKeyPrefixesDistinct(t *testing.T) {
	seen := map[byte]bool{}
	for _, p := range keyPrefixes {
		if seen[p] {
			t.Errorf("key prefix %q is used by two kinds of keys", p)
		}
		seen[p] = true
	}
}
