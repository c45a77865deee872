// Package sample generates realistic audit events, deterministically: the
// same seed and options give the same events, in the same order, on every
// machine. `audittrail create --sample N` uses it for demo data, tests use it
// as a model of production traffic, and benchmarks as their load.
//
// The events look like those of an H2O AI Cloud installation: about 5,000
// principals (users/<uuid>, 5% services/<name>), 200 workspaces, 40 services
// each with its event source (h2oai-<service>-server) and its actions
// (actions/<service>/<collection>/<VERB>), resources under their workspace
// (//<service>/workspaces/<id>/<collection>/<name>) or outside any, public and
// private source addresses, a few metadata entries and request parameters,
// mostly successful API calls. Principals, actions and workspaces are drawn
// with Zipf-like popularity, so a few of each account for much of the
// traffic, as they do in real logs. Event times increase, with jitter, over a
// span that ends at a chosen time.
package sample

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
)

// Options shape the generated events. Zero fields take the defaults below.
type Options struct {
	// Events is the number of events the span is divided into: event i
	// falls in the i-th of Events equal slots. Events generated beyond it
	// continue at the same rate past End. Default 10,000.
	Events int
	// Span is the time the events cover, ending at End. Default 720h.
	Span time.Duration
	// End is the time after the last event. Default DefaultEnd (fixed, so
	// that the default output does not depend on the clock).
	End time.Time

	Principals int // distinct principals; default 5,000
	Workspaces int // distinct workspaces; default 200
	Services   int // distinct services, hence event sources; default 40
	Actions    int // distinct actions; default 300
}

// DefaultEnd is the End of Options that give none.
var DefaultEnd = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Shares of the generated traffic, in percent.
const (
	ServicePrincipalPercent = 5  // of principals: services/<name>, the rest users/<uuid>
	NoWorkspacePercent      = 15 // of events: resource outside any workspace
)

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Events, 10_000)
	def(&o.Principals, 5_000)
	def(&o.Workspaces, 200)
	def(&o.Services, 40)
	def(&o.Actions, 300)
	if o.Span <= 0 {
		o.Span = 720 * time.Hour
	}
	if o.End.IsZero() {
		o.End = DefaultEnd
	}
	o.End = o.End.UTC()
	return o
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	opts  Options
	rng   *rand.Rand
	start time.Time
	slot  float64 // nanoseconds per event
	n     int     // events generated so far

	principals []principal
	workspaces []string
	services   []string
	actions    []action

	principalZipf, workspaceZipf, actionZipf *rand.Zipf
}

type principal struct {
	name   string
	homeIP string // where most of its requests come from
	agent  string
}

type action struct {
	service, collection, verb string
	name                      string // actions/<service>/<collection>/<VERB>
	readOnly                  bool
}

// New returns a generator of the events for seed and opts.
func New(seed int64, opts Options) *Generator {
	o := opts.withDefaults()
	g := &Generator{
		opts:  o,
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x5eed_a0d1_7a11)),
		start: o.End.Add(-o.Span),
		slot:  float64(o.Span) / float64(o.Events),
	}
	g.services = pickServices(g.rng, o.Services)
	g.actions = buildActions(g.rng, g.services, o.Actions)
	for range o.Workspaces {
		g.workspaces = append(g.workspaces, g.uuid())
	}
	services := o.Principals * ServicePrincipalPercent / 100
	for i := range o.Principals {
		var name string
		if i < services {
			name = "services/" + g.services[i%len(g.services)]
			if i >= len(g.services) {
				name += "-" + serviceRoles[(i/len(g.services))%len(serviceRoles)] + "-" + strconv.Itoa(i/len(g.services)/len(serviceRoles))
			}
		} else {
			name = "users/" + g.uuid()
		}
		g.principals = append(g.principals, principal{name: name, homeIP: g.ip(), agent: pick(g.rng, userAgents)})
	}
	// Popularity follows the rank in a shuffled order, so that services and
	// users mix among the busiest principals.
	g.rng.Shuffle(len(g.principals), func(i, j int) { g.principals[i], g.principals[j] = g.principals[j], g.principals[i] })
	g.rng.Shuffle(len(g.actions), func(i, j int) { g.actions[i], g.actions[j] = g.actions[j], g.actions[i] })
	g.principalZipf = rand.NewZipf(g.rng, 1.1, 2, uint64(len(g.principals)-1))
	g.workspaceZipf = rand.NewZipf(g.rng, 1.2, 2, uint64(len(g.workspaces)-1))
	g.actionZipf = rand.NewZipf(g.rng, 1.1, 4, uint64(len(g.actions)-1))
	return g
}

// Next returns the next event and its id (a UUIDv4). Every event it returns
// passes audittrail.PrepareNewEvent.
func (g *Generator) Next() (id string, e audittrail.NewEvent) {
	r := g.rng
	id = g.uuid()
	p := g.principals[g.principalZipf.Uint64()]
	a := g.actions[g.actionZipf.Uint64()]

	ev := &e.Event
	ev.EventTime = g.eventTime()
	g.n++
	ev.EventSource = "h2oai-" + a.service + "-server"
	ev.Action = a.name
	ev.ReadOnly = a.readOnly
	ev.Principal = p.name
	ev.UserAgent = p.agent
	ev.SourceIP = p.homeIP
	if r.IntN(5) == 0 {
		ev.SourceIP = g.ip()
	}

	ws := ""
	if r.IntN(100) >= NoWorkspacePercent {
		ws = g.workspaces[g.workspaceZipf.Uint64()]
	}
	ev.Resource = "//" + a.service
	if ws != "" {
		ev.Resource += "/workspaces/" + ws
	}
	ev.Resource += "/" + a.collection
	if a.verb != "LIST" {
		ev.Resource += "/" + resourceName(r, a.collection)
	}

	switch x := r.IntN(100); {
	case x < 90:
		ev.Type = audittrail.TypeAPI
	case x < 98:
		ev.Type = audittrail.TypeSystem
	default:
		ev.Type = audittrail.TypeUnspecified
	}
	ev.Status = g.status(a)

	if n := r.IntN(5); n > 0 {
		ev.Metadata = make(map[string]string, n)
		for _, i := range r.Perm(len(metadataKeys))[:n] {
			ev.Metadata[metadataKeys[i].key] = metadataKeys[i].value(r)
		}
	}
	if n := r.IntN(4); n > 0 {
		ev.RequestParameters = make(map[string]string, n)
		for _, i := range r.Perm(len(requestParams))[:n] {
			ev.RequestParameters[requestParams[i].key] = requestParams[i].value(r)
		}
	}
	return id, e
}

// eventTime places event n in its slot, at a random point of it, to the
// microsecond (what clients such as Python's datetime carry). Times never
// decrease from one event to the next.
func (g *Generator) eventTime() time.Time {
	off := (float64(g.n) + g.rng.Float64()) * g.slot
	t := g.start.Add(time.Duration(off)).Truncate(time.Microsecond)
	return t
}

// status is mostly OK; some failures with their usual codes, and a few
// events (as from external systems) without status.
func (g *Generator) status(a action) *audittrail.Status {
	switch x := g.rng.IntN(1000); {
	case x < 20:
		return nil
	case x < 870:
		return &audittrail.Status{Code: 0}
	case x < 920:
		return &audittrail.Status{Code: 3, Message: "invalid " + singular(a.collection) + ": " + pick(g.rng, invalidReasons)}
	case x < 960:
		return &audittrail.Status{Code: 5, Message: singular(a.collection) + " not found"}
	case x < 990:
		return &audittrail.Status{Code: 7, Message: "permission denied: " + a.name}
	default:
		return &audittrail.Status{Code: 13, Message: "internal error"}
	}
}

// uuid draws a UUIDv4 from the generator's random source.
func (g *Generator) uuid() string {
	var u uuid.UUID
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

// ip is a source address: public IPv4 mostly, some public IPv6, and a share
// of private addresses (callers inside the cluster or a VPN).
func (g *Generator) ip() string {
	r := g.rng
	switch x := r.IntN(100); {
	case x < 20:
		var a [4]byte
		switch r.IntN(3) {
		case 0:
			a = [4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))}
		case 1:
			a = [4]byte{192, 168, byte(r.IntN(256)), byte(1 + r.IntN(254))}
		default:
			a = [4]byte{172, byte(16 + r.IntN(16)), byte(r.IntN(256)), byte(1 + r.IntN(254))}
		}
		return netip.AddrFrom4(a).String()
	case x < 30:
		// Public IPv6 in 2a00::/12 and 2600::/12 (Europe and North America).
		pre := pick(r, []uint16{0x2a00, 0x2600})
		b := [16]byte{byte(pre >> 8), byte(pre) | byte(r.IntN(16))}
		for i := 2; i < 16; i++ {
			b[i] = byte(r.IntN(256))
		}
		return netip.AddrFrom16(b).String()
	}
	for {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		if a.IsGlobalUnicast() && !a.IsPrivate() && a.As4()[0] != 100 { // 100/8 holds the shared (CGNAT) range
			return a.String()
		}
	}
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func resourceName(r *rand.Rand, collection string) string {
	return kebab(singular(collection)) + "-" + strconv.Itoa(1000+r.IntN(9000))
}

// pickServices returns n service names: the known ones first, then numbered
// extras.
func pickServices(r *rand.Rand, n int) []string {
	out := make([]string, 0, n)
	for _, i := range r.Perm(len(serviceNames)) {
		if len(out) == n {
			break
		}
		out = append(out, serviceNames[i])
	}
	for i := len(out); i < n; i++ {
		out = append(out, "service"+strconv.Itoa(i))
	}
	return out
}

// buildActions returns n actions spread over the services: each service gets
// collections, each collection the usual verbs, until n are made.
func buildActions(r *rand.Rand, services []string, n int) []action {
	var out []action
	seen := map[string]bool{}
	for round := 0; len(out) < n; round++ {
		for _, svc := range services {
			if len(out) == n {
				break
			}
			col := collections[r.IntN(len(collections))]
			if round >= len(collections) {
				col += strconv.Itoa(round)
			}
			verb := verbs[r.IntN(len(verbs))]
			a := action{service: svc, collection: col, verb: verb.name, readOnly: verb.readOnly}
			a.name = "actions/" + svc + "/" + col + "/" + verb.name
			if seen[a.name] {
				continue
			}
			seen[a.name] = true
			out = append(out, a)
		}
		if round > 100*n {
			panic(fmt.Sprintf("sample: cannot make %d distinct actions", n))
		}
	}
	return out
}

func singular(s string) string {
	if len(s) > 1 && s[len(s)-1] == 's' {
		return s[:len(s)-1]
	}
	return s
}

// kebab turns "daiEngine" into "dai-engine".
func kebab(s string) string {
	b := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			b = append(b, '-', c+'a'-'A')
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

var serviceNames = []string{
	"enginemanager", "appstore", "mlops", "notebook", "featurestore", "drive", "storage", "authz",
	"workspace", "telemetry", "keycloak", "secure-store", "model-registry", "deployer", "scoring",
	"driverless", "h2o3", "sparkling", "label-genie", "document-ai", "llmstudio", "h2ogpte", "eval-studio",
	"hydrogen-torch", "wave", "launcher", "billing", "notification", "scheduler", "pipeline", "dataset",
	"connector", "gateway", "orchestrator", "discovery", "admin-console", "quota", "license", "backup", "monitoring",
}

var serviceRoles = []string{"worker", "controller", "scheduler", "operator", "reconciler"}

var collections = []string{
	"daiEngines", "h2oEngines", "apps", "appInstances", "deployments", "models", "notebooks", "projects",
	"secrets", "datasets", "pipelines", "runs", "experiments", "keys", "users", "roles", "bindings",
	"features", "buckets", "files", "jobs", "schedules", "connections", "collections", "documents",
}

var verbs = []struct {
	name     string
	readOnly bool
}{
	{"CREATE", false}, {"GET", true}, {"LIST", true}, {"UPDATE", false}, {"DELETE", false},
	{"ADMIN_DELETE", false}, {"ADMIN_GET", true}, {"ADMIN_LIST", true}, {"PAUSE", false}, {"RESUME", false},
	{"DOWNLOAD", true}, {"UPLOAD", false},
}

var userAgents = []string{
	"h2o-audit-trail-python/1.5.3",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"grpc-go/1.85.0",
	"h2o-cli/2.4.1",
	"python-requests/2.32.3",
	"",
}

var invalidReasons = []string{"name is required", "display_name is too long", "unknown field \"spec\"", "version must be semver"}

type keyGen struct {
	key   string
	value func(r *rand.Rand) string
}

func oneOf(vals ...string) func(r *rand.Rand) string {
	return func(r *rand.Rand) string { return pick(r, vals) }
}

func hexID(n int) func(r *rand.Rand) string {
	return func(r *rand.Rand) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
}

var metadataKeys = []keyGen{
	{"feature", featureFlag},
	{"region", oneOf("us-east-1", "us-west-2", "eu-central-1", "eu-west-1", "ap-southeast-1")},
	{"request_id", hexID(16)},
	{"trace_id", hexID(32)},
	{"client_version", oneOf("1.5.3", "1.4.0", "2.0.0-rc1")},
	{"cluster", oneOf("prod-a", "prod-b", "staging")},
	{"tenant", oneOf("acme", "globex", "initech", "umbrella")},
}

// Feature flags (metadata "feature"): f0 ... f63, Zipf-like (weight 1/(k+1)),
// so that their values span the selectivities between a rare id and a
// common tenant: f0 is on about 6 % of the events, f12 (the value issue 6's
// PostgreSQL reference searched for) on about 0.5 %, f63 on 0.1 %.
const featureFlags = 64

// featureCDF is the cumulative share of f0 ... fk among the feature flags.
var featureCDF = func() []float64 {
	cdf := make([]float64, featureFlags)
	sum := 0.0
	for k := range cdf {
		sum += 1 / float64(k+1)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return cdf
}()

func featureFlag(r *rand.Rand) string {
	x := r.Float64()
	k, _ := slices.BinarySearch(featureCDF, x)
	return "f" + strconv.Itoa(min(k, featureFlags-1))
}

var requestParams = []keyGen{
	{"page_size", oneOf("10", "50", "100", "1000")},
	{"filter", oneOf("state=RUNNING", "owner=me", "", "labels.team=ml")},
	{"order_by", oneOf("create_time desc", "name", "update_time")},
	{"view", oneOf("BASIC", "FULL")},
	{"update_mask", oneOf("display_name", "spec.replicas", "labels")},
	{"validate_only", oneOf("true", "false")},
}

// Batches returns g's next n events as the service stores them
// (PrepareNewEvent at receivedAt), in batches of size (the last one may be
// shorter).
func (g *Generator) Batches(n, size int, receivedAt time.Time, redactPrivateIPs bool) ([][]*audittrail.Event, error) {
	var batches [][]*audittrail.Event
	for done := 0; done < n; done += size {
		batch := make([]*audittrail.Event, 0, min(size, n-done))
		for range cap(batch) {
			id, ne := g.Next()
			e, err := audittrail.PrepareNewEvent(id, ne, receivedAt, redactPrivateIPs)
			if err != nil {
				return nil, err
			}
			batch = append(batch, e)
		}
		batches = append(batches, batch)
	}
	return batches, nil
}

// AppendConcurrently appends the batches to st from callers goroutines,
// each taking the next batch when its last one is stored, as concurrent
// producers do. It appends every batch and returns the first error.
func AppendConcurrently(ctx context.Context, st audittrail.Store, batches [][]*audittrail.Event, callers int) error {
	next := make(chan []*audittrail.Event)
	go func() {
		for _, batch := range batches {
			next <- batch
		}
		close(next)
	}()
	_, err := AppendFrom(ctx, st, next, callers)
	return err
}

// AppendFrom appends the batches received from next to st from callers
// goroutines until next is closed (a producer may make them meanwhile),
// and returns the latency of every call, in the order they ended, and the
// first error: a call's, or one event's (AppendResult.Err).
func AppendFrom(ctx context.Context, st audittrail.Store, next <-chan []*audittrail.Event, callers int) ([]time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		first error
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range next {
				t0 := time.Now()
				res, err := st.Append(ctx, batch)
				d := time.Since(t0)
				for i := 0; err == nil && i < len(res); i++ {
					err = res[i].Err
				}
				mu.Lock()
				lat = append(lat, d)
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, first
}
