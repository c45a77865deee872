package pebblestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestPowerLoss cuts the power under load. The store runs on Pebble's
// crashable in-memory file system while writers append batches and single
// events and the verifiable log integrates and signs checkpoints; at a
// random moment the file system is cloned as a power cut leaves a disk:
// everything that was synced, and of what was not, none, some (whole
// blocks and directory entries drawn at random: torn writes) or all. The
// store opened on the clone must:
//   - hold every event acknowledged before the cut, as it was acknowledged
//     (same seq, same receive time), and nothing that was never sent;
//   - have seqs without gaps, and indexes that agree with the records
//     (searches find exactly what the records hold);
//   - continue the log: its tree, integrated again, is consistent with the
//     checkpoint the log had published before the cut, and the offline
//     audit (logsign.AuditStore) finds nothing wrong;
//   - recognise a retry of every event sent before the cut: those it holds
//     keep their seq, the others are stored once, after the rest.
//
// A kill -9 of the server keeps what the kernel has accepted, so it is the
// kinder case; the end-to-end crash test (client/crash_test.go) covers it
// through the binary.
//
// The "spread" cases store most values inline (a small DictionaryLimit: the
// posting lists of hashed values, the value column) and spread the events
// over days, so over several epochs of the posting lists, late events
// landing in older ones.
func TestPowerLoss(t *testing.T) {
	for i, unsynced := range []int{0, 30, 70, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			powerLoss(t, uint64(i+1), unsynced, false)
		})
	}
	for i, unsynced := range []int{30, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%,spread", unsynced), func(t *testing.T) {
			powerLoss(t, uint64(i+11), unsynced, true)
		})
	}
}

func powerLoss(t *testing.T, seed uint64, unsyncedPercent int, spread bool) {
	ctx := context.Background()
	r := mrand.New(mrand.NewPCG(seed, 0xc0ffee))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	skey, vkey, err := merkle.GenerateKey(rand.Reader, "test.example/power-loss")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := merkle.NewSigner([]byte(skey))
	if err != nil {
		t.Fatal(err)
	}
	newLog := func(s *pebblestore.Store) *logsign.Log {
		t.Helper()
		// Several checkpoints are signed before the cut. Not much more
		// often: every integration is a synced write, which makes the
		// appends before it durable too, and would hide an append
		// acknowledged before its own sync.
		l, err := logsign.New(ctx, logsign.Config{Store: s, Signer: signer, VerifierKey: vkey,
			Interval: 20 * time.Millisecond, SignInterval: 40 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	mem := vfs.NewCrashableMem()
	cfg := pebblestore.WithFSForTest(pebblestore.Config{Dir: "/data", CacheSize: 16 << 20, Logger: quiet}, mem)
	if spread {
		cfg.DictionaryLimit = 64
	}
	s := openStoreConfig(t, cfg)
	lg := newLog(s)
	run, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { lg.Run(run) })

	var (
		mu    sync.Mutex
		sent  = map[string]*audittrail.Event{} // every event given to Append
		acked = map[string]*audittrail.Event{} // as Append returned it
	)
	for w := range 6 {
		g := newGen(seed*100 + uint64(w))
		if spread {
			g.maxStep = 10 * time.Minute
		}
		wg.Go(func() {
			for run.Err() == nil {
				n := 1 // two writers send single events, like the self-audit
				if w < 4 {
					n = 1 + g.r.IntN(400)
				}
				batch := g.batch(n)
				mu.Lock()
				for _, e := range batch {
					sent[e.ID] = e
				}
				mu.Unlock()
				res, err := s.Append(ctx, batch)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Err != nil {
						t.Errorf("event %s: %v", batch[i].ID, r.Err)
					}
					acked[batch[i].ID] = r.Event
				}
				mu.Unlock()
			}
		})
	}

	time.Sleep(time.Duration(150+r.IntN(300)) * time.Millisecond)
	// What the writers and the log's readers had been told before the cut.
	mu.Lock()
	ackedBefore := maps.Clone(acked)
	mu.Unlock()
	_, published := lg.Checkpoint()
	disk := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent, RNG: r})
	stop()
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	if published == nil || len(ackedBefore) == 0 {
		t.Fatalf("nothing to check: %d events acknowledged, checkpoint %v before the cut", len(ackedBefore), published)
	}

	s = openStoreConfig(t, pebblestore.WithFSForTest(cfg, disk))
	defer s.Close()
	last := s.LastSeq()
	t.Logf("%d events sent, %d acknowledged before the cut, %d recovered; checkpoint of %d published before it; %d epochs of posting lists",
		len(sent), len(ackedBefore), last, published.Size, len(s.EpochsForTest()))
	if spread && len(s.EpochsForTest()) < 2 {
		t.Fatalf("the recovered events are in %d epochs of the posting lists: the test does not cross epochs", len(s.EpochsForTest()))
	}

	// Every seq from 1 to the last, each event one that was sent, and each
	// acknowledged one as it was acknowledged.
	all, err := s.EventsBySeq(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(all)) != last {
		t.Fatalf("%d events for seqs 1 to %d", len(all), last)
	}
	recovered := map[string]*audittrail.Event{}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("seq %d read at position %d", e.Seq, i+1)
		}
		if recovered[e.ID] != nil {
			t.Fatalf("event %s stored twice (seqs %d and %d)", e.ID, recovered[e.ID].Seq, e.Seq)
		}
		recovered[e.ID] = e
		if sent[e.ID] == nil {
			t.Fatalf("event %s (seq %d) was never sent", e.ID, e.Seq)
		}
		if a := acked[e.ID]; a != nil {
			if d := cmp.Diff(a, e); d != "" {
				t.Fatalf("event %s differs from its acknowledgement (-acked +recovered):\n%s", e.ID, d)
			}
		}
	}
	lost := 0
	for id := range ackedBefore {
		if recovered[id] == nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d events acknowledged before the cut are lost", lost, len(ackedBefore))
	}

	// The indexes agree with the records.
	q := compile(t, audittrail.Filter{})
	if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1000, 0)); d != "" {
		t.Fatalf("search without a filter (-records +search):\n%s", d)
	}
	for range 20 {
		q := compile(t, randomFilter(r, all))
		if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1+r.IntN(300), 0)); d != "" {
			t.Fatalf("search %v (-records +search):\n%s", q, d)
		}
	}
	// The resource, principal and metadata pairs of two events of every
	// epoch, the sparse epochs of late events included: mostly rare
	// values, read from their posting lists epoch by epoch.
	byEpoch := map[uint32][]*audittrail.Event{}
	for _, e := range all {
		ep := pebblestore.EpochOfForTest(e.EventTime.UnixNano())
		byEpoch[ep] = append(byEpoch[ep], e)
	}
	for _, ep := range slices.Sorted(maps.Keys(byEpoch)) {
		events := byEpoch[ep]
		for range 2 {
			e := events[r.IntN(len(events))]
			filters := []audittrail.Filter{{}, {}}
			filters[0].Exact[audittrail.FieldResource] = e.Resource
			filters[1].Exact[audittrail.FieldPrincipal] = e.Principal
			for k, v := range e.Metadata {
				filters = append(filters, audittrail.Filter{MetadataExact: map[string]string{k: v}})
			}
			for _, f := range filters {
				q := compile(t, f)
				if d := diff(bruteForce(all, q, nil), drain(t, s, q, 1+r.IntN(50), 0)); d != "" {
					t.Fatalf("search %v (-records +search):\n%s", q, d)
				}
			}
		}
	}

	// The log goes on from what the disk kept, consistent with what it had
	// published.
	lg = newLog(s)
	if err := lg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, now := lg.Checkpoint()
	if now.Size != last || now.Size < published.Size {
		t.Fatalf("checkpoint of %d after the cut, %d events recovered, %d published before", now.Size, last, published.Size)
	}
	proof, err := lg.ConsistencyProof(published.Size, now.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(published, now, proof); err != nil {
		t.Fatalf("the tree after the cut is not consistent with the checkpoint published before it: %v", err)
	}
	report, err := logsign.AuditStore(ctx, s, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() || report.Covered != last {
		t.Fatalf("offline audit after the cut: ok %v, covered %d of %d: %+v", report.OK(), report.Covered, last, report)
	}

	// Retries of everything sent: held events keep their seq, the others
	// follow the recovered ones, once each.
	var retry []*audittrail.Event
	for _, e := range sent {
		retry = append(retry, e)
	}
	next := last + 1
	for start := 0; start < len(retry); start += audittrail.MaxBatch {
		batch := retry[start:min(start+audittrail.MaxBatch, len(retry))]
		for i, res := range mustAppend(t, s, batch) {
			id := batch[i].ID
			switch held := recovered[id]; {
			case held != nil && res.Event.Seq != held.Seq:
				t.Fatalf("retry of %s: seq %d, stored at %d", id, res.Event.Seq, held.Seq)
			case held == nil && res.Event.Seq != next:
				t.Fatalf("retry of %s, lost in the cut: seq %d, want %d", id, res.Event.Seq, next)
			case held == nil:
				next++
			}
		}
	}
	if s.LastSeq() != uint64(len(sent)) {
		t.Fatalf("after the retries the store holds %d events, %d were sent", s.LastSeq(), len(sent))
	}
}
