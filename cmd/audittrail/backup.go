package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
)

// dataDirBackups takes the backups of the embedded store's data directory
// (AdminService.CreateBackup): each one a directory under dir that is a
// data directory itself, without the log's signing key.
type dataDirBackups struct {
	store   *pebblestore.Store
	dataDir string // the server's --data-dir
	dir     string // --backup-dir
	log     *slog.Logger
}

// backupReadme is written into every backup: what it is and how to restore
// it, for whoever finds it on a backup volume.
const backupReadme = `This directory is a backup of an audittrail data directory, taken while the
server ran (audittrail backup) at %s. It held %d events when it began.

Restore: copy this directory to a new data directory, add the log's signing
key (log-signing.key, which backups leave out: keep it apart, with your
secrets), and start the server on it:

    cp -a <this directory> /srv/audittrail-restored
    cp <your copy of log-signing.key> /srv/audittrail-restored/
    audittrail serve --data-dir /srv/audittrail-restored ...

or give the key with --log-key. backup.json records how many events the
backup holds: a server started on a copy that holds fewer (a copy cut short)
refuses to start. "audittrail verify store --data-dir <a copy
of this directory>" audits it offline, without the signing key (opening a
store writes to its directory: keep this one as it is).
`

// CreateBackup implements audittrail.Backuper. The copy is written under a
// temporary name and renamed into place once complete and synced, so that a
// directory with the backup's name is always a whole backup.
func (b *dataDirBackups) CreateBackup(ctx context.Context, name string) (*audittrail.Backup, error) {
	now := time.Now().UTC()
	if name == "" {
		name = audittrail.BackupName(now)
	}
	if err := audittrail.ValidBackupName(name); err != nil {
		return nil, err
	}
	final := filepath.Join(b.dir, name)
	errExists := audittrail.Errorf(audittrail.EConflict, "a backup named %q exists: give another name", name)
	if _, err := os.Lstat(final); err == nil {
		return nil, errExists
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return nil, b.failed(name, err)
	}
	tmp, err := os.MkdirTemp(b.dir, "."+name+".partial-")
	if err != nil {
		return nil, b.failed(name, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	events := b.store.LastSeq()
	if err := b.store.Checkpoint(ctx, filepath.Join(tmp, storeDir)); err != nil {
		return nil, b.failed(name, err)
	}
	// The keys a restored server needs besides the store, except the
	// signing key: a secret, kept apart from the data.
	for _, f := range []string{pageTokenKeyFile, logsign.VerificationKeyFile} {
		if err := copyFile(filepath.Join(b.dataDir, f), filepath.Join(tmp, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, b.failed(name, err)
		}
	}
	// What the backup holds, for the restored server to check its store
	// against (checkRestoredStore): a copy cut short would lose events.
	info, err := json.Marshal(backupInfo{Name: name, Events: events, CreateTime: now})
	if err != nil {
		return nil, b.failed(name, err)
	}
	if err := durablefile.Create(filepath.Join(tmp, backupInfoFile), info, 0o644); err != nil {
		return nil, b.failed(name, err)
	}
	readme := fmt.Sprintf(backupReadme, now.Format(time.RFC3339), events)
	if err := durablefile.Create(filepath.Join(tmp, "README"), []byte(readme), 0o644); err != nil {
		return nil, b.failed(name, err)
	}
	size, err := dirSize(tmp)
	if err != nil {
		return nil, b.failed(name, err)
	}
	if err := durablefile.SyncDir(tmp); err != nil {
		return nil, b.failed(name, err)
	}
	// A caller who gave up is told the backup failed: leave none behind.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A rename onto an existing, non-empty directory fails: two backups of
	// one name at once leave the first.
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil, errExists
		}
		return nil, b.failed(name, err)
	}
	done = true
	if err := durablefile.SyncDir(b.dir); err != nil {
		return nil, b.failed(name, err)
	}
	b.log.InfoContext(ctx, "backup taken", "name", name, "path", final, "events", events, "bytes", size)
	return &audittrail.Backup{Name: name, Path: final, Events: events, SizeBytes: size, CreateTime: now}, nil
}

// backupInfoFile, in a backup (and so in a data directory restored from
// it), records what the backup holds.
const backupInfoFile = "backup.json"

type backupInfo struct {
	Name string `json:"name"`
	// Events is the store's last seq when the backup began: a store
	// restored from it holds at least as many.
	Events     uint64    `json:"events"`
	CreateTime time.Time `json:"createTime"`
}

// restoredFrom reads the backupInfoFile of a data directory: nil when it
// was not restored from a backup.
func restoredFrom(dataDir string) (*backupInfo, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, backupInfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var info backupInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, backupInfoFile), err)
	}
	return &info, nil
}

// checkRestoredStore refuses the store of a data directory restored from a
// backup when it holds fewer events than the backup did, or none: a backup
// truncated or damaged in its copy, which would otherwise be served, and
// its log signed again, without the events it lost. It reads the store
// without writing to it (pebblestore.PeekLastSeq), so that a refused copy
// is left as it was, and Open does not create a missing one.
func checkRestoredStore(dataDir string) error {
	info, err := restoredFrom(dataDir)
	if err != nil || info == nil {
		return err
	}
	dbDir := filepath.Join(dataDir, storeDir)
	if _, err := os.Stat(dbDir); err != nil {
		return fmt.Errorf("%s was restored from the backup %q, which held %d events, but has no store (%s): "+
			"the backup is incomplete; restore it again from an intact copy", dataDir, info.Name, info.Events, storeDir)
	}
	n, err := pebblestore.PeekLastSeq(dbDir)
	if err != nil {
		return fmt.Errorf("%s was restored from the backup %q, whose store cannot be read: %w", dataDir, info.Name, err)
	}
	if n < info.Events {
		return fmt.Errorf("%s was restored from the backup %q, which held %d events, but its store holds %d: "+
			"the backup is truncated or damaged; restore it again from an intact copy", dataDir, info.Name, info.Events, n)
	}
	return nil
}

// failed logs the cause of a failed backup and returns what the caller sees.
func (b *dataDirBackups) failed(name string, err error) error {
	var ae *audittrail.Error
	if errors.As(err, &ae) {
		return err
	}
	b.log.Error("backup failed", "name", name, "dir", b.dir, "err", err)
	return audittrail.Errorf(audittrail.EInternal, "the backup %q failed: %v", name, err)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	return durablefile.Create(to, data, fi.Mode().Perm())
}

// dirSize is the apparent size of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

// BackupCommand implements "audittrail backup": it asks a running server
// for a backup through the AdminService of its internal listener.
type BackupCommand struct {
	Stdout, Stderr io.Writer
}

const backupSynopsis = `usage: audittrail backup [--name NAME] [flags]

Takes a backup of a running server's embedded store, without stopping it,
with an administrator's token. The server writes it to a new directory under
its --backup-dir (default <data-dir>/backups) and prints where: a data
directory holding every event acknowledged before the backup began, the log's
tree and checkpoints, the page token key and the log's public key, but not
its signing key. Copy it elsewhere with your usual tools; its README says how
to restore it. Taking a backup is recorded as a self-audit event.

On the same file system the backup links the store's files instead of
copying them, so it is fast and takes no space at first; it takes space as
the server's compactions replace the files it shares.

With the PostgreSQL store, back up the database with PostgreSQL's tools.

Examples:
  audittrail backup
  audittrail backup --name before-upgrade-2.1 -o json

Environment: AUDITTRAIL_INTERNAL_ADDR (--addr), AUDITTRAIL_ADMIN_TOKEN or
AUDITTRAIL_TOKEN (--token).
`

type backupFlags struct {
	addr, token, caFile string
	name                string
	format              string
}

func newBackupFlags(f *backupFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", envDefault("127.0.0.1:8081", "AUDITTRAIL_INTERNAL_ADDR"), "`host:port` of the server's internal listener")
	fs.StringVar(&f.token, "token", envDefault("", "AUDITTRAIL_ADMIN_TOKEN", "AUDITTRAIL_TOKEN"), "bearer `token` of an administrator")
	fs.StringVar(&f.caFile, "ca-file", "", "connect with TLS, trusting the CA certificates in this PEM `file`")
	fs.StringVar(&f.name, "name", "", "the backup's directory `name` (letters, digits, '.', '_', '-'; default: the UTC time)")
	fs.StringVar(&f.format, "o", "text", "output `format`: text or json")
	return fs
}

// Usage returns the help text.
func (c *BackupCommand) Usage() string {
	return usageText(backupSynopsis, newBackupFlags(&backupFlags{}))
}

// Run runs the command with the arguments after "backup".
func (c *BackupCommand) Run(ctx context.Context, args []string) error {
	var f backupFlags
	fs := newBackupFlags(&f)
	if err := parseFlags(fs, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	if f.format != "text" && f.format != "json" {
		return usageErrorf("-o %q: use text or json", f.format)
	}
	if f.name != "" {
		if err := audittrail.ValidBackupName(f.name); err != nil {
			return usageErrorf("--name: %s", strings.TrimPrefix(audittrail.ErrorMessage(err), "name "))
		}
	}
	conn, err := dialAdmin(f.addr, f.token, f.caFile)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A large store takes a while to link or copy: no short deadline.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	resp, err := pb.NewAdminServiceClient(conn).CreateBackup(ctx, &pb.CreateBackupRequest{Name: f.name})
	if err != nil {
		return rpcError(err)
	}
	if f.format == "json" {
		return printJSON(c.Stdout, resp)
	}
	fmt.Fprintf(c.Stdout, "backup %s: %s on the server (%d events, %.1f MiB)\n", resp.GetName(), resp.GetPath(),
		resp.GetEvents(), float64(resp.GetSizeBytes())/(1<<20))
	return nil
}
