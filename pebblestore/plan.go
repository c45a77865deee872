package pebblestore

import (
	"bytes"
	"context"
	"math"
	"math/bits"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/audittrail/audittrail"
)

// valueCond is a condition on one value slot of a record: a field, or the
// metadata pairs of one key. It is equality to one value or a regex; values
// are tested by dictionary id (a comparison, or a bit of a set evaluated once
// per distinct value) and, when the dictionary is frozen, inline values by
// their bytes.
type valueCond struct {
	d     dictID
	exact bool

	// Exact: the value (for metadata the pair key "\x00" value), and its
	// id when the dictionary holds it.
	value  string
	id     uint32
	inDict bool

	// Regex: bit i of bits says whether value id i matches, for ids below
	// n; ids from n on were added after the set was built and are
	// evaluated on demand (extend).
	re      matcher
	metaKey string // metadata: only pairs of this key are members
	bits    []uint64
	n       int
	shared  bool // bits belong to the regex cache: copy before changing
	cache   *regexCache
	cacheID string

	// mayInline: values of the slot may be stored inline (the dictionary,
	// or the metadata key, is frozen).
	mayInline bool
}

// hasID tests a dictionary value.
func (c *valueCond) hasID(id uint32, snap *dictSnap) bool {
	if c.exact {
		return c.inDict && c.id == id
	}
	if int(id) >= c.n {
		// Values added since the plan was made: few, and the search's
		// loop checks its context between candidates.
		_ = c.extend(context.Background(), snap, int(id)+1)
	}
	w := int(id >> 6)
	return w < len(c.bits) && c.bits[w]&(1<<(id&63)) != 0
}

// hasInline tests an inline value (a pair, for metadata).
func (c *valueCond) hasInline(v []byte) bool {
	if c.exact {
		return string(v) == c.value
	}
	if c.d == dictMeta {
		k, val, ok := bytes.Cut(v, []byte{0})
		return ok && string(k) == c.metaKey && c.re.match(val)
	}
	return c.re.match(v)
}

// extend evaluates the regex over the dictionary values from c.n on, up to
// at least upTo (refreshing snap when it does not reach that far). It
// stops with ctx's error, leaving c as it was.
func (c *valueCond) extend(ctx context.Context, snap *dictSnap, upTo int) error {
	if snap.vals[c.d].len() < upTo {
		snap.refresh()
	}
	vals := snap.vals[c.d]
	if vals.len() <= c.n {
		return nil
	}
	need := (vals.len() + 63) / 64
	if c.shared || cap(c.bits) < need {
		nb := make([]uint64, need, need+need/4)
		copy(nb, c.bits)
		c.bits = nb
		c.shared = false
	}
	bits := c.bits[:need]
	if c.d == dictMeta {
		// Only pairs of the key can match; walk its id list.
		ids := snap.ds.metaKeyIDs(c.metaKey)
		i := sort.Search(len(ids), func(i int) bool { return int(ids[i]) >= c.n })
		for k, id := range ids[i:] {
			if int(id) >= vals.len() {
				break
			}
			if k&(ctxCheckEvery-1) == ctxCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					clearFrom(bits, c.n)
					return err
				}
			}
			_, v, _ := strings.Cut(vals.at(int(id)), "\x00")
			if c.re.matchString(v) {
				bits[id>>6] |= 1 << (id & 63)
			}
		}
	} else if err := evalRange(ctx, &c.re, vals, bits, c.n, vals.len()); err != nil {
		clearFrom(bits, c.n)
		return err
	}
	c.bits = bits
	c.n = vals.len()
	if c.cache != nil {
		c.cache.put(&regexEntry{key: c.cacheID, bits: c.bits, n: c.n})
		c.shared = true
	}
	return nil
}

// clearFrom clears the bits of values from n on: an evaluation stopped
// part way leaves none of its verdicts behind.
func clearFrom(bits []uint64, n int) {
	for id := n; id < len(bits)*64; {
		if id&63 == 0 {
			bits[id>>6] = 0
			id += 64
			continue
		}
		bits[id>>6] &^= 1 << (id & 63)
		id++
	}
}

// ctxCheckEvery is how many regex evaluations (or candidates) go between
// two looks at the search's context: a power of two. A regex within
// audittrail.MaxRegexProgram can take ~15 ms on one value, so the search
// notices a deadline or a departed client within a fraction of a second.
const ctxCheckEvery = 16

// parallelValues is the number of values above which a dictionary is
// evaluated by several goroutines.
const parallelValues = 1 << 14

// evalRange sets the bits of the values vals[from:to] that match m, in
// parallel for large ranges (the chunks are whole 64-bit words, so the
// goroutines write disjoint words; each has its own regexp state).
func evalRange(ctx context.Context, m *matcher, vals valueView, bitset []uint64, from, to int) error {
	workers := runtime.GOMAXPROCS(0)
	if to-from < parallelValues || workers < 2 {
		return evalValues(ctx, m, vals, bitset, from, to)
	}
	// The first partial word, then whole-word chunks.
	start := (from + 63) &^ 63
	if err := evalValues(ctx, m, vals, bitset, from, min(start, to)); err != nil {
		return err
	}
	chunk := ((to-start)/workers + 63) &^ 63
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for lo := start; lo < to; lo += chunk {
		hi := min(lo+chunk, to)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := evalValues(ctx, m, vals, bitset, lo, hi); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// evalValues sets the bits of the values vals[from:to] that match m, on
// this goroutine.
func evalValues(ctx context.Context, m *matcher, vals valueView, bitset []uint64, from, to int) error {
	for id := from; id < to; id++ {
		if (id-from)&(ctxCheckEvery-1) == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if m.matchString(vals.at(id)) {
			bitset[id>>6] |= 1 << (id & 63)
		}
	}
	return nil
}

// members returns the dictionary ids that satisfy c.
func (c *valueCond) members() []uint32 {
	if c.exact {
		if c.inDict {
			return []uint32{c.id}
		}
		return nil
	}
	var out []uint32
	for w, x := range c.bits {
		for x != 0 {
			b := bits.TrailingZeros64(x)
			out = append(out, uint32(w*64+b))
			x &= x - 1
		}
	}
	return out
}

// newExact builds the condition "slot d equals v", or nil when no event can
// have the value (neither in the dictionary nor possibly inline).
func (st *Store) newExact(d dictID, v string) *valueCond {
	id, inDict, inline := st.dicts.exactRef(d, v)
	if !inDict && !inline {
		return nil
	}
	return &valueCond{d: d, exact: true, value: v, id: id, inDict: inDict, mayInline: inline}
}

// newRegex builds the condition "slot d matches re" (for metadata: the value
// of pairs of metaKey), starting from the cached evaluation when there is one.
func (st *Store) newRegex(ctx context.Context, d dictID, metaKey string, re *regexp.Regexp, snap *dictSnap) (*valueCond, error) {
	c := &valueCond{d: d, re: newMatcher(re), metaKey: metaKey, cache: st.regex, mayInline: st.dicts.hasInline(d, metaKey)}
	c.cacheID = string(rune('0'+d)) + metaKey + "\x00" + re.String()
	if e := st.regex.get(c.cacheID); e != nil {
		c.bits, c.n, c.shared = e.bits, e.n, true
	}
	if err := c.extend(ctx, snap, snap.vals[d].len()); err != nil {
		return nil, err
	}
	return c, nil
}

// statusCond caches the verdict of the status regex per distinct status.
type statusCond struct {
	re       *regexp.Regexp
	none     bool // verdict for events without status ("")
	verdicts map[int32]bool
}

func (c *statusCond) match(v *recView) bool {
	if v.flags&flagStatus == 0 {
		return c.none
	}
	m, ok := c.verdicts[v.code]
	if !ok {
		m = c.re.MatchString(strconv.Itoa(int(v.code)))
		c.verdicts[v.code] = m
	}
	return m
}

// plan is a compiled query: record-level predicates equivalent to
// q.MatchFields, and the chosen candidate stream.
type plan struct {
	types    uint32
	readOnly int8 // -1: any
	fields   [audittrail.NumFields]*valueCond
	status   *statusCond
	meta     []*valueCond // metadata_exact and metadata_regex conditions
	empty    bool         // no event can match

	// lists are the posting lists to merge (key prefixes); none and no
	// column: scan the primary range.
	lists [][]byte
	// column, when set, is a regex condition on a field with inline values
	// whose matches in the value column are merged with lists (those of
	// its matching dictionary values).
	column *valueCond
}

// matches is q.MatchFields evaluated on a record header.
func (p *plan) matches(v *recView, snap *dictSnap) bool {
	if v.typ >= 32 || p.types&(1<<v.typ) == 0 {
		return false
	}
	if p.readOnly >= 0 && (v.flags&flagReadOnly != 0) != (p.readOnly == 1) {
		return false
	}
	for i, c := range p.fields {
		if c == nil {
			continue
		}
		if v.inline&(1<<i) != 0 {
			if !c.hasInline(v.fieldIn[i]) {
				return false
			}
		} else if !c.hasID(v.fields[i], snap) {
			return false
		}
	}
	if p.status != nil && !p.status.match(v) {
		return false
	}
	for _, c := range p.meta {
		if !c.matchMeta(v, snap) {
			return false
		}
	}
	return true
}

// matchMeta reports whether one metadata pair of the record satisfies c (a
// key appears at most once per event).
func (c *valueCond) matchMeta(v *recView, snap *dictSnap) bool {
	if c.exact && c.inDict {
		if slices.Contains(v.meta, c.id) {
			return true
		}
	} else if !c.exact {
		for _, id := range v.meta {
			if c.hasID(id, snap) {
				return true
			}
		}
	}
	if c.mayInline {
		for _, in := range v.metaIn {
			if c.hasInline(in) {
				return true
			}
		}
	}
	return false
}

// Planner constants, in units of "one record examined by the primary scan".
const (
	// postingCost is a candidate from a posting list: the posting plus a
	// point read of its record.
	postingCost = 4
	// listCost is opening one posting list (an iterator seek).
	listCost = 50
	// maxUnionLists bounds the posting lists merged for one regex.
	maxUnionLists = 256
	// inlineCount is the assumed size of the hashed list of an inline
	// value: such values are in no dictionary because their slot has many
	// distinct values, so each is rare.
	inlineCount = 16
	// columnCost is reading one entry of the value column: its bytes are
	// searched for the regex's literal with the bucket's other entries
	// (measured: about an eighth of examining a record in the scan).
	columnCost = 1.0 / 8
)

// compile turns q into a plan against the current dictionaries. It fails
// only with ctx's error (evaluating regexes over the dictionaries).
func (st *Store) compile(ctx context.Context, q *audittrail.Query, limit int, snap *dictSnap) (*plan, error) {
	p := &plan{types: q.Types, readOnly: -1}
	if q.ReadOnly != nil {
		p.readOnly = 0
		if *q.ReadOnly {
			p.readOnly = 1
		}
	}
	if q.Types == 0 {
		p.empty = true
		return p, nil
	}
	for i := range audittrail.NumFields {
		d := dictID(i)
		switch {
		case q.Exact[i] != nil:
			if q.Regex[i] != nil && !q.Regex[i].MatchString(*q.Exact[i]) {
				p.empty = true
				return p, nil
			}
			if p.fields[i] = st.newExact(d, *q.Exact[i]); p.fields[i] == nil {
				p.empty = true
				return p, nil
			}
		case q.Regex[i] != nil:
			var err error
			if p.fields[i], err = st.newRegex(ctx, d, "", q.Regex[i], snap); err != nil {
				return nil, err
			}
		}
	}
	if q.Status != nil {
		p.status = &statusCond{re: q.Status, none: q.Status.MatchString(""), verdicts: map[int32]bool{}}
	}
	for k, v := range q.MetadataExact {
		if re := q.MetadataRegex[k]; re != nil && !re.MatchString(v) {
			p.empty = true
			return p, nil
		}
		c := st.newExact(dictMeta, k+"\x00"+v)
		if c == nil {
			p.empty = true
			return p, nil
		}
		p.meta = append(p.meta, c)
	}
	for k, re := range q.MetadataRegex {
		if _, ok := q.MetadataExact[k]; ok {
			continue // checked above against the exact value
		}
		c, err := st.newRegex(ctx, dictMeta, k, re, snap)
		if err != nil {
			return nil, err
		}
		p.meta = append(p.meta, c)
	}
	st.chooseDriver(p, limit)
	return p, nil
}

// chooseDriver picks the candidate stream expected to fill the page (or
// exhaust the range) with the least work. With N events, a condition whose
// posting lists hold C events selects C/N of them; assuming independence the
// query matches M = N·Π(C/N) events, and a stream of L candidates yields a
// match every L/M candidates. A stream's cost is the candidates needed for
// limit+1 matches (capped at L) times the cost of a candidate, plus opening
// its lists. Counts are statistics: the plan's results never depend on them.
func (st *Store) chooseDriver(p *plan, limit int) {
	n := float64(st.lastSeq.Load())
	if n == 0 {
		p.empty = true
		return
	}
	type cand struct {
		lists [][]byte
		count float64
		// column: the inline values of the condition's field are read
		// from the value column, of about inline entries.
		column *valueCond
		inline float64
	}
	var cands []cand
	add := func(c *valueCond) bool {
		ids := c.members()
		if len(ids) == 0 && !c.mayInline {
			return false // no value matches: no event can
		}
		if !c.exact && c.mayInline {
			// Matching inline values cannot be enumerated, but they
			// are all in the value column: its matches and the lists
			// of the matching dictionary values are complete.
			inDict := float64(st.dicts.sumCounts(c.d, ids))
			total := float64(st.dicts.totalCount(c.d))
			inline := math.Max(n-total, 0) // a field: one value per event
			if c.d == dictMeta {
				// Pairs of one key: how many events have the key is
				// not known; at most all of them.
				total = float64(st.dicts.sumCounts(c.d, st.dicts.metaKeyIDs(c.metaKey)))
				inline = n
			}
			// Inline values are assumed to match as often as the
			// dictionary's postings do.
			cnt := inDict + inline*inDict/math.Max(total, 1)
			var lists [][]byte
			for _, id := range ids {
				lists = append(lists, listPrefix(nil, c.d, id))
			}
			cands = append(cands, cand{lists: lists, count: max(cnt, 1), column: c, inline: inline})
			return true
		}
		cnt := float64(st.dicts.sumCounts(c.d, ids))
		var lists [][]byte
		for _, id := range ids {
			lists = append(lists, listPrefix(nil, c.d, id))
		}
		if c.exact && c.mayInline {
			lists = append(lists, hashListPrefix(nil, c.d, bytesOf(c.value)))
			cnt += inlineCount
		}
		cands = append(cands, cand{lists: lists, count: max(cnt, 1)})
		return true
	}
	for _, c := range p.fields {
		if c != nil && !add(c) {
			p.empty = true
			return
		}
	}
	for _, c := range p.meta {
		if !add(c) {
			p.empty = true
			return
		}
	}
	m := n
	for _, c := range cands {
		m *= math.Min(1, c.count/n)
	}
	m = math.Max(m, 1)
	want := float64(limit + 1)
	cost := func(length, unit, setup float64) float64 {
		return math.Min(length, want*length/m)*unit + setup
	}
	best := cost(n, 1, 0)
	for _, c := range cands {
		if len(c.lists) > maxUnionLists {
			continue
		}
		x := cost(c.count, postingCost, listCost*float64(len(c.lists)))
		if c.column != nil {
			x += listCost + cost(c.inline, columnCost, 0)
		}
		if x < best {
			best, p.lists, p.column = x, c.lists, c.column
		}
	}
}
