package audittrail

import (
	"context"
	"time"
)

// Backup describes a backup of the store taken while the server runs
// (AdminService.CreateBackup).
type Backup struct {
	Name string
	// Path is the backup's directory on the server's file system.
	Path string
	// Events is the number of events stored when the backup began: every
	// one of them is in it, and possibly a few more.
	Events     uint64
	SizeBytes  int64
	CreateTime time.Time
}

// Backuper takes backups. The embedded store's data directory has one; the
// PostgreSQL store has none (PostgreSQL's own tools back it up).
type Backuper interface {
	// CreateBackup writes a backup named name (ValidBackupName; empty: a
	// name from the current time). A name in use is EConflict.
	CreateBackup(ctx context.Context, name string) (*Backup, error)
}

// MaxBackupName is the longest backup name.
const MaxBackupName = 64

// ValidBackupName checks a backup name: 1 to MaxBackupName letters, digits,
// '.', '_' or '-', starting with a letter or digit (so that it is one
// directory name, never "..", and no option to a shell command).
func ValidBackupName(name string) error {
	if name == "" || len(name) > MaxBackupName {
		return Errorf(EInvalid, "name must have 1 to %d characters, it has %d", MaxBackupName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return Errorf(EInvalid, "name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// BackupName is the name of a backup taken at t without a name.
func BackupName(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
