package logsign

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/audittrail/audittrail/merkle"
)

// Thinning old checkpoints (docs/design/verifiable-log.md, "Thinning old
// checkpoints"): while events arrive the log signs a checkpoint about every
// second, ~220 bytes each, which adds up to gigabytes a year that only
// "verify store" reads, all at once. Checkpoints whose horizon is older
// than Config.KeepAllCheckpoints are thinned to the last one of each hour
// (by horizon, UTC): every event stays covered by a checkpoint, and an
// audit still compares the tree with a signed root every hour of the log's
// history. Nothing serves old checkpoints: proofs are built from the
// tree's hashes, for any sizes.

// thinInterval is the time between two thinning passes of the leader.
const thinInterval = 10 * time.Minute

// defaultThinPage bounds the checkpoints one read returns,
// defaultThinPagesPerRound the reads of one round of Run: a store with
// millions of checkpoints (one that kept every one until now) is thinned
// over many rounds, 10,000 checkpoints each, so that the integrator, which
// runs in the same goroutine, never stalls for long.
const (
	defaultThinPage          = 1000
	defaultThinPagesPerRound = 10
)

// maybeThin thins when KeepAllCheckpoints is set and thinInterval has
// passed since the last pass, or the last round stopped before the end of
// its pass. Only the integrating replica calls it.
func (l *Log) maybeThin(ctx context.Context) error {
	if l.cfg.KeepAllCheckpoints <= 0 {
		return nil
	}
	l.thinMu.Lock()
	defer l.thinMu.Unlock()
	now := l.cfg.Now()
	if !l.thinMore && !l.lastThin.IsZero() && now.Sub(l.lastThin) < thinInterval {
		return nil
	}
	if !l.thinMore {
		l.lastThin = now
	}
	more, err := l.thin(ctx, l.thinPages)
	l.thinMore = more && err == nil
	return err
}

// Thin deletes the stored checkpoints whose horizon is before the hour in
// which now - KeepAllCheckpoints falls, except the last one of each hour.
// It resumes where its previous pass stopped: the hours before that are
// complete (horizons never decrease with the size), so a pass reads only
// what was signed since.
func (l *Log) Thin(ctx context.Context) error {
	l.thinMu.Lock()
	defer l.thinMu.Unlock()
	for {
		more, err := l.thin(ctx, 0)
		if err != nil || !more {
			return err
		}
	}
}

// thin is a pass of Thin reading at most maxPages pages (0: no bound); it
// reports whether it stopped before the end of the pass.
func (l *Log) thin(ctx context.Context, maxPages int) (more bool, err error) {
	if l.cfg.KeepAllCheckpoints <= 0 {
		return false, nil
	}
	cutoff := l.cfg.Now().Add(-l.cfg.KeepAllCheckpoints).UTC().Truncate(time.Hour)
	st := l.cfg.Store
	from := l.thinFrom
	var (
		prev     *merkle.Checkpoint // the last one seen of its hour so far: kept unless another follows in that hour
		prevHour time.Time
		del      []uint64
	)
	for page := 0; ; page++ {
		if maxPages > 0 && page == maxPages {
			more = true
			break
		}
		notes, err := st.CheckpointsFrom(ctx, from, l.thinPage)
		if err != nil {
			return false, err
		}
		done := len(notes) < l.thinPage
		for _, n := range notes {
			c, err := parseNote(n)
			if err != nil {
				return false, fmt.Errorf("logsign: thinning checkpoints: %w", err)
			}
			if !c.ReceivedBefore.Before(cutoff) {
				done = true
				break
			}
			hour := c.ReceivedBefore.UTC().Truncate(time.Hour)
			if prev != nil && hour.Equal(prevHour) {
				del = append(del, prev.Size)
			}
			prev, prevHour = c, hour
			from = c.Size + 1
		}
		if len(del) > 0 {
			if err := st.DeleteCheckpoints(ctx, del); err != nil {
				return false, err
			}
			l.thinned.Add(uint64(len(del)))
			del = del[:0]
		}
		if done {
			break
		}
	}
	if prev != nil {
		// Every checkpoint of prev's hour has been seen at the end of a
		// pass, and the next one starts after it; a round that stopped
		// early may not have seen them all, and reads prev again.
		l.thinFrom = prev.Size + 1
		if more {
			l.thinFrom = prev.Size
		}
	}
	return more, nil
}

// Thinned is the number of checkpoints thinning deleted (a metric).
func (l *Log) Thinned() uint64 { return l.thinned.Load() }

// parseNote parses the checkpoint of a signed note without checking its
// signatures (the log's own stored checkpoints, read to thin them).
func parseNote(note []byte) (*merkle.Checkpoint, error) {
	text, _, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("a stored checkpoint is not a signed note: %.60q", note)
	}
	return merkle.Parse(append(text, '\n'))
}
