package audittrail

import (
	"context"
	"time"
)

// Store keeps events durably and searches them. Two engines implement it: the
// embedded store (package pebblestore) and PostgreSQL (package postgres). The
// conformance suite in package storetest defines the behaviour in detail.
type Store interface {
	// Append stores prepared events (see PrepareNewEvent) and returns one
	// result per event, in order. Each event either gets the next sequence
	// number or, when its ID is already stored, resolves as a retry: the
	// stored event when the content is the same (Event.SameContent), an
	// EConflict error otherwise. An ID repeated within one call behaves as
	// if the copies came in sequence. A new event's ReceiveTime (required,
	// in [MinEventTime, MaxReceiveTime)) is raised to one nanosecond after
	// that of the event before it in sequence order when it is not later
	// already, so receive times strictly increase with seq: the verifiable
	// log's checkpoint horizons rely on it (docs/design/merkle.md, "Window
	// evidence"). Append returns only once the stored
	// events are on stable storage and visible to Search. A non-nil error
	// means nothing of the call was stored.
	Append(ctx context.Context, events []*Event) ([]AppendResult, error)

	// Search returns events matching req.Query in newest-first order,
	// starting strictly after req.After when it is set, at most req.Limit of
	// them, examining at most req.MaxScan candidate events.
	Search(ctx context.Context, req SearchRequest) (*SearchResult, error)

	// Close releases the store. Appends in flight finish first.
	Close() error
}

// AppendResult is the outcome of one event of an Append call.
type AppendResult struct {
	Event *Event // the stored event (on a retry: as first stored)
	Err   error  // *Error with EConflict when the ID holds another event
}

// SearchRequest is one page of a search as a store executes it.
type SearchRequest struct {
	Query *Query
	After *Cursor // resume strictly after this position; nil: from Query.End
	Limit int     // page size, 1 to 1000
	// MaxScan bounds the work of one request: the number of candidate
	// events (index entries or records) the store may examine. When it runs
	// out the store returns the page so far with Next set to where it
	// stopped. Zero means DefaultMaxScan.
	MaxScan int
	// ReadAhead: the page is read before anyone asks for it (Service's
	// PrefetchMinPage), beside requests being answered; a store that
	// searches on several cores should use one for it.
	ReadAhead bool
}

// Check validates req as every store must before executing it, and returns
// the effective work bound (MaxScan, or DefaultMaxScan when zero).
func (req SearchRequest) Check() (maxScan int, err error) {
	if req.Query == nil {
		return 0, Errorf(EInvalid, "search query is missing")
	}
	if req.Limit < 1 {
		return 0, Errorf(EInvalid, "search limit must be at least 1 (got %d)", req.Limit)
	}
	if req.MaxScan <= 0 {
		return DefaultMaxScan, nil
	}
	return req.MaxScan, nil
}

// DefaultMaxScan is the default work bound of one search request. On the
// embedded store it is about a quarter of a second of scanning.
const DefaultMaxScan = 1_000_000

// SearchResult is one page of results.
type SearchResult struct {
	Events []*Event
	// Next is where the next page resumes; nil exactly when no matching
	// event remains after the last returned one. When the page is full a
	// store must look ahead for one more match (within MaxScan) before
	// setting Next, so that a finished search never returns a token.
	Next *Cursor
}

// SearchedUntil is the time down to which a search has progressed: the
// cursor's time, or the query start when the search is done.
func (r *SearchResult) SearchedUntil(q *Query) time.Time {
	if r.Next == nil {
		return q.Start
	}
	t := timeFromNanos(r.Next.Time)
	if t.Before(q.Start) {
		return q.Start
	}
	return t
}
