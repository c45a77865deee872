package postgres_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
)

// TestOutage restarts the database under a store that is ingesting: during
// the outage every request fails at once with EUnavailable, afterwards the
// store works again by itself, and every event it acknowledged is there,
// with gap-free seqs. It is run with a clean shutdown and with a crash
// (immediate shutdown: the server recovers from its WAL).
func TestOutage(t *testing.T) {
	for _, mode := range []string{"stop", "crash"} {
		t.Run(mode, func(t *testing.T) {
			c := pgtest.New(t)
			url := c.NewDatabase(t)
			s := mustOpen(t, url)
			defer s.Close()

			var (
				n        atomic.Uint64
				mu       sync.Mutex
				acked    = map[string]*audittrail.Event{}
				failures = map[string]int{}
				stop     = make(chan struct{})
				wg       sync.WaitGroup
			)
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						var batch []*audittrail.Event
						for range 1 + (w+i)%4 {
							batch = append(batch, newEvent(t, n.Add(1), base.Add(time.Duration(n.Load())*time.Millisecond)))
						}
						res, err := s.Append(context.Background(), batch)
						mu.Lock()
						if err != nil {
							failures[audittrail.ErrorCode(err)]++
						} else {
							for _, r := range res {
								acked[r.Event.ID] = r.Event
							}
						}
						mu.Unlock()
						if err != nil {
							time.Sleep(20 * time.Millisecond) // a producer backs off
						}
					}
				}()
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(acked)
			}
			waitFor := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s", what)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			waitFor("the first acknowledged events", func() bool { return count() >= 50 })

			if mode == "crash" {
				c.Crash(t)
			} else {
				c.Stop(t)
			}
			before := count()
			// During the outage: fast failures with EUnavailable.
			for i := range 5 {
				start := time.Now()
				_, err := s.Append(context.Background(), []*audittrail.Event{newEvent(t, 1_000_000+uint64(i), base)})
				checkUnavailable(t, "Append", err, time.Since(start))
				start = time.Now()
				_, err = s.Search(context.Background(), audittrail.SearchRequest{Query: everything, Limit: 10})
				checkUnavailable(t, "Search", err, time.Since(start))
				start = time.Now()
				checkUnavailable(t, "Ping", s.Ping(context.Background()), time.Since(start))
			}
			time.Sleep(200 * time.Millisecond)
			if after := count(); after != before {
				t.Errorf("%d events acknowledged while the database was down", after-before)
			}

			c.Start(t)
			// The store resumes by itself: the producers get through again.
			waitFor("appends to succeed after the restart", func() bool { return count() >= before+50 })
			close(stop)
			wg.Wait()
			if err := s.Ping(context.Background()); err != nil {
				t.Errorf("Ping after the restart: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("%d events acknowledged, failures by code: %v", len(acked), failures)
			if failures[audittrail.EUnavailable] == 0 {
				t.Error("no append failed with EUnavailable during the outage")
			}
			for code, k := range failures {
				if code != audittrail.EUnavailable {
					t.Errorf("%d appends failed with code %q, want only %q", k, code, audittrail.EUnavailable)
				}
			}
			// Every acknowledged event is there, as acknowledged; the log
			// has no gaps (appends whose outcome was unknown may be there
			// too).
			got := searchAll(t, s, everything, 1000)
			checkLog(t, got)
			byID := map[string]*audittrail.Event{}
			for _, e := range got {
				byID[e.ID] = e
			}
			for id, e := range acked {
				if g := byID[id]; g == nil || g.Seq != e.Seq {
					t.Errorf("acknowledged event %s (seq %d) is stored as %v", id, e.Seq, g)
				}
			}
			// A fresh store on the restarted database agrees.
			s2 := mustOpen(t, url)
			defer s2.Close()
			if n := len(searchAll(t, s2, everything, 1000)); n != len(got) {
				t.Errorf("a new store sees %d events, the old one %d", n, len(got))
			}
		})
	}
}

func checkUnavailable(t *testing.T, op string, err error, took time.Duration) {
	t.Helper()
	if audittrail.ErrorCode(err) != audittrail.EUnavailable {
		t.Errorf("%s during the outage: %v, want an EUnavailable error", op, err)
	} else if msg := audittrail.ErrorMessage(err); !strings.Contains(msg, "unavailable") {
		t.Errorf("%s during the outage: message %q does not say the database is unavailable", op, msg)
	}
	if took > 2*time.Second {
		t.Errorf("%s during the outage took %v; it must fail fast", op, took)
	}
}
