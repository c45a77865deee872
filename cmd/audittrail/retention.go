package main

import (
	"context"
	"fmt"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/server"
)

// retentionInterval is how often serve --retention deletes the events that
// became too old: at most an hour's worth of them is kept past the period.
const retentionInterval = time.Hour

// startRetention runs the retention passes of --retention in the
// background (the first at once) until Close; each pass that deletes
// events, or fails, is recorded as a self-audit event by audit (the
// server's, with its --self-audit-source).
func (m *Main) startRetention(ctx context.Context, store audittrail.Store, svc *audittrail.Service, audit *audittrail.SelfAuditor, metrics *server.Metrics) error {
	c := &m.Config
	exp, ok := store.(audittrail.Expirer)
	if c.Retention <= 0 || !ok {
		return nil
	}
	r := &audittrail.Retention{
		Store:  exp,
		Keep:   c.Retention,
		Audit:  audit,
		Logger: m.log,
		// A page read ahead before the cutoff moved may hold events it
		// now hides.
		AfterPass: func(time.Time) { svc.ForgetReadAhead() },
	}
	// The first pass, below, may take long (the first start with a
	// period on a large store): what it will delete is hidden now.
	if err := r.Hide(ctx); err != nil {
		return fmt.Errorf("retention: hiding the events older than %s: %w", c.Retention, err)
	}
	metrics.WatchRetention(r.Stats)
	m.log.InfoContext(ctx, "retention: events older than the period are deleted", "period", c.Retention, "every", retentionInterval)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { r.Run(runCtx, retentionInterval); close(done) }()
	m.stopRetention = func() { cancel(); <-done }
	return nil
}

// retentionFlag is --retention: a period in days or a Go duration ("90d",
// "2160h", "1d12h"), or 0 for none.
type retentionFlag time.Duration

func (f *retentionFlag) String() string {
	if f == nil || *f == 0 {
		return "0"
	}
	return time.Duration(*f).String()
}

func (f *retentionFlag) Set(s string) error {
	if s == "0" {
		*f = 0
		return nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return err
	}
	*f = retentionFlag(d)
	return nil
}
