package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

const verifySynopsis = `usage:
  audittrail verify checkpoint --key PUBKEY CHECKPOINT
  audittrail verify inclusion --key PUBKEY --checkpoint CHECKPOINT --event EVENT.json --proof PROOF.json
  audittrail verify consistency --key PUBKEY OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json
  audittrail verify store --data-dir DIR [--key PUBKEY] [--strict]

Verifies the verifiable log offline, with the log's public key alone
(<data-dir>/log-verification.key; docs/design/verifiable-log.md).

  checkpoint   checks the signature and format of a signed checkpoint and prints it
  inclusion    checks that the event (API JSON, as "audittrail search -o json"
               prints it) is leaf proof.leaf_index, at seq leaf_index+1, of the
               checkpoint's tree
  consistency  checks that OLD's tree is a prefix of NEW's
  store        full audit of an embedded data directory, with the server
               stopped: recomputes the tree from every event and compares it
               with every stored signed checkpoint; reports the first
               divergent leaf. Horizon and receive-order findings are
               warnings unless --strict.

Exit status: 0 verified, 1 verification failed or error, 2 bad usage.
`

// VerifyCommand is "audittrail verify".
type VerifyCommand struct {
	Stdout, Stderr io.Writer
}

func (c *VerifyCommand) flags() (*flag.FlagSet, *verifyFlags) {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	f := &verifyFlags{}
	fs.StringVar(&f.key, "key", "", "public key `file` of the log (log-verification.key)")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "signed checkpoint `file` (inclusion)")
	fs.StringVar(&f.event, "event", "", "event JSON `file` (inclusion)")
	fs.StringVar(&f.proof, "proof", "", "proof JSON `file` (inclusion)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data `directory` of a stopped server (store)")
	fs.BoolVar(&f.strict, "strict", false, "store: fail on horizon and receive-order findings too")
	return fs, f
}

type verifyFlags struct {
	key, checkpoint, event, proof, dataDir string
	strict                                 bool
}

// Usage implements command.
func (c *VerifyCommand) Usage() string {
	fs, _ := c.flags()
	return usageText(verifySynopsis, fs)
}

var errVerify = errors.New("verification failed")

// Run implements command.
func (c *VerifyCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("verify: missing subcommand (see -h)")
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(c.Stdout, c.Usage())
		return nil
	}
	sub := args[0]
	fs, f := c.flags()
	// Flags may come before or after the positional arguments.
	var pos []string
	rest := args[1:]
	for {
		if err := parseFlags(fs, rest, c.Usage(), c.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch sub {
	case "checkpoint":
		if len(pos) != 1 {
			return usageErrorf("verify checkpoint: give one checkpoint file")
		}
		cp, err := openCheckpointFile(f.key, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "checkpoint OK: origin %s, size %d, root %s, received-before %s\n",
			cp.Origin, cp.Size, merkle.HashString(cp.Root), cp.ReceivedBefore.Format(merkle.HorizonLayout))
		return nil
	case "inclusion":
		if len(pos) != 0 || f.checkpoint == "" || f.event == "" || f.proof == "" {
			return usageErrorf("verify inclusion: give --checkpoint, --event and --proof")
		}
		return c.inclusion(f)
	case "consistency":
		if len(pos) != 3 {
			return usageErrorf("verify consistency: give OLD NEW PROOF")
		}
		return c.consistency(f, pos[0], pos[1], pos[2])
	case "store":
		if len(pos) != 0 || f.dataDir == "" {
			return usageErrorf("verify store: give --data-dir")
		}
		return c.store(ctx, f)
	}
	return usageErrorf("verify: unknown subcommand %q (see -h)", sub)
}

func loadVerifier(keyFile string) (note.Verifier, error) {
	if keyFile == "" {
		return nil, usageErrorf("give the log's public key with --key")
	}
	text, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return merkle.NewVerifier(text)
}

func openCheckpointFile(keyFile, file string) (*merkle.Checkpoint, error) {
	v, err := loadVerifier(keyFile)
	if err != nil {
		return nil, err
	}
	msg, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cp, err := merkle.OpenCheckpoint(msg, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", file, errVerify, err)
	}
	return cp, nil
}

func (c *VerifyCommand) inclusion(f *verifyFlags) error {
	cp, err := openCheckpointFile(f.key, f.checkpoint)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(f.proof)
	if err != nil {
		return err
	}
	var proof merkle.Inclusion
	if err := json.Unmarshal(raw, &proof); err != nil {
		return fmt.Errorf("%s: %w", f.proof, err)
	}
	raw, err = os.ReadFile(f.event)
	if err != nil {
		return err
	}
	var pe pb.Event
	if err := protojson.Unmarshal(raw, &pe); err != nil {
		return fmt.Errorf("%s: %w", f.event, err)
	}
	e, err := wire.EventFromOutputProto(&pe)
	if err != nil {
		return fmt.Errorf("%s: %w", f.event, err)
	}
	// The API does not show seq; it is inside the leaf, so the proof's
	// position is checked along with the fields.
	e.Seq = proof.LeafIndex + 1
	if err := merkle.VerifyEventInclusion(cp, e, &proof); err != nil {
		return fmt.Errorf("%w: %w", errVerify, err)
	}
	fmt.Fprintf(c.Stdout, "inclusion OK: event %s is seq %d of the tree of size %d (origin %s)\n", e.ID, e.Seq, cp.Size, cp.Origin)
	return nil
}

func (c *VerifyCommand) consistency(f *verifyFlags, oldFile, newFile, proofFile string) error {
	older, err := openCheckpointFile(f.key, oldFile)
	if err != nil {
		return err
	}
	newer, err := openCheckpointFile(f.key, newFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(proofFile)
	if err != nil {
		return err
	}
	var proof merkle.Consistency
	if err := json.Unmarshal(raw, &proof); err != nil {
		return fmt.Errorf("%s: %w", proofFile, err)
	}
	w, err := merkle.VerifyWindow(older, newer, &proof)
	if err != nil {
		return fmt.Errorf("%w: %w", errVerify, err)
	}
	fmt.Fprintf(c.Stdout, "consistency OK: size %d is a prefix of size %d; events received in [%s, %s) are seq %d..%d\n",
		older.Size, newer.Size, w.Start.Format(merkle.HorizonLayout), w.End.Format(merkle.HorizonLayout), w.First, w.Last)
	return nil
}

func (c *VerifyCommand) store(ctx context.Context, f *verifyFlags) error {
	keyFile := f.key
	if keyFile == "" {
		keyFile = filepath.Join(f.dataDir, logsign.VerificationKeyFile)
	}
	vkey, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	dbDir := filepath.Join(f.dataDir, storeDir)
	if _, err := os.Stat(dbDir); err != nil {
		return fmt.Errorf("no embedded store in %s: %w", f.dataDir, err)
	}
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: dbDir, Logger: discardLogger()})
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := logsign.AuditStore(ctx, st, string(vkey))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "audited %d events; root %s; %d signed checkpoints checked, %d beyond the events\n",
		rep.Leaves, merkle.HashString(rep.Root), rep.Checked, rep.Unchecked)
	failed := false
	if d := rep.Divergence; d != nil {
		failed = true
		fmt.Fprintf(c.Stdout, "DIVERGENCE: the signed checkpoint of size %d (root %s) does not match the stored events (recomputed root %s)\n",
			d.Checkpoint.Size, merkle.HashString(d.Checkpoint.Root), merkle.HashString(d.Root))
		if d.Exact {
			id := ""
			if evs, err := st.EventsBySeq(ctx, d.FirstLeaf+1, d.FirstLeaf+1); err == nil {
				id = evs[0].ID
			}
			fmt.Fprintf(c.Stdout, "first divergent leaf: %d (seq %d, event %s): signed leaf hash %s, stored event hashes to %s\n",
				d.FirstLeaf, d.FirstLeaf+1, id, merkle.HashString(d.LogLeaf), merkle.HashString(d.Leaf))
		} else {
			fmt.Fprintf(c.Stdout, "first divergent leaf in [%d, %d) (seq %d..%d): %s\n", d.FirstLeaf, d.Checkpoint.Size, d.FirstLeaf+1, d.Checkpoint.Size, d.Note)
		}
		if rep.Disagreeing > 1 {
			fmt.Fprintf(c.Stdout, "%d checkpoints disagree in all\n", rep.Disagreeing)
		}
	}
	if rep.HorizonCount > 0 {
		fmt.Fprintf(c.Stdout, "warning: %d leaves on the wrong side of a checkpoint's received-before horizon (first: leaf %d, received %s, checkpoint size %d)\n",
			rep.HorizonCount, rep.Horizon[0].LeafIndex, rep.Horizon[0].ReceiveTime.UTC().Format(merkle.HorizonLayout), rep.Horizon[0].Checkpoint.Size)
		failed = failed || f.strict
	}
	if rep.ReceiveOrder >= 0 {
		fmt.Fprintf(c.Stdout, "warning: leaf %d was received before the leaf preceding it\n", rep.ReceiveOrder)
		failed = failed || f.strict
	}
	if failed {
		return errVerify
	}
	fmt.Fprintln(c.Stdout, "store OK")
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
