package logmirror

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// Verified is what Verify checked.
type Verified struct {
	Entries    uint64
	Checkpoint *merkle.Checkpoint // nil for a mirror never updated
	// Deleted counts the entries that are leaf hashes only, their events
	// deleted by the server before they were mirrored (retention).
	Deleted uint64
	// Unverified counts the lines after the verified entries: an update
	// that did not finish, which the next Open cuts off.
	Unverified uint64
	// Checked counts the ScanOptions.Checkpoints found consistent with the
	// mirror; Beyond are those larger than it, not checked.
	Checked int
	Beyond  []*merkle.Checkpoint
}

// maxLine bounds a line of entries.jsonl: an event's JSON is bounded by the
// API's limits (docs/limits.md) well below this.
const maxLine = 16 << 20

// Verify checks a mirror directory offline, with the log's public key only:
// that its checkpoint is signed, that entries.jsonl holds exactly the
// checkpoint's number of events, in seq order, received in order and before
// the checkpoint's horizon, and that their leaves hash to its root (a leaf
// mirrored after its event was deleted is its leaf hash alone, counted in
// Verified.Deleted). It reads
// the directory without taking its lock or changing it, so it also checks a
// copy (from cold storage, say). Lines after the verified ones (an update
// that did not finish) are reported, not checked. An error wrapping
// ErrNotVerified means the files are not a verified copy of the log.
func Verify(dir string, verifier note.Verifier) (*Verified, error) {
	return Scan(dir, verifier, ScanOptions{})
}

// ScanOptions say what Scan does besides verifying.
type ScanOptions struct {
	// Each, when set, is called with each verified entry's event, in seq
	// order (it may keep them). It sees the events before the last ones are
	// read and the root is compared: whatever it gathered must be thrown
	// away when Scan returns an error. Its error ends the scan and is
	// returned. Leaves whose events were deleted are not passed. It is how "audittrail search --mirror" answers a search
	// from a mirror, trusting nothing but the log's public key.
	Each func(*audittrail.Event) error
	// Checkpoints are other signed checkpoints of the log (verified with
	// merkle.OpenCheckpoint), such as those clients kept from answers with
	// proofs: each one within the mirror is checked against the mirror's
	// tree at its size (root and horizon). One that differs means the log
	// showed two different histories (a split view): ErrNotVerified. Those
	// beyond the mirror are returned in Verified.Beyond, unchecked.
	Checkpoints []*merkle.Checkpoint
}

// Scan is Verify with options.
func Scan(dir string, verifier note.Verifier, opts ScanOptions) (*Verified, error) {
	fn := opts.Each
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("logmirror: no mirror at %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("logmirror: no mirror at %s: not a directory", dir)
	}
	cp, err := newestCheckpoint(dir, verifier)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, EntriesFile))
	if errors.Is(err, fs.ErrNotExist) && cp == nil {
		return &Verified{Beyond: opts.Checkpoints}, nil
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
	others := slices.SortedFunc(slices.Values(opts.Checkpoints), func(a, b *merkle.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	// checkOthers checks the given checkpoints of size frontier.Size()
	// against the tree so far, next being the receive time of the leaf after
	// it (nil at the end of the entries).
	checkOthers := func(next *time.Time) error {
		for len(others) > 0 && others[0].Size == frontier.Size() {
			o := others[0]
			others = others[1:]
			switch {
			case cp != nil && o.Origin != cp.Origin:
				return notVerified("a checkpoint to check is of log %q, the mirror of %q", o.Origin, cp.Origin)
			case frontier.Root() != o.Root:
				return notVerified("the checkpoint of size %d given to check has another root than the mirror's tree at that size: the log showed two different histories (a split view)", o.Size)
			case o.Size > 0 && !last.Before(o.ReceivedBefore):
				return notVerified("the checkpoint of size %d given to check holds seq %d, received at %s, not before its horizon %s",
					o.Size, o.Size, last.Format(time.RFC3339Nano), o.ReceivedBefore.Format(time.RFC3339Nano))
			case next != nil && next.Before(o.ReceivedBefore):
				return notVerified("the checkpoint of size %d given to check does not hold seq %d, received at %s, before its horizon %s",
					o.Size, o.Size+1, next.Format(time.RFC3339Nano), o.ReceivedBefore.Format(time.RFC3339Nano))
			}
		}
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	seq, deleted := uint64(0), uint64(0)
	var verr error
	// Parsing is most of the time (protojson), so the lines are parsed and
	// hashed in chunks on every core; the leaves are then checked and added
	// to the tree in order.
	for c := range parsedChunks(sc, size, fn != nil) {
		for i, leaf := range c.leaves {
			seq++
			if c.err != nil && i == c.errAt {
				verr = notVerified("%s line %d: %v", EntriesFile, seq, c.err)
				break
			}
			rt := c.times[i]
			switch {
			case c.deleted != nil && c.deleted[i]:
				// No event, no receive time: the leaf hash must still fit
				// the root.
				if verr = checkOthers(nil); verr == nil {
					verr = frontier.Append(leaf)
				}
				deleted++
			case rt.Before(last):
				verr = notVerified("%s line %d: received at %s, before the line above (%s)", EntriesFile, seq,
					rt.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
			case !rt.Before(cp.ReceivedBefore):
				verr = notVerified("%s line %d: received at %s, not before the checkpoint's horizon %s", EntriesFile, seq,
					rt.Format(time.RFC3339Nano), cp.ReceivedBefore.Format(time.RFC3339Nano))
			default:
				if verr = checkOthers(&rt); verr != nil {
					break
				}
				last = rt
				verr = frontier.Append(leaf)
				if verr == nil && fn != nil {
					verr = fn(c.events[i])
				}
			}
			if verr != nil {
				break
			}
		}
		if verr != nil {
			break
		}
	}
	if verr != nil {
		return nil, verr
	}
	var extra uint64
	for sc.Scan() {
		extra++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("logmirror: reading %s: %w", EntriesFile, err)
	}
	if seq < size {
		return nil, notVerified("%s holds %d entries, its checkpoint %d", EntriesFile, seq, size)
	}
	if cp != nil && frontier.Root() != cp.Root {
		return nil, notVerified("the %d entries of %s do not hash to the checkpoint's root %s (they hash to %s)",
			size, EntriesFile, hashText(cp.Root), hashText(frontier.Root()))
	}
	if err := checkOthers(nil); err != nil {
		return nil, err
	}
	return &Verified{Entries: size, Checkpoint: cp, Deleted: deleted, Unverified: extra, Checked: len(opts.Checkpoints) - len(others), Beyond: others}, nil
}

// newestCheckpoint returns the checkpoint the mirror's entries are to be
// verified against: the larger of the file checkpoint and the copy in
// state.json, each checked with verifier (nil: neither exists). An update
// replaces state.json first, so after a crash between the two renames the
// file is behind it (Open rewrites it); a checkpoint file older than
// state.json's for any other reason (one put back by hand) must not make
// the entries it no longer covers pass as "an update that did not finish".
// Two checkpoints of one size with different roots are a split view.
func newestCheckpoint(dir string, verifier note.Verifier) (*merkle.Checkpoint, error) {
	var file, saved *merkle.Checkpoint
	text, err := readIfExists(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return nil, err
	}
	if text != nil {
		if file, err = merkle.OpenCheckpoint(text, verifier); err != nil {
			return nil, notVerified("%s: %v", CheckpointFile, err)
		}
	}
	st, ok, err := readState(dir)
	if errors.Is(err, errBadState) {
		return nil, notVerified("%v", err)
	} else if err != nil {
		return nil, err
	}
	if ok {
		if saved, err = merkle.OpenCheckpoint([]byte(st.Checkpoint), verifier); err != nil {
			return nil, notVerified("%s: its checkpoint: %v", StateFile, err)
		}
		if st.Size != saved.Size {
			return nil, notVerified("%s records %d entries, its checkpoint %d", StateFile, st.Size, saved.Size)
		}
	}
	switch {
	case file == nil:
		return saved, nil
	case saved == nil:
		return file, nil
	case file.Origin != saved.Origin:
		return nil, notVerified("%s is of log %q, %s's checkpoint of %q", CheckpointFile, file.Origin, StateFile, saved.Origin)
	case file.Size == saved.Size && file.Root != saved.Root:
		return nil, notVerified("%s and %s's checkpoint are both of size %d with different roots: the log showed two different histories (a split view)", CheckpointFile, StateFile, file.Size)
	case saved.Size > file.Size:
		return saved, nil
	}
	return file, nil
}

// chunk is a run of consecutive lines, parsed: the leaf hash and receive
// time of each; a line that does not parse is errAt, with err, and ends
// the chunk's leaves (leaves[errAt] is a zero placeholder).
type chunk struct {
	lines  [][]byte
	first  uint64 // the seq of lines[0]
	leaves []tlog.Hash
	times  []time.Time
	// deleted marks the leaves whose lines are a deleted event's leaf
	// hash (nil when the chunk has none).
	deleted []bool
	events  []*audittrail.Event // kept when asked for
	err     error
	errAt   int
	done    chan struct{}
}

const chunkLines = 512

// parsedChunks reads the first n lines of sc and yields them in order,
// parsed on GOMAXPROCS goroutines, with their events when keep is set.
// Stopping the loop early stops them.
func parsedChunks(sc *bufio.Scanner, n uint64, keep bool) iter.Seq[*chunk] {
	return func(yield func(*chunk) bool) {
		workers := runtime.GOMAXPROCS(0)
		work := make(chan *chunk, 2*workers)
		ordered := make(chan *chunk, 2*workers)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range work {
					c.parse(keep)
					close(c.done)
				}
			}()
		}
		go func() { // the reader
			defer close(ordered)
			defer close(work)
			seq := uint64(0)
			for seq < n {
				c := &chunk{first: seq + 1, done: make(chan struct{})}
				for len(c.lines) < chunkLines && seq < n && sc.Scan() {
					c.lines = append(c.lines, bytes.Clone(sc.Bytes()))
					seq++
				}
				if len(c.lines) == 0 {
					return
				}
				// Read before c goes to a worker, which drops c.lines.
				short := len(c.lines) < chunkLines
				select {
				case work <- c:
				case <-stop:
					return
				}
				select {
				case ordered <- c:
				case <-stop:
					return
				}
				if short && seq < n {
					return // the file ended (or sc failed)
				}
			}
		}()
		defer func() {
			close(stop)
			for range ordered { // let the reader finish
			}
			wg.Wait()
		}()
		for c := range ordered {
			<-c.done
			if !yield(c) {
				return
			}
		}
	}
}

func (c *chunk) parse(keep bool) {
	c.leaves = make([]tlog.Hash, len(c.lines))
	c.times = make([]time.Time, len(c.lines))
	if keep {
		c.events = make([]*audittrail.Event, len(c.lines))
	}
	for i, line := range c.lines {
		if h, ok, err := parseDeletedLine(line); ok {
			if err != nil {
				c.err, c.errAt = err, i
				c.leaves, c.times = c.leaves[:i+1], c.times[:i+1]
				return
			}
			if c.deleted == nil {
				c.deleted = make([]bool, len(c.lines))
			}
			c.leaves[i], c.deleted[i] = h, true
			continue
		}
		e, err := parseLine(line, c.first+uint64(i))
		if err != nil {
			c.err, c.errAt = err, i
			c.leaves, c.times = c.leaves[:i+1], c.times[:i+1]
			return
		}
		c.leaves[i] = merkle.LeafHash(e)
		c.times[i] = e.ReceiveTime
		if keep {
			c.events[i] = e
		}
	}
	c.lines = nil // the memory goes back while the chunk waits its turn
}
