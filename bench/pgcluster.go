package bench

import "github.com/audittrail/audittrail/internal/pgcluster"

// PGSettings are the server settings of the throwaway cluster: durable
// (fsync and synchronous commit on, as a production audit log needs) and
// sized for the machine the way a DBA would size a dedicated database server
// (the defaults, 128 MB of shared buffers, would handicap PostgreSQL).
var PGSettings = []string{
	"fsync=on",
	"synchronous_commit=on",
	"full_page_writes=on",
	"shared_buffers=4GB",
	"effective_cache_size=12GB",
	"work_mem=64MB",
	"maintenance_work_mem=1GB",
	"max_wal_size=8GB",
	"checkpoint_timeout=15min",
	"max_connections=300",
	"timezone=UTC",
}

// FindPGBin returns the directory of initdb and pg_ctl (pgcluster.FindBin).
func FindPGBin() (string, error) { return pgcluster.FindBin() }

// StartPGCluster creates and starts a cluster in dir with PGSettings. As
// root, it runs as the OS user postgres. Unless keep is set, a watchdog
// removes the cluster when this process exits.
func StartPGCluster(bin, dir string, keep bool) (*pgcluster.Cluster, error) {
	return pgcluster.Create(bin, dir, PGSettings, !keep)
}
