package pebblestore_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/google/uuid"
)

// gen produces a deterministic stream of realistic prepared events, shaped
// like production traffic (and like internal/sample, which is not used here
// so that these tests depend on nothing but the domain): ~5,000 principals,
// 200 workspaces, 40 services with ~300 actions, Zipf popularity, resources
// that are nearly unique per event, metadata with unique request and trace
// ids, a few request parameters. Times increase with jitter; one event in
// ten arrives up to ten minutes late.
type gen struct {
	r          *rand.Rand
	t          time.Time
	principals []string
	agents     []string
	homeIPs    []string
	workspaces []string
	actions    []genAction
	pz, wz, az *rand.Zipf
	// maxStep bounds the time from one event to the next (random below
	// it); 100 ms unless set. A tenth of the events are late by up to
	// 1,500 steps (10 minutes unless set).
	maxStep time.Duration
}

type genAction struct {
	service, collection, name string
	readOnly                  bool
}

var (
	genServices = []string{"enginemanager", "appstore", "mlops", "notebook", "featurestore", "drive", "storage", "authz",
		"workspace", "telemetry", "keycloak", "secure-store", "model-registry", "deployer", "scoring",
		"driverless", "h2o3", "sparkling", "label-genie", "document-ai", "llmstudio", "h2ogpte", "eval-studio",
		"hydrogen-torch", "wave", "launcher", "billing", "notification", "scheduler", "pipeline", "dataset",
		"connector", "gateway", "orchestrator", "discovery", "admin-console", "quota", "license", "backup", "monitoring"}
	genCollections = []string{"daiEngines", "h2oEngines", "apps", "appInstances", "deployments", "models", "notebooks",
		"projects", "secrets", "datasets", "pipelines", "runs", "experiments", "keys", "users", "roles", "bindings"}
	genVerbs  = []string{"CREATE", "GET", "LIST", "UPDATE", "DELETE", "ADMIN_DELETE", "ADMIN_GET", "DOWNLOAD", "UPLOAD"}
	genAgents = []string{"h2o-audit-trail-python/1.5.3",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"grpc-go/1.85.0", "h2o-cli/2.4.1", "python-requests/2.32.3", ""}
	genMeta = []struct {
		key  string
		vals []string // nil: a unique hex id
		hex  int
	}{
		{"feature", []string{"autoscaling", "gpu", "sharing", "scheduling", "export", "sso"}, 0},
		{"region", []string{"us-east-1", "us-west-2", "eu-central-1", "eu-west-1", "ap-southeast-1"}, 0},
		{"request_id", nil, 16},
		{"trace_id", nil, 32},
		{"client_version", []string{"1.5.3", "1.4.0", "2.0.0-rc1"}, 0},
		{"cluster", []string{"prod-a", "prod-b", "staging"}, 0},
		{"tenant", []string{"acme", "globex", "initech", "umbrella"}, 0},
	}
	genParams = []struct {
		key  string
		vals []string
	}{
		{"page_size", []string{"10", "50", "100", "1000"}},
		{"filter", []string{"state=RUNNING", "owner=me", "", "labels.team=ml"}},
		{"order_by", []string{"create_time desc", "name", "update_time"}},
		{"view", []string{"BASIC", "FULL"}},
		{"update_mask", []string{"display_name", "spec.replicas", "labels"}},
	}
)

func newGen(seed uint64) *gen {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	g := &gen{r: r, t: time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)}
	for range 200 {
		g.workspaces = append(g.workspaces, g.uuid())
	}
	for i := range 5000 {
		if i < 250 {
			g.principals = append(g.principals, "services/"+genServices[i%len(genServices)]+"-"+strconv.Itoa(i))
		} else {
			g.principals = append(g.principals, "users/"+g.uuid())
		}
		g.agents = append(g.agents, genAgents[r.IntN(len(genAgents))])
		g.homeIPs = append(g.homeIPs, g.ip())
	}
	seen := map[string]bool{}
	for len(g.actions) < 300 {
		svc := genServices[len(g.actions)%len(genServices)]
		col := genCollections[r.IntN(len(genCollections))]
		verb := genVerbs[r.IntN(len(genVerbs))]
		a := genAction{svc, col, "actions/" + svc + "/" + col + "/" + verb, verb == "GET" || verb == "LIST" || verb == "ADMIN_GET" || verb == "DOWNLOAD"}
		if !seen[a.name] {
			seen[a.name] = true
			g.actions = append(g.actions, a)
		}
	}
	g.pz = rand.NewZipf(r, 1.1, 2, uint64(len(g.principals)-1))
	g.wz = rand.NewZipf(r, 1.2, 2, uint64(len(g.workspaces)-1))
	g.az = rand.NewZipf(r, 1.1, 4, uint64(len(g.actions)-1))
	return g
}

func (g *gen) uuid() string {
	var u uuid.UUID
	for i := 0; i < 16; i += 8 {
		v := g.r.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

func (g *gen) ip() string {
	r := g.r
	if r.IntN(5) == 0 {
		return "10." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
	}
	return strconv.Itoa(1+r.IntN(99)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
}

func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(16)]
	}
	return string(b)
}

// next returns the next event, prepared as the service would.
func (g *gen) next() *audittrail.Event {
	r := g.r
	step := 100 * time.Millisecond
	if g.maxStep > 0 {
		step = g.maxStep
	}
	g.t = g.t.Add(time.Duration(r.IntN(int(step/time.Microsecond))) * time.Microsecond)
	et := g.t
	if r.IntN(10) == 0 {
		// Late: up to 10 minutes, or 1,500 steps when they are set.
		if g.maxStep > 0 {
			et = et.Add(-time.Duration(r.Int64N(int64(1500 * g.maxStep))))
		} else {
			et = et.Add(-time.Duration(r.IntN(600)) * time.Second)
		}
	}
	pi := g.pz.Uint64()
	a := g.actions[g.az.Uint64()]
	e := audittrail.Event{
		EventTime:   et,
		EventSource: "h2oai-" + a.service + "-server",
		Action:      a.name,
		ReadOnly:    a.readOnly,
		Principal:   g.principals[pi],
		UserAgent:   g.agents[pi],
		SourceIP:    g.homeIPs[pi],
	}
	if r.IntN(5) == 0 {
		e.SourceIP = g.ip()
	}
	e.Resource = "//" + a.service
	if r.IntN(100) >= 15 {
		e.Resource += "/workspaces/" + g.workspaces[g.wz.Uint64()]
	}
	e.Resource += "/" + a.collection + "/" + a.collection[:len(a.collection)-1] + "-" + strconv.Itoa(1000+r.IntN(9000))
	switch x := r.IntN(100); {
	case x < 90:
		e.Type = audittrail.TypeAPI
	case x < 98:
		e.Type = audittrail.TypeSystem
	}
	switch x := r.IntN(1000); {
	case x < 20:
	case x < 870:
		e.Status = &audittrail.Status{Code: 0}
	case x < 920:
		e.Status = &audittrail.Status{Code: 3, Message: "invalid " + a.collection + ": name is required"}
	case x < 960:
		e.Status = &audittrail.Status{Code: 5, Message: a.collection + " not found"}
	case x < 990:
		e.Status = &audittrail.Status{Code: 7, Message: "permission denied: " + a.name}
	default:
		e.Status = &audittrail.Status{Code: 13, Message: "internal error"}
	}
	if n := r.IntN(5); n > 0 {
		e.Metadata = make(map[string]string, n)
		for _, i := range r.Perm(len(genMeta))[:n] {
			m := genMeta[i]
			if m.vals == nil {
				e.Metadata[m.key] = g.hex(m.hex)
			} else {
				e.Metadata[m.key] = m.vals[r.IntN(len(m.vals))]
			}
		}
	}
	if n := r.IntN(4); n > 0 {
		e.RequestParameters = make(map[string]string, n)
		for _, i := range r.Perm(len(genParams))[:n] {
			p := genParams[i]
			e.RequestParameters[p.key] = p.vals[r.IntN(len(p.vals))]
		}
	}
	pe, err := audittrail.PrepareNewEvent(g.uuid(), audittrail.NewEvent{Event: e}, et.Add(time.Duration(r.IntN(900))*time.Millisecond), false)
	if err != nil {
		panic(err)
	}
	return pe
}

func (g *gen) batch(n int) []*audittrail.Event {
	out := make([]*audittrail.Event, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

func openStore(t testing.TB, dir string) *pebblestore.Store {
	t.Helper()
	return openStoreConfig(t, storeConfig(dir))
}

// storeConfig is the configuration openStore opens dir with.
func storeConfig(dir string) pebblestore.Config {
	return pebblestore.Config{Dir: dir, CacheSize: 64 << 20}
}

func openStoreConfig(t testing.TB, cfg pebblestore.Config) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopenAsFormat marks s as a store of storage format v (written by an
// earlier build), closes it and opens it again with cfg: Open must move it
// to this build's format.
func reopenAsFormat(t testing.TB, s *pebblestore.Store, cfg pebblestore.Config, v byte) *pebblestore.Store {
	t.Helper()
	if err := s.SetFormatForTest(v); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreConfig(t, cfg)
	if got, err := s.FormatForTest(); err != nil || got != pebblestore.FormatVersionForTest {
		t.Fatalf("format after opening a format %d store: %d, %v; want %d", v, got, err, pebblestore.FormatVersionForTest)
	}
	return s
}

func mustAppend(t testing.TB, s *pebblestore.Store, events []*audittrail.Event) []audittrail.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
	}
	return res
}

// appendBatches appends batches batches of size new events of g, one call
// each, and returns the stored events.
func appendBatches(t testing.TB, s *pebblestore.Store, g *gen, batches, size int) []*audittrail.Event {
	t.Helper()
	var all []*audittrail.Event
	for range batches {
		all = append(all, stored(mustAppend(t, s, g.batch(size)))...)
	}
	return all
}

func TestGeneratorEventSize(t *testing.T) {
	g := newGen(1)
	total := 0
	const n = 2000
	for range n {
		total += len(mustJSON(t, g.next()))
	}
	t.Logf("mean JSON size %d bytes", total/n)
}
