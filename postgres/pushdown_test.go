package postgres_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/audittrail/audittrail/postgres"
)

func TestLikePattern(t *testing.T) {
	for _, c := range []struct {
		regex, want string // want "-": nothing pushed down
	}{
		{"a", "%a%"},
		{"^h2oai", "h2oai%"},
		{"server$", "%server"},
		{`\Aabc\z`, "abc"},
		{"^$", ""},
		{"^users/a$", "users/a"},
		{"^users/a.b$", "users/a%b"},
		{"1.1.1.1$", "%1%1%1%1"},
		{`1\.1`, "%1.1%"},
		{`^1\.1\.1\.1`, "1.1.1.1%"},
		{"^(rsrc1|rsrc2)$", "rsrc%"},
		{"abc|abd", "%ab%"},
		{"a+b", "%a%b%"},
		{"(ab){2,}c", "%abab%c%"},
		{"x(yz)?w", "%x%w%"},
		{`x\|y`, "%x|y%"},
		{"^create", "create%"},
		{"apps/", "%apps/%"},
		{"^//", "//%"},
		{".*CREATE$", "%CREATE"},
		{`^//engine-manager/workspaces/[^/]+/daiEngines/`, "//engine-manager/workspaces/%/daiEngines/%"},
		{"^workspaces/w[12]$", "workspaces/w%"},
		{`a%b_c\\`, `%a\%b\_c\\%`},
		{`\x00$`, "%\x01\x02"},
		{"\x01", "%\x01\x01%"},
		{"Ü", "%Ü%"},
		{"^Ünï|^Üb", "Ü%"},
		{"^Üx|^Ýy", "-"}, // no common character (a common byte)
		{"^(ab|ac)$", "a%"},
		{"^ab$|^ac$", "a%"},
		{"(?i)^users/a$", "%/%"},
		{"(?m)^abc$", "%abc%"},
		{`\babc\b`, "%abc%"},
		{"(^a)b", "ab%"},
		{"a(b$)", "%ab"},
		// Nothing to push down.
		{"(CREATE|DELETE)$", "-"},
		{"^.*$", "-"},
		{"x*", "-"},
		{`\d`, "-"},
		{"[A-Z]", "-"},
		{"(?i)alice", "-"},
		{"(?s).", "-"},
		{"x|y", "-"},
		{"|", "-"},
		{"^a|b$", "-"},
		{"^.{0,3}$", "-"},
		{"(", "-"}, // invalid
	} {
		got, ok := postgres.LikePattern(c.regex)
		if !ok {
			got = "-"
		}
		if got != c.want {
			t.Errorf("LikePattern(%q) = %q, want %q", c.regex, got, c.want)
		}
	}
}

func TestExactSet(t *testing.T) {
	for _, c := range []struct {
		regex string
		want  []string // nil: no set
	}{
		{"^(LOGIN|create)$", []string{"LOGIN", "create"}},
		{"^(rsrc1|rsrc2)$", []string{"rsrc1", "rsrc2"}},
		{"^workspaces/w[12]$", []string{"workspaces/w1", "workspaces/w2"}},
		{`^(?:workspaces/a|workspaces/b\.c)$`, []string{"workspaces/a", "workspaces/b.c"}},
		{"^a$|^b$", []string{"a", "b"}},
		{"^$", []string{""}},
		{"^a?$", []string{"", "a"}},
		{"(?i)^ab$", []string{"AB", "Ab", "aB", "ab"}},
		{"^k$", []string{"k"}},
		{"(?i)^k$", []string{"K", "k", "\u212a"}}, // the Kelvin sign folds to k
		{"^\\x00$", []string{"\x01\x02"}},         // stored escaped
		{"^[0-9]$", []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		// No set.
		{"a", nil},
		{"^a", nil},
		{"a$", nil},
		{"^a|b$", nil},
		{"^a.$", nil},
		{"^a+$", nil},
		{"^a*$", nil},
		{"(?m)^a$", nil},
		{"^[0-9]{3}$", nil}, // 1000 strings
		{"^[^a]$", nil},
		{"(", nil},
	} {
		got, ok := postgres.ExactSet(c.regex)
		if c.want == nil {
			if ok {
				t.Errorf("ExactSet(%q) = %q, want none", c.regex, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("ExactSet(%q) = %q, %v; want %q", c.regex, got, ok, c.want)
		}
	}
}

// FuzzRegexPushdown checks the safety of the pushdown: every value that
// matches a regex also matches the LIKE pattern derived from it (evaluated
// here as PostgreSQL does, on the stored form of the value), and is in the
// set of values derived from it.
func FuzzRegexPushdown(f *testing.F) {
	seeds := []struct{ regex, value string }{
		{"a", "xay"}, {"^h2oai", "h2oai-x"}, {"server$", "a-server"}, {"^users/a.b$", "users/a\x00b"},
		{"(CREATE|DELETE)$", "x/DELETE"}, {`\x00$`, "prod\x00"}, {"^(rsrc1|rsrc2)$", "rsrc2"}, {"(?i)ALICE", "users/alice"},
		{"Ü", "users/Ünïcode"}, {"^Ünï|^Üb", "Übx"}, {`a%b_c\\`, `xa%b_c\`}, {"\x01\x02", "\x01\x02"}, {"\x02", "\x00"},
		{"(?m)^b$", "a\nb\nc"}, {"(ab)+c", "ababc"}, {"a{3}", "aaa"}, {"^$", ""}, {"x|y", "y"},
		{"^(LOGIN|create)$", "create"}, {"(?i)^k$", "\u212a"}, {"^a?[bc]$", "c"}, {"^\\x00|^\\x01$", "\x01"},
	}
	for _, s := range seeds {
		f.Add(s.regex, s.value)
	}
	f.Fuzz(func(t *testing.T, expr, value string) {
		if !utf8.ValidString(value) || len(expr) > 256 {
			return // stored values are valid UTF-8; keep the regexes small
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		pattern, hasPattern := postgres.LikePattern(expr)
		set, hasSet := postgres.ExactSet(expr)
		for _, v := range []string{value, value + value, "x" + value + "\x00"} {
			if !re.MatchString(v) {
				continue
			}
			if hasPattern && !likeMatch(pattern, postgres.EncodeText(v)) {
				t.Fatalf("%q matches regex %q but not its LIKE pattern %q", v, expr, pattern)
			}
			if hasSet && !slices.Contains(set, postgres.EncodeText(v)) {
				t.Fatalf("%q matches regex %q but is not in its set %q", v, expr, set)
			}
		}
		// The members of a set match the regex (the set is exact).
		for _, m := range set {
			if !re.MatchString(decode(m)) {
				t.Fatalf("%q is in the set of regex %q but does not match it", m, expr)
			}
		}
	})
}

// likeMatch evaluates s LIKE pattern (escape character \) as PostgreSQL
// does in a UTF-8 database: % any string, _ one character, \x the
// character x.
func likeMatch(pattern, s string) bool {
	// The pattern as a list of items: a character, _ (any), or % (many).
	type item struct {
		r    rune
		kind byte // 'c' character, '_' one, '%' many
	}
	var items []item
	p := []rune(pattern)
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '%':
			items = append(items, item{kind: '%'})
		case p[i] == '_':
			items = append(items, item{kind: '_'})
		case p[i] == '\\' && i+1 < len(p):
			i++
			items = append(items, item{r: p[i], kind: 'c'})
		default:
			items = append(items, item{r: p[i], kind: 'c'})
		}
	}
	v := []rune(s)
	// cur[j]: items[:i] match v[:j].
	cur := make([]bool, len(v)+1)
	next := make([]bool, len(v)+1)
	cur[0] = true
	for _, it := range items {
		clear(next)
		for j := 0; j <= len(v); j++ {
			switch it.kind {
			case '%':
				next[j] = cur[j] || (j > 0 && next[j-1])
			case '_':
				next[j] = j > 0 && cur[j-1]
			default:
				next[j] = j > 0 && cur[j-1] && v[j-1] == it.r
			}
		}
		cur, next = next, cur
	}
	return cur[len(v)]
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"%", "", true}, {"", "", true}, {"", "a", false}, {"a%", "abc", true}, {"%c", "abc", true}, {"%b%", "abc", true},
		{"a_c", "abc", true}, {"a_c", "aÜc", true}, {`a\%`, "a%", true}, {`a\%`, "ab", false}, {"%x%y", "axbyy", true},
	} {
		if got := likeMatch(c.pattern, c.s); got != c.want {
			t.Errorf("%q LIKE %q = %v, want %v", c.s, c.pattern, got, c.want)
		}
	}
}

// decode reverses postgres.EncodeText (for the tests).
func decode(s string) string {
	return strings.NewReplacer("\x01\x02", "\x00", "\x01\x01", "\x01").Replace(s)
}
