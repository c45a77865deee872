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
	// CommittedSize is the number of committed events when they were read.
	CommittedSize uint64
}

// LogReader reads the log's events: the part of LogStore that LogEntries
// needs (logsign.Log passes it on from its store).
type LogReader interface {
	LastSeq() uint64
	EventsBySeq(ctx context.Context, from, to uint64) ([]*Event, error)
}

// LogEntries returns up to requested events of the log ls from leaf start on
// (0 means DefaultLogEntries; more than MaxLogEntries is read as
// MaxLogEntries), or none when start is at or beyond the committed events.
// The caller must have passed CanReadLogEntries.
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
	events, err := ls.EventsBySeq(ctx, start+1, last)
	if err != nil {
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
