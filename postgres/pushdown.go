package postgres

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
)

// Regular expressions of filters are RE2 and unanchored. PostgreSQL's regex
// dialect (ARE) differs from RE2 in syntax and meaning, so a user's regex is
// never handed to the ~ operator. Instead likePattern derives from it a LIKE
// pattern that every matching value also matches: the literals the regex
// requires, in order, with % for everything else, anchored where the regex
// is (^ or \A at the start, $ or \z at the end, outside multi-line mode).
// The database filters with the pattern, and Go applies the regex itself to
// the rows that pass. The pattern only ever widens the regex, so the result
// is exact whatever the pattern; a weak pattern costs only speed.
//
// Examples: "^users/" → "users/%", "CREATE$" → "%CREATE", "a.b" → "%a%b%",
// "(?i)abc" → "%" (case folding is left to Go).
//
// A regex anchored at both ends that matches only a few strings (an
// alternation of values, as the workspace scope of a workspace auditor
// becomes, or "^(LOGIN|create)$") is pushed down as that set instead:
// exactSet returns it, and the database tests column = ANY(set).

// likePattern returns the LIKE pattern (escape character \) for the RE2
// regular expression expr, to be matched against values escaped with
// encodeText, and false when the pattern would be "%" (nothing to push
// down) or expr does not parse.
func likePattern(expr string) (string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	toks := pattern(re)
	if !anchoredStart(re) {
		toks = append([]token{{wild: true}}, toks...)
	}
	if !anchoredEnd(re) {
		toks = append(toks, token{wild: true})
	}
	var b strings.Builder
	lits := 0
	prevWild := false
	for _, t := range toks {
		if t.wild {
			if !prevWild {
				b.WriteByte('%')
			}
			prevWild = true
			continue
		}
		if t.lit == "" {
			continue
		}
		prevWild = false
		lits++
		b.WriteString(escapeLike(encodeText(t.lit)))
	}
	if lits == 0 && prevWild {
		return "", false // "%": every value
	}
	return b.String(), true
}

// token is a literal string or a wildcard (any string, %).
type token struct {
	lit  string
	wild bool
}

var wildcard = []token{{wild: true}}

// pattern returns tokens whose LIKE pattern matches every string that re
// matches entirely.
func pattern(re *syntax.Regexp) []token {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return nil // they match the empty string
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return []token{{lit: string(re.Rune)}}
		}
		// Case-insensitive: characters without case variants stay
		// literal, the others become wildcards.
		var out []token
		for _, r := range re.Rune {
			if unicode.SimpleFold(r) == r {
				out = append(out, token{lit: string(r)})
			} else {
				out = append(out, token{wild: true})
			}
		}
		return out
	case syntax.OpCapture:
		return pattern(re.Sub[0])
	case syntax.OpConcat:
		var out []token
		for _, s := range re.Sub {
			out = append(out, pattern(s)...)
		}
		return out
	case syntax.OpPlus:
		// x+ is x x*.
		return append(pattern(re.Sub[0]), token{wild: true})
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return append(pattern(re.Sub[0]), token{wild: true})
		}
		return wildcard
	case syntax.OpAlternate:
		// The literal prefix common to every alternative (the parser
		// factors most of them out already).
		prefix := ""
		for i, s := range re.Sub {
			p := leadingLiteral(pattern(s))
			if i == 0 {
				prefix = p
			} else {
				prefix = commonPrefix(prefix, p)
			}
			if prefix == "" {
				break
			}
		}
		if prefix == "" {
			return wildcard
		}
		return []token{{lit: prefix}, {wild: true}}
	}
	// OpAnyChar, OpAnyCharNotNL, OpCharClass, OpStar, OpQuest, OpNoMatch.
	return wildcard
}

// leadingLiteral returns the literal text before the first wildcard.
func leadingLiteral(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if t.wild {
			break
		}
		b.WriteString(t.lit)
	}
	return b.String()
}

// commonPrefix returns the longest common prefix of a and b that ends on a
// character boundary.
func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	for n > 0 && n < len(a) && !isRuneStart(a[n]) {
		n--
	}
	return a[:n]
}

func isRuneStart(c byte) bool { return c&0xC0 != 0x80 }

// anchoredStart reports whether every match of re starts at the start of
// the text: re begins with \A (^ outside multi-line mode).
func anchoredStart(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchoredStart(re.Sub[0])
	case syntax.OpCapture:
		return anchoredStart(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchoredStart(s) {
				return false
			}
		}
		return true
	}
	return false
}

// anchoredEnd reports whether every match of re ends at the end of the
// text: re ends with \z ($ outside multi-line mode).
func anchoredEnd(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEndText:
		return true
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchoredEnd(re.Sub[len(re.Sub)-1])
	case syntax.OpCapture:
		return anchoredEnd(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchoredEnd(s) {
				return false
			}
		}
		return true
	}
	return false
}

// escapeLike escapes the LIKE metacharacters of a literal (escape character
// backslash).
func escapeLike(s string) string {
	if !strings.ContainsAny(s, `\%_`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '%', '_':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// maxExactSet bounds the strings of a set that exactSet returns.
const maxExactSet = 256

// exactSet returns the strings that the RE2 regular expression expr matches
// when they are few (at most maxExactSet) and expr is anchored at both ends
// (in every branch), escaped with encodeText; false otherwise.
func exactSet(expr string) ([]string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	set, ok := anchoredSet(re.Simplify())
	if !ok {
		return nil, false
	}
	slices.Sort(set)
	set = slices.Compact(set)
	for i, v := range set {
		set[i] = encodeText(v)
	}
	return set, true
}

// anchoredSet returns the strings that re matches, for a regex of the form
// \A x \z (or an alternation of such), x without anchors.
func anchoredSet(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpCapture:
		return anchoredSet(re.Sub[0])
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			set, ok := anchoredSet(s)
			if !ok || len(out)+len(set) > maxExactSet {
				return nil, false
			}
			out = append(out, set...)
		}
		return out, true
	case syntax.OpConcat:
		n := len(re.Sub)
		if n < 2 || re.Sub[0].Op != syntax.OpBeginText || re.Sub[n-1].Op != syntax.OpEndText {
			return nil, false
		}
		return concatSet(re.Sub[1 : n-1])
	}
	return nil, false
}

// literalSet returns the strings that re matches entirely, when they are
// at most maxExactSet; re must have no anchors or assertions.
func literalSet(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return []string{string(re.Rune)}, true
		}
		out := []string{""}
		for _, r := range re.Rune {
			var variants []string
			for f := r; ; {
				variants = append(variants, string(f))
				if f = unicode.SimpleFold(f); f == r {
					break
				}
			}
			if out = product(out, variants); out == nil {
				return nil, false
			}
		}
		return out, true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if int(hi-lo)+1+len(out) > maxExactSet {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpCapture:
		return literalSet(re.Sub[0])
	case syntax.OpConcat:
		return concatSet(re.Sub)
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			set, ok := literalSet(s)
			if !ok || len(out)+len(set) > maxExactSet {
				return nil, false
			}
			out = append(out, set...)
		}
		return out, true
	case syntax.OpQuest:
		set, ok := literalSet(re.Sub[0])
		if !ok || len(set)+1 > maxExactSet {
			return nil, false
		}
		return append(set, ""), true
	}
	// Repetitions, any character, anchors and assertions.
	return nil, false
}

func concatSet(subs []*syntax.Regexp) ([]string, bool) {
	out := []string{""}
	for _, s := range subs {
		set, ok := literalSet(s)
		if !ok {
			return nil, false
		}
		if out = product(out, set); out == nil {
			return nil, false
		}
	}
	return out, true
}

// product returns every a+b, or nil when they would be more than
// maxExactSet.
func product(as, bs []string) []string {
	if len(as)*len(bs) > maxExactSet {
		return nil
	}
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a+b)
		}
	}
	return out
}
