package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logmirror"
)

// searchMirror answers a search from a mirror directory instead of a
// server: it reads every entry, verifies the whole against the mirror's
// signed checkpoint with the log's public key (logmirror.Scan), and prints
// the matches in the API's order, newest event time first. The answer
// relies on the key alone, not on the server or on the directory's
// keeper, and covers the events the checkpoint holds: those received before
// its horizon, which is printed.
func (c *SearchCommand) searchMirror(p *searchPlan) error {
	verifier, err := loadVerifier(p.logKey, "")
	if err != nil {
		return err
	}
	q, err := p.req.Filter.Compile(time.Now())
	if err != nil {
		return usageErrorf("bad filter: %s", audittrail.ErrorMessage(err))
	}
	// Keep no more matches than will be printed: one page, or the limit.
	keep := 0
	switch {
	case p.limit > 0:
		keep = p.limit
	case !p.follow:
		keep = cmp.Or(p.req.PageSize, audittrail.DefaultPageSize)
	}
	out := p.output(c.Stdout, c.Stderr)
	// Counts of every match need no events kept: each is counted as it is
	// read (printed only once the whole is verified, at out.close).
	countAll := p.countBy != nil && keep == 0
	var matches []*audittrail.Event
	newestFirst := func(a, b *audittrail.Event) int {
		return cmp.Or(b.EventTime.Compare(a.EventTime), cmp.Compare(b.Seq, a.Seq))
	}
	v, err := logmirror.Scan(p.mirror, verifier, logmirror.ScanOptions{Each: func(e *audittrail.Event) error {
		if !q.Match(e) {
			return nil
		}
		if countAll {
			return out.write(e)
		}
		matches = append(matches, e)
		if keep > 0 && len(matches) >= 2*keep+1024 {
			slices.SortFunc(matches, newestFirst)
			matches = slices.Delete(matches, keep, len(matches))
		}
		return nil
	}})
	if errors.Is(err, logmirror.ErrNotVerified) {
		return fmt.Errorf("%s: %w: %w", p.mirror, errVerify, err)
	}
	if err != nil {
		return err
	}
	if v.Checkpoint == nil {
		return fmt.Errorf("%s: the mirror is empty (never updated)", p.mirror)
	}
	slices.SortFunc(matches, newestFirst)
	more := keep > 0 && len(matches) > keep
	if more {
		matches = matches[:keep]
	}
	for _, e := range matches {
		if err := out.write(e); err != nil {
			return err
		}
	}
	if err := out.close(&audittrail.SearchEventsResponse{Events: matches, SearchedUntil: q.Start}); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "searched the %d events of the mirror %s, verified against its checkpoint (size %d, received before %s)",
		v.Entries, p.mirror, v.Checkpoint.Size, v.Checkpoint.ReceivedBefore.UTC().Format(time.RFC3339Nano))
	if more {
		fmt.Fprintf(c.Stderr, "; more events match: --all or --limit prints them")
	}
	fmt.Fprintln(c.Stderr)
	return nil
}
