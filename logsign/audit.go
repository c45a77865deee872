package logsign

import (
	"context"
	"fmt"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// AuditStore recomputes the whole tree from the store's events and compares
// it with every stored signed checkpoint (merkle.Auditor), using the
// store's own hashes to pinpoint the first divergent leaf. Checkpoints that
// do not verify with verifierKey are an error.
func AuditStore(ctx context.Context, st audittrail.LogStore, verifierKey string) (*merkle.AuditReport, error) {
	v, err := merkle.NewVerifier([]byte(verifierKey))
	if err != nil {
		return nil, err
	}
	notes, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	cps := make([]*merkle.Checkpoint, 0, len(notes))
	for i, n := range notes {
		c, err := merkle.OpenCheckpoint(n, v)
		if err != nil {
			return nil, fmt.Errorf("stored checkpoint %d: %w", i, err)
		}
		cps = append(cps, c)
	}
	a, err := merkle.NewAuditor(cps, nil)
	if err != nil {
		return nil, err
	}
	last := st.LastSeq()
	const batch = 10000
	for from := uint64(1); from <= last; from += batch {
		evs, err := st.EventsBySeq(ctx, from, min(last, from+batch-1))
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if err := a.Add(e); err != nil {
				return nil, err
			}
		}
	}
	l := &Log{cfg: Config{Store: st}}
	return a.Finish(l.hashReader())
}
