package logsign

import "context"

// Step is one round of Run on a log without replicas: integrate, and sign
// when due.
func Step(ctx context.Context, l *Log) error { return l.step(ctx, signIfDue) }
