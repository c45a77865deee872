package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/audittrail/audittrail"
)

// Group commit across appends.
//
// Every append takes log_head's row lock and keeps it until its commit is
// on disk (insertSQL), so appends run one at a time, each paying a
// statement and a WAL flush: with one event per call, about 1,100 events/s
// from 64 producers however many cores the database has, where PostgreSQL
// takes 8,000-11,000 single-row INSERTs/s on the same machine (BENCHMARKS.md,
// run of 2026-11-27 13:53). So the first run of each append (the one that
// takes every id as new, by far the common case) is queued, and whole
// queued calls are inserted together: one statement, one transaction, one
// flush for all of them. A call's events stay together, in its order, with
// consecutive seqs; a call is never split between transactions.
//
// At most maxInserters groups are in flight: one holding the lock and one
// waiting for it, so that the next transaction starts as soon as the one
// before commits, while the calls that arrive meanwhile queue for the group
// after. A lone call does not wait for company: it is inserted at once.
//
// A group fails as a whole. When it held more than one call, each of its
// calls then runs again on its own, looking its ids up first: a stored id
// (errIDRace), an event before a cutoff that moved meanwhile
// (errCutoffRace), a value PostgreSQL refuses or a broken connection then
// affects only the call that has it, and a group that did commit before its
// acknowledgement was lost resolves as idempotent retries, as a lone call's
// does (Append).
//
// A call whose context ends while it waits in the queue leaves it and
// returns the context's error: nothing of it is stored. Once taken into a
// group it waits for the group's outcome whatever its context, as the
// embedded store's Append waits for its writer: the group's statement may
// commit after the context ended, and a caller told of an error must find
// nothing of its call stored (the Store contract). That wait is bounded by
// insertTimeout and ends with the store's life.
const (
	// maxGroupEvents bounds the events of one group. A call of 1000 events
	// (the API's largest batch) is a group of its own, as before grouping:
	// at that size the statement's fixed costs are a few percent.
	maxGroupEvents = 1000
	// maxInserters bounds the groups in flight (see above).
	maxInserters = 2
	// insertTimeout bounds an insert's statement (insert), which runs
	// under none of its callers' contexts (and ends when the store is
	// closed).
	insertTimeout = time.Minute
)

// errGroupFailed: the grouped insert of a call failed as a whole, maybe for
// another call's events; the call runs again on its own.
var errGroupFailed = errors.New("postgres: a grouped insert failed")

// insertQueue holds the calls waiting for a grouped insert.
type insertQueue struct {
	mu        sync.Mutex
	waiting   []*insertCall
	inserters int // groups in flight or being taken
	// groups and taken count the groups inserted and the calls they
	// held (tests: InsertGroupsForTest).
	groups, taken int64
}

// insertCall is one call's new events on their way through the queue.
type insertCall struct {
	ctx   context.Context
	fresh []*audittrail.Event
	err   error
	done  chan struct{}
}

// insertGrouped stores fresh as insert does (Seq and ReceiveTime set on
// each), possibly in one transaction with the new events of concurrent
// calls. The inserts run on goroutines of their own, under none of the
// callers' contexts. ctx ends only the wait in the queue (see above).
func (s *Store) insertGrouped(ctx context.Context, fresh []*audittrail.Event) error {
	c := &insertCall{ctx: ctx, fresh: fresh, done: make(chan struct{})}
	q := &s.inserts
	q.mu.Lock()
	q.waiting = append(q.waiting, c)
	if q.inserters < maxInserters {
		q.inserters++
		go s.runInserts()
	}
	q.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
	}
	q.mu.Lock()
	if i := slices.Index(q.waiting, c); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
		q.mu.Unlock()
		return ctx.Err()
	}
	q.mu.Unlock()
	// Taken (or answered by take): the outcome is the group's.
	<-c.done
	return c.err
}

// runInserts inserts groups of waiting calls until none waits.
func (s *Store) runInserts() {
	q := &s.inserts
	for {
		q.mu.Lock()
		group := q.take()
		if len(group) == 0 {
			q.inserters--
			q.mu.Unlock()
			return
		}
		q.groups++
		q.taken += int64(len(group))
		q.mu.Unlock()
		s.insertGroup(group)
	}
}

// take removes the next group from the queue: whole calls, in order, up to
// maxGroupEvents events (or one larger call), without two calls that share
// an id (the second waits for the next group, where it sees the first one's
// event as stored). Calls whose context has ended are answered, not taken.
// q.mu is held.
func (q *insertQueue) take() []*insertCall {
	var (
		group []*insertCall
		n     int
		ids   map[string]struct{} // of the group, once it has two calls
		rest  = q.waiting[:0]
	)
	for i, c := range q.waiting {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		if len(group) > 0 && (n+len(c.fresh) > maxGroupEvents || sharesID(&ids, group, c)) {
			rest = append(rest, q.waiting[i:]...)
			break
		}
		group = append(group, c)
		n += len(c.fresh)
	}
	clear(q.waiting[len(rest):])
	q.waiting = rest
	return group
}

// sharesID reports whether c has an id of the calls of group; ids is their
// set, built at the first call.
func sharesID(ids *map[string]struct{}, group []*insertCall, c *insertCall) bool {
	if *ids == nil {
		*ids = map[string]struct{}{}
		for _, g := range group {
			for _, e := range g.fresh {
				(*ids)[e.ID] = struct{}{}
			}
		}
	}
	for _, e := range c.fresh {
		if _, ok := (*ids)[e.ID]; ok {
			return true
		}
	}
	for _, e := range c.fresh {
		(*ids)[e.ID] = struct{}{}
	}
	return false
}

// insertGroup inserts the events of group in one statement and answers
// each call.
func (s *Store) insertGroup(group []*insertCall) {
	all := group[0].fresh
	if len(group) > 1 {
		all = nil
		for _, c := range group {
			all = append(all, c.fresh...)
		}
	}
	err := s.insert(all)
	if err != nil && len(group) > 1 {
		s.recoverFrom(err)
		err = fmt.Errorf("%w: %w", errGroupFailed, err)
	}
	for _, c := range group {
		c.err = err
		close(c.done)
	}
}
