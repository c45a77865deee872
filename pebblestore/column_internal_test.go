package pebblestore

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/audittrail/audittrail"
)

// TestLiteralFinder compares the anchored search with a plain one on random
// texts over a small alphabet (so that partial matches abound), from every
// offset, searching by one byte (IndexByte) or by two (pairIndex).
func TestLiteralFinder(t *testing.T) {
	defer func(r int) { pairAnchorRate = r }(pairAnchorRate)
	r := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "ab/-c"[r.IntN(5)]
		}
		return string(b)
	}
	for n := range 3000 {
		pairAnchorRate = []int{0, 1 << 40}[n%2] // every literal searched one way, then the other
		text := word(r.IntN([]int{60, 200}[r.IntN(2)]))
		lits := make([]string, 1+r.IntN(3))
		for i := range lits {
			lits[i] = word(1 + r.IntN([]int{4, 12}[r.IntN(2)]))
		}
		f := literalFinder{lits: lits}
		if r.IntN(2) == 0 {
			f.sample(word(40)) // anchors from another text: any choice must be correct
		}
		for from := 0; from <= len(text); from++ {
			want := len(text)
			for _, l := range lits {
				if i := strings.Index(text[from:], l); i >= 0 {
					want = min(want, from+i)
				}
			}
			if got := f.index(text, from); got != want {
				t.Fatalf("lits %q in %q from %d: got %d, want %d (anchors %v, pairs %v)", lits, text, from, got, want, f.anchors, f.pairs)
			}
		}
	}
}

// TestPairIndex compares pairIndex with strings.Index for every pair of
// offsets of the literal, every start and limit, on texts long enough for
// its four-word steps.
func TestPairIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	word := func(n int, alphabet string) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 300 {
		alphabet := []string{"ab", "abc/-", "abcdefghijklmnop"}[r.IntN(3)]
		text := word(r.IntN(150), alphabet)
		l := word(2+r.IntN(10), alphabet)
		if r.IntN(2) == 0 && len(text) > len(l) { // make sure it occurs
			at := r.IntN(len(text) - len(l) + 1)
			text = text[:at] + l + text[at+len(l):]
		}
		for a := 0; a < len(l); a++ {
			for b := a + 1; b < len(l); b++ {
				for from := 0; from <= len(text); from += 1 + r.IntN(7) {
					limit := from + r.IntN(len(text)-from+2)
					want := -1
					if i := strings.Index(text[from:], l); i >= 0 && from+i < limit {
						want = from + i
					}
					if got := pairIndex(text, from, limit, l, a, b); got != want {
						t.Fatalf("%q in %q from %d before %d by offsets %d, %d: got %d, want %d", l, text, from, limit, a, b, got, want)
					}
				}
			}
		}
	}
}

// columnValue packs entries in one operand as the writer does, and the
// same entries again split in operands of one or two entries, as merges
// leave them. Values are written whole (prefix ref 0).
func columnValue(ns int64, vals ...string) []byte {
	return prefixedColumnValue(ns, nil, vals...)
}

// prefixedColumnValue is columnValue with the values whose prefix (before
// their last '/', splitColValue) is one of prefixes written as the writer
// does when its dictionary holds it: the prefix's ref and the rest.
func prefixedColumnValue(ns int64, prefixes []string, vals ...string) []byte {
	add := func(c *colWrites, j int) {
		v, ref := []byte(vals[j]), uint32(0)
		if p, rest, ok := splitColValue(v); ok {
			if i := slices.Index(prefixes, string(p)); i >= 0 {
				v, ref = rest, uint32(i+1)
			}
		}
		c.add(dictID(audittrail.FieldResource), ns+int64(j), uint64(j+1), ref, v)
	}
	var c colWrites
	for i := range vals {
		add(&c, i)
	}
	b := operand(&c, 0)
	for i := 0; i < len(vals); i += 2 {
		var c colWrites
		for j := i; j < min(i+2, len(vals)); j++ {
			add(&c, j)
		}
		b = append(b, operand(&c, 0)...)
	}
	return b
}

// testPrefixes are the prefix dictionary of the tests' column values.
var testPrefixes = []string{"//svc/workspaces/w1/apps", "//svc/apps/app", "//x/y/z/w/", "//svc/a-b/"}

// newTestScanner returns a scanner of the whole time range for regex re,
// with testPrefixes as the prefix dictionary.
func newTestScanner(re *regexp.Regexp) *colScanner {
	c := &valueCond{re: newMatcher(re)}
	t := newValueTable()
	for _, p := range testPrefixes {
		t.add([]byte(p))
	}
	return &colScanner{m: &c.re, find: literalFinder{lits: c.re.lits}, pfx: newColPrefixes(t.view(), c.re.lits, nil, 0),
		hi: colEntry{ns: math.MaxInt64, seq: math.MaxUint64}, lo: colEntry{ns: math.MinInt64}}
}

// operand is the merge operand colWrites makes for its key i.
func operand(c *colWrites, i int) []byte {
	op := binary.AppendUvarint(nil, uint64(c.counts[i]))
	op = binary.AppendUvarint(op, uint64(len(c.vals[i])))
	return append(op, c.vals[i]...)
}

// FuzzColumnValue: any bytes in a column value are either read or reported
// corrupt, never a panic, and a well-formed value yields exactly the entries
// whose value matches (whether the literal prefilter skips operands or not).
func FuzzColumnValue(f *testing.F) {
	f.Add(columnValue(0, "//svc/apps/app-1", "//svc/apps/app-10", "x"), "app-1$")
	pv := prefixedColumnValue(0, testPrefixes, "//svc/apps/app/app-1", "//svc/workspaces/w1/apps/app-10", "//x/y/z/w//v", "x/y", "//svc/a-b//c")
	for _, expr := range []string{"app-1$", "apps/app-1", "w1/apps", "^//svc/apps/", "p/a", "w//v$", "-b//c", "/", "^x"} {
		f.Add(pv, expr)
	}
	f.Add([]byte{0x80}, "a")
	f.Add(columnValue(5, "", "aaa"), "^$")
	f.Fuzz(func(t *testing.T, data []byte, expr string) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		// Every encoding (absolute, format 5; differences, format 6;
		// with prefix refs, format 7) frames the values alike.
		for _, format := range []colFormat{colAbsolute, colDelta, colPrefixed} {
			checkColumnValue(t, data, expr, re, format)
		}
	})
}

// checkColumnValue scans data as one key's value of a column in the
// encoding format and compares the matches with the regex on every entry.
func checkColumnValue(t *testing.T, data []byte, expr string, re *regexp.Regexp, format colFormat) {
	cs := newTestScanner(re)
	if err := cs.scanValue(0, data, format); err != nil {
		return
	}
	lits := cs.m.lits
	// It was read: compare with the regex on every entry. An operand
	// the prefilter skipped was not parsed; it must hold no literal.
	want := 0
	for rest := data; len(rest) > 0; {
		_, n1 := uvarint(rest)
		blen, n2 := uvarint(rest[n1:])
		body := rest[n1+n2 : n1+n2+int(blen)]
		rest = rest[n1+n2+int(blen):]
		matches, ok := entryMatches(body, re, format)
		if !ok {
			for _, l := range lits {
				if strings.Contains(string(body), l) {
					t.Fatalf("a corrupt operand with literal %q was accepted", l)
				}
			}
			if lits == nil || cs.pfx.any && format == colPrefixed {
				t.Fatal("a corrupt operand was accepted without a prefilter")
			}
		}
		want += matches
	}
	if len(cs.matches) != want {
		t.Fatalf("%d matches of %q, want %d (data %q, format %d)", len(cs.matches), expr, want, data, format)
	}
}

// entryMatches counts the entries of an operand's body in the encoding
// format that match re (with testPrefixes as the prefix dictionary); false
// when the body is corrupt.
func entryMatches(body []byte, re *regexp.Regexp, format colFormat) (int, bool) {
	n := 0
	for len(body) > 0 {
		var h [3]uint64 // time, seq, prefix ref
		for i := range h {
			if i == 2 && format != colPrefixed {
				break
			}
			var w int
			if h[i], w = uvarint(body); w <= 0 {
				return 0, false
			}
			body = body[w:]
		}
		l, w := uvarint(body)
		if w <= 0 || l > uint64(len(body)-w) {
			return 0, false
		}
		v := string(body[w : w+int(l)])
		if ref := h[2]; ref > 0 {
			if ref > uint64(len(testPrefixes)) || !strings.HasPrefix(v, "/") {
				return 0, false
			}
			v = testPrefixes[ref-1] + v
		}
		if re.MatchString(v) {
			n++
		}
		body = body[w+int(l):]
	}
	return n, true
}

// TestLiteralSample: the anchors follow the byte counts of the first
// literalSampleBytes of column text read, over several values, not those of
// the first value alone (a few hundred bytes at the start of a bucket).
func TestLiteralSample(t *testing.T) {
	re := regexp.MustCompile("/x-yz")
	sc := newTestScanner(re)
	// A first value where 'y' is rare and 'x' common, then values where
	// 'x' is rare: the anchor ends on 'x'.
	if err := sc.scanValue(0, columnValue(0, strings.Repeat("/-zx", 100)+"y"), colPrefixed); err != nil {
		t.Fatal(err)
	}
	if got := sc.find.lits[0][sc.find.anchors[0]]; got != 'y' {
		t.Fatalf("anchor %q after the first value, want 'y'", got)
	}
	for range 20 {
		if err := sc.scanValue(0, columnValue(0, strings.Repeat("/-zy", 1000)+"x", "/x-yz"), colPrefixed); err != nil {
			t.Fatal(err)
		}
	}
	if got := sc.find.lits[0][sc.find.anchors[0]]; got != 'x' {
		t.Fatalf("anchor %q after %d bytes, want 'x'", got, sc.find.sampled)
	}
	if len(sc.matches) != 40 { // each value holds the entry twice (columnValue)
		t.Fatalf("%d matches, want 40", len(sc.matches))
	}
	if sc.find.sampled != literalSampleBytes {
		t.Fatalf("sampled %d bytes, want %d", sc.find.sampled, literalSampleBytes)
	}
	// Beyond the sample, the counts stay.
	before := sc.find.freq
	if err := sc.scanValue(0, columnValue(0, "/x-yz"), colPrefixed); err != nil || sc.find.freq != before {
		t.Fatalf("counts changed after the sample (err %v)", err)
	}
}

// FuzzPairIndex: pairIndex finds what strings.Index finds, for any text,
// literal, pair of offsets and bounds.
func FuzzPairIndex(f *testing.F) {
	f.Add("//svc/workspaces/w/apps/app-instance-1194", "/app-instance-1194", 5, 17, 0, 100)
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "ab", 0, 1, 3, 41)
	f.Fuzz(func(t *testing.T, text, l string, a, b, from, limit int) {
		if len(l) < 2 || len(text) > 1<<12 {
			return
		}
		a, b = min(max(a, 0), len(l)-1), min(max(b, 0), len(l)-1)
		if a == b {
			return
		}
		a, b = min(a, b), max(a, b)
		from = min(max(from, 0), len(text))
		limit = min(max(limit, from), len(text)+1)
		want := -1
		if i := strings.Index(text[from:], l); i >= 0 && from+i < limit {
			want = from + i
		}
		if got := pairIndex(text, from, limit, l, a, b); got != want {
			t.Fatalf("%q in %q from %d before %d by offsets %d, %d: got %d, want %d", l, text, from, limit, a, b, got, want)
		}
	})
}

// FuzzNotePrefixRefs: retention's read of the column's prefix refs
// (notePrefixRefs) never panics, accepts what the search's scanner accepts
// (one value of each key, prefixed format), and notes exactly the prefixes
// of the values written with one, for values the writer's encoding made
// from the fuzzed strings.
func FuzzNotePrefixRefs(f *testing.F) {
	f.Add(prefixedColumnValue(0, testPrefixes, "//svc/apps/app/app-1", "//svc/workspaces/w1/apps/app-10", "x/y"), "", "")
	f.Add([]byte{0x80}, "//svc/apps/app/a", "//svc/a-b//c")
	f.Add(columnValue(5, "", "aaa"), "//x/y/z/w//v", "b")
	f.Fuzz(func(t *testing.T, data []byte, v1, v2 string) {
		used := make([]uint64, 1)
		err := notePrefixRefs(data, used)
		if cs := newTestScanner(regexp.MustCompile("")); cs.scanValue(0, data, colPrefixed) == nil && err != nil {
			t.Fatalf("the scanner reads %q, notePrefixRefs refuses it: %v", data, err)
		}
		vals := []string{v1, v2, v1}
		data = prefixedColumnValue(7, testPrefixes, vals...)
		used[0] = 0
		if err := notePrefixRefs(data, used); err != nil {
			t.Fatalf("a value the writer's encoding made (%q): %v", vals, err)
		}
		var want uint64
		for _, v := range vals {
			if p, _, ok := splitColValue([]byte(v)); ok {
				if i := slices.Index(testPrefixes, string(p)); i >= 0 {
					want |= 1 << i
				}
			}
		}
		if used[0] != want {
			t.Fatalf("values %q: prefixes noted %b, want %b", vals, used[0], want)
		}
	})
}
