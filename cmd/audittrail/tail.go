package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/internal/flock"
	"github.com/audittrail/audittrail/merkle"
)

// TailCommand implements "audittrail tail": it follows a running server's
// log and prints each new event once it is proven, for forwarding to a SIEM
// or a log pipeline. Each round is a verified window (client.VerifiedWindow)
// from the last checkpoint printed up to, kept in a state file, to the
// latest.
type TailCommand struct {
	Stdout, Stderr io.Writer
}

const tailSynopsis = `usage: audittrail tail --log-key PUBKEY --state FILE [--interval 5s] [--from-start] [--once] [flags]

Follows a running server's log: prints every event the log receives, in the
log's order, as JSON lines (or a table), once a signed checkpoint covers it
and its proof is checked, for forwarding to a SIEM or a log pipeline
("audittrail tail ... | your-shipper"). Each round reads the events between
the last checkpoint printed up to and the server's latest (a window, as
"audittrail window" prints one): every event proven at its own position, the
two checkpoints proven to be of one history, so nothing can be left out,
changed or added unnoticed.

FILE keeps the last checkpoint printed up to, replaced after each round: a
restarted tail goes on from there. FILE.lock keeps a second tail off the same
FILE. Delivery is at least once: a tail stopped
during a round prints that round's events again when it restarts (each event's
"name" is unique, for consumers that must not see one twice). Without FILE
present, the tail starts at the server's latest checkpoint (only events
received from then on), or with --from-start at the log's first event.

A check that fails (a forged or forked log) stops the command with exit
status 1 and leaves FILE as it was, as do events the server's retention
deleted (serve --retention, or a dropped month of a PostgreSQL store) unless
--allow-deleted is given: then their leaf hashes are proven in their place,
and the deleted leaves are reported on stderr; network and server errors are
reported on stderr and the round is tried again. It needs an auditor's token,
and every page it reads (up to 1000 events) is a self-audit event, which the
next round prints in turn: even on an idle server, once a tail has read an
event, it sees one new event per round, the record of its own last read (a
new FILE on an idle server reads nothing, so prints nothing, until an event
arrives).

Examples:
  audittrail tail --log-key log-verification.key --state /var/lib/audit-tail/state | vector --config tail.toml
  audittrail tail --log-key log-verification.key --state state --from-start --once > everything.jsonl

Exit status: 0 stopped by a signal or, with --once, after one round; 1 the
log did not verify or another error; 2 bad usage.

Environment: AUDITTRAIL_ADDR (--addr), AUDITTRAIL_TOKEN (--token).
`

type tailFlags struct {
	connFlags
	logKey, state, format         string
	witnessPolicy                 string
	interval                      time.Duration
	fromStart, once, allowDeleted bool
}

func newTailFlags(f *tailFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	f.addLogReaderFlags(fs, &f.logKey, &f.witnessPolicy)
	fs.StringVar(&f.state, "state", "", "`file` keeping the last checkpoint printed up to (created when missing)")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "time between rounds")
	fs.BoolVar(&f.fromStart, "from-start", false, "without a state file, start at the log's first event instead of its latest checkpoint")
	fs.BoolVar(&f.once, "once", false, "run one round and exit")
	fs.BoolVar(&f.allowDeleted, "allow-deleted", false, "cross leaves whose events the server's retention deleted, proving their leaf hashes (reported on stderr)")
	fs.StringVar(&f.format, "o", formatJSONL, "output `format`: jsonl (one event per line), table or csv (one row per event, for spreadsheets)")
	return fs
}

// Usage returns the help text.
func (c *TailCommand) Usage() string {
	return usageText(tailSynopsis, newTailFlags(&tailFlags{}))
}

// Run runs the command with the arguments after "tail".
func (c *TailCommand) Run(ctx context.Context, args []string) error {
	var f tailFlags
	fs := newTailFlags(&f)
	if err := parseFlags(fs, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
	case f.logKey == "":
		return usageErrorf("give the log's public key with --log-key")
	case f.state == "":
		return usageErrorf("give the state file with --state (it keeps the position across restarts)")
	case f.interval <= 0:
		return usageErrorf("--interval %s: give a positive interval", f.interval)
	case f.format != formatJSONL && f.format != formatTable && f.format != formatCSV:
		return usageErrorf("-o %q: use jsonl, table or csv", f.format)
	}
	verifier, err := loadVerifier(f.logKey, f.witnessPolicy)
	if err != nil {
		return err
	}
	// Two tails on one state file would print every event twice.
	unlock, err := flock.Lock(f.state + ".lock")
	if errors.Is(err, flock.ErrLocked) {
		return fmt.Errorf("%s: another tail is running with this state file", f.state)
	}
	if err != nil {
		return err
	}
	defer unlock()
	var older *merkle.Checkpoint // nil: no state file yet
	switch text, err := os.ReadFile(f.state); {
	case errors.Is(err, iofs.ErrNotExist):
	case err != nil:
		return err
	default:
		// Accepted when it was saved; --witness-policy applies to the
		// checkpoints read from now on.
		if older, err = merkle.OpenCheckpoint(text, merkle.Unwitnessed(verifier)); err != nil {
			return fmt.Errorf("%s: %w: %w", f.state, errVerify, err)
		}
	}
	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	out, _ := newEventWriter(c.Stdout, f.format) // one table header for the whole run
	t := &tail{cmd: c, flags: f, cl: cl, older: older, out: out}
	for {
		err := t.round(ctx, verifier)
		switch {
		case ctx.Err() != nil:
			return nil // stopped by a signal: the round is printed again at the next start
		case errors.Is(err, errVerify), errors.Is(err, errOutput), errors.Is(err, errStuck):
			return err
		case err != nil && f.once:
			return err
		case err != nil:
			fmt.Fprintf(c.Stderr, "audittrail tail: %v (trying again in %s)\n", err, f.interval)
		}
		if f.once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.interval):
		}
	}
}

// errOutput wraps a failed write of the events (a closed pipe, a full
// disk), errStuck a window the server cannot serve (deleted events): the
// tail stops, since trying again would not help.
var (
	errOutput = errors.New("writing the events")
	errStuck  = errors.New("the log's next events cannot be read")
)

// tail is the state of a running tail.
type tail struct {
	cmd   *TailCommand
	flags tailFlags
	cl    *client.Client
	older *merkle.Checkpoint // the last checkpoint printed up to; nil before the first round without a state file
	out   eventWriter        // flushed (closed) after each round
}

// round prints the events between t.older and the server's latest
// checkpoint, then makes that checkpoint the state.
func (t *tail) round(ctx context.Context, verifier note.Verifier) error {
	text, err := t.cl.Checkpoint(ctx)
	if err != nil {
		return errors.New(audittrail.ErrorMessage(err))
	}
	latest, err := merkle.OpenCheckpoint(text, verifier)
	if errors.Is(err, merkle.ErrNotWitnessed) {
		// A witness down or slow: wait for a checkpoint the policy
		// accepts rather than stop.
		fmt.Fprintf(t.cmd.Stderr, "audittrail tail: the server's latest checkpoint is not cosigned as --witness-policy requires: waiting (%v)\n", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("the server's checkpoint: %w: %w", errVerify, err)
	}
	from := t.older
	switch {
	case from == nil && !t.flags.fromStart:
		// A new tail starts at the latest checkpoint: nothing to print.
		return t.save(text, latest)
	case from == nil:
		if from, err = merkle.EmptyCheckpoint(latest.Origin); err != nil {
			return err
		}
	case latest.Size < from.Size:
		// A replica behind the one that served the state's checkpoint (or a
		// rolled-back log, which the next window's consistency proof finds).
		fmt.Fprintf(t.cmd.Stderr, "audittrail tail: the server's latest checkpoint (size %d) is behind the state's (size %d): waiting\n", latest.Size, from.Size)
		return nil
	case latest.Size == from.Size && latest.ReceivedBefore.Equal(from.ReceivedBefore):
		return nil
	}
	out := t.out
	var opts []client.WindowOption
	if t.flags.allowDeleted {
		opts = append(opts, client.WithDeletedLeaves())
	}
	var deleted deletedLeaves
	defer deleted.report(t.cmd.Stderr, "audittrail tail")
	for pe, err := range t.cl.VerifiedWindow(ctx, from, latest, verifier, opts...) {
		if err != nil {
			_ = out.close(nil)
			if audittrail.ErrorCode(err) == audittrail.ENotFound {
				// Events deleted by the server's retention (a dropped month
				// of the PostgreSQL store), without --allow-deleted: trying
				// again would not help.
				return fmt.Errorf("%w: %s; give --allow-deleted to prove their leaf hashes and go on", errStuck, audittrail.ErrorMessage(err))
			}
			return windowError(err)
		}
		if pe.Deleted {
			deleted.add(pe.Proof.LeafIndex) // proven, so not pending: Proof is set
			continue
		}
		if err := out.write(pe.Event); err != nil {
			return fmt.Errorf("%w: %w", errOutput, err)
		}
	}
	if err := out.close(nil); err != nil {
		return fmt.Errorf("%w: %w", errOutput, err)
	}
	return t.save(text, latest)
}

// save makes the checkpoint the state, durably: what was printed before it
// is not printed again.
func (t *tail) save(text []byte, cp *merkle.Checkpoint) error {
	if err := durablefile.Replace(t.flags.state, text, 0o640); err != nil {
		return err
	}
	t.older = cp
	return nil
}

// deletedLeaves gathers the leaves a window crossed whose events were
// deleted, as ranges, for one line on stderr.
type deletedLeaves struct{ ranges [][2]uint64 }

func (d *deletedLeaves) add(leaf uint64) {
	if n := len(d.ranges); n > 0 && d.ranges[n-1][1]+1 == leaf {
		d.ranges[n-1][1] = leaf
		return
	}
	d.ranges = append(d.ranges, [2]uint64{leaf, leaf})
}

func (d *deletedLeaves) report(w io.Writer, prefix string) {
	if len(d.ranges) == 0 {
		return
	}
	var b strings.Builder
	n := uint64(0)
	for i, r := range d.ranges {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d-%d", r[0], r[1])
		n += r[1] - r[0] + 1
	}
	fmt.Fprintf(w, "%s: %d leaves whose events the server's retention deleted (leaves %s): their leaf hashes are proven in place, their events are gone\n", prefix, n, b.String())
}
