package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

var base = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)

// newEvent returns a prepared event with id number n at time at.
func newEvent(t testing.TB, n uint64, at time.Time) *audittrail.Event {
	t.Helper()
	e, err := audittrail.PrepareNewEvent(fmt.Sprintf("00000000-0000-4000-8000-%012x", n), audittrail.NewEvent{Event: audittrail.Event{
		EventTime: at, EventSource: "src", Action: "act", Principal: "users/p", SourceIP: "1.1.1.1",
	}}, at.Add(time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var everything = func() *audittrail.Query {
	f := audittrail.Filter{StartTime: ptr(audittrail.MinEventTime), EndTime: ptr(audittrail.MaxEventTime)}
	q, err := f.Compile(time.Now())
	if err != nil {
		panic(err)
	}
	return q
}()

// searchAll drains a search on st, pages of limit.
func searchAll(t testing.TB, st audittrail.Store, q *audittrail.Query, limit int) []*audittrail.Event {
	t.Helper()
	var out []*audittrail.Event
	var after *audittrail.Cursor
	for {
		res, err := st.Search(context.Background(), audittrail.SearchRequest{Query: q, After: after, Limit: limit})
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		out = append(out, res.Events...)
		if res.Next == nil {
			return out
		}
		after = res.Next
	}
}

// checkLog checks that events hold each id once and the seqs 1..len
// without gaps.
func checkLog(t testing.TB, events []*audittrail.Event) {
	t.Helper()
	seqs := make([]uint64, 0, len(events))
	ids := map[string]bool{}
	for _, e := range events {
		if ids[e.ID] {
			t.Errorf("event %s comes twice", e.ID)
		}
		ids[e.ID] = true
		seqs = append(seqs, e.Seq)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("the seqs of %d events are not 1..%d: position %d holds %d", len(seqs), len(seqs), i, s)
		}
	}
}

// TestReplicas runs two stores on one database, as two replicas of the
// service do: concurrent appends through both get unique, gap-free seqs;
// a reader never sees a seq whose predecessor is not visible; searches
// through either see every acknowledged event once; a page token of one
// works on the other.
func TestReplicas(t *testing.T) {
	url := pgtest.Start(t)
	replicas := []*postgres.Store{mustOpen(t, url), mustOpen(t, url)}
	for _, s := range replicas {
		defer s.Close()
	}
	const workers, calls = 3, 25 // per replica
	var (
		n        atomic.Uint64
		mu       sync.Mutex
		acked    = map[string]*audittrail.Event{}
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		readerWG sync.WaitGroup
	)
	// A reader checks, while appends run, that every snapshot holds a
	// prefix of the log: seqs 1..max, no gaps.
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := replicas[i%2].Search(context.Background(), audittrail.SearchRequest{Query: everything, Limit: audittrail.MaxPageSize})
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			if res.Next != nil {
				t.Errorf("reader: more than %d events; the test expects fewer", audittrail.MaxPageSize)
				return
			}
			checkLog(t, res.Events)
		}
	}()
	for r, s := range replicas {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(r), uint64(w)))
				for range calls {
					var batch []*audittrail.Event
					for range 1 + rng.IntN(5) {
						batch = append(batch, newEvent(t, n.Add(1), base.Add(time.Duration(rng.IntN(100))*time.Second)))
					}
					res, err := s.Append(context.Background(), batch)
					if err != nil {
						t.Errorf("replica %d: Append: %v", r, err)
						return
					}
					mu.Lock()
					for _, x := range res {
						if x.Err != nil {
							t.Errorf("replica %d: %v", r, x.Err)
							continue
						}
						acked[x.Event.ID] = x.Event
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	readerWG.Wait()
	if t.Failed() {
		return
	}
	var want []*audittrail.Event
	for _, e := range acked {
		want = append(want, e)
	}
	checkLog(t, want)
	for r, s := range replicas {
		got := searchAll(t, s, everything, 37)
		if len(got) != len(acked) {
			t.Errorf("replica %d: %d events, %d acknowledged", r, len(got), len(acked))
		}
		checkLog(t, got)
		for _, e := range got {
			if a := acked[e.ID]; a == nil || a.Seq != e.Seq {
				t.Errorf("replica %d: event %s with seq %d, acknowledged %v", r, e.ID, e.Seq, a)
			}
		}
	}

	// The replicas share the page token key.
	k0, err := replicas[0].PageTokenKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	k1, err := replicas[1].PageTokenKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k0, k1) || len(k0) != audittrail.PageTokenKeySize || bytes.Equal(k0, make([]byte, len(k0))) {
		t.Errorf("page token keys of the replicas: %x and %x; want one random key", k0, k1)
	}

	// Cursors and page tokens move between replicas.
	all := searchAll(t, replicas[0], everything, 1000)
	var mixed []*audittrail.Event
	var after *audittrail.Cursor
	for i := 0; ; i++ {
		res, err := replicas[i%2].Search(context.Background(), audittrail.SearchRequest{Query: everything, After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		mixed = append(mixed, res.Events...)
		if res.Next == nil {
			break
		}
		after = res.Next
	}
	if !slices.EqualFunc(all, mixed, func(a, b *audittrail.Event) bool { return a.ID == b.ID }) {
		t.Errorf("paging across replicas: %d events, want the %d of one replica in the same order", len(mixed), len(all))
	}
	now := base.Add(time.Hour)
	svc := func(s audittrail.Store) *audittrail.Service {
		return &audittrail.Service{Store: s, PageTokenKey: k0, Now: func() time.Time { return now }}
	}
	ctx := audittrail.NewContextWithPrincipal(context.Background(), &audittrail.Principal{Name: "users/auditor", Roles: []audittrail.Role{audittrail.RoleAuditor}})
	filter := audittrail.Filter{Regex: field(audittrail.FieldAction, "^act$")}
	var viaTokens []*audittrail.Event
	token := ""
	for i := 0; ; i++ {
		resp, err := svc(replicas[i%2]).SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: 50, PageToken: token})
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		viaTokens = append(viaTokens, resp.Events...)
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if !slices.EqualFunc(all, viaTokens, func(a, b *audittrail.Event) bool { return a.ID == b.ID }) {
		t.Errorf("page tokens across replicas: %d events, want %d", len(viaTokens), len(all))
	}
}

// TestMigrationRace opens stores on a fresh database at once, as replicas
// starting together do: every Open succeeds and each migration is applied
// once.
func TestMigrationRace(t *testing.T) {
	url := pgtest.Start(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Config{URL: url, Logger: testLogger(t)})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		} else {
			defer stores[i].Close()
		}
	}
	if t.Failed() {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions, distinct, newest int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT version), max(version) FROM schema_migrations").Scan(&versions, &distinct, &newest); err != nil {
		t.Fatal(err)
	}
	if versions != postgres.SchemaVersion() || distinct != versions || newest != postgres.SchemaVersion() {
		t.Errorf("schema_migrations: %d rows, %d versions, newest %d; want each of 1..%d once", versions, distinct, newest, postgres.SchemaVersion())
	}
	// The first page token keys, asked for at once, are one key.
	keys := make([][]byte, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = stores[i].PageTokenKey(ctx)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("PageTokenKey of store %d: %x, %v; store 0 has %x", i, keys[i], errs[i], keys[0])
		}
	}
	// The stores work.
	res, err := stores[0].Append(ctx, []*audittrail.Event{newEvent(t, 1, base)})
	if err != nil || res[0].Err != nil || res[0].Event.Seq != 1 {
		t.Fatalf("Append after racing Opens: %v %+v", err, res)
	}
	if got := searchAll(t, stores[n-1], everything, 10); len(got) != 1 {
		t.Errorf("Search through another store: %d events, want 1", len(got))
	}
}
