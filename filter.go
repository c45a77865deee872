package audittrail

import (
	"crypto/sha256"
	"encoding/binary"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"
)

// DefaultStartTime is the start of the search range when a filter gives none.
var DefaultStartTime = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// Field names a string field of an event that filters can test and stores
// can index. The order is part of the storage format of the embedded store:
// append, never reorder.
type Field uint8

const (
	FieldEventSource Field = iota
	FieldResource
	FieldPrincipal
	FieldSourceIP
	FieldWorkspace
	FieldAction
	NumFields
)

var fieldNames = [NumFields]string{"event_source", "resource", "principal", "source_ip_address", "workspace", "action"}

// String returns the field's name in the API ("event_source", ...).
func (f Field) String() string { return fieldNames[f] }

// Value returns the value of field f of e.
func (e *Event) Value(f Field) string {
	switch f {
	case FieldEventSource:
		return e.EventSource
	case FieldResource:
		return e.Resource
	case FieldPrincipal:
		return e.Principal
	case FieldSourceIP:
		return e.SourceIP
	case FieldWorkspace:
		return e.Workspace
	case FieldAction:
		return e.Action
	}
	panic("audittrail: unknown field")
}

// SetValue sets field f of e to v.
func (e *Event) SetValue(f Field, v string) {
	switch f {
	case FieldEventSource:
		e.EventSource = v
	case FieldResource:
		e.Resource = v
	case FieldPrincipal:
		e.Principal = v
	case FieldSourceIP:
		e.SourceIP = v
	case FieldWorkspace:
		e.Workspace = v
	case FieldAction:
		e.Action = v
	default:
		panic("audittrail: unknown field")
	}
}

// Filter is a search filter as a caller sends it. Empty strings and empty
// maps do not filter; all given conditions are AND-ed.
type Filter struct {
	StartTime *time.Time // inclusive; nil: DefaultStartTime
	EndTime   *time.Time // exclusive; nil: now (fixed at the first page)

	Exact [NumFields]string // equality per field
	Regex [NumFields]string // RE2, unanchored, per field

	ReadOnly        *bool
	StatusCodeRegex string // on the decimal status code, "" for events without status

	MetadataExact map[string]string // every key present with this value
	MetadataRegex map[string]string // every key present with a value matching the regex

	IncludeTypes []EventType // when non-empty, the type must be one of these
	ExcludeTypes []EventType // the type must be none of these
}

// Limits on filters.
const (
	MaxRegexLen       = 4096 // bytes of one regular expression
	MaxFilterMapItems = 64   // entries of metadata_exact and metadata_regex, each
	// MaxRegexProgram bounds the instructions a regular expression compiles
	// to. RE2 runs in time linear in the text, but the factor is the size of
	// the program: a counted repetition is that many copies of its operand,
	// so 1,204 bytes of `(?:.?){1000}` repeated compile to 200,003
	// instructions and take a third of a second per 86-byte value (a search
	// evaluates a regex once per distinct value of its field, hundreds of
	// thousands of them). Regular expressions people write stay far below:
	// a 4,096-byte alternation of 260 principals compiles to about 1,900.
	// RE2 itself refuses programs past a memory budget (max_mem, 8 MiB by
	// default, about 300,000 instructions); Go's regexp only past about
	// 3,300,000.
	MaxRegexProgram = 10000
)

// Query is a validated, compiled filter with its time range resolved. It is
// what stores execute. Build one with Filter.Compile.
type Query struct {
	Start, End time.Time // Start inclusive, End exclusive

	Exact    [NumFields]*string
	Regex    [NumFields]*regexp.Regexp
	ReadOnly *bool
	Status   *regexp.Regexp

	MetadataExact map[string]string
	MetadataRegex map[string]*regexp.Regexp

	// Types is the set of admitted event types as a bit mask (bit t set:
	// type t admitted). All bits set when the filter says nothing of types.
	Types uint32
}

const allTypes = 1<<uint(TypeUnspecified) | 1<<uint(TypeAPI) | 1<<uint(TypeSystem)

// Compile validates f and resolves its defaults. end is used when f has no
// end time (callers pass now, or the end fixed by a page token).
func (f *Filter) Compile(end time.Time) (*Query, error) {
	q := &Query{Start: DefaultStartTime, End: end.UTC(), Types: allTypes}
	if f.StartTime != nil {
		q.Start = f.StartTime.UTC()
	}
	if f.EndTime != nil {
		q.End = f.EndTime.UTC()
	}
	for i := range NumFields {
		if v := f.Exact[i]; v != "" {
			q.Exact[i] = &v
		}
		if v := f.Regex[i]; v != "" {
			re, err := compileRegex(Field(i).String()+"_regex", v)
			if err != nil {
				return nil, err
			}
			q.Regex[i] = re
		}
	}
	q.ReadOnly = f.ReadOnly
	if f.StatusCodeRegex != "" {
		re, err := compileRegex("status_code_regex", f.StatusCodeRegex)
		if err != nil {
			return nil, err
		}
		q.Status = re
	}
	if err := f.checkMapSizes(); err != nil {
		return nil, err
	}
	if len(f.MetadataExact) > 0 {
		q.MetadataExact = make(map[string]string, len(f.MetadataExact))
		for k, v := range f.MetadataExact {
			q.MetadataExact[k] = v
		}
	}
	if len(f.MetadataRegex) > 0 {
		q.MetadataRegex = make(map[string]*regexp.Regexp, len(f.MetadataRegex))
		for k, v := range f.MetadataRegex {
			re, err := compileRegex("metadata_regex["+clip(k)+"]", v)
			if err != nil {
				return nil, err
			}
			q.MetadataRegex[k] = re
		}
	}
	if len(f.IncludeTypes) > 0 {
		q.Types = 0
		for _, t := range f.IncludeTypes {
			if !t.Valid() {
				return nil, Errorf(EInvalid, "filter.include_types has unknown event type %d", t)
			}
			q.Types |= 1 << uint(t)
		}
	}
	for _, t := range f.ExcludeTypes {
		if !t.Valid() {
			return nil, Errorf(EInvalid, "filter.exclude_types has unknown event type %d", t)
		}
		q.Types &^= 1 << uint(t)
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"start_event_time", q.Start}, {"end_event_time", q.End}} {
		if t.t.Before(MinEventTime) || t.t.After(MaxEventTime) {
			return nil, Errorf(EInvalid, "filter.%s %s is out of range: it must be from %s to %s",
				t.name, t.t.Format(time.RFC3339Nano), MinEventTime.Format(time.RFC3339), MaxEventTime.Format(time.RFC3339))
		}
	}
	if !q.Start.Before(q.End) {
		return nil, Errorf(EInvalid, "filter.start_event_time (%s) must be before filter.end_event_time (%s)",
			q.Start.Format(time.RFC3339Nano), q.End.Format(time.RFC3339Nano))
	}
	return q, nil
}

func compileRegex(field, expr string) (*regexp.Regexp, error) {
	if len(expr) > MaxRegexLen {
		return nil, Errorf(EInvalid, "filter.%s is too long: %d bytes, the limit is %d", field, len(expr), MaxRegexLen)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		// The regexp package's message names the problem and the offending
		// part ("missing closing ): `(a`").
		return nil, Errorf(EInvalid, "filter.%s is not a valid RE2 regular expression: %s", field, stripRegexpPrefix(err.Error()))
	}
	// Only a counted repetition ({n}, {n,m}) makes a program much larger
	// than its text: without one, each byte of the expression gives at
	// most about one instruction, so 4,096 bytes stay far below the
	// limit, and the common search does not pay a second parse (3-7 µs).
	if !strings.ContainsRune(expr, '{') {
		return re, nil
	}
	if n := regexProgramSize(expr); n > MaxRegexProgram {
		return nil, Errorf(EInvalid, "filter.%s is too complex: it compiles to %d instructions, the limit is %d (a counted repetition such as x{1000} is that many copies of x)", field, n, MaxRegexProgram)
	}
	return re, nil
}

// regexProgramSize returns the instructions expr compiles to, as regexp
// compiles it (regexp does not tell).
func regexProgramSize(expr string) int {
	t, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0 // regexp.Compile took it: not expected
	}
	p, err := syntax.Compile(t.Simplify())
	if err != nil {
		return 0
	}
	return len(p.Inst)
}

func stripRegexpPrefix(s string) string {
	const p = "error parsing regexp: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// Match reports whether e satisfies every condition of q, including the time
// range. It is the reference semantics; stores may evaluate conditions in
// other ways (indexes, dictionaries) but must agree with it.
func (q *Query) Match(e *Event) bool {
	if e.EventTime.Before(q.Start) || !e.EventTime.Before(q.End) {
		return false
	}
	return q.MatchFields(e)
}

// MatchFields is Match without the time range.
func (q *Query) MatchFields(e *Event) bool {
	if q.Types&(1<<uint(e.Type)) == 0 {
		return false
	}
	if q.ReadOnly != nil && *q.ReadOnly != e.ReadOnly {
		return false
	}
	for i := range NumFields {
		if q.Exact[i] == nil && q.Regex[i] == nil {
			continue
		}
		v := e.Value(Field(i))
		if q.Exact[i] != nil && *q.Exact[i] != v {
			return false
		}
		if q.Regex[i] != nil && !q.Regex[i].MatchString(v) {
			return false
		}
	}
	if q.Status != nil && !q.Status.MatchString(e.StatusCodeString()) {
		return false
	}
	for k, want := range q.MetadataExact {
		if v, ok := e.Metadata[k]; !ok || v != want {
			return false
		}
	}
	for k, re := range q.MetadataRegex {
		if v, ok := e.Metadata[k]; !ok || !re.MatchString(v) {
			return false
		}
	}
	return true
}

// checkMapSizes refuses metadata_exact and metadata_regex over
// MaxFilterMapItems entries. Compile checks it, and so does
// Service.SearchEvents before anything costs in proportion to the maps: a
// request of 4 MB can hold 266,000 entries, whose sorting for the
// fingerprint took a fifth of the server's CPU for such a refused search.
func (f *Filter) checkMapSizes() error {
	if len(f.MetadataExact) > MaxFilterMapItems || len(f.MetadataRegex) > MaxFilterMapItems {
		return Errorf(EInvalid, "filter.metadata_exact and filter.metadata_regex may have at most %d entries each", MaxFilterMapItems)
	}
	return nil
}

// Fingerprint is a digest of the filter exactly as the caller sent it (not of
// the resolved defaults), used to bind page tokens to the filter they were
// issued for.
func (f *Filter) Fingerprint() [16]byte {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	tm := func(t *time.Time) {
		if t == nil {
			str("")
			return
		}
		str(t.UTC().Format(time.RFC3339Nano))
	}
	mp := func(m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		str(itoa(int64(len(keys))))
		for _, k := range keys {
			str(k)
			str(m[k])
		}
	}
	types := func(ts []EventType) {
		s := slices.Clone(ts)
		slices.Sort(s)
		s = slices.Compact(s)
		str(itoa(int64(len(s))))
		for _, t := range s {
			str(itoa(int64(t)))
		}
	}
	str("filter/v1")
	tm(f.StartTime)
	tm(f.EndTime)
	for i := range NumFields {
		str(f.Exact[i])
		str(f.Regex[i])
	}
	switch {
	case f.ReadOnly == nil:
		str("")
	case *f.ReadOnly:
		str("true")
	default:
		str("false")
	}
	str(f.StatusCodeRegex)
	mp(f.MetadataExact)
	mp(f.MetadataRegex)
	types(f.IncludeTypes)
	types(f.ExcludeTypes)
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}
