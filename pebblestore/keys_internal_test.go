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

func TestCacheSizeFor(t *testing.T) {
	for _, c := range []struct {
		mem  uint64
		want int64
	}{
		{0, 256 << 20},
		{1 << 30, 256 << 20},
		{8 << 30, 1 << 30},
		{24 << 30, 3 << 30},
		{1 << 40, 4 << 30},
	} {
		if got := cacheSizeFor(c.mem); got != c.want {
			t.Errorf("cacheSizeFor(%d) = %d, want %d", c.mem, got, c.want)
		}
	}
	if m := availableMemory(); m == 0 {
		t.Log("available memory unknown on this machine")
	} else {
		t.Logf("available memory %d MiB, default cache %d MiB", m>>20, DefaultCacheSize()>>20)
	}
}
