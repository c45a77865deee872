package audittrail_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// expirer answers Expire with what it is given, recording the cutoffs asked
// for (the stores' own behaviour is tested against them: pebblestore's
// TestExpire, cmd/audittrail's TestRetentionEndToEnd).
type expirer struct {
	asked  []time.Time
	raised []time.Time // RaiseCutoff's
	res    audittrail.ExpireResult
	err    error
}

func (x *expirer) RaiseCutoff(_ context.Context, cutoff time.Time) (time.Time, error) {
	x.raised = append(x.raised, cutoff)
	return cutoff, x.err
}

func (x *expirer) Expire(_ context.Context, cutoff time.Time) (audittrail.ExpireResult, error) {
	x.asked = append(x.asked, cutoff)
	res := x.res
	res.Cutoff = cutoff
	return res, x.err
}

// TestRetentionApply: the cutoff is now minus the period; a pass that
// deleted events or failed is recorded as one self-audit event saying what
// it did, a pass that deleted nothing is not; a period under the minimum is
// refused without asking the store.
func TestRetentionApply(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st := &memStore{}
	x := &expirer{}
	var after []time.Time
	r := &audittrail.Retention{Store: x, Keep: 90 * 24 * time.Hour, Now: func() time.Time { return now },
		Audit:     &audittrail.SelfAuditor{Store: st, Now: func() time.Time { return now }},
		AfterPass: func(c time.Time) { after = append(after, c) }}

	if _, err := r.Apply(ctx); err != nil || len(st.events) != 0 {
		t.Fatalf("a pass that deleted nothing: %v, %d events recorded", err, len(st.events))
	}
	if want := now.Add(-90 * 24 * time.Hour); len(x.asked) != 1 || !x.asked[0].Equal(want) {
		t.Fatalf("cutoffs asked %v, want %v", x.asked, want)
	}

	x.res = audittrail.ExpireResult{Deleted: 1234, Kept: 5, Erased: 17}
	if res, err := r.Apply(ctx); err != nil || res.Deleted != 1234 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if len(st.events) != 1 {
		t.Fatalf("%d events recorded, want 1", len(st.events))
	}
	e := st.events[0]
	if e.Action != audittrail.ActionExpireEvents || e.Principal != audittrail.RetentionPrincipal || e.Resource != audittrail.SearchResource ||
		e.ReadOnly || e.Metadata["deleted"] != "1234" || e.Metadata["kept"] != "5" || e.Metadata["erased_values"] != "17" || e.Status == nil || e.Status.Code != 0 ||
		e.RequestParameters["retention"] != "2160h0m0s" || e.RequestParameters["cutoff"] != "2026-08-30T12:00:00Z" || e.Workspace != "" {
		t.Fatalf("recorded %+v", e)
	}

	x.res, x.err = audittrail.ExpireResult{Deleted: 10}, audittrail.Errorf(audittrail.EUnavailable, "the store is closed")
	if _, err := r.Apply(ctx); err == nil {
		t.Fatal("a failed pass reported no error")
	}
	e = st.events[len(st.events)-1]
	if len(st.events) != 2 || e.Status.Code != 14 || !strings.Contains(e.Status.Message, "the store is closed") || e.Metadata["deleted"] != "10" ||
		e.Metadata["erased_values"] != "" {
		t.Fatalf("failed pass recorded as %+v (%d events)", e, len(st.events))
	}
	x.err = errors.New("disk on fire")
	r.Apply(ctx)
	if e = st.events[len(st.events)-1]; e.Status.Code != 13 || strings.Contains(e.Status.Message, "fire") {
		t.Fatalf("an internal failure recorded as %+v: want INTERNAL without the details", e.Status)
	}
	if s := r.Stats(); s.Passes != 4 || s.Failures != 2 || s.Deleted != 1254 || s.Erased != 17 || !s.Cutoff.Equal(now.Add(-90*24*time.Hour)) {
		t.Fatalf("stats %+v", s)
	}

	if len(after) != 2 || !after[1].Equal(now.Add(-90*24*time.Hour)) {
		t.Fatalf("AfterPass called with %v, want twice (the passes that succeeded)", after)
	}

	short := &audittrail.Retention{Store: x, Keep: 59 * time.Minute}
	asked := len(x.asked)
	if _, err := short.Apply(ctx); audittrail.ErrorCode(err) != audittrail.EInvalid || len(x.asked) != asked {
		t.Fatalf("a period under the minimum: %v, store asked %d times", err, len(x.asked)-asked)
	}
	if err := short.Hide(ctx); audittrail.ErrorCode(err) != audittrail.EInvalid || len(x.raised) != 0 {
		t.Fatalf("Hide with a period under the minimum: %v, store asked %d times", err, len(x.raised))
	}
}

// TestRetentionHide: Hide moves the cutoff to now minus the period, through
// RaiseCutoff (deleting nothing), and records nothing.
func TestRetentionHide(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st := &memStore{}
	x := &expirer{}
	r := &audittrail.Retention{Store: x, Keep: 30 * 24 * time.Hour, Now: func() time.Time { return now },
		Audit: &audittrail.SelfAuditor{Store: st, Now: func() time.Time { return now }}}
	if err := r.Hide(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-30 * 24 * time.Hour); len(x.raised) != 1 || !x.raised[0].Equal(want) || len(x.asked) != 0 || len(st.events) != 0 {
		t.Fatalf("Hide raised %v (want %v), expired %v, recorded %d events; want the cutoff raised only", x.raised, want, x.asked, len(st.events))
	}
}

// TestRetentionRecordsResumedPass: a pass that resumed one the process
// ended during (a crash, a kill) is recorded even when it deleted nothing
// itself: the interrupted pass deleted events and recorded nothing.
func TestRetentionRecordsResumedPass(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st := &memStore{}
	x := &expirer{res: audittrail.ExpireResult{Resumed: true}}
	r := &audittrail.Retention{Store: x, Keep: 90 * 24 * time.Hour, Now: func() time.Time { return now },
		Audit: &audittrail.SelfAuditor{Store: st, Now: func() time.Time { return now }}}
	if _, err := r.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 1 {
		t.Fatalf("%d events recorded for a resumed pass, want 1", len(st.events))
	}
	if e := st.events[0]; e.Action != audittrail.ActionExpireEvents || e.Metadata["resumed"] != "true" || e.Metadata["deleted"] != "0" {
		t.Fatalf("recorded %+v", e)
	}
}
