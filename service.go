package audittrail

import (
	"context"
	"sync/atomic"
	"time"
)

// Service applies the rules of the audit event API on top of a Store:
// validation, server-set fields, page sizes and page tokens. Transports
// convert their wire types to and from the types here and call it; they hold
// no rules of their own.
type Service struct {
	Store Store
	// PageTokenKey authenticates page tokens. Every replica serving the same
	// data must use the same key, and it must survive restarts.
	PageTokenKey []byte
	// RedactPrivateIPs stores private, loopback and link-local source
	// addresses as "private".
	RedactPrivateIPs bool
	// MaxScan bounds the work of one search request; 0 means DefaultMaxScan.
	MaxScan int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logins, when set, fills the login_principal of the events a search
	// returns with the login name known now (nil: left empty).
	Logins LoginNames
	// PrefetchMinPage: a full page of at least this many events gets its
	// next page read ahead (prefetch.go); 0 means never. The server sets
	// DefaultPrefetchMinPage.
	PrefetchMinPage int

	ahead prefetcher
	// aheadCutoff is the store's retention cutoff (Unix ns) when the
	// pages read ahead were last checked (forgetBeforeCutoff).
	aheadCutoff atomic.Int64
}

// PrefetchStats counts what became of the pages read ahead (prefetch.go).
func (s *Service) PrefetchStats() PrefetchStats { return s.ahead.snapshot() }

// ForgetReadAhead drops the pages read ahead (PrefetchMinPage), so that
// the next page of every search is searched anew: after a retention pass
// moved the cutoff, a page read before it may hold events it hides.
func (s *Service) ForgetReadAhead() { s.ahead.forget() }

// forgetBeforeCutoff drops the pages read ahead when the store's retention
// cutoff moved since the last check: the cutoff another replica's retention
// pass moved (PostgreSQL), which this replica's store learns within
// seconds, hides events that a page read before may hold, and no pass of
// this replica called ForgetReadAhead.
func (s *Service) forgetBeforeCutoff() {
	cs, ok := s.Store.(interface{ Cutoff() time.Time })
	if !ok {
		return
	}
	t := cs.Cutoff()
	if t.IsZero() {
		return
	}
	c := t.UnixNano()
	for {
		old := s.aheadCutoff.Load()
		if c <= old {
			return
		}
		if s.aheadCutoff.CompareAndSwap(old, c) {
			s.ahead.forget()
			return
		}
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Page sizes of SearchEvents.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// CreateEvent validates and stores one event. A retry with the same id and
// content returns the stored event; another event under a used id fails with
// EConflict.
func (s *Service) CreateEvent(ctx context.Context, id string, in NewEvent) (*Event, error) {
	e, err := PrepareNewEvent(id, in, s.now(), s.RedactPrivateIPs)
	if err != nil {
		return nil, err
	}
	res, err := s.Store.Append(ctx, []*Event{e})
	if err != nil {
		return nil, err
	}
	return res[0].Event, res[0].Err
}

// CreateRequest is one item of a batch.
type CreateRequest struct {
	EventID string
	Event   NewEvent
}

// BatchResult is the outcome of BatchCreateEvents.
type BatchResult struct {
	Events []*Event       // stored events in request order
	Failed map[int]*Error // failures by 0-based request index
}

// BatchCreateEvents stores the valid events of reqs and reports the others by
// index. More than MaxBatch requests fail as a whole, with nothing written.
func (s *Service) BatchCreateEvents(ctx context.Context, reqs []CreateRequest) (*BatchResult, error) {
	if len(reqs) > MaxBatch {
		return nil, Errorf(EInvalid, "requests has %d items, the limit is %d per batch", len(reqs), MaxBatch)
	}
	now := s.now()
	out := &BatchResult{Failed: map[int]*Error{}}
	events := make([]*Event, 0, len(reqs))
	index := make([]int, 0, len(reqs))
	for i, r := range reqs {
		e, err := PrepareNewEvent(r.EventID, r.Event, now, s.RedactPrivateIPs)
		if err != nil {
			out.Failed[i] = asError(err)
			continue
		}
		events = append(events, e)
		index = append(index, i)
	}
	if len(events) == 0 {
		return out, nil
	}
	res, err := s.Store.Append(ctx, events)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		if r.Err != nil {
			out.Failed[index[j]] = asError(r.Err)
			continue
		}
		out.Events = append(out.Events, r.Event)
	}
	return out, nil
}

func asError(err error) *Error {
	return &Error{Code: ErrorCode(err), Message: ErrorMessage(err)}
}

// SearchRequest is a SearchEvents call.
type SearchEventsRequest struct {
	Filter    Filter
	PageSize  int
	PageToken string
}

// SearchEventsResponse is one page of a search.
type SearchEventsResponse struct {
	Events        []*Event
	NextPageToken string
	SearchedUntil time.Time
}

// pageSize reads a requested page size: 0 means def, more than limit is limit
// (coerced, as the H2O service does), negative is refused.
func pageSize(size, def, limit int) (int, error) {
	switch {
	case size < 0:
		return 0, Errorf(EInvalid, "page_size must not be negative (got %d); 0 means the default of %d", size, def)
	case size == 0:
		return def, nil
	}
	return min(size, limit), nil
}

// SearchEvents runs one page of a search for the caller in ctx.
func (s *Service) SearchEvents(ctx context.Context, req SearchEventsRequest) (*SearchEventsResponse, error) {
	size, err := pageSize(req.PageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, err
	}
	// The caller's scope: a context without a principal is an in-process
	// caller (tools, tests), which the transport never lets through.
	var caller string
	scope := Scope{All: true}
	if p := PrincipalFromContext(ctx); p != nil {
		caller = p.Name
		var err error
		if scope, err = SearchScope(p); err != nil {
			return nil, err
		}
	}
	// Refused before the fingerprint sorts the maps (checkMapSizes).
	if err := req.Filter.checkMapSizes(); err != nil {
		return nil, err
	}
	fp := req.Filter.Fingerprint()
	end := s.now()
	var after *Cursor
	if req.PageToken != "" {
		t, err := openPageToken(s.PageTokenKey, req.PageToken)
		if err != nil {
			return nil, err
		}
		if t.Filter != fp {
			return nil, Errorf(EInvalid, "page_token was issued for a different filter: repeat the filter of the first page, or start again without a page_token")
		}
		if t.Principal != principalDigest(caller) {
			return nil, Errorf(EInvalid, "page_token was issued to another caller")
		}
		end = timeFromNanos(t.End)
		after = &t.Cursor
	}
	q, err := req.Filter.Compile(end)
	if err != nil {
		return nil, err
	}
	if !scope.Restrict(q) {
		// Nothing inside the caller's scope can match: the search is done.
		return &SearchEventsResponse{SearchedUntil: q.Start}, nil
	}
	var res *SearchResult
	if req.PageToken != "" && s.PrefetchMinPage > 0 {
		// The page read ahead for this token, if any (prefetch.go).
		s.forgetBeforeCutoff()
		if res, err = s.ahead.take(ctx, req.PageToken, size, scope, s.now()); err != nil {
			return nil, err
		}
	}
	if res == nil {
		if res, err = s.Store.Search(ctx, SearchRequest{Query: q, After: after, Limit: size, MaxScan: s.MaxScan}); err != nil {
			return nil, err
		}
	}
	out := &SearchEventsResponse{Events: res.Events, SearchedUntil: res.SearchedUntil(q)}
	if res.Next != nil {
		out.NextPageToken = sealPageToken(s.PageTokenKey, pageToken{
			Cursor:    *res.Next,
			End:       q.End.UnixNano(),
			Filter:    fp,
			Principal: principalDigest(caller),
		})
		if s.PrefetchMinPage > 0 && size >= s.PrefetchMinPage && len(res.Events) == size {
			next := SearchRequest{Query: q, After: res.Next, Limit: size, MaxScan: s.MaxScan, ReadAhead: true}
			s.ahead.start(out.NextPageToken, caller, size, scope, s.now(), func(ctx context.Context) (*SearchResult, error) {
				return s.Store.Search(ctx, next)
			})
		}
	}
	if s.Logins != nil && len(res.Events) > 0 {
		s.fillLogins(ctx, res.Events)
	}
	return out, nil
}

// fillLogins sets LoginPrincipal from the login names known now. A failure
// to read them leaves the field empty rather than failing the search.
func (s *Service) fillLogins(ctx context.Context, events []*Event) {
	seen := map[string]bool{}
	var ps []string
	for _, e := range events {
		if !seen[e.Principal] {
			seen[e.Principal] = true
			ps = append(ps, e.Principal)
		}
	}
	names, err := s.Logins.LoginNames(ctx, ps)
	if err != nil {
		return
	}
	for _, e := range events {
		e.LoginPrincipal = names[e.Principal]
	}
}
