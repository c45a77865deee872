package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/merkle"
)

// WindowCommand implements "audittrail window": the events between two
// signed checkpoints, proven complete (client.VerifiedWindow).
type WindowCommand struct {
	Stdout, Stderr io.Writer
}

const windowSynopsis = `usage: audittrail window --log-key PUBKEY [flags] OLDER NEWER

Prints the events of a running server's log between two signed checkpoints
(files, as "GET /v1/log/checkpoint" returns the checkpoint text, or as
"audittrail mirror" keeps it): the events received between their horizons,
in the log's order, each proven at its own position in the log, and the two
checkpoints proven to be of one history. An event left out of the window,
added to it, changed or moved fails the command. It is an export of a time
range that proves itself complete, without mirroring the whole log.

The events are printed page by page as their proofs are checked; the exit
status says whether the whole window was proven: on a non-zero status,
discard what was printed. Events the server's retention deleted (serve
--retention, or a dropped month of a PostgreSQL store) stop it, unless --allow-deleted is given: their
leaf hashes are then proven in their place and reported on stderr.

It needs an auditor's token; every page read is a self-audit event.

Examples:
  curl -s -H "Authorization: Bearer $READER" http://127.0.0.1:8080/v1/log/checkpoint | jq -j .checkpoint > monday.cp
  audittrail window --log-key log-verification.key monday.cp tuesday.cp -o jsonl > monday.jsonl

Exit status: 0 proven, 1 not proven (the message says why) or another error,
2 bad usage.

Environment: AUDITTRAIL_ADDR (--addr), AUDITTRAIL_TOKEN (--token).
`

type windowFlags struct {
	connFlags
	logKey, format string
	witnessPolicy  string
	allowDeleted   bool
}

func newWindowFlags(f *windowFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("window", flag.ContinueOnError)
	f.addLogReaderFlags(fs, &f.logKey, &f.witnessPolicy)
	fs.StringVar(&f.format, "o", formatJSONL, "output `format`: jsonl (one event per line), table or csv (one row per event, for spreadsheets)")
	fs.BoolVar(&f.allowDeleted, "allow-deleted", false, "cross leaves whose events the server's retention deleted, proving their leaf hashes (reported on stderr)")
	return fs
}

// Usage returns the help text.
func (c *WindowCommand) Usage() string {
	return usageText(windowSynopsis, newWindowFlags(&windowFlags{}))
}

// Run runs the command with the arguments after "window".
func (c *WindowCommand) Run(ctx context.Context, args []string) error {
	var f windowFlags
	fs := newWindowFlags(&f)
	// Flags may come after the checkpoint files too, as in the example of
	// -h ("window --log-key K monday.cp tuesday.cp -o jsonl").
	files, err := parseFlagsAnywhere(fs, args, c.Usage(), c.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch {
	case len(files) != 2:
		return usageErrorf("give the older and the newer checkpoint files (see -h)")
	case f.logKey == "":
		return usageErrorf("give the log's public key with --log-key")
	case f.format != formatJSONL && f.format != formatTable && f.format != formatCSV:
		return usageErrorf("-o %q: use jsonl, table or csv", f.format)
	}
	verifier, err := loadVerifier(f.logKey, f.witnessPolicy)
	if err != nil {
		return err
	}
	var cps [2]*merkle.Checkpoint
	for i := range cps {
		if cps[i], err = openCheckpointFile(f.logKey, f.witnessPolicy, files[i]); err != nil {
			return err
		}
	}
	if cps[0].Size > cps[1].Size {
		// Both are signed by the log, so they are not a lie to report
		// (exit 1) but arguments in the wrong order.
		return usageErrorf("%s (tree size %d) is newer than %s (tree size %d): give the older checkpoint first",
			files[0], cps[0].Size, files[1], cps[1].Size)
	}
	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	out, _ := newEventWriter(c.Stdout, f.format)
	n := 0
	var opts []client.WindowOption
	if f.allowDeleted {
		opts = append(opts, client.WithDeletedLeaves())
	}
	var deleted deletedLeaves
	defer deleted.report(c.Stderr, "audittrail window")
	for pe, err := range cl.VerifiedWindow(ctx, cps[0], cps[1], verifier, opts...) {
		if err != nil {
			_ = out.close(nil)
			return windowError(err)
		}
		if pe.Deleted {
			deleted.add(pe.Proof.LeafIndex) // proven, so not pending: Proof is set
			continue
		}
		if err := out.write(pe.Event); err != nil {
			return err
		}
		n++
	}
	if err := out.close(nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "%d events, seqs %d to %d, received from %s to before %s: proven complete\n", n, cps[0].Size+1, cps[1].Size,
		cps[0].ReceivedBefore.UTC().Format(time.RFC3339Nano), cps[1].ReceivedBefore.UTC().Format(time.RFC3339Nano))
	return nil
}
