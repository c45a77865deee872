package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
)

// State is a forwarder's position, kept in a file between runs: for each
// kind, the time of the newest event forwarded (the cursor), and when the
// forwarder last read that kind through to its end.
type State struct {
	URL     string         `json:"keycloakUrl"`
	Realm   string         `json:"realm"`
	Cursors map[Kind]int64 `json:"cursors"` // Unix milliseconds; a kind not present: nothing forwarded yet
	// ReadThroughAt is, per kind, the forwarder's clock (Unix
	// milliseconds) at the start of the last poll that read that kind to
	// its end and had every event read acknowledged. Unlike the cursor it
	// moves while the realm is idle, so it tells an idle realm from one
	// the forwarder could not read. A kind not present: not yet, or a
	// state file written before it was kept.
	ReadThroughAt map[Kind]int64 `json:"readThroughAt,omitempty"`
}

// LoadState reads the state file at path. A missing file is a new state
// (no cursors). A file of another Keycloak or realm is an error: its
// cursors mean nothing there.
func LoadState(path, keycloakURL, realm string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return &State{URL: keycloakURL, Realm: realm, Cursors: map[Kind]int64{}, ReadThroughAt: map[Kind]int64{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: not a state file of audittrail keycloak: %v", path, err)
	}
	if s.URL != keycloakURL || s.Realm != realm {
		return nil, fmt.Errorf("%s: the state of realm %q at %s, not of realm %q at %s: give another --state file", path, s.Realm, s.URL, realm, keycloakURL)
	}
	if s.Cursors == nil {
		s.Cursors = map[Kind]int64{}
	}
	if s.ReadThroughAt == nil {
		s.ReadThroughAt = map[Kind]int64{}
	}
	return &s, nil
}

// ReadUpTo returns a time before which every event of kind that Keycloak
// held has been read and acknowledged, and false when none was read yet.
//
// It is the time of the last read through to the end (ReadThroughAt) less
// overlap: an event of a moment before that read may commit after it, and
// then the next poll reads it, within the overlap, not that one. The
// margin errs towards a warning: a loss said to be possible that was not
// costs a look, one not said costs the events. Keycloak dates and expires
// its events by its own clock and ReadThroughAt is the forwarder's, so
// compare the answer with the forwarder's clock less the expiration: an
// offset between the two clocks is then on both sides and cancels out. A
// state file written before ReadThroughAt was kept has only the cursor,
// the time (Keycloak's) of the newest event forwarded: before it
// everything was read, but after it the realm may as well have been idle
// as unread, so that answer may be too early.
func (s *State) ReadUpTo(kind Kind, overlap time.Duration) (time.Time, bool) {
	if at, ok := s.ReadThroughAt[kind]; ok {
		return time.UnixMilli(at).Add(-overlap), true
	}
	if cursor, ok := s.Cursors[kind]; ok {
		return time.UnixMilli(cursor), true
	}
	return time.Time{}, false
}

// Save replaces the state file at path atomically and durably.
func (s *State) Save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return durablefile.Replace(path, append(data, '\n'), 0o640)
}

// CreateFunc creates events on the audit trail, as the Go client's
// BatchCreateEvents does.
type CreateFunc func(ctx context.Context, reqs []audittrail.CreateRequest) (*audittrail.BatchResult, error)

// Defaults of a Forwarder.
const (
	DefaultOverlap  = 2 * time.Minute
	DefaultPageSize = 500
)

// Forwarder copies a realm's events to the audit trail, one poll at a time.
type Forwarder struct {
	Reader    *Reader
	Converter Converter
	Create    CreateFunc
	Kinds     []Kind        // the kinds to forward
	Overlap   time.Duration // how far before the cursor each poll reads again
	PageSize  int           // events per read and per batch; DefaultPageSize when 0
	State     *State
	// Save is called with the state after each batch the service
	// acknowledged, before the next read, and once more at the end of a
	// poll that read a kind through without a batch to save it with (an
	// idle realm), so that ReadThroughAt is on disk too.
	Save func(*State) error
	// Warn reports what does not stop the forwarder (events the service
	// holds with other content under the same id).
	Warn func(msg string)
	// Now is the clock of ReadThroughAt; time.Now when nil.
	Now func() time.Time

	unsaved bool // State changed since the last Save
}

// ErrCreate wraps a batch the service refused in part: the cursor stays
// before it, and the next poll sends it again.
var ErrCreate = errors.New("the audit trail refused an event")

// Poll forwards, for each kind, the events from the cursor less the
// overlap on, and returns how many of each it read and had acknowledged
// (re-read ones included: the service answers those with the stored
// event). On an error the cursor of the batch that failed stays where it
// was.
//
// A poll saves the state after each batch, and at most once more: at its
// end, when a kind was read through after its last batch was saved.
func (f *Forwarder) Poll(ctx context.Context) (map[Kind]int, error) {
	counts := map[Kind]int{}
	for _, k := range f.Kinds {
		n, err := f.pollKind(ctx, k)
		counts[k] = n
		if err != nil {
			err = fmt.Errorf("%s events: %w", k, err)
			if f.unsaved { // the kinds before this one were read through
				err = errors.Join(err, f.save())
			}
			return counts, err
		}
	}
	if f.unsaved {
		return counts, f.save()
	}
	return counts, nil
}

// save saves the whole state. After a failure too the state is no longer
// counted as unsaved: the failure is reported, and the next save writes
// the whole state again.
func (f *Forwarder) save() error {
	f.unsaved = false
	if f.Save == nil {
		return nil
	}
	return f.Save(f.State)
}

func (f *Forwarder) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Forwarder) pollKind(ctx context.Context, kind Kind) (int, error) {
	size := f.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, audittrail.MaxBatch)
	// Taken before the first read: every event committed by then is read
	// by this poll, if it ends well.
	started := f.now().UnixMilli()
	if f.State.ReadThroughAt == nil {
		f.State.ReadThroughAt = map[Kind]int64{}
	}
	var from int64
	cursor, ok := f.State.Cursors[kind]
	if ok {
		from = max(0, cursor-f.Overlap.Milliseconds())
	}
	total := 0
	for first := 0; ; {
		var reqs []audittrail.CreateRequest
		newest := cursor
		switch kind {
		case KindUser:
			evs, err := f.Reader.UserEvents(ctx, from, first, size)
			if err != nil {
				return total, err
			}
			for _, e := range evs {
				reqs = append(reqs, f.Converter.User(e))
				newest = max(newest, e.Time)
			}
		case KindAdmin:
			evs, err := f.Reader.AdminEvents(ctx, from, first, size)
			if err != nil {
				return total, err
			}
			for _, e := range evs {
				reqs = append(reqs, f.Converter.Admin(e))
				newest = max(newest, e.Time)
			}
		default:
			return total, fmt.Errorf("unknown kind %q", kind)
		}
		if len(reqs) == 0 {
			f.State.ReadThroughAt[kind] = started
			f.unsaved = true
			return total, nil
		}
		res, err := f.Create(ctx, reqs)
		if err != nil {
			return total, fmt.Errorf("creating %d events on the audit trail: %w", len(reqs), err)
		}
		for _, i := range slices.Sorted(maps.Keys(res.Failed)) {
			e := res.Failed[i]
			if e.Code == audittrail.EConflict {
				// Stored before with other content (another
				// --event-source, an older conversion): it is there.
				if f.Warn != nil {
					f.Warn(fmt.Sprintf("event %s (%s) is already stored with other content; kept as stored: %s", reqs[i].EventID, reqs[i].Event.Event.Action, e.Message))
				}
				continue
			}
			return total, fmt.Errorf("%w: event %s (%s at %s): %s: %s", ErrCreate, reqs[i].EventID, reqs[i].Event.Event.Action,
				reqs[i].Event.Event.EventTime.Format(time.RFC3339Nano), e.Code, e.Message)
		}
		total += len(reqs)
		cursor = newest
		f.State.Cursors[kind] = cursor
		last := len(reqs) < size
		if last {
			f.State.ReadThroughAt[kind] = started
		}
		if err := f.save(); err != nil {
			return total, err
		}
		if last {
			return total, nil
		}
		first += len(reqs)
	}
}
