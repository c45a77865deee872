package bench

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/sample"
)

// Dataset is the load of one size: the first N events of the sample
// generator for Seed, with the generator's defaults (about 5,000 principals,
// 200 workspaces, 40 services, 300 actions, 30 days ending at
// sample.DefaultEnd). Events keep the order of the stream everywhere.
type Dataset struct {
	Seed int64
	N    int
	// Now is the receive time given to events loaded directly into
	// PostgreSQL, and the end of the search range of the oracle.
	Now time.Time

	Stats   Stats
	Queries []*Query
}

// NewDataset returns the dataset of n events for seed. Call Analyze before
// using its queries.
func NewDataset(seed int64, n int, now time.Time) *Dataset {
	return &Dataset{Seed: seed, N: n, Now: now}
}

// Source yields the events of a dataset in order. It is not safe for
// concurrent use.
type Source struct {
	g    *sample.Generator
	i, n int
}

// Source returns a new pass over the events.
func (d *Dataset) Source() *Source {
	return &Source{g: sample.New(d.Seed, sample.Options{Events: d.N}), n: d.N}
}

// Next returns the next event, or ok false after the last.
func (s *Source) Next() (id string, ne audittrail.NewEvent, ok bool) {
	if s.i >= s.n {
		return "", ne, false
	}
	s.i++
	id, ne = s.g.Next()
	return id, ne, true
}

// Done returns how many events the source has yielded.
func (s *Source) Done() int { return s.i }

// Prepare turns a generated event into the event a server stores (the
// server-set fields, private addresses redacted as `audittrail serve` does by
// default), for direct loading into PostgreSQL and for the oracle.
func (d *Dataset) Prepare(id string, ne audittrail.NewEvent) *audittrail.Event {
	e, err := audittrail.PrepareNewEvent(id, ne, d.Now, true)
	if err != nil {
		// The generator promises valid events; anything else is a bug
		// that would make the benchmark meaningless.
		panic(fmt.Sprintf("bench: generated event %s is invalid: %v", id, err))
	}
	return e
}

// Stats is what the counting pass saw.
type Stats struct {
	Events                 int
	Principals             map[string]int
	Workspaces             map[string]int // "" counts events without a workspace
	Actions                map[string]int
	Sources                map[string]int
	ServicePrincipalEvents int
	TypeAPI                int
	PrivateIPs             int
	First, Last            time.Time
	// StringBytes sums the strings of every event as stored (fields, map
	// keys and values, status message), the payload a store must keep.
	StringBytes  int64
	MetadataKeys [5]int // events by number of metadata entries (0..4)
	Params       [4]int // events by number of request parameters (0..3)

	// Candidates for the rare resource query: resource names (the last
	// segment) of the first events, with their counts over the stream.
	resourceNames map[string]int
	requestID     string         // request_id of the event at N/2 (or after)
	tenants       map[string]int // metadata "tenant" values
	middling      int            // events with metadata feature=MiddlingFeature
}

// resourceName returns the last segment of a resource with a name
// ("//svc/workspaces/w/daiEngines/dai-engine-1234" → "dai-engine-1234"), or ""
// for collection resources (LIST).
func resourceName(r string) string {
	i := strings.LastIndexByte(r, '/')
	name := r[i+1:]
	if !strings.ContainsRune(name, '-') {
		return ""
	}
	return name
}

// candidateWindow is how many of the first events offer their resource name
// as a candidate for the rare resource query.
const candidateWindow = 2000

// Analyze counts the stream, picks the parameters of the query suite from the
// counts, then evaluates every query over the stream with the reference
// semantics to record the expected answers. It makes two passes, each
// spread over the machine's cores.
func (d *Dataset) Analyze() {
	s := Stats{
		Principals:    map[string]int{},
		Workspaces:    map[string]int{},
		Actions:       map[string]int{},
		Sources:       map[string]int{},
		resourceNames: map[string]int{},
		tenants:       map[string]int{},
	}
	// Candidates for the rare resource name come from the first events.
	src := d.Source()
	for i := 0; i < candidateWindow; i++ {
		id, ne, ok := src.Next()
		if !ok {
			break
		}
		if name := resourceName(d.Prepare(id, ne).Resource); name != "" {
			s.resourceNames[name] = 0
		}
	}
	candidates := maps.Clone(s.resourceNames) // read by the workers, never written
	scan(d, func(first int, batch []item) *Stats {
		p := &Stats{Principals: map[string]int{}, Workspaces: map[string]int{}, Actions: map[string]int{}, Sources: map[string]int{},
			resourceNames: map[string]int{}, tenants: map[string]int{}}
		for k, it := range batch {
			i := first + k
			e := d.Prepare(it.id, it.ne)
			p.Events++
			p.Principals[e.Principal]++
			p.Workspaces[e.Workspace]++
			p.Actions[e.Action]++
			p.Sources[e.EventSource]++
			if strings.HasPrefix(e.Principal, "services/") {
				p.ServicePrincipalEvents++
			}
			if e.Type == audittrail.TypeAPI {
				p.TypeAPI++
			}
			if e.SourceIP == "private" {
				p.PrivateIPs++
			}
			if k == 0 {
				p.First = e.EventTime
			}
			p.Last = e.EventTime
			p.StringBytes += int64(len(e.ID) + len(e.EventSource) + len(e.Action) + len(e.Principal) + len(e.SourceIP) +
				len(e.UserAgent) + len(e.Resource) + len(e.Workspace))
			if e.Status != nil {
				p.StringBytes += int64(len(e.Status.Message))
			}
			for k, v := range e.Metadata {
				p.StringBytes += int64(len(k) + len(v))
			}
			for k, v := range e.RequestParameters {
				p.StringBytes += int64(len(k) + len(v))
			}
			p.MetadataKeys[min(len(e.Metadata), 4)]++
			p.Params[min(len(e.RequestParameters), 3)]++
			if name := resourceName(e.Resource); name != "" {
				if _, ok := candidates[name]; ok {
					p.resourceNames[name]++
				}
			}
			if p.requestID == "" && i >= d.N/2 {
				p.requestID = e.Metadata["request_id"]
			}
			if v, ok := e.Metadata["tenant"]; ok {
				p.tenants[v]++
			}
			if e.Metadata["feature"] == MiddlingFeature {
				p.middling++
			}
		}
		return p
	}, func(p *Stats) {
		if s.Events == 0 {
			s.First = p.First
		}
		s.Last = p.Last
		s.Events += p.Events
		s.ServicePrincipalEvents += p.ServicePrincipalEvents
		s.TypeAPI += p.TypeAPI
		s.PrivateIPs += p.PrivateIPs
		s.StringBytes += p.StringBytes
		s.middling += p.middling
		for i := range s.MetadataKeys {
			s.MetadataKeys[i] += p.MetadataKeys[i]
		}
		for i := range s.Params {
			s.Params[i] += p.Params[i]
		}
		for _, m := range []struct{ dst, src map[string]int }{{s.Principals, p.Principals}, {s.Workspaces, p.Workspaces},
			{s.Actions, p.Actions}, {s.Sources, p.Sources}, {s.tenants, p.tenants}} {
			for k, v := range m.src {
				m.dst[k] += v
			}
		}
		for k, v := range p.resourceNames {
			s.resourceNames[k] += v
		}
		if s.requestID == "" {
			s.requestID = p.requestID
		}
	})
	d.Stats = s
	d.Queries = d.buildQueries()
	d.evaluate()
}

type item struct {
	id string
	ne audittrail.NewEvent
}

// scanBatch is the number of events of one unit of work of scan.
const scanBatch = 1000

// scan runs the events of the dataset through work, batch by batch on every
// core, and hands the results to merge one at a time, in stream order.
func scan[R any](d *Dataset, work func(first int, batch []item) R, merge func(R)) {
	type job struct {
		first int
		batch []item
		res   chan R
	}
	workers := max(runtime.NumCPU(), 1)
	jobs := make(chan job, 2*workers)
	order := make(chan chan R, 4*workers)
	go func() {
		defer close(jobs)
		defer close(order)
		src := d.Source()
		for first := 0; first < d.N; first += scanBatch {
			b := make([]item, 0, min(scanBatch, d.N-first))
			for len(b) < cap(b) {
				id, ne, ok := src.Next()
				if !ok {
					break
				}
				b = append(b, item{id, ne})
			}
			j := job{first: first, batch: b, res: make(chan R, 1)}
			order <- j.res
			jobs <- j
		}
	}()
	for range workers {
		go func() {
			for j := range jobs {
				j.res <- work(j.first, j.batch)
			}
		}()
	}
	for res := range order {
		merge(<-res)
	}
}

// argmax returns the key with the highest count (ties: the smallest key),
// skipping "".
func argmax(m map[string]int) string {
	best := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "" && (best == "" || m[k] > m[best]) {
			best = k
		}
	}
	return best
}

// nearest returns the key whose count is nearest to target (ties: the
// smallest key), skipping "" and keys never seen.
func nearest(m map[string]int, target int) string {
	best, bestDist := "", -1
	for _, k := range slices.Sorted(maps.Keys(m)) {
		c := m[k]
		if k == "" || c == 0 {
			continue
		}
		dist := c - target
		if dist < 0 {
			dist = -dist
		}
		if bestDist < 0 || dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// Query is one search of the suite, the same for every system.
type Query struct {
	Key   string // short, stable identifier
	Title string // what it asks, for the report
	Class Class
	// Filter is the search. Every system resolves an unset start to
	// audittrail.DefaultStartTime and an unset end to the time of the
	// first request.
	Filter   audittrail.Filter
	PageSize int
	// Page is the page to time: 1 for the first page; n > 1 times the
	// n-th page, fetched with the cursor (page token) the (n-1)-th page
	// ended at.
	Page int
	// Drain times fetching every page (PageSize each) of the result.
	Drain bool
	// Param describes the parameter picked from the stream.
	Param string

	// Expected, from the oracle pass.
	Matches  int      // events matching in the whole range
	Expected []string // ids of the timed page (newest first); for Drain, empty
	DrainSum uint64   // for Drain: XOR of the FNV-64a hashes of all matching ids
}

// Class groups queries by what bounds their cost, for the targets.
type Class string

const (
	ClassIndex  Class = "index-bound"
	ClassRegex  Class = "regex"
	ClassScan   Class = "scan-bound"
	ClassPaging Class = "paging"
	ClassDrain  Class = "drain"
)

// Suite regexes, fixed whatever the data.
const (
	ActionCreateRegex = `.*CREATE$`
	ServiceRegex      = `^services/`
	MutationRegex     = `(DELETE|UPDATE)$`
	NoMatchRegex      = `/vaults/[^/]+$` // no generated collection is called vaults
)

// MiddlingFeature is the value of the middling metadata query: issue 6's
// PostgreSQL reference measured `metadata.feature = 'f12'` (12–58 ms), a
// value too rare for a walk of the time index to find a page soon and too
// common for the GIN index's matches to be fetched and sorted quickly. The
// generator's feature flags are Zipf-like, f12 on about 0.5 % of events.
const MiddlingFeature = "f12"

// DrainTarget is the size of the result the drain query pages through.
const DrainTarget = 10_000

// RarePrincipalTarget and RareResourceTarget are the result sizes looked for
// in the rare queries: fewer than a page, so the whole range is searched.
const (
	RarePrincipalTarget = 20
	RareResourceTarget  = 25
)

func (d *Dataset) buildQueries() []*Query {
	s := &d.Stats
	popular := argmax(s.Principals)
	rare := nearest(s.Principals, RarePrincipalTarget)
	ws := argmax(s.Workspaces)
	drainWS := nearest(s.Workspaces, DrainTarget)
	action := argmax(s.Actions)
	rareName := nearest(s.resourceNames, RareResourceTarget)
	tenant := argmax(s.tenants)
	dayAgo := sample.DefaultEnd.Add(-24 * time.Hour)

	exact := func(f audittrail.Field, v string) audittrail.Filter {
		var flt audittrail.Filter
		flt.Exact[f] = v
		return flt
	}
	regex := func(f audittrail.Field, v string) audittrail.Filter {
		var flt audittrail.Filter
		flt.Regex[f] = v
		return flt
	}
	pct := func(n int) string { return fmt.Sprintf("%.2f%% of events", 100*float64(n)/float64(max(s.Events, 1))) }

	combined := exact(audittrail.FieldPrincipal, popular)
	combined.Regex[audittrail.FieldAction] = MutationRegex
	combined.StartTime = &dayAgo

	qs := []*Query{
		{Key: "all", Title: "no filter", Class: ClassIndex},
		{Key: "principal-popular", Title: "principal exact, popular", Class: ClassIndex,
			Filter: exact(audittrail.FieldPrincipal, popular), Param: fmt.Sprintf("`%s` (%s)", popular, pct(s.Principals[popular]))},
		{Key: "principal-rare", Title: "principal exact, rare", Class: ClassIndex,
			Filter: exact(audittrail.FieldPrincipal, rare), Param: fmt.Sprintf("`%s` (%d events)", rare, s.Principals[rare])},
		{Key: "workspace", Title: "workspace exact", Class: ClassIndex,
			Filter: exact(audittrail.FieldWorkspace, ws), Param: fmt.Sprintf("`%s` (%s)", ws, pct(s.Workspaces[ws]))},
		{Key: "action", Title: "action exact", Class: ClassIndex,
			Filter: exact(audittrail.FieldAction, action), Param: fmt.Sprintf("`%s` (%s)", action, pct(s.Actions[action]))},
		{Key: "action-regex", Title: "action_regex `" + ActionCreateRegex + "`", Class: ClassRegex,
			Filter: regex(audittrail.FieldAction, ActionCreateRegex)},
		{Key: "principal-regex", Title: "principal_regex `" + ServiceRegex + "`", Class: ClassRegex,
			Filter: regex(audittrail.FieldPrincipal, ServiceRegex), Param: pct(s.ServicePrincipalEvents)},
		{Key: "resource-regex-rare", Title: "resource_regex, rare", Class: ClassScan,
			Filter: regex(audittrail.FieldResource, "/"+regexp.QuoteMeta(rareName)+"$"), Param: fmt.Sprintf("`/%s$`", regexp.QuoteMeta(rareName))},
		{Key: "resource-regex-none", Title: "resource_regex, no match", Class: ClassScan,
			Filter: regex(audittrail.FieldResource, NoMatchRegex), Param: "`" + NoMatchRegex + "`"},
		{Key: "metadata-rare", Title: "metadata_exact, rare (request_id)", Class: ClassScan,
			Filter: audittrail.Filter{MetadataExact: map[string]string{"request_id": s.requestID}}, Param: "`request_id=" + s.requestID + "`"},
		{Key: "metadata-middling", Title: "metadata_exact, middling (feature)", Class: ClassScan,
			Filter: audittrail.Filter{MetadataExact: map[string]string{"feature": MiddlingFeature}}, Param: fmt.Sprintf("`feature=%s` (%s)", MiddlingFeature, pct(s.middling))},
		{Key: "metadata-common", Title: "metadata_exact, common (tenant)", Class: ClassScan,
			Filter: audittrail.Filter{MetadataExact: map[string]string{"tenant": tenant}}, Param: fmt.Sprintf("`tenant=%s` (%s)", tenant, pct(s.tenants[tenant]))},
		{Key: "principal-action-24h", Title: "principal exact + action_regex + last 24 h", Class: ClassIndex,
			Filter: combined, Param: fmt.Sprintf("popular principal, `%s`, from %s", MutationRegex, dayAgo.Format(time.RFC3339))},
		{Key: "page20", Title: "page 20 via page tokens, no filter", Class: ClassPaging, Page: 20},
		{Key: "page20-regex", Title: "page 20 via page tokens, action_regex `" + ActionCreateRegex + "`", Class: ClassPaging, Page: 20,
			Filter: regex(audittrail.FieldAction, ActionCreateRegex)},
		{Key: "drain", Title: fmt.Sprintf("all pages of a ~%s result (workspace exact, pages of 1000)", count(DrainTarget)), Class: ClassDrain, Drain: true,
			Filter: exact(audittrail.FieldWorkspace, drainWS), PageSize: 1000, Param: fmt.Sprintf("`%s`", drainWS)},
	}
	for _, q := range qs {
		// Every search ends at the end of the generated span. The server
		// writes an event of its own for each search (self-audit, with
		// the current time); without an end these would come first in
		// the queries that can match them, and the answers of the
		// servers would differ from the oracle's and PostgreSQL's.
		end := sample.DefaultEnd
		q.Filter.EndTime = &end
		if q.PageSize == 0 {
			q.PageSize = audittrail.DefaultPageSize
		}
		if q.Page == 0 {
			q.Page = 1
		}
	}
	return qs
}

// evaluate runs every query over the stream with audittrail.Query.Match and
// records the expected page (the newest matches, since the stream is in
// time order) and the number of matches.
func (d *Dataset) evaluate() {
	type state struct {
		q    *audittrail.Query
		ring []string
		n    int
		sum  uint64
	}
	st := make([]*state, len(d.Queries))
	for i, q := range d.Queries {
		cq, err := q.Filter.Compile(d.Now)
		if err != nil {
			panic(fmt.Sprintf("bench: query %s: %v", q.Key, err))
		}
		keep := q.PageSize * q.Page
		if q.Drain {
			keep = 0
		}
		st[i] = &state{q: cq, ring: make([]string, keep)}
	}
	// A batch's result: the matching ids of each query, in order.
	scan(d, func(first int, batch []item) [][]string {
		out := make([][]string, len(st))
		for _, it := range batch {
			e := d.Prepare(it.id, it.ne)
			for i, s := range st {
				if s.q.Match(e) {
					out[i] = append(out[i], e.ID)
				}
			}
		}
		return out
	}, func(out [][]string) {
		for i, s := range st {
			for _, id := range out[i] {
				if len(s.ring) > 0 {
					s.ring[s.n%len(s.ring)] = id
				}
				s.n++
				s.sum ^= idHash(id)
			}
		}
	})
	for i, q := range d.Queries {
		s := st[i]
		q.Matches = s.n
		q.DrainSum = s.sum
		if q.Drain {
			continue
		}
		// Newest first: ring positions n-1, n-2, ...; the timed page is
		// the last PageSize of the newest PageSize*Page.
		var newest []string
		for j := 1; j <= min(s.n, len(s.ring)); j++ {
			newest = append(newest, s.ring[(s.n-j)%len(s.ring)])
		}
		lo := min((q.Page-1)*q.PageSize, len(newest))
		q.Expected = newest[lo:]
	}
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// sortedCounts returns the counts of m, largest first, skipping "".
func sortedCounts(m map[string]int) []int {
	var out []int
	for k, c := range m {
		if k != "" {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b int) int { return cmp.Compare(b, a) })
	return out
}
