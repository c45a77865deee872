package pebblestore

import (
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
)

// sampleResourceColumn returns the resources of n events of the end-to-end
// benchmark's generator packed as one column value (entries with their
// varint headers), as a regex search over the column reads them.
func sampleResourceColumn(n int) string {
	g := sample.New(1, sample.Options{})
	var c colWrites
	for i := range n {
		_, e := g.Next()
		c.add(dictID(audittrail.FieldResource), int64(i)*1e9, uint64(i+1), 0, []byte(e.Event.Resource))
	}
	var s []byte
	for i := range c.vals {
		s = append(s, c.vals[i]...)
	}
	return string(s)
}

// BenchmarkLiteralFinder is the column scan's literal search over the
// resources of 100,000 generated events: a literal of common bytes (the
// suite's rare resource regex), one with a rare byte (its regex matching
// nothing) and a one-byte literal.
func BenchmarkLiteralFinder(b *testing.B) {
	text := sampleResourceColumn(100_000)
	for _, lit := range []string{"/app-instance-1194", "/vaults/", "/workspaces/eb688285-2f57", "-1194", "/"} {
		for _, mode := range []struct {
			name string
			rate int
		}{{"indexbyte", 0}, {"pair", 1 << 40}} {
			b.Run(lit+"/"+mode.name, func(b *testing.B) {
				defer func(r int) { pairAnchorRate = r }(pairAnchorRate)
				pairAnchorRate = mode.rate
				b.SetBytes(int64(len(text)))
				found := 0
				for b.Loop() {
					f := literalFinder{lits: []string{lit}}
					for at := f.index(text, 0); at < len(text); at = f.index(text, at+1) {
						found++
					}
				}
				b.ReportMetric(float64(found)/float64(b.N), "found/op")
			})
		}
	}
}

// samplePrefixes returns the distinct prefixes (splitColValue) of the
// resources of n events of the end-to-end benchmark's generator, as the
// column's prefix dictionary holds them.
func samplePrefixes(n int) valueTable {
	g := sample.New(1, sample.Options{})
	t := newValueTable()
	for range n {
		_, e := g.Next()
		if p, _, ok := splitColValue([]byte(e.Event.Resource)); ok {
			if _, ok := t.lookup(p); !ok {
				t.add(p)
			}
		}
	}
	return t
}

// BenchmarkColumnPrefixes is the classification of the column's prefixes
// that every search of the column does once (newColPrefixes), for the
// suite's two resource regexes' literals, over the prefixes of 2M
// generated events (the distinct prefixes grow little beyond).
func BenchmarkColumnPrefixes(b *testing.B) {
	t := samplePrefixes(2_000_000)
	for _, lit := range []string{"/app-instance-1194", "/vaults/"} {
		b.Run(lit, func(b *testing.B) {
			for b.Loop() {
				newColPrefixes(t.view(), []string{lit}, nil, 0)
			}
			b.ReportMetric(float64(t.len()), "prefixes")
		})
	}
}
