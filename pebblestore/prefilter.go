package pebblestore

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unsafe"
)

// matcher is a regex with a literal prefilter. Go's regexp costs tens of
// nanoseconds per byte for an unanchored search, and a regex is evaluated
// once per distinct dictionary value (hundreds of thousands for resources)
// and per inline value on scans. Most regexes people write contain literal
// text that every match must include ("engine", "DELETE$"); a value without
// any of those literals cannot match, and strings.Contains rejects it at
// memory speed.
type matcher struct {
	re   *regexp.Regexp
	lits []string // every match contains one of these; nil: no prefilter
}

func newMatcher(re *regexp.Regexp) matcher {
	m := matcher{re: re}
	if t, err := syntax.Parse(re.String(), syntax.Perl); err == nil {
		if lits, ok := requiredLiterals(t.Simplify()); ok {
			m.lits = lits
		}
	}
	return m
}

func (m *matcher) matchString(s string) bool {
	if m.lits != nil && !containsAny(s, m.lits) {
		return false
	}
	return m.re.MatchString(s)
}

func (m *matcher) match(b []byte) bool {
	// The record's bytes as a string without a copy: containsAny only reads
	// them during the call. A plain string(b) allocated here once per
	// record scanned (200 bytes each, a third of a scan's time in GC).
	if m.lits != nil && !containsAny(unsafe.String(unsafe.SliceData(b), len(b)), m.lits) {
		return false
	}
	return m.re.Match(b)
}

func containsAny(s string, lits []string) bool {
	for _, l := range lits {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

// maxLiterals bounds the alternatives of a prefilter.
const maxLiterals = 16

// requiredLiterals returns strings such that every match of t contains at
// least one of them, or false when it cannot tell. Case-insensitive parts
// give no literal.
func requiredLiterals(t *syntax.Regexp) ([]string, bool) {
	switch t.Op {
	case syntax.OpLiteral:
		if t.Flags&syntax.FoldCase != 0 || len(t.Rune) == 0 {
			return nil, false
		}
		return []string{string(t.Rune)}, true
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(t.Sub[0])
	case syntax.OpRepeat:
		if t.Min >= 1 {
			return requiredLiterals(t.Sub[0])
		}
	case syntax.OpConcat:
		// Adjacent literals form a longer one; of the requirements of
		// the parts, keep the one whose shortest literal is longest.
		var best []string
		bestLen := 0
		consider := func(lits []string) {
			short := len(lits[0])
			for _, l := range lits[1:] {
				short = min(short, len(l))
			}
			if short > bestLen {
				best, bestLen = lits, short
			}
		}
		var run strings.Builder
		flush := func() {
			if run.Len() > 0 {
				consider([]string{run.String()})
				run.Reset()
			}
		}
		for _, sub := range flatten(t.Sub, nil) {
			if sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0 {
				run.WriteString(string(sub.Rune))
				continue
			}
			flush()
			if lits, ok := requiredLiterals(sub); ok {
				consider(lits)
			}
		}
		flush()
		return best, best != nil
	case syntax.OpAlternate:
		var all []string
		for _, sub := range t.Sub {
			lits, ok := requiredLiterals(sub)
			if !ok {
				return nil, false
			}
			all = append(all, lits...)
		}
		if len(all) > maxLiterals {
			return nil, false
		}
		return all, true
	}
	return nil, false
}

// flatten expands nested concatenations (Simplify writes x{3} as one), so
// that adjacent literals join.
func flatten(subs, out []*syntax.Regexp) []*syntax.Regexp {
	for _, s := range subs {
		if s.Op == syntax.OpConcat {
			out = flatten(s.Sub, out)
		} else {
			out = append(out, s)
		}
	}
	return out
}
