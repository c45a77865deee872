package audittrail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Retention: events older than a configured period are deleted
// (docs/design/retention.md). A store that can delete is an Expirer; a
// Retention applies the period to it on a schedule and records every pass
// that deleted events, or failed, as a self-audit event, so that the
// deletion of audit records is itself on the record.

// Expirer is a store that deletes the events whose event_time is before a
// cutoff.
type Expirer interface {
	// Expire moves the store's cutoff forward to cutoff (never back: an
	// earlier one leaves it where it is) and deletes the events before it.
	// From the moment Expire is called, searches and lookups by id no
	// longer show an event before the cutoff and appends of one are
	// refused (EInvalid), whether or not it is deleted yet. Events the
	// verifiable log has not integrated yet are kept until it has (a
	// later call deletes them): the log's tree keeps every deleted event's
	// leaf hash, so proofs of the others, and of the deleted ones' places,
	// still work (GetLogEntries answers their leaf hashes).
	Expire(ctx context.Context, cutoff time.Time) (ExpireResult, error)
	// RaiseCutoff is Expire's first step alone: it moves the cutoff
	// forward (never back) with the same effects on searches, lookups and
	// appends, deletes nothing, and returns the store's cutoff after the
	// call. It is quick whatever the store holds.
	RaiseCutoff(ctx context.Context, cutoff time.Time) (time.Time, error)
}

// ExpireResult is what one Expire call did.
type ExpireResult struct {
	// Cutoff is the store's cutoff after the call: no event with an
	// earlier event_time is shown or accepted.
	Cutoff time.Time
	// Deleted counts the events this call deleted.
	Deleted int64
	// Kept counts the events before the cutoff still stored, hidden: those
	// the verifiable log had not integrated yet, and what the store keeps
	// for its own reasons (the store's documentation says which).
	Kept int64
	// Erased counts the distinct values (a principal, a workspace, a
	// metadata pair, ...) that only deleted events held and that the call
	// erased from a store that keeps values apart from its events (the
	// embedded store's dictionaries); 0 for a store that does not.
	Erased int64
	// Resumed reports that the store found a pass that did not finish
	// (the process ended during it) and finished it: what that pass
	// deleted is not in Deleted, and it recorded nothing.
	Resumed bool
}

// Self-audit of retention (docs/security.md).
const (
	// ActionExpireEvents is the action of the event a Retention pass
	// records when it deleted events or failed.
	ActionExpireEvents = "actions/audittrail/events/DELETE"
	// RetentionPrincipal is the principal of those events: the service
	// itself, acting on its configuration.
	RetentionPrincipal = "services/audittrail-retention"
)

// BeforeCutoffError is the error of a new event whose event_time is before
// the store's retention cutoff: the same words from every store.
func BeforeCutoffError(eventTime, cutoff time.Time) *Error {
	return Errorf(EInvalid, "event.event_time %s is before the retention cutoff %s: events that old are deleted, so they are not accepted",
		eventTime.UTC().Format(time.RFC3339Nano), cutoff.UTC().Format(time.RFC3339Nano))
}

// MinRetention is the shortest retention period a Retention accepts: a
// shorter one is far more likely a mistake (minutes for days) than an
// intent, and deleting audit records by mistake cannot be undone.
const MinRetention = time.Hour

// Retention deletes the events older than Keep from Store.
type Retention struct {
	Store Expirer
	// Keep is the retention period: an event whose event_time is more than
	// Keep before now is deleted. At least MinRetention.
	Keep time.Duration
	// Audit records each pass that deleted events or failed; nil records
	// nothing.
	Audit *SelfAuditor
	// Logger receives a line per pass that deleted events or failed; nil
	// means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterPass, when set, is called after each pass that succeeded, with
	// the store's cutoff (serve: Service.ForgetReadAhead).
	AfterPass func(cutoff time.Time)

	mu    sync.Mutex
	stats RetentionStats
}

// RetentionStats counts what a Retention did (metrics).
type RetentionStats struct {
	Passes, Failures, Deleted int64
	// Erased counts the values the passes erased (ExpireResult.Erased).
	Erased int64
	// Cutoff is the store's cutoff after the last pass that succeeded.
	Cutoff time.Time
}

// Stats returns the counts so far.
func (r *Retention) Stats() RetentionStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Check reports a retention period Retention refuses.
func (r *Retention) Check() error {
	if r.Keep < MinRetention {
		return Errorf(EInvalid, "retention period %s is shorter than the minimum %s", r.Keep, MinRetention)
	}
	return nil
}

// Hide moves the store's cutoff to now minus Keep without deleting anything
// (Expirer.RaiseCutoff): what a server does before it serves, so that no
// event older than the period is shown while the first pass, which may
// take long, deletes them.
func (r *Retention) Hide(ctx context.Context) error {
	if err := r.Check(); err != nil {
		return err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	_, err := r.Store.RaiseCutoff(ctx, now().UTC().Add(-r.Keep))
	return err
}

// Apply runs one pass: the cutoff is now minus Keep.
func (r *Retention) Apply(ctx context.Context) (ExpireResult, error) {
	if err := r.Check(); err != nil {
		return ExpireResult{}, err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	start := now().UTC()
	cutoff := start.Add(-r.Keep)
	res, err := r.Store.Expire(ctx, cutoff)
	r.mu.Lock()
	r.stats.Passes++
	r.stats.Deleted += res.Deleted
	r.stats.Erased += res.Erased
	if err != nil {
		r.stats.Failures++
	} else {
		r.stats.Cutoff = res.Cutoff
	}
	r.mu.Unlock()
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	if err != nil {
		log.ErrorContext(ctx, "retention: deleting old events failed", "cutoff", cutoff, "deleted", res.Deleted, "err", err)
	} else if res.Deleted > 0 || res.Resumed {
		log.InfoContext(ctx, "retention: deleted old events", "cutoff", res.Cutoff, "deleted", res.Deleted, "kept", res.Kept, "erased_values", res.Erased, "resumed", res.Resumed)
	}
	if r.Audit != nil && (err != nil || res.Deleted > 0 || res.Resumed) {
		rec := AuditRecord{
			Time:      start,
			Principal: RetentionPrincipal,
			Action:    ActionExpireEvents,
			Resource:  SearchResource,
			Parameters: map[string]string{
				"retention": r.Keep.String(),
				"cutoff":    cutoff.Format(time.RFC3339Nano),
			},
			Metadata: map[string]string{
				"deleted": strconv.FormatInt(res.Deleted, 10),
				"kept":    strconv.FormatInt(res.Kept, 10),
			},
		}
		if res.Erased > 0 {
			rec.Metadata["erased_values"] = strconv.FormatInt(res.Erased, 10)
		}
		if res.Resumed {
			rec.Metadata["resumed"] = "true"
		}
		if err != nil {
			rec.Status = statusOf(err)
		}
		if aerr := r.Audit.Record(ctx, rec); aerr != nil {
			// The events are deleted already: say so, but the pass stands.
			log.ErrorContext(ctx, "retention: recording the deletion failed", "err", aerr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	if r.AfterPass != nil {
		r.AfterPass(res.Cutoff)
	}
	return res, nil
}

// Run applies the retention at once and then every interval until ctx
// ends. A failed pass is logged (and audited) and tried again at the next.
func (r *Retention) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Apply(ctx); errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statusOf is the status a failed pass is recorded with: INTERNAL (13), or
// UNAVAILABLE (14) when the store was; the message is ErrorMessage's (the
// details are in the server's log).
func statusOf(err error) Status {
	code := int32(13)
	if ErrorCode(err) == EUnavailable {
		code = 14
	}
	return Status{Code: code, Message: "deleting the events before the retention cutoff failed: " + ErrorMessage(err)}
}
