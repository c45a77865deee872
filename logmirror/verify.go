package logmirror

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/merkle"
)

// Verified is what Verify checked.
type Verified struct {
	Entries    uint64
	Checkpoint *merkle.Checkpoint // nil for a mirror never updated
	// Unverified counts the lines after the verified entries: an update
	// that did not finish, which the next Open cuts off.
	Unverified uint64
}

// maxLine bounds a line of entries.jsonl: an event's JSON is bounded by the
// API's limits (docs/limits.md) well below this.
const maxLine = 16 << 20

// Verify checks a mirror directory offline, with the log's public key only:
// that its checkpoint is signed, that entries.jsonl holds exactly the
// checkpoint's number of events, in seq order, received in order and before
// the checkpoint's horizon, and that their leaves hash to its root. It reads
// the directory without taking its lock or changing it, so it also checks a
// copy (from cold storage, say). Lines after the verified ones (an update
// that did not finish) are reported, not checked. An error wrapping
// ErrNotVerified means the files are not a verified copy of the log.
func Verify(dir string, verifier note.Verifier) (*Verified, error) {
	var cp *merkle.Checkpoint
	text, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if cp, err = merkle.OpenCheckpoint(text, verifier); err != nil {
			return nil, notVerified("%s: %v", CheckpointFile, err)
		}
	}
	f, err := os.Open(filepath.Join(dir, EntriesFile))
	if errors.Is(err, fs.ErrNotExist) && cp == nil {
		return &Verified{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := uint64(0)
	if cp != nil {
		size = cp.Size
	}
	frontier, _ := merkle.NewFrontier(0, nil)
	var last time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	seq := uint64(0)
	for seq < size && sc.Scan() {
		seq++
		e, err := parseLine(sc.Bytes(), seq)
		if err != nil {
			return nil, notVerified("%s line %d: %v", EntriesFile, seq, err)
		}
		switch {
		case e.ReceiveTime.Before(last):
			return nil, notVerified("%s line %d: received at %s, before the line above (%s)", EntriesFile, seq,
				e.ReceiveTime.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
		case !e.ReceiveTime.Before(cp.ReceivedBefore):
			return nil, notVerified("%s line %d: received at %s, not before the checkpoint's horizon %s", EntriesFile, seq,
				e.ReceiveTime.Format(time.RFC3339Nano), cp.ReceivedBefore.Format(time.RFC3339Nano))
		}
		last = e.ReceiveTime
		if err := frontier.Append(merkle.LeafHash(e)); err != nil {
			return nil, err
		}
	}
	var extra uint64
	for sc.Scan() {
		extra++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("logmirror: reading %s: %w", EntriesFile, err)
	}
	if seq < size {
		return nil, notVerified("%s holds %d events, its checkpoint %d", EntriesFile, seq, size)
	}
	if cp != nil && frontier.Root() != cp.Root {
		return nil, notVerified("the %d events of %s do not hash to the checkpoint's root %s (they hash to %s)",
			size, EntriesFile, hashText(cp.Root), hashText(frontier.Root()))
	}
	return &Verified{Entries: size, Checkpoint: cp, Unverified: extra}, nil
}
