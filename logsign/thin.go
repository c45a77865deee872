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

// thinPage bounds the checkpoints one read returns.
const thinPage = 1000

// maybeThin thins when KeepAllCheckpoints is set and thinInterval has
// passed since the last pass. Only the integrating replica calls it.
func (l *Log) maybeThin(ctx context.Context) error {
	if l.cfg.KeepAllCheckpoints <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	if !l.lastThin.IsZero() && now.Sub(l.lastThin) < thinInterval {
		return nil
	}
	l.lastThin = now
	return l.thin(ctx)
}

// Thin deletes the stored checkpoints whose horizon is before the hour in
// which now - KeepAllCheckpoints falls, except the last one of each hour.
// It resumes where its previous pass stopped: the hours before that are
// complete (horizons never decrease with the size), so a pass reads only
// what was signed since.
func (l *Log) Thin(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.thin(ctx)
}

func (l *Log) thin(ctx context.Context) error {
	if l.cfg.KeepAllCheckpoints <= 0 {
		return nil
	}
	cutoff := l.cfg.Now().Add(-l.cfg.KeepAllCheckpoints).UTC().Truncate(time.Hour)
	st := l.cfg.Store
	from := l.thinFrom
	var (
		prev     *merkle.Checkpoint // the last one seen of its hour so far: kept unless another follows in that hour
		prevHour time.Time
		del      []uint64
	)
	flush := func() error {
		if len(del) == 0 {
			return nil
		}
		if err := st.DeleteCheckpoints(ctx, del); err != nil {
			return err
		}
		del = del[:0]
		return nil
	}
	for {
		notes, err := st.CheckpointsFrom(ctx, from, thinPage)
		if err != nil {
			return err
		}
		done := len(notes) < thinPage
		for _, n := range notes {
			c, err := parseNote(n)
			if err != nil {
				return fmt.Errorf("logsign: thinning checkpoints: %w", err)
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
		if err := flush(); err != nil {
			return err
		}
		if done {
			break
		}
	}
	if prev != nil {
		// Every checkpoint of prev's hour has been seen: the next pass
		// starts after it.
		l.thinFrom = prev.Size + 1
	}
	return nil
}

// parseNote parses the checkpoint of a signed note without checking its
// signatures (the log's own stored checkpoints, read to thin them).
func parseNote(note []byte) (*merkle.Checkpoint, error) {
	text, _, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("a stored checkpoint is not a signed note: %.60q", note)
	}
	return merkle.Parse(append(text, '\n'))
}
