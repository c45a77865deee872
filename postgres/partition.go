package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// ensurePartitions creates the monthly partitions of the previous, the
// current and the PartitionsAhead next months (UTC) that do not exist yet.
// Events of other months go to the default partition; an operator can give
// them a partition with SELECT audittrail_ensure_partition('2024-05-01').
func (s *Store) ensurePartitions(ctx context.Context) error {
	now := s.now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	for i := range PartitionsAhead + 2 {
		m := first.AddDate(0, i, 0)
		if !m.Before(maxPartitionMonth) {
			break
		}
		if m.AddDate(0, 1, 0).UnixNano() <= s.cutoff.Load() {
			continue // retention drops it (retention.go): a short period
		}
		var created bool
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// Moving rows out of the default partition locks it; give up
			// rather than hold searches and appends for long.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT audittrail_ensure_partition($1::date)", m.Format(time.DateOnly)).Scan(&created)
		})
		if err != nil {
			return err
		}
		if created {
			s.log.Info("postgres: created partition", "month", m.Format("2006-01"))
		}
	}
	return nil
}

// maxPartitionMonth is the first month without a partition: event times end
// before 2262-01-01 (the 64-bit nanosecond clock).
var maxPartitionMonth = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
