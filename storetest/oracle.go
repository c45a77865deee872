package storetest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
)

// The oracle test stores thousands of random events and runs hundreds of
// random filters through the Service, each drained with random page sizes,
// comparing every result with a brute-force evaluation of the filter written
// here from the specification (spec §3.3), independently of Query.Match.
//
// Values come from small pools so that filters hit. Set STORETEST_SEED to
// replay a run; the seed is logged.

var (
	poolSource    = []string{"h2oai-enginemanager-server", "h2oai-appstore-server", "h2oai-audittrail-server", "thirdparty-chainguard-bitnamikeycloak", "a", "A.b"}
	poolAction    = []string{"actions/enginemanager/daiEngines/CREATE", "actions/enginemanager/daiEngines/DELETE", "actions/appstore/apps/ADMIN_DELETE", "actions/audittrail/events/SEARCH", "LOGIN", "x|y", "create"}
	poolPrincipal = []string{"users/alice", "users/bob", "services/appstore", "users/a2b3b8a6-05c6-47d1-8ae1-774113404975", "users/Ünïcode", "users/a", "users/a\x00b"}
	poolIP        = []string{"1.1.1.1", "1.1.1.10", "10.0.0.1", "private", "2001:db8::1", "8.8.8.8", "::1"}
	poolResource  = []string{"", "//engine-manager/workspaces/w1/daiEngines/e1", "workspaces/w2/daiEngines/e2", "//appstore/apps/a1", "//workspaces/w3/x", "rsrc1", "rsrc10", "rsrc2"}
	poolWorkspace = []string{"", "workspaces/w1", "workspaces/w2", "workspaces/w9", "workspaces/w3"}
	poolUA        = []string{"", "curl/8", "python-requests"}
	poolCode      = []int32{0, 1, 3, 5, 7, 10, 13, 16, -1, 100}
	poolMetaKey   = []string{"env", "team", "region", "e"}
	poolMetaValue = []string{"prod", "dev", "", "core", "core-infra", "eu", "us-east-1", "x\x00"}

	// Regular expressions for string fields, some field-specific so that
	// they hit. The empty string is "no filter" and is not in the pools.
	poolRegex = []string{
		"a", "^h2oai", "server$", "(CREATE|DELETE)$", "^.*$", "x*", `\d`, "[A-Z]", "^[^/]*$", "w1", "^//",
		`1\.1`, "1.1.1.1$", "::", "^(rsrc1|rsrc2)$", "rsrc1", "(?i)alice", "Ü", "^users/a$", "^$", "^users/a.b$",
		"|", "^a|b$", "apps/", "^workspaces/w[12]$", `\x00`, "(?s).", "x|y", `x\|y`, "^create", "^.{0,3}$",
	}
	poolStatusRegex = []string{"^$", "^0$", "^(0|3)$", "1", "^1", "3$", "^-", "^[0-9]$", "^[0-9]{2,}$", ".", "^.*$", "0|^$", "x*", "^1$|^$", "^(?:)$", "0$"}
	poolMetaRegex   = []string{"", "^$", "prod", "^core$", "core", "e", ".", "^(dev|eu)$", "x*", `\x00$`, "^[a-z]+$"}
)

func pick[T any](rng *rand.Rand, pool []T) T { return pool[rng.IntN(len(pool))] }

func oracleSeed(t *testing.T) uint64 {
	if s := os.Getenv("STORETEST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STORETEST_SEED=%q: %v", s, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// randomEvents makes n valid prepared events. Times come from a small pool
// (many ties) or anywhere in a range that overlaps the default range on both
// sides.
func randomEvents(t testing.TB, rng *rand.Rand, n int) []*audittrail.Event {
	lo, hi := audittrail.DefaultStartTime.Add(-48*time.Hour), now.Add(24*time.Hour)
	span := int64(hi.Sub(lo))
	tiePool := make([]time.Time, 100)
	for i := range tiePool {
		tiePool[i] = lo.Add(time.Duration(rng.Int64N(span)))
	}
	tiePool = append(tiePool, audittrail.DefaultStartTime, audittrail.DefaultStartTime.Add(-1), now, now.Add(-1))
	// Ids from the seeded generator, so that a seed replays exactly.
	var chachaSeed [32]byte
	for i := range chachaSeed {
		chachaSeed[i] = byte(rng.Uint64())
	}
	chacha := rand.NewChaCha8(chachaSeed)
	out := make([]*audittrail.Event, 0, n)
	for range n {
		id, err := uuid.NewRandomFromReader(chacha)
		if err != nil {
			t.Fatal(err)
		}
		var at time.Time
		if rng.IntN(10) < 7 {
			at = pick(rng, tiePool)
		} else {
			at = lo.Add(time.Duration(rng.Int64N(span)))
		}
		in := audittrail.NewEvent{Event: audittrail.Event{
			EventTime:   at,
			EventSource: pick(rng, poolSource),
			Action:      pick(rng, poolAction),
			ReadOnly:    rng.IntN(2) == 0,
			Principal:   pick(rng, poolPrincipal),
			SourceIP:    pick(rng, poolIP),
			UserAgent:   pick(rng, poolUA),
			Resource:    pick(rng, poolResource),
			Type:        audittrail.EventType(rng.IntN(3)),
		}}
		if rng.IntN(4) != 0 {
			in.Event.Status = &audittrail.Status{Code: pick(rng, poolCode), Message: pick(rng, []string{"", "boom"})}
		}
		if rng.IntN(5) == 0 {
			in.WorkspaceOverride = ptr(pick(rng, poolWorkspace))
		}
		if k := rng.IntN(4); k > 0 {
			in.Event.Metadata = map[string]string{}
			for range k {
				in.Event.Metadata[pick(rng, poolMetaKey)] = pick(rng, poolMetaValue)
			}
		}
		if rng.IntN(3) == 0 {
			in.Event.RequestParameters = map[string]string{"q": pick(rng, poolMetaValue)}
		}
		e, err := audittrail.PrepareNewEvent(id.String(), in, at.Add(time.Duration(rng.IntN(5000))*time.Millisecond), false)
		if err != nil {
			t.Fatalf("random event: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// randomFilter makes a filter of a few random conditions, drawing values
// from the stored events half of the time so that exact conditions hit.
func randomFilter(rng *rand.Rand, events []*audittrail.Event) audittrail.Filter {
	var f audittrail.Filter
	some := func() *audittrail.Event { return events[rng.IntN(len(events))] }
	chance := func(n int) bool { return rng.IntN(n) == 0 }
	randTime := func() *time.Time {
		if chance(3) {
			return ptr(some().EventTime) // exactly at an event: bounds matter
		}
		lo := audittrail.DefaultStartTime.Add(-72 * time.Hour)
		return ptr(lo.Add(time.Duration(rng.Int64N(int64(now.Add(48 * time.Hour).Sub(lo))))))
	}
	if chance(3) {
		f.StartTime = randTime()
	}
	if chance(3) {
		f.EndTime = randTime()
	}
	for i := range audittrail.NumFields {
		if chance(16) {
			if chance(2) {
				f.Exact[i] = some().Value(i)
			} else {
				f.Exact[i] = pick(rng, [][]string{poolSource, poolResource, poolPrincipal, poolIP, poolWorkspace, poolAction}[i])
			}
		}
		if chance(10) {
			f.Regex[i] = pick(rng, poolRegex)
		}
	}
	if chance(4) {
		f.ReadOnly = ptr(chance(2))
	}
	if chance(4) {
		f.StatusCodeRegex = pick(rng, poolStatusRegex)
	}
	if chance(7) {
		f.MetadataExact = map[string]string{}
		for range 1 + rng.IntN(2) {
			f.MetadataExact[pick(rng, poolMetaKey)] = pick(rng, poolMetaValue)
		}
	}
	if chance(7) {
		f.MetadataRegex = map[string]string{}
		for range 1 + rng.IntN(2) {
			f.MetadataRegex[pick(rng, poolMetaKey)] = pick(rng, poolMetaRegex)
		}
	}
	types := func() []audittrail.EventType {
		var ts []audittrail.EventType
		for range 1 + rng.IntN(3) {
			ts = append(ts, audittrail.EventType(rng.IntN(3)))
		}
		return ts
	}
	if chance(5) {
		f.IncludeTypes = types()
	}
	if chance(6) {
		f.ExcludeTypes = types()
	}
	return f
}

// oracle decides whether e matches f, from the specification.
type oracle struct {
	res map[string]*regexp.Regexp
}

func (o *oracle) re(expr string) *regexp.Regexp {
	if r, ok := o.res[expr]; ok {
		return r
	}
	r := regexp.MustCompile(expr)
	o.res[expr] = r
	return r
}

// rangeOf resolves the time range of f: start defaults to 2025-07-01, end to
// the service clock.
func rangeOf(f audittrail.Filter) (start, end time.Time) {
	start, end = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), now
	if f.StartTime != nil {
		start = *f.StartTime
	}
	if f.EndTime != nil {
		end = *f.EndTime
	}
	return start, end
}

func (o *oracle) match(f audittrail.Filter, e *audittrail.Event) bool {
	start, end := rangeOf(f)
	if e.EventTime.Before(start) || !e.EventTime.Before(end) { // start inclusive, end exclusive
		return false
	}
	values := []string{e.EventSource, e.Resource, e.Principal, e.SourceIP, e.Workspace, e.Action}
	for i, v := range values {
		if f.Exact[i] != "" && v != f.Exact[i] {
			return false
		}
		if f.Regex[i] != "" && o.re(f.Regex[i]).FindStringIndex(v) == nil { // unanchored
			return false
		}
	}
	if f.ReadOnly != nil && e.ReadOnly != *f.ReadOnly {
		return false
	}
	if f.StatusCodeRegex != "" {
		code := ""
		if e.Status != nil {
			code = strconv.Itoa(int(e.Status.Code))
		}
		if o.re(f.StatusCodeRegex).FindStringIndex(code) == nil {
			return false
		}
	}
	for k, want := range f.MetadataExact {
		if v, ok := e.Metadata[k]; !ok || v != want {
			return false
		}
	}
	for k, expr := range f.MetadataRegex {
		if v, ok := e.Metadata[k]; !ok || o.re(expr).FindStringIndex(v) == nil {
			return false
		}
	}
	if len(f.IncludeTypes) > 0 && !slices.Contains(f.IncludeTypes, e.Type) {
		return false
	}
	if slices.Contains(f.ExcludeTypes, e.Type) {
		return false
	}
	return true
}

func describe(f audittrail.Filter) string {
	var b strings.Builder
	tm := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339Nano)
	}
	fmt.Fprintf(&b, "start=%s end=%s", tm(f.StartTime), tm(f.EndTime))
	for i := range audittrail.NumFields {
		if f.Exact[i] != "" {
			fmt.Fprintf(&b, " %s_exact=%q", i, f.Exact[i])
		}
		if f.Regex[i] != "" {
			fmt.Fprintf(&b, " %s_regex=%q", i, f.Regex[i])
		}
	}
	if f.ReadOnly != nil {
		fmt.Fprintf(&b, " read_only=%v", *f.ReadOnly)
	}
	if f.StatusCodeRegex != "" {
		fmt.Fprintf(&b, " status_code_regex=%q", f.StatusCodeRegex)
	}
	if f.MetadataExact != nil {
		fmt.Fprintf(&b, " metadata_exact=%q", f.MetadataExact)
	}
	if f.MetadataRegex != nil {
		fmt.Fprintf(&b, " metadata_regex=%q", f.MetadataRegex)
	}
	if f.IncludeTypes != nil {
		fmt.Fprintf(&b, " include_types=%v", f.IncludeTypes)
	}
	if f.ExcludeTypes != nil {
		fmt.Fprintf(&b, " exclude_types=%v", f.ExcludeTypes)
	}
	return b.String()
}

func (s *suite) testOracle(t *testing.T) {
	nEvents, nFilters := 3000, 300
	if testing.Short() {
		nEvents, nFilters = 600, 60
	}
	seed := oracleSeed(t)
	t.Logf("seed %d (replay with STORETEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	f := s.open(t)
	events := randomEvents(t, rng, nEvents)
	// The expected events are the ones sent, with the sequence numbers the
	// store gave them: the brute force never trusts the store's copy.
	var stored []*audittrail.Event
	var lastReceive time.Time
	for len(events) > 0 {
		n := min(len(events), 1+rng.IntN(400))
		for i, got := range f.append(events[:n]...) {
			want := asStored(lastReceive, uint64(len(stored)+1), events[i])[0]
			if d := gocmp.Diff(want, got, eventOpts); d != "" {
				t.Fatalf("Append returned another event than the one sent (-want +got):\n%s", d)
			}
			lastReceive = want.ReceiveTime
			stored = append(stored, want)
		}
		events = events[n:]
	}
	all := newestFirst(stored)
	o := &oracle{res: map[string]*regexp.Regexp{}}
	svc := newService(f.store, key1)
	var total, empty, invalid int
	for i := range nFilters {
		filter := randomFilter(rng, stored)
		var want []*audittrail.Event
		for _, e := range all {
			if o.match(filter, e) {
				want = append(want, e)
			}
		}
		ctx := as(pick(rng, []string{"users/alice", "users/bob", "services/x"}))
		start, end := rangeOf(filter)
		if !start.Before(end) {
			_, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter})
			if audittrail.ErrorCode(err) != audittrail.EInvalid {
				t.Errorf("filter %d (%s): start is not before end, got %v, want EInvalid", i, describe(filter), err)
			}
			invalid++
			continue
		}
		size := pick(rng, []int{0, 1, 2, 3, 5, 8, 13, 50, 999, 1000, 1001, 5000})
		if eff := cmpOr(size, audittrail.DefaultPageSize); len(want)/eff > 40 {
			size = len(want)/40 + 1 // keep the page count reasonable
		}
		svc.MaxScan = 0
		if rng.IntN(10) == 0 {
			svc.MaxScan = 1 + rng.IntN(200) // partial pages
		}
		got, pages := drainPages(t, ctx, svc, filter, size)
		total += len(want)
		if len(want) == 0 {
			empty++
		}
		if d := diffEvents(want, got); d != "" {
			t.Fatalf("seed %d, filter %d (%s), page size %d, MaxScan %d: %s", seed, i, describe(filter), size, svc.MaxScan, d)
		}
		if svc.MaxScan == 0 {
			// next_page_token is empty exactly when nothing remains.
			seen := 0
			for p, page := range pages {
				seen += len(page.Events)
				if (page.NextPageToken != "") != (seen < len(want)) {
					t.Fatalf("seed %d, filter %d (%s), page %d: %d of %d events returned, next_page_token %q",
						seed, i, describe(filter), p, seen, len(want), page.NextPageToken)
				}
			}
		}
	}
	t.Logf("%d events, %d filters (%d with an empty range), %d matches in all, %d filters matched nothing", len(stored), nFilters, invalid, total, empty)
	if empty > nFilters*3/4 {
		t.Errorf("%d of %d random filters matched nothing: the generator does not exercise the stores", empty, nFilters)
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}
