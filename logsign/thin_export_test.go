package logsign

import "context"

// SetThinPaging makes l's thinning read page checkpoints at a time, pages
// reads per round of Run, so that tests reach the rounds that stop before
// the end of a pass.
func SetThinPaging(l *Log, page, pages int) { l.thinPage, l.thinPages = page, pages }

// ThinRound is one round's thinning, as Run does it.
func ThinRound(ctx context.Context, l *Log) error { return l.maybeThin(ctx) }
