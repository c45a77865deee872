package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/logmirror"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/postgres"
	"github.com/audittrail/audittrail/witness"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

const verifySynopsis = `usage:
  audittrail verify checkpoint --key PUBKEY [--witness-policy FILE] CHECKPOINT
  audittrail verify inclusion --key PUBKEY --checkpoint CHECKPOINT --event EVENT.json --proof PROOF.json
  audittrail verify consistency --key PUBKEY OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json
  audittrail verify answer --key PUBKEY [--strict] ANSWER.json
  audittrail verify store --data-dir DIR [--key PUBKEY] [--strict] [--allow-deleted]
  audittrail verify store --store postgres://... --key PUBKEY [--strict] [--allow-deleted]
  audittrail verify mirror --key PUBKEY DIR [CHECKPOINT...]

Verifies the verifiable log offline, with the log's public key alone
(<data-dir>/log-verification.key; docs/design/verifiable-log.md). With
--witness-policy (every subcommand but store), a checkpoint must also carry
the cosignatures of the policy's quorum of witnesses (docs/configuration.md,
"Witnesses").

  checkpoint   checks the signature and format of a signed checkpoint and prints it
  inclusion    checks that the event (API JSON, as "audittrail search -o jsonl"
               prints it) is leaf proof.leaf_index, at seq leaf_index+1, of the
               checkpoint's tree
  consistency  checks that OLD's tree is a prefix of NEW's
  answer       checks a saved REST answer with proofs (a search with
               "includeProofs": true, a create with a receipt): the
               checkpoint's signature, and every event, with exactly its
               content, at its leaf. Events the checkpoint did not cover yet
               are listed pending (an error with --strict).
  store        full audit of a store: the embedded store of a data
               directory (with the server stopped), or a PostgreSQL database
               (--store; replicas may run). Recomputes the tree from every
               event and compares it with every stored signed checkpoint;
               reports the first divergent leaf, a leaf whose event is gone,
               and events that searches show but the log does not hold.
               The embedded store's indexes are checked too: every key of
               the database is read (Pebble checks each block's checksum),
               and every event must be in each index its fields put it in
               (posting lists, value column, id index, log positions), every
               index entry must name a stored event with that value, and
               records may refer only to values their dictionaries hold;
               each problem is a line "INDEX MISSING/EXTRA/CORRUPT/...:"
               naming the index and the event's seq and id. Events before a
               retention cutoff are not compared. Posting counts (the
               planner's statistics, saved about once a second) that differ
               from the events' are notes, never a failure. A PostgreSQL
               store's indexes are PostgreSQL's own (check them with
               amcheck).
               Horizon and receive-order findings, and leaves no checkpoint
               signs yet, are warnings unless --strict. With --allow-deleted
               (after serve --retention, or a PostgreSQL month dropped),
               events that are gone are audited by their leaf hashes, which
               must still fit every signed checkpoint, and their seqs are
               listed.
  mirror       checks a directory of "audittrail mirror" (or a copy of it):
               the checkpoint's signature, and that entries.jsonl holds
               exactly its events, in order, hashing to its root. Each
               CHECKPOINT given (signed checkpoints kept from answers with
               proofs, from other people) is checked against the mirror's
               tree at its size: one that differs means the log showed two
               histories. One beyond the mirror fails: update it first.

Exit status: 0 verified, 1 verification failed or error, 2 bad usage.
`

// VerifyCommand is "audittrail verify".
type VerifyCommand struct {
	Stdout, Stderr io.Writer
}

func (c *VerifyCommand) flags() (*flag.FlagSet, *verifyFlags) {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	f := &verifyFlags{}
	fs.StringVar(&f.key, "key", "", "public key `file` of the log (log-verification.key; several keys, one per line, across a rotation)")
	fs.StringVar(&f.witnessPolicy, "witness-policy", "", "witness policy `file`: accept only checkpoints cosigned by the quorum of witnesses it names (docs/configuration.md, \"Witnesses\"); not for store")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "signed checkpoint `file` (inclusion)")
	fs.StringVar(&f.event, "event", "", "event JSON `file` (inclusion)")
	fs.StringVar(&f.proof, "proof", "", "proof JSON `file` (inclusion)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data `directory` of a stopped server (store)")
	fs.StringVar(&f.store, "store", "", "store: a postgres:// `URL` to audit instead of a data directory")
	fs.BoolVar(&f.allowDeleted, "allow-deleted", false, "store: audit the events left after retention deleted some (serve --retention, or a PostgreSQL month dropped); the deleted ones are checked by their leaf hashes and listed, instead of failing the audit")
	fs.BoolVar(&f.strict, "strict", false, "store: fail on horizon and receive-order findings, and on leaves no checkpoint signs yet; answer: fail on pending events")
	return fs, f
}

type verifyFlags struct {
	key, checkpoint, event, proof, dataDir, store string
	witnessPolicy                                 string
	strict, allowDeleted                          bool
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
	pos, err := parseFlagsAnywhere(fs, args[1:], c.Usage(), c.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch sub {
	case "checkpoint":
		if len(pos) != 1 {
			return usageErrorf("verify checkpoint: give one checkpoint file")
		}
		cp, err := openCheckpointFile(f.key, f.witnessPolicy, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "checkpoint OK: origin %s, size %d, root %s, received-before %s, signed by %s\n",
			cp.Origin, cp.Size, merkle.HashString(cp.Root), cp.ReceivedBefore.Format(merkle.HorizonLayout), strings.Join(cp.SignedBy(), " and "))
		return nil
	case "inclusion":
		if len(pos) != 0 || f.checkpoint == "" || f.event == "" || f.proof == "" {
			return usageErrorf("verify inclusion: give --checkpoint, --event and --proof")
		}
		return c.inclusion(f)
	case "answer":
		if len(pos) != 1 {
			return usageErrorf("verify answer: give one answer file")
		}
		return c.answer(f, pos[0])
	case "consistency":
		if len(pos) != 3 {
			return usageErrorf("verify consistency: give OLD NEW PROOF")
		}
		return c.consistency(f, pos[0], pos[1], pos[2])
	case "mirror":
		if len(pos) == 0 {
			return usageErrorf("verify mirror: give the mirror's directory, then any checkpoints to check against it")
		}
		return c.mirror(f, pos[0], pos[1:])
	case "store":
		if len(pos) != 0 || (f.dataDir == "") == (f.store == "") {
			return usageErrorf("verify store: give --data-dir, or --store with a postgres:// URL")
		}
		if f.store != "" && !isPostgresURL(f.store) {
			return usageErrorf("verify store: --store %q: give a postgres:// URL", f.store)
		}
		if f.store != "" && f.key == "" {
			return usageErrorf("verify store: give the log's public key with --key (the database's own copy is not evidence)")
		}
		return c.store(ctx, f)
	}
	return usageErrorf("verify: unknown subcommand %q (see -h)", sub)
}

// loadVerifier reads the log's public keys; with a witness policy file,
// the verifier also requires, of every checkpoint, the witnesses'
// cosignatures the policy asks for (merkle.Witnessed).
func loadVerifier(keyFile, policyFile string) (note.Verifier, error) {
	if keyFile == "" {
		return nil, usageErrorf("give the log's public key with --key")
	}
	text, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	v, err := merkle.NewVerifier(text)
	if err != nil || policyFile == "" {
		return v, err
	}
	policy, err := witness.LoadPolicy(policyFile)
	if err != nil {
		return nil, err
	}
	return merkle.Witnessed(v, policy), nil
}

func openCheckpointFile(keyFile, policyFile, file string) (*merkle.Checkpoint, error) {
	v, err := loadVerifier(keyFile, policyFile)
	if err != nil {
		return nil, err
	}
	msg, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cp, err := merkle.OpenCheckpoint(msg, v)
	if err != nil {
		if bytes.HasSuffix(msg, []byte("\n\n")) {
			// The signed note already ends with a newline; a tool that
			// adds one (jq -r, echo "$cp") leaves an empty last line.
			return nil, fmt.Errorf("%s: %w: %w (the file ends with an empty line: save the checkpoint's text exactly as the server returns it, e.g. with jq -j, not jq -r)", file, errVerify, err)
		}
		return nil, fmt.Errorf("%s: %w: %w", file, errVerify, err)
	}
	return cp, nil
}

func (c *VerifyCommand) inclusion(f *verifyFlags) error {
	cp, err := openCheckpointFile(f.key, f.witnessPolicy, f.checkpoint)
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

func (c *VerifyCommand) answer(f *verifyFlags, file string) error {
	v, err := loadVerifier(f.key, f.witnessPolicy)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	events, proofs, err := client.ParseAnswer(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	cp, pending, err := proofs.Verify(v, events)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", file, errVerify, err)
	}
	if cp == nil {
		fmt.Fprintf(c.Stdout, "answer: the log had signed no checkpoint yet; %d events pending\n", pending)
	} else {
		fmt.Fprintf(c.Stdout, "answer OK: %d events proven in the tree of size %d (origin %s), %d pending\n",
			len(events)-pending, cp.Size, cp.Origin, pending)
	}
	for _, in := range proofs.Inclusions {
		state := "proven"
		if in.Pending {
			state = "pending"
		}
		fmt.Fprintf(c.Stdout, "%s leaf %d %s\n", in.Name, in.LeafIndex, state)
	}
	if pending > 0 && f.strict {
		return fmt.Errorf("%s: %w: %d events pending (--strict)", file, errVerify, pending)
	}
	return nil
}

func (c *VerifyCommand) consistency(f *verifyFlags, oldFile, newFile, proofFile string) error {
	older, err := openCheckpointFile(f.key, f.witnessPolicy, oldFile)
	if err != nil {
		return err
	}
	newer, err := openCheckpointFile(f.key, f.witnessPolicy, newFile)
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

// auditCacheSize is the block cache of the embedded store that verify store
// opens: the audit reads each block once, in storage order
// (pebblestore.Store.ScanEvents), so a cache would only hold memory.
const auditCacheSize = 16 << 20

// auditedStore is a store that verify store can audit.
type auditedStore interface {
	audittrail.LogStore
	Close() error
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
	var st auditedStore
	if f.store != "" {
		// An audit changes nothing: the database refuses any write, and
		// a role with SELECT on the tables is enough.
		// Warnings (a schema newer than this build) go to stderr.
		log := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		pg, err := postgres.Open(ctx, postgres.Config{URL: f.store, Logger: log, ReadOnly: true})
		if err != nil {
			return err
		}
		st = pg
	} else {
		dbDir := filepath.Join(f.dataDir, storeDir)
		if _, err := os.Stat(dbDir); err != nil {
			return fmt.Errorf("no embedded store in %s: %w", f.dataDir, err)
		}
		if err := checkRestoredStore(f.dataDir); err != nil {
			return err
		}
		// Read-only, as the PostgreSQL store's: an audit must leave the
		// store as it found it, in its storage format too (a directory
		// of an older release, audited before the upgrade, would
		// otherwise be moved to this build's format, which that release
		// refuses).
		pb, err := pebblestore.Open(ctx, pebblestore.Config{Dir: dbDir, Logger: discardLogger(), CacheSize: auditCacheSize, ReadOnly: true})
		if err != nil {
			return err
		}
		st = pb
	}
	defer st.Close()
	rep, err := logsign.AuditStoreWith(ctx, st, string(vkey), logsign.AuditOptions{AllowDeleted: f.allowDeleted})
	var le *logsign.LeafError
	if errors.As(err, &le) {
		fmt.Fprintf(c.Stdout, "MISSING: leaf %d (seq %d): its event cannot be read from the store: %v\n", le.Leaf, le.Leaf+1, le.Err)
		if le.Signed != nil {
			fmt.Fprintf(c.Stdout, "the signed checkpoint of size %d (root %s) includes leaf %d with leaf hash %s\n",
				le.Signed.Size, merkle.HashString(le.Signed.Root), le.Leaf, merkle.HashString(le.LeafHash))
		}
		return errVerify
	}
	if err != nil {
		return err
	}
	eventID := func(leaf uint64) string {
		if evs, err := st.EventsBySeq(ctx, leaf+1, leaf+1); err == nil {
			return evs[0].ID
		}
		return "?"
	}
	fmt.Fprintf(c.Stdout, "audited %d events; root %s; %d signed checkpoints checked, %d beyond the events\n",
		rep.Leaves, merkle.HashString(rep.Root), rep.Checked, rep.Unchecked)
	if rep.AuditReport.Deleted > 0 {
		var ranges []string
		for _, d := range rep.Deleted {
			if d.First == d.Last {
				ranges = append(ranges, strconv.FormatUint(d.First, 10))
			} else {
				ranges = append(ranges, fmt.Sprintf("%d-%d", d.First, d.Last))
			}
		}
		more := ""
		if len(rep.Deleted) == 100 {
			more = ", ..."
		}
		fmt.Fprintf(c.Stdout, "deleted: %d events are gone (seqs %s%s); their leaf hashes fit the signed checkpoints, their content cannot be checked\n",
			rep.AuditReport.Deleted, strings.Join(ranges, ", "), more)
	}
	failed := false
	if d := rep.Divergence; d != nil {
		failed = true
		fmt.Fprintf(c.Stdout, "DIVERGENCE: the signed checkpoint of size %d (root %s) does not match the stored events (recomputed root %s)\n",
			d.Checkpoint.Size, merkle.HashString(d.Checkpoint.Root), merkle.HashString(d.Root))
		if d.Exact {
			fmt.Fprintf(c.Stdout, "first divergent leaf: %d (seq %d, event %s): signed leaf hash %s, stored event hashes to %s\n",
				d.FirstLeaf, d.FirstLeaf+1, eventID(d.FirstLeaf), merkle.HashString(d.LogLeaf), merkle.HashString(d.Leaf))
		} else {
			fmt.Fprintf(c.Stdout, "first divergent leaf in [%d, %d) (seq %d..%d): %s\n", d.FirstLeaf, d.Checkpoint.Size, d.FirstLeaf+1, d.Checkpoint.Size, d.Note)
		}
		if rep.Disagreeing > 1 {
			fmt.Fprintf(c.Stdout, "%d checkpoints disagree in all\n", rep.Disagreeing)
		}
	}
	for _, e := range rep.NotInLog {
		failed = true
		fmt.Fprintf(c.Stdout, "NOT IN LOG: searches show event %s with seq %d, which is not the log's leaf at that seq\n", e.ID, e.Seq)
	}
	if n := rep.NotInLogCount - len(rep.NotInLog); n > 0 {
		fmt.Fprintf(c.Stdout, "NOT IN LOG: %d more events\n", n)
	}
	for _, leaf := range rep.Unsearchable {
		failed = true
		fmt.Fprintf(c.Stdout, "NOT SEARCHABLE: leaf %d (seq %d, event %s) is shown by no search\n", leaf, leaf+1, eventID(leaf))
	}
	if n := rep.UnsearchableCount - len(rep.Unsearchable); n > 0 {
		fmt.Fprintf(c.Stdout, "NOT SEARCHABLE: %d more leaves\n", n)
	}
	if cs, ok := st.(interface{ Cutoff() time.Time }); ok && rep.UnsearchableCount > 0 && !f.allowDeleted && !cs.Cutoff().IsZero() {
		// Events before a retention cutoff are hidden before they are
		// deleted: with --allow-deleted they are audited as such.
		fmt.Fprintf(c.Stdout, "note: the store has a retention cutoff (%s): events before it are hidden until retention deletes them; audit with --allow-deleted\n",
			cs.Cutoff().Format(time.RFC3339))
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
	if rep.Leaves > rep.Covered {
		fmt.Fprintf(c.Stdout, "warning: leaves %d..%d (seq %d..%d, the first event %s) are signed by no stored checkpoint yet\n",
			rep.Covered, rep.Leaves-1, rep.Covered+1, rep.Leaves, eventID(rep.Covered))
		failed = failed || f.strict
	}
	if ps, ok := st.(*pebblestore.Store); ok {
		bad, err := c.checkIndexes(ctx, ps)
		if err != nil {
			return err
		}
		failed = failed || bad
	}
	if failed {
		return errVerify
	}
	fmt.Fprintln(c.Stdout, "store OK")
	return nil
}

// maxIndexFindings bounds the index findings verify store prints; the
// rest are counted.
const maxIndexFindings = 100

// checkIndexes runs the embedded store's index check
// (pebblestore.Store.CheckIndexes: every key read, the indexes compared
// with the records) and prints what it read and found. bad: a finding
// that makes the audit fail. Findings marked Warning (the planner's
// statistics, which lag by design: saved about once a second, so a backup
// or a crash leaves them behind) are printed as notes and never fail it.
func (c *VerifyCommand) checkIndexes(ctx context.Context, s *pebblestore.Store) (bad bool, err error) {
	var lines []string
	more := 0
	st, err := s.CheckIndexes(ctx, runtime.GOMAXPROCS(0), func(f pebblestore.IndexFinding) {
		bad = bad || !f.Warning
		switch {
		case len(lines) == maxIndexFindings:
			more++
		case f.Warning:
			lines = append(lines, fmt.Sprintf("note: %s", f))
		default:
			lines = append(lines, fmt.Sprintf("INDEX %s: %s", strings.ToUpper(f.Kind), f))
		}
	})
	if err != nil {
		return false, fmt.Errorf("index check: %w", err)
	}
	fmt.Fprintf(c.Stdout, "read every key of the store: %d keys, %.1f MiB (Pebble checked the checksum of every block read)\n", st.Keys, float64(st.Bytes)/(1<<20))
	if st.Complete {
		fmt.Fprintf(c.Stdout, "indexes: %d events compared with %d index entries (postings, value column, ids, log positions); %d events disagree",
			st.Events, st.Entries, st.Disagreeing)
		if st.BeforeCutoff > 0 {
			fmt.Fprintf(c.Stdout, "; %d records and entries before the retention cutoff not compared", st.BeforeCutoff)
		}
		fmt.Fprintln(c.Stdout)
	}
	for _, l := range lines {
		fmt.Fprintln(c.Stdout, l)
	}
	if more > 0 {
		fmt.Fprintf(c.Stdout, "INDEX: %d more findings\n", more)
	}
	if !st.Complete {
		fmt.Fprintln(c.Stdout, "INDEX CHECK INCOMPLETE: the store could not be read whole, so the indexes were not compared with the records")
		return true, nil
	}
	return bad, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mirror verifies a mirror directory offline (logmirror.Scan), and the
// checkpoint files against it.
func (c *VerifyCommand) mirror(f *verifyFlags, dir string, cpFiles []string) error {
	v, err := loadVerifier(f.key, f.witnessPolicy)
	if err != nil {
		return err
	}
	var others []*merkle.Checkpoint
	for _, file := range cpFiles {
		cp, err := openCheckpointFile(f.key, f.witnessPolicy, file)
		if err != nil {
			return err
		}
		others = append(others, cp)
	}
	res, err := logmirror.Scan(dir, v, logmirror.ScanOptions{Checkpoints: others})
	if errors.Is(err, logmirror.ErrNotVerified) {
		return fmt.Errorf("%s: %w: %w", dir, errVerify, err)
	}
	if err != nil {
		return err
	}
	if res.Checkpoint == nil {
		// Nothing verified is not "verified": a copy that lost its
		// checkpoint, or a directory that is not the mirror, must not
		// pass a scheduled check.
		if res.Unverified > 0 {
			return fmt.Errorf("%s: %w: %s holds %d lines and the mirror has no checkpoint (neither %s nor %s): nothing is verified (the first update did not finish, or the checkpoint was removed)",
				dir, errVerify, logmirror.EntriesFile, res.Unverified, logmirror.CheckpointFile, logmirror.StateFile)
		}
		return fmt.Errorf("%s: %w: the mirror is empty (never updated): nothing to verify", dir, errVerify)
	}
	cp := res.Checkpoint
	fmt.Fprintf(c.Stdout, "mirror OK: %d entries, checkpoint origin %s, size %d, root %s, received-before %s\n",
		res.Entries, cp.Origin, cp.Size, merkle.HashString(cp.Root), cp.ReceivedBefore.Format(merkle.HorizonLayout))
	if res.Deleted > 0 {
		fmt.Fprintf(c.Stdout, "%d of them are leaf hashes only: their events were deleted by the server's retention before they were mirrored\n", res.Deleted)
	}
	if res.Unverified > 0 {
		fmt.Fprintf(c.Stdout, "%d lines after them are an update that did not finish (not verified; the next update removes them)\n", res.Unverified)
	}
	if res.Checked > 0 {
		fmt.Fprintf(c.Stdout, "%d of the checkpoints given are consistent with the mirror\n", res.Checked)
	}
	if len(res.Beyond) > 0 {
		return fmt.Errorf("%d of the checkpoints given are beyond the mirror (the first of size %d): update the mirror, then check them again", len(res.Beyond), res.Beyond[0].Size)
	}
	return nil
}
