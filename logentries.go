package audittrail

import (
	"context"
	"fmt"
)

// Reading the log's entries: every committed event in sequence order, which
// is the verifiable log's leaf order (leaf i is the event with Seq i+1).
// Searches and inclusion proofs show that what a server returns is in its
// log; only the entries themselves show that nothing was left out of it: a
// monitor or a mirror reads them all, recomputes the tree and compares it
// with the signed checkpoints (logmirror, docs/design/verifiable-log.md,
// "Mirrors").

// Page sizes of LogEntries.
const (
	DefaultLogEntries = 100
	MaxLogEntries     = 1000
)

// ActionReadLogEntries is the action of the self-audit event recorded for
// every read of the log's entries; its resource is LogResource.
const (
	ActionReadLogEntries = "actions/audittrail/logEntries/LIST"
	LogResource          = "//audittrail/log"
)

// CanReadLogEntries reports whether p may read the log's entries, as an
// error to return. The entries are every event of every workspace, so the
// auditor role; a workspace auditor may not, since a mirror of part of the
// log could not be checked against its checkpoints anyway.
func CanReadLogEntries(p *Principal) error {
	scope, err := SearchScope(p)
	if err != nil {
		return err
	}
	if !scope.All {
		return Errorf(EPermissionDenied, "principal %q may not read the log's entries: they hold the events of every workspace, which needs the auditor role", p.Name)
	}
	return nil
}

// LogEntries is a run of consecutive leaves of the log.
type LogEntries struct {
	// Start is the index of the first leaf; Events[i] has Seq Start+i+1.
	Start  uint64
	Events []*Event
	// Deleted, when the event of leaf Start was deleted by a retention
	// policy (a dropped PostgreSQL month: docs/postgres.md, "Retention"),
	// holds the log's stored leaf hashes of the run of deleted leaves from
	// Start (Deleted[i] is leaf Start+i's), and Events is empty. A page is
	// either events or deleted leaves, never both: a mirror started after
	// a month was dropped still recomputes every signed root from them.
	Deleted [][32]byte
	// CommittedSize is the number of committed events when they were read.
	CommittedSize uint64
}

// Len is the number of leaves of the page, events or deleted.
func (e *LogEntries) Len() int { return len(e.Events) + len(e.Deleted) }

// LogReader reads the log's events: the part of LogStore that LogEntries
// needs (logsign.Log passes it on from its store).
type LogReader interface {
	LastSeq() uint64
	EventsBySeq(ctx context.Context, from, to uint64) ([]*Event, error)
}

// DeletedLeafReader is a LogReader whose store may have deleted events
// under a retention policy: EventsBySeqSparse is EventsBySeq with a nil
// event for each seq whose event is no longer stored, and LeafHashes
// returns the log's stored leaf hashes of leaves [from, to) (which the
// tree keeps when the events go).
type DeletedLeafReader interface {
	LogReader
	EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*Event, error)
	LeafHashes(ctx context.Context, from, to uint64) ([][32]byte, error)
}

// LogEntries returns up to requested events of the log ls from leaf start on
// (0 means DefaultLogEntries; more than MaxLogEntries is read as
// MaxLogEntries), or none when start is at or beyond the committed events.
// When ls is a DeletedLeafReader and the event of leaf start was deleted,
// the page holds the leaf hashes of the run of deleted leaves from start
// instead (LogEntries.Deleted); a page of events stops before the next
// deleted one. The caller must have passed CanReadLogEntries.
func (s *Service) LogEntries(ctx context.Context, ls LogReader, start uint64, requested int) (*LogEntries, error) {
	size, err := pageSize(requested, DefaultLogEntries, MaxLogEntries)
	if err != nil {
		return nil, err
	}
	out := &LogEntries{Start: start, CommittedSize: ls.LastSeq()}
	if start >= out.CommittedSize {
		return out, nil
	}
	last := min(out.CommittedSize, start+uint64(size))
	var events []*Event
	if dr, ok := ls.(DeletedLeafReader); ok {
		if events, err = dr.EventsBySeqSparse(ctx, start+1, last); err != nil {
			return nil, err
		}
		if uint64(len(events)) != last-start {
			return nil, fmt.Errorf("audittrail: the store returned %d events for seqs %d..%d", len(events), start+1, last)
		}
		run := 0 // leading deleted events, or present ones
		for run < len(events) && (events[run] == nil) == (events[0] == nil) {
			run++
		}
		if events[0] == nil {
			if out.Deleted, err = dr.LeafHashes(ctx, start, start+uint64(run)); err != nil {
				return nil, err
			}
			if len(out.Deleted) != run {
				return nil, fmt.Errorf("audittrail: the log returned %d leaf hashes for leaves %d..%d", len(out.Deleted), start, start+uint64(run)-1)
			}
			return out, nil
		}
		events = events[:run]
		last = start + uint64(run)
	} else if events, err = ls.EventsBySeq(ctx, start+1, last); err != nil {
		return nil, err
	}
	for i, e := range events {
		if e.Seq != start+uint64(i)+1 {
			return nil, fmt.Errorf("audittrail: the store returned seq %d at leaf %d", e.Seq, start+uint64(i))
		}
	}
	if uint64(len(events)) != last-start {
		return nil, fmt.Errorf("audittrail: the store returned %d events for seqs %d..%d", len(events), start+1, last)
	}
	if s.Logins != nil && len(events) > 0 {
		s.fillLogins(ctx, events)
	}
	out.Events = events
	return out, nil
}
