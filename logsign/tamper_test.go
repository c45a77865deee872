package logsign_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/postgres"
)

// The tamper tests change one stored event directly in storage, with the
// store closed, in each way a tamperer could: (a) change a field, (b)
// delete it, (c) swap the positions (seqs) of two events, (d) insert a
// forged event into the history (renumbering the ones after it), and (e)
// insert one beside the log (in the events searches read, not at a log
// position). AuditStore must find each and name the leaf (or, for (e), the
// event), on both stores.

// logStore is what the tamper tests need of a store.
type logStore interface {
	audittrail.Store
	audittrail.LogStore
}

// tamperTarget is one store, closed between the tamper steps.
type tamperTarget struct {
	// reset makes the next open start a new, empty store.
	reset func()
	open  func(t *testing.T) logStore
	// Each tamper function runs with the store closed. seq values are
	// 1-based log positions; events are as stored.
	change func(t *testing.T, seq uint64, old, new string)
	delete func(t *testing.T, e *audittrail.Event)
	swap   func(t *testing.T, a, b *audittrail.Event)
	insert func(t *testing.T, at uint64, copyOf *audittrail.Event, all []*audittrail.Event) string // returns the forged id
	beside func(t *testing.T, copyOf *audittrail.Event, seq uint64) string
}

const tamperEvents = 30

// prepareLog appends 30 events in three calls, each followed by a signed
// checkpoint (sizes 10, 20, 30), closes the store and returns the events and
// the log's public key.
func prepareLog(t *testing.T, tt *tamperTarget) ([]*audittrail.Event, string) {
	t.Helper()
	ctx := t.Context()
	tt.reset()
	st := tt.open(t)
	signer, vkey, err := logsign.LoadOrCreateKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := logsign.New(ctx, logsign.Config{Store: st, Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var all []*audittrail.Event
	for from := 0; from < tamperEvents; from += 10 {
		var evs []*audittrail.Event
		// Event times out of seq order (a permutation), receive times in
		// it: storage order, by event time, is not seq order, which the
		// audit of the embedded store must handle.
		for i := from; i < from+10; i++ {
			evs = append(evs, &audittrail.Event{
				ID:          uuid.NewString(),
				EventTime:   base.Add(time.Duration(i*7%tamperEvents) * time.Second),
				ReceiveTime: base.Add(time.Duration(i) * time.Millisecond),
				EventSource: "test",
				Action:      "create",
				Principal:   "alice",
				Resource:    fmt.Sprintf("res-target-%04d", i+1), // the seq
				Metadata:    map[string]string{"k": "v"},
			})
		}
		res, err := st.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			all = append(all, r.Event)
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := logsign.AuditStore(ctx, st, vkey)
	if err != nil || !rep.OK() || rep.Leaves != tamperEvents || rep.Checked != 3 || rep.Covered != tamperEvents || !rep.Searched {
		t.Fatalf("audit before tampering: %+v %+v, %v", rep, rep.AuditReport, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return all, vkey
}

// audit reopens the store and audits it.
func audit(t *testing.T, tt *tamperTarget, vkey string) (*logsign.StoreReport, error) {
	t.Helper()
	st := tt.open(t)
	defer st.Close()
	return logsign.AuditStore(t.Context(), st, vkey)
}

// wantDivergence checks that the audit found the first divergent leaf
// exactly at index leaf.
func wantDivergence(t *testing.T, rep *logsign.StoreReport, err error, leaf uint64) {
	t.Helper()
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	d := rep.Divergence
	if d == nil || !d.Exact || d.FirstLeaf != leaf || rep.OK() {
		t.Fatalf("divergence %+v, want exactly leaf %d (seq %d)", d, leaf, leaf+1)
	}
}

func runTamperTests(t *testing.T, tt *tamperTarget) {
	t.Run("Untouched", func(t *testing.T) {
		_, vkey := prepareLog(t, tt)
		rep, err := audit(t, tt, vkey)
		if err != nil || !rep.OK() {
			t.Fatalf("audit of an untouched store: %+v, %v", rep, err)
		}
	})
	t.Run("ChangeField", func(t *testing.T) {
		_, vkey := prepareLog(t, tt)
		tt.change(t, 13, "res-target-0013", "res-target-9999")
		rep, err := audit(t, tt, vkey)
		wantDivergence(t, rep, err, 12)
	})
	t.Run("Delete", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		tt.delete(t, all[12])
		_, err := audit(t, tt, vkey)
		var le *logsign.LeafError
		if !errors.As(err, &le) || le.Leaf != 12 {
			t.Fatalf("audit after deleting seq 13: %v; want a LeafError of leaf 12", err)
		}
		if le.Signed == nil || le.Signed.Size != 20 || le.LeafHash != merkle.LeafHash(all[12]) {
			t.Fatalf("LeafError %+v: want the deleted event's leaf hash proven by the checkpoint of size 20", le)
		}
	})
	t.Run("Swap", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		tt.swap(t, all[12], all[16])
		rep, err := audit(t, tt, vkey)
		wantDivergence(t, rep, err, 12)
	})
	t.Run("InsertIntoHistory", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		forged := tt.insert(t, 13, all[4], all)
		st := tt.open(t)
		rep, err := logsign.AuditStore(t.Context(), st, vkey)
		evs, rerr := st.EventsBySeq(t.Context(), 13, 13)
		st.Close()
		wantDivergence(t, rep, err, 12)
		if rerr != nil || evs[0].ID != forged {
			t.Fatalf("seq 13 after the insertion: %v %v, want the forged event %s", evs, rerr, forged)
		}
		if rep.Leaves != tamperEvents+1 || rep.Covered != tamperEvents {
			t.Errorf("audit after the insertion: %d leaves, covered %d; want %d, %d", rep.Leaves, rep.Covered, tamperEvents+1, tamperEvents)
		}
	})
	t.Run("InsertBesideLog", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		forged := tt.beside(t, all[4], tamperEvents+1)
		rep, err := audit(t, tt, vkey)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Divergence != nil || rep.OK() || rep.NotInLogCount != 1 || rep.NotInLog[0] != (logsign.SearchedEvent{ID: forged, Seq: tamperEvents + 1}) {
			t.Fatalf("audit after an insertion beside the log: %+v; want event %s (seq %d) reported as not in the log", rep, forged, tamperEvents+1)
		}
	})
}

// TestTamperPebble runs the tamper tests on the embedded store, rewriting
// its Pebble keys (pebblestore's raw key layout) with the store closed.
func TestTamperPebble(t *testing.T) {
	var dir string
	// pos holds the log positions (seq → event time) during a raw change:
	// read before it, written back after it (pebblestore packs them).
	var pos map[uint64]int64
	raw := func(t *testing.T, f func(db *pebble.DB, b *pebble.Batch)) {
		t.Helper()
		db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
		if err != nil {
			t.Fatal(err)
		}
		if pos, err = pebblestore.RawPositions(db); err != nil {
			t.Fatal(err)
		}
		b := db.NewBatch()
		f(db, b)
		if err := pebblestore.RawWritePositions(b, pos); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, db *pebble.DB, k []byte) []byte {
		t.Helper()
		v, closer, err := db.Get(k)
		if err != nil {
			t.Fatalf("key %x: %v", k, err)
		}
		defer closer.Close()
		return bytes.Clone(v)
	}
	set := func(t *testing.T, b *pebble.Batch, k, v []byte) {
		t.Helper()
		if err := b.Set(k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	del := func(t *testing.T, b *pebble.Batch, k []byte) {
		t.Helper()
		if err := b.Delete(k, nil); err != nil {
			t.Fatal(err)
		}
	}
	uid := func(id string) [16]byte { return uuid.MustParse(id) }
	// position reads the time and record of the event at seq.
	position := func(t *testing.T, db *pebble.DB, seq uint64) (int64, []byte) {
		ns, ok := pos[seq]
		if !ok {
			t.Fatalf("seq %d has no log position", seq)
		}
		return ns, get(t, db, pebblestore.RawEventKey(ns, seq))
	}
	// place writes an event's record at seq, with its log position and id.
	place := func(t *testing.T, b *pebble.Batch, seq uint64, ns int64, rec []byte, id string) {
		pos[seq] = ns
		set(t, b, pebblestore.RawEventKey(ns, seq), rec)
		set(t, b, pebblestore.RawIDKey(uid(id)), pebblestore.RawIDValue(seq))
	}
	// forge copies a record under a new id (the record holds the id).
	forge := func(t *testing.T, rec []byte, of *audittrail.Event) ([]byte, string) {
		old := uid(of.ID)
		if bytes.Count(rec, old[:]) != 1 {
			t.Fatalf("the record of %s does not hold its id once", of.ID)
		}
		id := uuid.New()
		return bytes.Replace(rec, old[:], id[:], 1), id.String()
	}
	tt := &tamperTarget{
		open: func(t *testing.T) logStore {
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "db")
			}
			return openStore(t, dir)
		},
		change: func(t *testing.T, _ uint64, old, new string) {
			Tamper(t, dir, []byte(old), []byte(new))
		},
		delete: func(t *testing.T, e *audittrail.Event) {
			raw(t, func(db *pebble.DB, b *pebble.Batch) {
				ns, _ := position(t, db, e.Seq)
				delete(pos, e.Seq)
				del(t, b, pebblestore.RawEventKey(ns, e.Seq))
				del(t, b, pebblestore.RawIDKey(uid(e.ID)))
			})
		},
		swap: func(t *testing.T, x, y *audittrail.Event) {
			raw(t, func(db *pebble.DB, b *pebble.Batch) {
				nx, rx := position(t, db, x.Seq)
				ny, ry := position(t, db, y.Seq)
				del(t, b, pebblestore.RawEventKey(nx, x.Seq))
				del(t, b, pebblestore.RawEventKey(ny, y.Seq))
				place(t, b, x.Seq, ny, ry, y.ID)
				place(t, b, y.Seq, nx, rx, x.ID)
			})
		},
		insert: func(t *testing.T, at uint64, copyOf *audittrail.Event, all []*audittrail.Event) string {
			var forged string
			raw(t, func(db *pebble.DB, b *pebble.Batch) {
				for seq := uint64(len(all)); seq >= at; seq-- {
					ns, rec := position(t, db, seq)
					del(t, b, pebblestore.RawEventKey(ns, seq))
					place(t, b, seq+1, ns, rec, all[seq-1].ID)
				}
				ns, rec := position(t, db, copyOf.Seq)
				rec, forged = forge(t, rec, copyOf)
				place(t, b, at, ns, rec, forged)
			})
			return forged
		},
		beside: func(t *testing.T, copyOf *audittrail.Event, seq uint64) string {
			var forged string
			raw(t, func(db *pebble.DB, b *pebble.Batch) {
				ns, rec := position(t, db, copyOf.Seq)
				rec, forged = forge(t, rec, copyOf)
				set(t, b, pebblestore.RawEventKey(ns, seq), rec) // a record only: no log position
			})
			return forged
		},
	}
	tt.reset = func() { dir = "" }
	runTamperTests(t, tt)
	// The embedded store's audit reads the records in storage order and
	// places each by its seq: a record with a log seq but not at that
	// seq's position is beside the log.
	t.Run("InsertAtLogSeq", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		var forged string
		raw(t, func(db *pebble.DB, b *pebble.Batch) {
			ns, rec := position(t, db, all[4].Seq)
			rec, forged = forge(t, rec, all[4])
			set(t, b, pebblestore.RawEventKey(ns+1, all[4].Seq), rec) // seq 5's number, another time
		})
		rep, err := audit(t, tt, vkey)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Divergence != nil || rep.OK() || rep.NotInLogCount != 1 || rep.NotInLog[0] != (logsign.SearchedEvent{ID: forged, Seq: all[4].Seq}) {
			t.Fatalf("audit after an insertion at seq 5 beside the log: %+v; want event %s (seq 5) reported as not in the log", rep, forged)
		}
	})
	// A record that cannot be decoded stops the storage-order scan; the
	// audit falls back to reading by seq, which names the leaf.
	t.Run("CorruptRecord", func(t *testing.T) {
		all, vkey := prepareLog(t, tt)
		raw(t, func(db *pebble.DB, b *pebble.Batch) {
			ns, _ := position(t, db, all[12].Seq)
			set(t, b, pebblestore.RawEventKey(ns, all[12].Seq), []byte{0xff, 0xff})
		})
		_, err := audit(t, tt, vkey)
		var le *logsign.LeafError
		if !errors.As(err, &le) || le.Leaf != 12 || le.Signed == nil || le.LeafHash != merkle.LeafHash(all[12]) {
			t.Fatalf("audit after corrupting seq 13's record: %v; want a LeafError of leaf 12 with its signed leaf hash", err)
		}
	})
}

// TestTamperPostgres runs the tamper tests on the PostgreSQL store, with SQL
// run directly on its database while no store is open.
func TestTamperPostgres(t *testing.T) {
	var url string
	sql := func(t *testing.T, stmts ...string) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, s := range stmts {
				tag, err := tx.Exec(ctx, s)
				if err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
				if tag.RowsAffected() == 0 {
					return fmt.Errorf("%s: no row", s)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// copyEvent is an INSERT of a copy of the event at seq from, with id and
	// seq changed.
	copyEvent := func(from, seq uint64, id string) string {
		return fmt.Sprintf(`INSERT INTO events SELECT event_time_ns, %d, receive_time_ns, '%s'::uuid, status_code, type, read_only,
			event_source, action, principal, source_ip, resource, workspace, user_agent, status_message, request_parameters, metadata
			FROM events WHERE seq = %d`, seq, id, from)
	}
	tt := &tamperTarget{
		open: func(t *testing.T) logStore {
			if url == "" {
				url = pgtest.Start(t)
			}
			st, err := postgres.Open(t.Context(), postgres.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		change: func(t *testing.T, seq uint64, old, new string) {
			sql(t, fmt.Sprintf("UPDATE events SET resource = '%s' WHERE seq = %d AND resource = '%s'", new, seq, old))
		},
		delete: func(t *testing.T, e *audittrail.Event) {
			sql(t, fmt.Sprintf("DELETE FROM events WHERE seq = %d", e.Seq), fmt.Sprintf("DELETE FROM event_ids WHERE seq = %d", e.Seq))
		},
		swap: func(t *testing.T, x, y *audittrail.Event) {
			sql(t,
				fmt.Sprintf("UPDATE events SET seq = CASE seq WHEN %[1]d THEN %[2]d ELSE %[1]d END WHERE seq IN (%[1]d, %[2]d)", x.Seq, y.Seq),
				fmt.Sprintf("UPDATE event_ids SET seq = -seq WHERE seq IN (%d, %d)", x.Seq, y.Seq), // seq is unique: through negatives
				fmt.Sprintf("UPDATE event_ids SET seq = CASE seq WHEN -%[1]d THEN %[2]d ELSE %[1]d END WHERE seq IN (-%[1]d, -%[2]d)", x.Seq, y.Seq))
		},
		insert: func(t *testing.T, at uint64, copyOf *audittrail.Event, _ []*audittrail.Event) string {
			forged := uuid.NewString()
			sql(t,
				fmt.Sprintf("UPDATE events SET seq = seq + 1 WHERE seq >= %d", at),
				fmt.Sprintf("UPDATE event_ids SET seq = -(seq + 1) WHERE seq >= %d", at),
				"UPDATE event_ids SET seq = -seq WHERE seq < 0",
				"UPDATE log_head SET seq = seq + 1",
				copyEvent(copyOf.Seq, at, forged),
				fmt.Sprintf("INSERT INTO event_ids SELECT id, seq, event_time_ns FROM events WHERE id = '%s'", forged))
			return forged
		},
		beside: func(t *testing.T, copyOf *audittrail.Event, seq uint64) string {
			forged := uuid.NewString()
			sql(t, copyEvent(copyOf.Seq, seq, forged)) // events only: neither event_ids nor log_head
			return forged
		},
	}
	tt.reset = func() { url = "" }
	runTamperTests(t, tt)
}
