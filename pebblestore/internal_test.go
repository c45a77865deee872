package pebblestore

// Unit tests of self-contained algorithms whose mistakes the end-to-end
// tests could miss: the regex prefilter and the batch sort.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// TestPrefilter: with the prefilter, a matcher agrees with the regex on
// every value.
func TestPrefilter(t *testing.T) {
	exprs := []string{
		"engine", "DELETE$", "^users/a", "x{3}y", "^zz1|x{3}y", "(CREATE|DELETE)S?$", "a+b", "(ab)+c", "(?i)engine",
		"ab?c", "a*", "", "^$", ".", "foo|", "(foo|bar)(baz|qux)", "[ab]cd", `\d+-server`, "x{0,2}yz", "(?:abc){2}",
		"ü+", "a.b", "(?s)a.b", "^(rsrc1|rsrc2)$", "rsrc1", "(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q)x",
	}
	values := []string{"", "engine", "ENGINE", "my-engine-1", "xxxy", "zz1", "CREATE", "DELETES", "ab", "abc", "ac", "abababc",
		"foo", "barqux", "bcd", "12-server", "yz", "xyz", "abcabc", "üü", "a\nb", "rsrc10", "rsrc1", "qx", "users/abc"}
	for _, e := range exprs {
		re := regexp.MustCompile(e)
		m := newMatcher(re)
		for _, v := range values {
			if got, want := m.matchString(v), re.MatchString(v); got != want {
				t.Errorf("%q on %q: %v, want %v (literals %q)", e, v, got, want, m.lits)
			}
			if got, want := m.match([]byte(v)), re.MatchString(v); got != want {
				t.Errorf("%q on []byte %q: %v, want %v", e, v, got, want)
			}
		}
	}
	if m := newMatcher(regexp.MustCompile("^zz1|x{3}y")); !slices.Equal(m.lits, []string{"zz1", "xxxy"}) {
		t.Errorf("literals of ^zz1|x{3}y: %q", m.lits)
	}
}

// TestKVBufSort: the radix sort orders keys bytewise, ties on 16 bytes
// included.
func TestKVBufSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var b kvBuf
	for i := range 20000 {
		var k []byte
		switch i % 4 {
		case 0:
			k = fmt.Appendf(nil, "x%0*d", i%30, r.IntN(15000))
		case 1:
			k = postKey(nil, dictID(r.IntN(3)), uint32(r.IntN(100)), int64(r.IntN(1e6)), uint64(r.IntN(10)))
		case 2:
			k = []byte{byte(r.IntN(3))}
		default:
			k = eventKey(nil, int64(r.IntN(1000)), uint64(i))
		}
		b.set(k, []byte{byte(i)})
	}
	b.sort()
	for i := 1; i < len(b.ents); i++ {
		if bytes.Compare(b.key(b.ents[i-1]), b.key(b.ents[i])) > 0 {
			t.Fatalf("not sorted at %d: %q > %q", i, b.key(b.ents[i-1]), b.key(b.ents[i]))
		}
	}
}

func TestParseCanonicalUUID(t *testing.T) {
	for _, s := range []string{
		"00000000-0000-4000-8000-000000000001", "a2b3b8a6-05c6-47d1-8ae1-774113404975", "A2B3B8A6-05C6-47D1-8AE1-774113404975",
		"a2b3b8a605c647d18ae1774113404975", "{a2b3b8a6-05c6-47d1-8ae1-774113404975}", "a2b3b8a6-05c6-47d1-8ae1-77411340497g",
		"a2b3b8a6-05c6-47d1-8ae1_774113404975", "", "urn:uuid:a2b3b8a6-05c6-47d1-8ae1-774113404975",
	} {
		want, err := uuid.Parse(s)
		wantOK := err == nil && want.String() == s
		got, ok := parseCanonicalUUID(s)
		if ok != wantOK || (ok && got != want) {
			t.Errorf("%q: %v %v, want %v %v", s, got, ok, want, wantOK)
		}
	}
}

// TestMatchDoesNotAllocate: the prefilter of a record's inline value
// allocates nothing (it once allocated a string per record scanned).
func TestMatchDoesNotAllocate(t *testing.T) {
	m := newMatcher(regexp.MustCompile("/document-6326$"))
	v := []byte("//drive/workspaces/eb688285-2f57-4281-a194-00ced36b9101/documents/document-1234")
	if n := testing.AllocsPerRun(100, func() { m.match(v) }); n != 0 {
		t.Errorf("match allocates %v times per call", n)
	}
}
