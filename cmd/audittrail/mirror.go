package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logmirror"
	"github.com/audittrail/audittrail/merkle"
)

// MirrorCommand implements "audittrail mirror": it keeps a verified copy of
// a running server's verifiable log in a directory (package logmirror).
type MirrorCommand struct {
	Stdout, Stderr io.Writer
}

const mirrorSynopsis = `usage: audittrail mirror --dir DIR --log-key PUBKEY [--follow INTERVAL] [flags]

Keeps a verified copy of a running server's verifiable log in DIR: every
event, in the log's order, in DIR/entries.jsonl (line i is the event with seq
i, in the API's JSON), checked against the server's latest signed checkpoint
(DIR/checkpoint) with the log's public key (the server's
<data-dir>/log-verification.key). Each run fetches only the events the mirror
lacks, recomputes the Merkle tree's root over every event and compares it
with the checkpoint's: an event the server signed but leaves out of its
answers, changed or removed since the last run, or a forked or rolled-back
log, fails the run and leaves DIR as it was.

The directory is also an export for long-term retention: copy it to cold
storage with your usual tools; "audittrail verify mirror --key PUBKEY DIR"
checks a copy offline.

A server whose retention deleted old events (serve --retention, or a
dropped month of the PostgreSQL store) keeps their leaf hashes. A mirror that lacks them stops
there unless given --allow-deleted, which keeps each such leaf's hash in
place of its event (a line {"deletedLeafHash":"..."}): the signed roots are
still checked, but the events are gone. Give it only under a retention
policy you know of, since the server decides which events it calls deleted.

It needs an auditor's token (the entries hold the events of every
workspace), and the server records each page it reads (1000 events) as a
self-audit event. One process at a time may update a directory.

Examples:
  audittrail mirror --dir /archive/audit --log-key log-verification.key
  audittrail mirror --dir /archive/audit --log-key log-verification.key --follow 1m

Exit status: 0 up to date, 1 the log did not verify (the message says how) or
another error, 2 bad usage.

Environment: AUDITTRAIL_ADDR (--addr), AUDITTRAIL_TOKEN (--token).
`

type mirrorFlags struct {
	connFlags
	dir, logKey   string
	witnessPolicy string
	follow        time.Duration
	quiet         bool
	allowDeleted  bool
}

func newMirrorFlags(f *mirrorFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	f.addLogReaderFlags(fs, &f.logKey, &f.witnessPolicy)
	fs.StringVar(&f.dir, "dir", "", "the mirror's `directory` (created when missing)")
	fs.DurationVar(&f.follow, "follow", 0, "keep running, updating the mirror every `interval` (0: update once and exit)")
	fs.BoolVar(&f.quiet, "q", false, "print nothing but errors")
	fs.BoolVar(&f.allowDeleted, "allow-deleted", false, "accept leaves whose events the server deleted (retention), keeping their leaf hashes")
	return fs
}

// Usage returns the help text.
func (c *MirrorCommand) Usage() string {
	return usageText(mirrorSynopsis, newMirrorFlags(&mirrorFlags{}))
}

// Run runs the command with the arguments after "mirror".
func (c *MirrorCommand) Run(ctx context.Context, args []string) error {
	var f mirrorFlags
	fs := newMirrorFlags(&f)
	if err := parseFlags(fs, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
	case f.dir == "":
		return usageErrorf("give the mirror's directory with --dir")
	case f.logKey == "":
		return usageErrorf("give the log's public key with --log-key")
	case f.follow < 0:
		return usageErrorf("--follow %s: give a positive interval, or 0 to update once", f.follow)
	}
	verifier, err := loadVerifier(f.logKey, f.witnessPolicy)
	if err != nil {
		return err
	}
	m, err := logmirror.Open(f.dir, verifier)
	if err != nil {
		return err
	}
	defer m.Close()
	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	for {
		if err := c.update(ctx, m, cl, f); err != nil {
			switch {
			case errors.Is(err, logmirror.ErrNotVerified) || errors.Is(err, logmirror.ErrDeleted):
				return err
			case ctx.Err() != nil && f.follow == 0:
				// A one-shot update interrupted: it did not finish, which
				// is a failure to say so, not an internal error.
				return errors.New("interrupted: the update did not finish (the mirror holds what the last finished update verified; run mirror again)")
			case ctx.Err() != nil:
				return nil // stopped by a signal; the unfinished update is cut off at the next
			case f.follow == 0:
				return err
			}
			// The server may be restarting: try again at the next round.
			fmt.Fprintf(c.Stderr, "audittrail mirror: %v\n", err)
		}
		if f.follow == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.follow):
		}
	}
}

func (c *MirrorCommand) update(ctx context.Context, m *logmirror.Mirror, src logmirror.Source, f mirrorFlags) error {
	lastReport := time.Now()
	opts := logmirror.UpdateOptions{AllowDeleted: f.allowDeleted, Progress: func(done, size uint64) {
		if !f.quiet && time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(c.Stderr, "audittrail mirror: fetched %d of %d entries\n", done, size)
		}
	}}
	u, err := m.Update(ctx, src, opts)
	if err != nil {
		if errors.Is(err, logmirror.ErrNotVerified) || errors.Is(err, logmirror.ErrDeleted) || errors.Is(err, merkle.ErrNotWitnessed) {
			return err
		}
		return errors.New(audittrail.ErrorMessage(err))
	}
	if !f.quiet {
		cp := u.Checkpoint
		deleted := ""
		if u.Deleted > 0 {
			deleted = fmt.Sprintf(" (%d of them deleted by the server: leaf hashes only)", u.Deleted)
		}
		fmt.Fprintf(c.Stdout, "%s: %d entries (+%d%s), verified against the checkpoint of size %d, root %s, received-before %s\n",
			f.dir, u.To, u.To-u.From, deleted, cp.Size, merkle.HashString(cp.Root), cp.ReceivedBefore.Format(merkle.HorizonLayout))
	}
	return nil
}

// addLogReaderFlags registers the flags of the commands that read the log's
// entries (mirror, window, tail): the server, an auditor's token, TLS, and
// the log's public key.
func (c *connFlags) addLogReaderFlags(fs *flag.FlagSet, logKey, witnessPolicy *string) {
	fs.StringVar(&c.addr, "addr", envDefault("127.0.0.1:8080", "AUDITTRAIL_ADDR"), "`host:port` of the server's public (or internal) listener")
	fs.StringVar(&c.token, "token", envDefault("", "AUDITTRAIL_TOKEN"), "bearer `token` of an auditor")
	c.addTLSFlags(fs)
	fs.StringVar(logKey, "log-key", "", "public key `file` of the log (the server's log-verification.key; several keys, one per line, across a rotation)")
	fs.StringVar(witnessPolicy, "witness-policy", "", "witness policy `file`: trust only checkpoints cosigned by the quorum of witnesses it names (docs/configuration.md, \"Witnesses\")")
}

// windowError is the command's error for err, which ended a verified
// window: the server's or the connection's own message, or, for a check
// that failed, errVerify.
func windowError(err error) error {
	var ae *audittrail.Error
	if errors.As(err, &ae) {
		return errors.New(audittrail.ErrorMessage(err))
	}
	return fmt.Errorf("%w: %w", errVerify, err)
}
