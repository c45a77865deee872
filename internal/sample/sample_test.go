package sample_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
	"github.com/audittrail/audittrail/pebblestore"
)

type item struct {
	ID    string
	Event audittrail.NewEvent
}

func generate(seed int64, opts sample.Options, n int) []item {
	g := sample.New(seed, opts)
	out := make([]item, n)
	for i := range out {
		out[i].ID, out[i].Event = g.Next()
	}
	return out
}

func TestDeterministic(t *testing.T) {
	opts := sample.Options{Events: 500, Span: time.Hour, End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	a := generate(42, opts, 500)
	b := generate(42, opts, 500)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different events (-first +second):\n%s", diff)
	}
	c := generate(43, opts, 500)
	same := 0
	for i := range a {
		if a[i].ID == c[i].ID || a[i].Event.Event.Principal == c[i].Event.Event.Principal && a[i].Event.Event.Action == c[i].Event.Event.Action && a[i].Event.Event.Resource == c[i].Event.Event.Resource {
			same++
		}
	}
	if same > 25 {
		t.Errorf("seeds 42 and 43 agree on %d of 500 events; they should differ", same)
	}
}

func TestEventsAreValid(t *testing.T) {
	for _, seed := range []int64{0, 1, 7, 1 << 40} {
		g := sample.New(seed, sample.Options{Events: 2000})
		seen := map[string]bool{}
		for i := range 2000 {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, sample.DefaultEnd.Add(time.Hour), false)
			if err != nil {
				t.Fatalf("seed %d event %d: %v\n%+v", seed, i, err, ne.Event)
			}
			if seen[id] {
				t.Fatalf("seed %d event %d: id %s repeated", seed, i, id)
			}
			seen[id] = true
			if e.Workspace != "" && !strings.Contains(e.Resource, "/"+e.Workspace+"/") {
				t.Errorf("event %d: workspace %q is not in resource %q", i, e.Workspace, e.Resource)
			}
		}
	}
}

var (
	actionRE    = regexp.MustCompile(`^actions/([a-z0-9-]+)/([a-zA-Z0-9]+)/([A-Z_]+)$`)
	resourceRE  = regexp.MustCompile(`^//([a-z0-9-]+)(/workspaces/[0-9a-f-]{36})?/([a-zA-Z0-9]+)(/[a-z0-9-]+)?$`)
	sourceRE    = regexp.MustCompile(`^h2oai-([a-z0-9-]+)-server$`)
	principalRE = regexp.MustCompile(`^(users/[0-9a-f-]{36}|services/[a-z0-9-]+)$`)
)

// TestDistribution checks the shape of a large sample against what the
// package promises: counts of distinct values, shares, and internal
// consistency of each event.
func TestDistribution(t *testing.T) {
	const n = 50_000
	end := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	span := 240 * time.Hour
	items := generate(9, sample.Options{Events: n, Span: span, End: end}, n)

	count := func(key func(e *audittrail.Event) string) map[string]int {
		m := map[string]int{}
		for i := range items {
			m[key(&items[i].Event.Event)]++
		}
		return m
	}
	principals := count(func(e *audittrail.Event) string { return e.Principal })
	actions := count(func(e *audittrail.Event) string { return e.Action })
	sources := count(func(e *audittrail.Event) string { return e.EventSource })
	workspaces := count(func(e *audittrail.Event) string { return audittrail.DeriveWorkspace(e.Resource) })

	between := func(name string, got, lo, hi int) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %d, want %d..%d", name, got, lo, hi)
		}
	}
	// Zipf popularity leaves part of the long tail unused in 50,000
	// events, but most of it shows up.
	between("distinct principals", len(principals), 3000, 5000)
	between("distinct actions", len(actions), 250, 300)
	between("distinct event sources", len(sources), 35, 40)
	between("distinct workspaces (with \"\")", len(workspaces), 150, 201)
	between("events without workspace (per mille)", workspaces[""]*1000/n, 130, 170)

	// Popularity is skewed: the busiest tenth of principals, actions and
	// workspaces carries far more than a tenth of the events.
	top := func(name string, m map[string]int, distinctOf int) {
		t.Helper()
		counts := make([]int, 0, len(m))
		for k, c := range m {
			if k != "" {
				counts = append(counts, c)
			}
		}
		sort.Sort(sort.Reverse(sort.IntSlice(counts)))
		sum, total := 0, 0
		for i, c := range counts {
			if i < distinctOf/10 {
				sum += c
			}
			total += c
		}
		between("share of the top tenth of "+name+" (percent)", sum*100/total, 35, 90)
	}
	top("principals", principals, 5000)
	top("actions", actions, 300)
	top("workspaces", workspaces, 200)

	services, types, statuses, noStatus := 0, map[audittrail.EventType]int{}, map[int32]int{}, 0
	servicePrincipals := map[string]bool{}
	var metaKeys, params [5]int
	prev := time.Time{}
	for i := range items {
		e := &items[i].Event.Event
		if !principalRE.MatchString(e.Principal) {
			t.Fatalf("event %d: principal %q", i, e.Principal)
		}
		if strings.HasPrefix(e.Principal, "services/") {
			services++
			servicePrincipals[e.Principal] = true
		}
		m := actionRE.FindStringSubmatch(e.Action)
		if m == nil {
			t.Fatalf("event %d: action %q", i, e.Action)
		}
		svc, collection, verb := m[1], m[2], m[3]
		if s := sourceRE.FindStringSubmatch(e.EventSource); s == nil || s[1] != svc {
			t.Fatalf("event %d: source %q does not belong to action %q", i, e.EventSource, e.Action)
		}
		r := resourceRE.FindStringSubmatch(e.Resource)
		if r == nil || r[1] != svc || r[3] != collection || (r[4] == "") != (verb == "LIST") {
			t.Fatalf("event %d: resource %q does not fit action %q", i, e.Resource, e.Action)
		}
		wantRO := slices.Contains([]string{"GET", "LIST", "ADMIN_GET", "ADMIN_LIST", "DOWNLOAD"}, verb)
		if e.ReadOnly != wantRO {
			t.Fatalf("event %d: read_only %v for verb %s", i, e.ReadOnly, verb)
		}
		if _, err := netip.ParseAddr(e.SourceIP); err != nil {
			t.Fatalf("event %d: source ip %q", i, e.SourceIP)
		}
		types[e.Type]++
		if e.Status == nil {
			noStatus++
		} else {
			statuses[e.Status.Code]++
		}
		metaKeys[len(e.Metadata)]++
		if len(e.RequestParameters) > 3 {
			t.Fatalf("event %d: %d request parameters", i, len(e.RequestParameters))
		}
		params[len(e.RequestParameters)]++
		if e.EventTime.Before(prev) {
			t.Fatalf("event %d: time %s before the previous %s", i, e.EventTime, prev)
		}
		prev = e.EventTime
		if !e.EventTime.Before(end) || e.EventTime.Before(end.Add(-span)) {
			t.Fatalf("event %d: time %s outside [%s, %s)", i, e.EventTime, end.Add(-span), end)
		}
	}
	if len(servicePrincipals) < 100 {
		t.Errorf("%d distinct service principals, want about 5%% of 5000", len(servicePrincipals))
	}
	between("service principal events (percent)", services*100/n, 1, 15)
	between("TYPE_API (percent)", types[audittrail.TypeAPI]*100/n, 88, 92)
	between("TYPE_SYSTEM events", types[audittrail.TypeSystem], 1, n)
	between("TYPE_UNSPECIFIED events", types[audittrail.TypeUnspecified], 1, n)
	between("status 0 (percent)", statuses[0]*100/n, 80, 92)
	for _, c := range []int32{3, 5, 7, 13} {
		between(fmt.Sprintf("status %d", c), statuses[c], 1, n/10)
	}
	between("without status (per mille)", noStatus*1000/n, 10, 30)
	for k, c := range metaKeys {
		between(fmt.Sprintf("events with %d metadata keys", k), c, n/10, n/3)
	}
	for k := 0; k <= 3; k++ {
		between(fmt.Sprintf("events with %d request parameters", k), params[k], n/8, n/2)
	}
	// Feature flags span the selectivities between a unique id and a
	// common value: f0 on ~6 % of the events, f12 on ~0.5 %, f63 on ~0.1 %.
	features := count(func(e *audittrail.Event) string { return e.Metadata["feature"] })
	between("distinct feature flags (with \"\")", len(features), 64, 65)
	between("events with feature f0 (per mille)", features["f0"]*1000/n, 45, 75)
	between("events with feature f12 (per ten thousand)", features["f12"]*10000/n, 30, 65)
	between("events with feature f63 (per ten thousand)", features["f63"]*10000/n, 4, 16)
	// The first and last events lie near the ends of the span.
	if d := items[0].Event.Event.EventTime.Sub(end.Add(-span)); d > time.Minute {
		t.Errorf("first event %s after the start of the span", d)
	}
	if d := end.Sub(items[n-1].Event.Event.EventTime); d > time.Minute {
		t.Errorf("last event %s before the end of the span", d)
	}
}

func TestPrivateAndPublicAddresses(t *testing.T) {
	items := generate(3, sample.Options{Events: 5000}, 5000)
	private, v6 := 0, 0
	for _, it := range items {
		ip := it.Event.Event.SourceIP
		if audittrail.RedactIP(ip) == "private" {
			private++
		}
		if strings.Contains(ip, ":") {
			v6++
		}
	}
	if private < 500 || private > 1500 {
		t.Errorf("%d private addresses in 5000 events, want about a fifth", private)
	}
	if v6 < 200 {
		t.Errorf("%d IPv6 addresses in 5000 events, want about a tenth", v6)
	}
}

func TestOptionsScale(t *testing.T) {
	tests := []struct {
		name string
		opts sample.Options
	}{
		{"small universe", sample.Options{Principals: 3, Workspaces: 2, Services: 1, Actions: 2, Events: 50}},
		{"more services than names", sample.Options{Services: 60, Actions: 400, Events: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := sample.New(1, tt.opts)
			for i := range 200 { // past Events: times go on past End
				id, ne := g.Next()
				if _, err := audittrail.PrepareNewEvent(id, ne, time.Now(), true); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
		})
	}
}

// TestBatchesAppendConcurrently: the batches hold the generator's events in
// order, cut at the size; appended concurrently, every one is stored once.
func TestBatchesAppendConcurrently(t *testing.T) {
	const n, size = 2500, 1000
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	batches, err := sample.New(3, sample.Options{}).Batches(n, size, now, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{len(batches[0]), len(batches[1]), len(batches[2])}; len(batches) != 3 || !slices.Equal(got, []int{1000, 1000, 500}) {
		t.Fatalf("%d batches %v, want 1000, 1000, 500", len(batches), got)
	}
	g := sample.New(3, sample.Options{})
	for _, e := range slices.Concat(batches...) {
		id, _ := g.Next()
		if e.ID != id || !e.ReceiveTime.Equal(now) {
			t.Fatalf("event %s received %v, want %s received %v", e.ID, e.ReceiveTime, id, now)
		}
	}

	st, err := pebblestore.Open(t.Context(), pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := sample.AppendConcurrently(t.Context(), st, batches, 3); err != nil {
		t.Fatal(err)
	}
	if got := st.Stats().Events; got != n {
		t.Errorf("%d events stored, want %d", got, n)
	}
	// One event's error comes back: an id used again with other content.
	again := sample.New(3, sample.Options{})
	reused, err := again.Batches(1, 1, now, false)
	if err != nil {
		t.Fatal(err)
	}
	reused[0][0].Principal += "-other"
	next := make(chan []*audittrail.Event, 2)
	next <- batches[0] // retries of stored events: no error
	next <- reused[0]
	close(next)
	lat, err := sample.AppendFrom(t.Context(), st, next, 2)
	if audittrail.ErrorCode(err) != audittrail.EConflict || len(lat) != 2 {
		t.Errorf("a conflicting event: %d latencies, error %v; want 2 and a conflict", len(lat), err)
	}
	// A failing store's error comes back.
	st.Close()
	if err := sample.AppendConcurrently(t.Context(), st, batches[:2], 2); err == nil {
		t.Error("appends to a closed store: no error")
	}
}
