package pebblestore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
	"github.com/cockroachdb/pebble/v2"
)

// Read-only readers for the offline audit of the verifiable log
// (logsign.AuditStore, docs/design/verifiable-log.md, "`audittrail verify`"): the
// log positions (the s range) in one pass, and every event record (the
// primary range) in storage order on several goroutines, instead of a point
// read of the record of each seq. Storage order is (event time, seq), which
// is not seq order: the audit places each record by its seq.

// LogPositions reads the log positions 1..len(ns): ns[i] is the time (Unix
// nanoseconds) of the event at seq i+1, so that its record is the one of key
// (ns[i], i+1). It returns how many positions from seq 1 on it read without
// a gap: n < len(ns) means that seq n+1 has no position (it was deleted, or
// the store ends before it), and ns from n on is not meaningful. workers
// goroutines read parts of the range.
func (s *Store) LogPositions(ctx context.Context, ns []int64, workers int) (n int, err error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	parts := max(1, min(workers, len(ns)/logPositionsMinPart))
	type part struct {
		from, to int // indexes [from, to)
		n        int // positions read without a gap from from on
		err      error
	}
	ps := make([]part, parts)
	var wg sync.WaitGroup
	for i := range ps {
		p := &ps[i]
		p.from, p.to = len(ns)*i/parts, len(ns)*(i+1)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.n, p.err = s.readPositions(ctx, ns[p.from:p.to], uint64(p.from)+1)
		}()
	}
	wg.Wait()
	for _, p := range ps {
		n += p.n
		if p.err != nil || p.from+p.n < p.to {
			return n, p.err
		}
	}
	return n, nil
}

// logPositionsMinPart is the fewest positions LogPositions gives a
// goroutine (a variable for tests).
var logPositionsMinPart = 1 << 16

// readPositions reads the positions of seqs first.. into ns, as
// LogPositions, and returns how many it read before a gap.
func (s *Store) readPositions(ctx context.Context, ns []int64, first uint64) (n int, err error) {
	if len(ns) == 0 {
		return 0, nil
	}
	errGap := errors.New("gap")
	err = s.positions(ctx, first, first+uint64(len(ns))-1, func(seq uint64, t int64) error {
		if seq != first+uint64(n) {
			return errGap
		}
		ns[n] = t
		n++
		return nil
	})
	if err == errGap {
		err = nil
	}
	return n, err
}

// auditScanChunksPerWorker cuts the primary range into this many slices
// (of about equal event counts) per worker, handed out in turn, so that a
// slow slice does not leave a core idle at the end.
const auditScanChunksPerWorker = 16

// ScanEvents reads every event record of the primary range, in storage order
// within each of several slices of it, on workers goroutines, and calls
// fn(worker, e, params, meta) for each (worker in [0, workers)). It decodes
// each record into an Event that the worker reuses, without its maps (nil):
// its request parameters and metadata are params and meta, sorted by key,
// each key once (as the leaf encoding wants them: merkle.LeafHasher's
// HashSorted). e, the entries and every string they hold are valid only
// during the call; copy what must be kept (strings.Clone for the ID).
// Calls on one worker are sequential; on different workers, concurrent. The
// first error (of fn, of a read, or a record that cannot be decoded, named
// by its time and seq) stops the scan.
func (s *Store) ScanEvents(ctx context.Context, workers int, fn func(worker int, e *audittrail.Event, params, meta []merkle.MapEntry) error) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	workers = max(1, workers)
	chunks, err := s.auditChunks(workers * auditScanChunksPerWorker)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := feed(ctx, chunks)
	snap := s.dicts.snapshot()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &auditDecoder{snap: snap.clone()}
			for c := range todo {
				if err := s.scanAuditChunk(ctx, c, d, func(e *audittrail.Event) error { return fn(w, e, d.params, d.meta) }); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return ctx.Err()
}

// auditChunks cuts the whole primary range into about n slices of as many
// events each: the event times of a sample of the log positions (seqs
// spread evenly over the log) are the quantiles of the events' times,
// however unevenly they spread over time (a few events far in the future
// or past would leave slices of equal time span nearly all empty).
func (s *Store) auditChunks(n int) ([]chunk, error) {
	last := s.lastSeq.Load()
	if n <= 1 || last < uint64(n) {
		return []chunk{{}}, nil
	}
	r := positionReader{s: s}
	defer r.close()
	k := uint64(8 * n)
	times := make([]int64, 0, k)
	for i := range k {
		t, ok, err := r.position(1 + i*last/k)
		if err != nil {
			return nil, err
		}
		if ok {
			times = append(times, t)
		}
	}
	slices.Sort(times)
	out := make([]chunk, 0, n)
	var lo []byte
	prev := int64(math.MinInt64)
	for j := 1; j < n && len(times) > 0; j++ {
		t := times[j*len(times)/n]
		if t == prev {
			continue
		}
		prev = t
		hi := appendTimeSeq(nil, t, 0)
		out = append(out, chunk{lo: lo, hi: hi})
		lo = hi
	}
	return append(out, chunk{lo: lo, hi: nil}), nil
}

// scanAuditChunk reads the records of c in storage order.
func (s *Store) scanAuditChunk(ctx context.Context, c chunk, d *auditDecoder, fn func(*audittrail.Event) error) error {
	lo, hi := []byte{pfxEvent}, []byte{pfxEvent + 1}
	if c.lo != nil {
		lo = append(lo, c.lo...)
	}
	if c.hi != nil {
		hi = append([]byte{pfxEvent}, c.hi...)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		if len(k) != 1+16 {
			return fmt.Errorf("pebblestore: corrupt event key %x", k)
		}
		ns, seq := decodeTimeSeq(k[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		e, err := d.decode(v, ns, seq)
		if err != nil {
			return fmt.Errorf("pebblestore: event record of time %d, seq %d: %w", ns, seq, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return it.Error()
}

// auditDecoder decodes records into one reused Event: decodeRecord without
// its allocations (the Event, the id's text) and with the maps as sorted
// entries, for a reader that uses each event before the next.
type auditDecoder struct {
	snap         *dictSnap
	v            recView
	e            audittrail.Event
	status       audittrail.Status
	params, meta []merkle.MapEntry
	id           [36]byte
	buf          []byte // inline values of the current record
}

// decode is recView.event into d.e, with the maps in d.params and d.meta.
// Strings point into d's buffers, the dictionaries (immutable) or, for
// inline values, d.buf: one copy of the record per record.
func (d *auditDecoder) decode(rec []byte, ns int64, seq uint64) (*audittrail.Event, error) {
	v := &d.v
	if err := v.parse(rec); err != nil {
		return nil, err
	}
	// One copy of the record's bytes holds every inline string: rec is
	// the iterator's and is not stable after the call.
	d.buf = append(d.buf[:0], rec...)
	e := &d.e
	*e = audittrail.Event{
		EventTime: time.Unix(0, ns).UTC(),
		ReadOnly:  v.flags&flagReadOnly != 0,
		Type:      audittrail.EventType(int32(v.typ)),
		Seq:       seq,
	}
	inline := func(b []byte) string { return d.inline(rec, b) }
	var err error
	for i, id := range v.fields {
		var s string
		if v.inline&(1<<i) != 0 {
			s = inline(v.fieldIn[i])
		} else if s, err = d.snap.value(dictID(i), id); err != nil {
			return nil, err
		}
		e.SetValue(audittrail.Field(i), s)
	}
	if v.uaIn != nil {
		e.UserAgent = inline(v.uaIn)
	} else if e.UserAgent, err = d.snap.value(dictUserAgent, v.ua); err != nil {
		return nil, err
	}
	if v.flags&flagReceiveWide != 0 {
		e.ReceiveTime = time.Unix(v.recv, int64(v.recvNs)).UTC()
	} else if v.flags&flagReceive != 0 {
		e.ReceiveTime = e.EventTime.Add(time.Duration(v.recv))
	}
	d.meta, d.params = d.meta[:0], d.params[:0]
	if v.flags&flagMetadata != 0 {
		for _, id := range v.meta {
			p, err := d.snap.value(dictMeta, id)
			if err != nil {
				return nil, err
			}
			k, val, _ := strings.Cut(p, "\x00")
			d.meta = append(d.meta, merkle.MapEntry{Key: k, Value: val})
		}
		for _, in := range v.metaIn {
			k, val, _ := strings.Cut(inline(in), "\x00")
			d.meta = append(d.meta, merkle.MapEntry{Key: k, Value: val})
		}
		d.meta = sortEntries(d.meta)
	}
	b := v.tail
	encodeUUID(&d.id, b[:16])
	e.ID = unsafe.String(&d.id[0], len(d.id))
	b = b[16:]
	if v.flags&flagStatus != 0 {
		msg, rest, err := d.readString(rec, b)
		if err != nil {
			return nil, err
		}
		b = rest
		d.status = audittrail.Status{Code: v.code, Message: msg}
		e.Status = &d.status
	}
	np, n := uvarint(b)
	if n <= 0 || np > uint64(len(b)) {
		return nil, errCorrupt
	}
	b = b[n:]
	for range np {
		var k, val string
		if k, b, err = d.readString(rec, b); err != nil {
			return nil, err
		}
		if val, b, err = d.readString(rec, b); err != nil {
			return nil, err
		}
		if v.flags&flagParams != 0 {
			d.params = append(d.params, merkle.MapEntry{Key: k, Value: val})
		}
	}
	d.params = sortEntries(d.params)
	return e, nil
}

// sortEntries sorts es by key and keeps one entry per key, the last in es:
// the map that decodeRecord builds of them holds the same.
func sortEntries(es []merkle.MapEntry) []merkle.MapEntry {
	if len(es) < 2 {
		return es
	}
	slices.SortStableFunc(es, func(a, b merkle.MapEntry) int { return strings.Compare(a.Key, b.Key) })
	out := es[:0]
	for i, e := range es {
		if i+1 < len(es) && es[i+1].Key == e.Key {
			continue // a later entry of the key overwrites it
		}
		out = append(out, e)
	}
	return out
}

// inline returns the string of b, a slice of rec, from d.buf (the copy of
// rec) without another copy.
func (d *auditDecoder) inline(rec, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(rec))))
	if off < 0 || off+len(b) > len(d.buf) {
		return string(b)
	}
	return unsafe.String(&d.buf[off], len(b))
}

func (d *auditDecoder) readString(rec, b []byte) (string, []byte, error) {
	n, k := uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errCorrupt
	}
	b = b[k:]
	return d.inline(rec, b[:n]), b[n:], nil
}

// encodeUUID writes the canonical text of the 16 bytes u into dst, as
// uuid.UUID.String does.
func encodeUUID(dst *[36]byte, u []byte) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], u[10:16])
}

// feed sends items one by one on the channel it returns, for workers to
// take, and closes it after the last or once ctx is done.
func feed[T any](ctx context.Context, items []T) <-chan T {
	todo := make(chan T)
	go func() {
		defer close(todo)
		for _, it := range items {
			select {
			case todo <- it:
			case <-ctx.Done():
				return
			}
		}
	}()
	return todo
}
