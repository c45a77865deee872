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
// kind, the time of the newest event forwarded (the cursor).
type State struct {
	URL     string         `json:"keycloakUrl"`
	Realm   string         `json:"realm"`
	Cursors map[Kind]int64 `json:"cursors"` // Unix milliseconds; a kind not present: nothing forwarded yet
}

// LoadState reads the state file at path. A missing file is a new state
// (no cursors). A file of another Keycloak or realm is an error: its
// cursors mean nothing there.
func LoadState(path, keycloakURL, realm string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return &State{URL: keycloakURL, Realm: realm, Cursors: map[Kind]int64{}}, nil
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
	return &s, nil
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
	// acknowledged, before the next read.
	Save func(*State) error
	// Warn reports what does not stop the forwarder (events the service
	// holds with other content under the same id).
	Warn func(msg string)
}

// ErrCreate wraps a batch the service refused in part: the cursor stays
// before it, and the next poll sends it again.
var ErrCreate = errors.New("the audit trail refused an event")

// Poll forwards, for each kind, the events from the cursor less the
// overlap on, and returns how many of each it read and had acknowledged
// (re-read ones included: the service answers those with the stored
// event). On an error the cursor of the batch that failed stays where it
// was.
func (f *Forwarder) Poll(ctx context.Context) (map[Kind]int, error) {
	counts := map[Kind]int{}
	for _, k := range f.Kinds {
		n, err := f.pollKind(ctx, k)
		counts[k] = n
		if err != nil {
			return counts, fmt.Errorf("%s events: %w", k, err)
		}
	}
	return counts, nil
}

func (f *Forwarder) pollKind(ctx context.Context, kind Kind) (int, error) {
	size := f.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, audittrail.MaxBatch)
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
		if f.Save != nil {
			if err := f.Save(f.State); err != nil {
				return total, err
			}
		}
		if len(reqs) < size {
			return total, nil
		}
		first += len(reqs)
	}
}
