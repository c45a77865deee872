package storetest

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// testPaging covers pagination through the Service: ties, page tokens, and
// data arriving while a caller pages.
func (s *suite) testPaging(t *testing.T) {
	t.Run("TiesAcrossPages", func(t *testing.T) {
		f := s.open(t)
		rng := rand.New(rand.NewPCG(11, 11))
		times := []time.Time{base, base.Add(1), base.Add(time.Millisecond), base.Add(time.Hour)}
		var g ids
		var stored []*audittrail.Event
		for range 5 {
			var batch []*audittrail.Event
			for range 6 {
				batch = append(batch, mkEvent(t, g.next(), times[rng.IntN(len(times))]))
			}
			stored = append(stored, f.append(batch...)...)
		}
		want := newestFirst(stored)
		svc := newService(f.store, key1)
		for _, size := range []int{1, 2, 3, 7, 29, 30, 31, 0} {
			if d := diffEvents(want, drain(t, as("users/auditor"), svc, audittrail.Filter{}, size)); d != "" {
				t.Fatalf("page size %d: %s", size, d)
			}
		}
		// Only some events match, and ties among them span pages.
		q := audittrail.Filter{Regex: regex(audittrail.FieldEventSource, "^h2oai"), ReadOnly: ptr(false)}
		if d := diffEvents(want, drain(t, as("users/auditor"), svc, q, 1)); d != "" {
			t.Fatalf("filtered, page size 1: %s", d)
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		f := s.open(t)
		var g ids
		var in []*audittrail.Event
		for i := range 10 {
			in = append(in, mkEvent(t, g.next(), base.Add(time.Duration(i)*time.Second), func(n *audittrail.NewEvent) {
				n.Event.Metadata = map[string]string{"k": "v"}
			}))
		}
		all := newestFirst(f.append(in...))
		svc := newService(f.store, key1)
		alice := as("users/alice")
		filter := audittrail.Filter{
			StartTime: ptr(base), Regex: regex(audittrail.FieldAction, "CREATE"),
			MetadataExact: map[string]string{"k": "v"}, IncludeTypes: []audittrail.EventType{audittrail.TypeAPI},
		}
		first, err := svc.SearchEvents(alice, audittrail.SearchEventsRequest{Filter: filter, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if d := diffEvents(all[:3], first.Events); d != "" {
			t.Fatalf("first page: %s", d)
		}
		tok := first.NextPageToken
		if tok == "" {
			t.Fatal("first page: no next_page_token")
		}
		next := func(ctx context.Context, svc *audittrail.Service, filter audittrail.Filter, size int, token string) (*audittrail.SearchEventsResponse, error) {
			return svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: filter, PageSize: size, PageToken: token})
		}
		refused := func(what string, ctx context.Context, svc *audittrail.Service, filter audittrail.Filter, token string) {
			t.Helper()
			resp, err := next(ctx, svc, filter, 3, token)
			if audittrail.ErrorCode(err) != audittrail.EInvalid {
				n := -1
				if resp != nil {
					n = len(resp.Events)
				}
				t.Errorf("%s: error %v with %d events, want EInvalid", what, err, n)
			}
		}

		// The token works, and is not bound to the page size.
		for _, size := range []int{3, 1, 0} {
			resp, err := next(alice, svc, filter, size, tok)
			if err != nil {
				t.Fatalf("second page, size %d: %v", size, err)
			}
			want := all[3:]
			if size != 0 {
				want = want[:size]
			}
			if d := diffEvents(want, resp.Events); d != "" {
				t.Errorf("second page, size %d: %s", size, d)
			}
		}

		// Tampering: every bit flip of the decoded token, truncation, garbage.
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("a page token is not unpadded base64url: %v", err)
		}
		for i := range raw {
			for _, bit := range []byte{0x01, 0x80} {
				b := []byte(string(raw))
				b[i] ^= bit
				refused("token with a bit flipped in byte "+strconv.Itoa(i), alice, svc, filter, base64.RawURLEncoding.EncodeToString(b))
			}
		}
		for _, n := range []int{1, 2, 4, len(tok) / 2, len(tok) - 4, len(tok) - 2, len(tok) - 1} {
			refused("token truncated to "+strconv.Itoa(n)+" characters", alice, svc, filter, tok[:n])
		}
		for _, garbage := range []string{
			"garbage", "!", "====", " ", tok + "A", tok + "AAAA", tok + "=", " " + tok, strings.ToUpper(tok),
			base64.RawURLEncoding.EncodeToString(make([]byte, len(raw))),
			base64.RawURLEncoding.EncodeToString(append([]byte{raw[0]}, make([]byte, len(raw)-1)...)),
			base64.StdEncoding.EncodeToString(raw),
			base64.RawURLEncoding.EncodeToString(append(raw[:len(raw):len(raw)], raw...)),
		} {
			if garbage == tok {
				continue
			}
			refused("garbage token "+strings.TrimSpace(garbage[:min(len(garbage), 12)]), alice, svc, filter, garbage)
		}

		// Another filter.
		changed := []struct {
			name string
			mod  func(*audittrail.Filter)
		}{
			{"start_event_time", func(f *audittrail.Filter) { f.StartTime = ptr(base.Add(-1)) }},
			{"start_event_time removed", func(f *audittrail.Filter) { f.StartTime = nil }},
			{"end_event_time", func(f *audittrail.Filter) { f.EndTime = ptr(now) }},
			{"action_regex", func(f *audittrail.Filter) { f.Regex[audittrail.FieldAction] = "CREAT" }},
			{"action_regex moved to action_exact", func(f *audittrail.Filter) {
				f.Regex[audittrail.FieldAction], f.Exact[audittrail.FieldAction] = "", "CREATE"
			}},
			{"action_regex moved to resource_regex", func(f *audittrail.Filter) {
				f.Regex[audittrail.FieldAction], f.Regex[audittrail.FieldResource] = "", "CREATE"
			}},
			{"principal_exact", func(f *audittrail.Filter) { f.Exact[audittrail.FieldPrincipal] = "users/alice" }},
			{"read_only false", func(f *audittrail.Filter) { f.ReadOnly = ptr(false) }},
			{"status_code_regex", func(f *audittrail.Filter) { f.StatusCodeRegex = "^0$" }},
			{"metadata_exact value", func(f *audittrail.Filter) { f.MetadataExact = map[string]string{"k": "w"} }},
			{"metadata_exact moved to metadata_regex", func(f *audittrail.Filter) {
				f.MetadataExact, f.MetadataRegex = nil, map[string]string{"k": "v"}
			}},
			{"include_types", func(f *audittrail.Filter) {
				f.IncludeTypes = []audittrail.EventType{audittrail.TypeAPI, audittrail.TypeSystem}
			}},
			{"include_types moved to exclude_types", func(f *audittrail.Filter) {
				f.IncludeTypes, f.ExcludeTypes = nil, []audittrail.EventType{audittrail.TypeAPI}
			}},
		}
		for _, c := range changed {
			other := filter
			other.MetadataExact = map[string]string{"k": "v"}
			c.mod(&other)
			refused("token reused with another filter ("+c.name+")", alice, svc, other, tok)
		}
		// Another caller, or none.
		refused("token of alice used by bob", as("users/bob"), svc, filter, tok)
		refused("token of alice used without a principal", context.Background(), svc, filter, tok)
		anon, err := svc.SearchEvents(context.Background(), audittrail.SearchEventsRequest{Filter: filter, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		refused("token of an anonymous caller used by alice", alice, svc, filter, anon.NextPageToken)

		// Another Service with the same key continues; another key refuses.
		if d := diffEvents(all[3:], drainFrom(t, alice, newService(f.store, key1), filter, 4, tok)); d != "" {
			t.Errorf("new service with the same key: %s", d)
		}
		refused("token checked with another key", alice, newService(f.store, key2), filter, tok)
	})

	t.Run("IngestWhilePaging", func(t *testing.T) {
		// Between pages, events arrive: in the future (after the range end
		// fixed at the first page), in the part already returned, in the part
		// not yet reached, and anywhere. Events that existed at the first
		// page come exactly once; future events and events in the returned
		// part never come; events older than everything come.
		f := s.open(t)
		rng := rand.New(rand.NewPCG(3, 3))
		var g ids
		times := make([]time.Time, 10)
		for i := range times {
			times[i] = base.Add(time.Duration(i) * time.Minute)
		}
		var initial []*audittrail.Event
		for range 40 {
			initial = append(initial, mkEvent(t, g.next(), times[rng.IntN(len(times))]))
		}
		initial = f.append(initial...)
		svc := newService(f.store, key1)
		ctx := as("users/auditor")
		var got []*audittrail.Event
		mustCome := map[string]bool{}
		mustNotCome := map[string]string{}
		mayCome := map[string]position{} // id -> last position returned before it arrived
		token := ""
		for page := 0; ; page++ {
			resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{PageSize: 3, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, resp.Events...)
			if resp.NextPageToken == "" {
				break
			}
			token = resp.NextPageToken
			if len(got) == 0 {
				continue
			}
			last := got[len(got)-1]
			var batch []*audittrail.Event
			future := mkEvent(t, g.next(), now.Add(time.Duration(rng.IntN(1000))))
			mustNotCome[future.ID] = "its time is at or after the range end fixed at the first page"
			batch = append(batch, future)
			// At the time of the last returned event: a greater seq puts it
			// before that event.
			tie := mkEvent(t, g.next(), last.EventTime)
			mustNotCome[tie.ID] = "it ties with the last returned event and has a greater seq"
			newer := mkEvent(t, g.next(), last.EventTime.Add(time.Duration(1+rng.IntN(int(now.Sub(last.EventTime)-1)))))
			mustNotCome[newer.ID] = "it is newer than the last returned event"
			// Older than everything stored: the search has not reached it.
			old := mkEvent(t, g.next(), base.Add(-time.Duration(page+1)*time.Hour))
			mustCome[old.ID] = true
			anywhere := mkEvent(t, g.next(), times[rng.IntN(len(times))].Add(time.Duration(rng.IntN(3))))
			mayCome[anywhere.ID] = pos(last)
			batch = append(batch, tie, newer, old, anywhere)
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			// The newest initial event not returned yet: the cursor is before
			// it, so an event after it is in what remains.
			returned := map[string]bool{}
			for _, e := range got {
				returned[e.ID] = true
			}
			var next *audittrail.Event
			for _, e := range newestFirst(initial) {
				if !returned[e.ID] {
					next = e
					break
				}
			}
			for _, e := range f.append(batch...) {
				if _, ok := mayCome[e.ID]; ok && next != nil && comparePos(pos(e), pos(next)) > 0 {
					mustCome[e.ID] = true
				}
			}
			if page > 200 {
				t.Fatal("paging does not end")
			}
		}
		checkStrictOrder(t, got)
		seen := map[string]bool{}
		for _, e := range got {
			seen[e.ID] = true
			if why, ok := mustNotCome[e.ID]; ok {
				t.Errorf("event %s (%v) arrived during paging and was returned, though %s", e.ID, e.EventTime, why)
			}
			if p, ok := mayCome[e.ID]; ok && comparePos(pos(e), p) <= 0 {
				t.Errorf("event %s arrived during paging at a position before the last returned one, and was returned", e.ID)
			}
		}
		for _, e := range initial {
			if !seen[e.ID] {
				t.Errorf("event %s (%v, seq %d) existed at the first page and was skipped", e.ID, e.EventTime, e.Seq)
			}
		}
		for id := range mustCome {
			if !seen[id] {
				t.Errorf("event %s arrived during paging in the part not yet reached, and was not returned", id)
			}
		}
	})

	t.Run("ConcurrentIngest", func(t *testing.T) {
		// Appends run concurrently with a paging caller: the events that
		// existed at the first page come exactly once, in order, and no event
		// at or after the range end comes.
		f := s.open(t)
		var g ids
		rng := rand.New(rand.NewPCG(5, 5))
		var initial []*audittrail.Event
		for range 60 {
			initial = append(initial, mkEvent(t, g.next(), base.Add(time.Duration(rng.IntN(30))*time.Minute)))
		}
		initial = f.append(initial...)
		svc := newService(f.store, key1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 9))
				for range 150 {
					select {
					case <-stop:
						return
					default:
					}
					var batch []*audittrail.Event
					for range 1 + rng.IntN(3) {
						at := base.Add(time.Duration(rng.IntN(40)-5) * time.Minute)
						if rng.IntN(3) == 0 {
							at = now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
						}
						batch = append(batch, mkEvent(t, g.next(), at))
					}
					if _, err := f.store.Append(context.Background(), batch); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			}()
		}
		var got []*audittrail.Event
		func() {
			defer func() { close(stop); wg.Wait() }()
			got = drain(t, as("users/auditor"), svc, audittrail.Filter{}, 2)
		}()
		seen := map[string]int{}
		for _, e := range got {
			seen[e.ID]++
			if !e.EventTime.Before(now) {
				t.Errorf("event %s at %v is not before the range end %v", e.ID, e.EventTime, now)
			}
		}
		for _, e := range initial {
			if seen[e.ID] != 1 {
				t.Errorf("event %s existed at the first page and came %d times", e.ID, seen[e.ID])
			}
		}
	})
}

// drainFrom continues a search at token until its last page.
func drainFrom(t testing.TB, ctx context.Context, svc *audittrail.Service, f audittrail.Filter, size int, token string) []*audittrail.Event {
	t.Helper()
	var out []*audittrail.Event
	for page := 0; ; page++ {
		resp, err := svc.SearchEvents(ctx, audittrail.SearchEventsRequest{Filter: f, PageSize: size, PageToken: token})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		out = append(out, resp.Events...)
		if resp.NextPageToken == "" || page > 10000 {
			return out
		}
		token = resp.NextPageToken
	}
}
