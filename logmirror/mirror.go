// Package logmirror keeps a verified copy of a server's verifiable log in a
// local directory: every event in leaf order, and the latest signed
// checkpoint that those events were checked against.
//
// Searches with proofs and inclusion proofs show that what a server returns
// is in its log. They do not show that nothing was left out: a server could
// sign a tree holding events that it never returns. A mirror closes that
// gap. It reads every entry of the log (LogService.GetLogEntries), hashes
// each as the log does (merkle.LeafHash) and recomputes the tree's root,
// which must equal the root of the server's signed checkpoint of that size;
// it also checks the receive-time horizon the checkpoint states. Each update
// extends the leaves already verified, so a root that matches also proves
// that the log only grew: an event changed or removed after an earlier
// update changes the root. The mirror keeps only the right edge of the tree
// (merkle.Frontier), so an update costs one pass over the new events.
//
// It is also the service's export for long-term retention (the H2O
// service's "export to external storage"): the directory is plain files,
// entries.jsonl in the API's JSON, which the operator's tools copy to cold
// storage, and Verify checks a copy offline with the log's public key.
//
// Layout of a mirror directory (docs/design/verifiable-log.md, "Mirrors"):
//
//	entries.jsonl  line i (from 1) is the event with seq i, as the API's JSON,
//	               or {"deletedLeafHash":"<base64>"} for a leaf whose event
//	               the server had deleted (retention) when it was mirrored
//	checkpoint     the signed checkpoint the entries were last verified against
//	state.json     the size, the bytes of entries.jsonl it covers, the
//	               frontier, and that checkpoint again
//	lock           held while a process updates the mirror
//
// An update appends to entries.jsonl, syncs it, and only then replaces
// state.json, then checkpoint (each written to a temporary file, synced and
// renamed): the rename of state.json is the commit. Lines beyond the bytes
// that state.json records are an update that did not finish (a crash, a
// refused root), and a checkpoint file behind state.json a crash between
// the two renames: Open cuts the lines off and rewrites the checkpoint.
package logmirror

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/internal/fastjson"
	"github.com/audittrail/audittrail/internal/flock"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/merkle"
)

// Names of the files of a mirror directory.
const (
	EntriesFile    = "entries.jsonl"
	CheckpointFile = "checkpoint"
	StateFile      = "state.json"
	LockFile       = "lock"
)

// Source is where a mirror reads the log: a server, through *client.Client.
type Source interface {
	// Checkpoint returns the latest signed checkpoint (the note text).
	Checkpoint(ctx context.Context) ([]byte, error)
	// LogPage returns consecutive events from leaf start on, each with its
	// Seq, and the number of events committed; or, when the event of leaf
	// start was deleted by the server's retention, the leaf hashes of the
	// run of deleted leaves from there.
	LogPage(ctx context.Context, start uint64, pageSize int) (*audittrail.LogEntries, error)
}

// ErrNotVerified wraps every error that means the server's log is not what
// its signed checkpoints say: entries that do not hash to the signed root, a
// checkpoint smaller than or forking from one verified before, events
// outside the checkpoint's receive-time horizon. Other errors (network,
// permissions, the local disk) mean the update could not be made.
var ErrNotVerified = errors.New("the log does not verify")

func notVerified(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotVerified}, args...)...)
}

// state is state.json.
type state struct {
	// Size is the number of entries verified: the first Size lines of
	// entries.jsonl, Bytes bytes, against the checkpoint of size Size.
	Size  uint64 `json:"size"`
	Bytes int64  `json:"bytes"`
	// Frontier is the tree's right edge (merkle.Frontier.Hashes).
	Frontier [][]byte `json:"frontier"`
	// LastReceiveTime is the receive time of entry Size (the log keeps
	// receive times nondecreasing in seq).
	LastReceiveTime time.Time `json:"last_receive_time"`
	// Checkpoint is the signed note the entries were verified against. It
	// is also written to the file checkpoint, for people and copies, but
	// this copy is the one Open trusts: state.json is replaced in one
	// rename, so size, frontier and checkpoint always change together.
	Checkpoint string `json:"checkpoint"`
}

// Mirror is an open mirror directory. It is not safe for concurrent use;
// the directory's lock keeps other processes out while it is open.
type Mirror struct {
	dir      string
	verifier note.Verifier
	unlock   func() error

	st       state
	frontier *merkle.Frontier
	cp       *merkle.Checkpoint // nil before the first update
}

// Open opens (creating it when missing) the mirror directory dir, whose
// checkpoints verifier checks. It cuts off what an unfinished update left
// in entries.jsonl, and checks that the stored checkpoint is signed and
// agrees with the stored state (not the entries: Verify reads them all).
func Open(dir string, verifier note.Verifier) (*Mirror, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	unlock, err := flock.Lock(filepath.Join(dir, LockFile))
	if errors.Is(err, flock.ErrLocked) {
		return nil, fmt.Errorf("logmirror: %s: another process is updating this mirror", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("logmirror: %w", err)
	}
	m := &Mirror{dir: dir, verifier: verifier, unlock: unlock}
	if err := m.load(); err != nil {
		unlock()
		return nil, err
	}
	return m, nil
}

// Close releases the directory.
func (m *Mirror) Close() error { return m.unlock() }

// Size is the number of verified entries.
func (m *Mirror) Size() uint64 { return m.st.Size }

// Checkpoint is the signed checkpoint the entries were verified against,
// nil before the first update.
func (m *Mirror) Checkpoint() *merkle.Checkpoint { return m.cp }

// errBadState: state.json is not JSON of a state.
var errBadState = errors.New("logmirror: " + StateFile + " is not a mirror's state")

// readState reads dir's state.json; ok is false when there is none.
func readState(dir string) (st state, ok bool, err error) {
	data, err := readIfExists(filepath.Join(dir, StateFile))
	if data == nil || err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, false, fmt.Errorf("%w: %v", errBadState, err)
	}
	return st, true, nil
}

// readIfExists returns the contents of the file path, nil when there is
// no such file.
func readIfExists(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && data == nil {
		data = []byte{}
	}
	return data, err
}

func (m *Mirror) load() error {
	st, ok, err := readState(m.dir)
	if err != nil {
		return err
	}
	if !ok {
		m.frontier, _ = merkle.NewFrontier(0, nil)
		return m.cutEntries()
	}
	m.st = st
	hashes := make([]tlog.Hash, len(m.st.Frontier))
	for i, h := range m.st.Frontier {
		if len(h) != len(tlog.Hash{}) {
			return fmt.Errorf("logmirror: %s: a frontier hash of %d bytes", StateFile, len(h))
		}
		copy(hashes[i][:], h)
	}
	if m.frontier, err = merkle.NewFrontier(m.st.Size, hashes); err != nil {
		return fmt.Errorf("logmirror: %s: %v", StateFile, err)
	}
	// The saved checkpoint passed the verifier's witness policy, if any,
	// when it was saved; a policy given since applies to the next ones.
	if m.cp, err = merkle.OpenCheckpoint([]byte(m.st.Checkpoint), merkle.Unwitnessed(m.verifier)); err != nil {
		return fmt.Errorf("logmirror: the checkpoint of %s: %v", StateFile, err)
	}
	if m.cp.Size != m.st.Size || m.cp.Root != m.frontier.Root() {
		return fmt.Errorf("logmirror: %s: its checkpoint (size %d) does not match its size (%d) and frontier", StateFile, m.cp.Size, m.st.Size)
	}
	if err := m.cutEntries(); err != nil {
		return err
	}
	// A crash between the two writes of commit leaves the file checkpoint
	// behind state.json.
	if text, err := os.ReadFile(filepath.Join(m.dir, CheckpointFile)); err != nil || string(text) != m.st.Checkpoint {
		return replaceFile(filepath.Join(m.dir, CheckpointFile), []byte(m.st.Checkpoint))
	}
	return nil
}

// cutEntries truncates entries.jsonl to the verified bytes.
func (m *Mirror) cutEntries() error {
	f, err := os.OpenFile(filepath.Join(m.dir, EntriesFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < m.st.Bytes {
		return fmt.Errorf("logmirror: %s has %d bytes, %s says %d were verified", EntriesFile, fi.Size(), StateFile, m.st.Bytes)
	}
	// The verified bytes end with a line. When they do not, the file was
	// edited since the last update (a line made longer or shorter), and
	// cutting there and appending would join a new line to an old one.
	// Updates do not read the old lines again (Verify does), so this
	// catches only edits that moved that boundary.
	if m.st.Bytes > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], m.st.Bytes-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			return fmt.Errorf("logmirror: %s was changed since the mirror's last update (byte %d, the end of the %d verified entries, does not end a line): check it with Verify (audittrail verify mirror) and start a new mirror",
				EntriesFile, m.st.Bytes, m.st.Size)
		}
	}
	if fi.Size() == m.st.Bytes {
		return nil
	}
	if err := f.Truncate(m.st.Bytes); err != nil {
		return err
	}
	return f.Sync()
}

// UpdateOptions tune Update.
type UpdateOptions struct {
	// PageSize is the entries asked for per call; 0 means
	// audittrail.MaxLogEntries.
	PageSize int
	// Progress, when set, is called after each page with the entries
	// fetched so far and the size being verified.
	Progress func(done, size uint64)
	// BehindWait is how long a checkpoint smaller than the mirror's is
	// asked for again before the update fails with ErrNotVerified (a
	// rolled-back log); 0 means DefaultBehindWait, negative not at all.
	BehindWait time.Duration
	// AllowDeleted accepts leaves whose events the server deleted under a
	// retention policy (a dropped month of the PostgreSQL store): the
	// mirror keeps their leaf hashes (which still have to fit the signed
	// root) instead of their events. Without it such a leaf fails the
	// update with ErrDeleted: a server could otherwise withhold any event
	// from a new mirror by calling it deleted, so accepting that is the
	// operator's decision, made knowing the retention policy.
	AllowDeleted bool
}

// ErrDeleted wraps the error of an update that met a leaf whose event the
// server deleted, without UpdateOptions.AllowDeleted.
var ErrDeleted = errors.New("the server deleted events the mirror lacks")

// DefaultBehindWait is UpdateOptions.BehindWait's default: PostgreSQL
// replicas that do not sign catch up with the signer's checkpoints within
// a few hundred milliseconds.
const DefaultBehindWait = 2 * time.Second

// Updated is what an update did.
type Updated struct {
	From, To   uint64 // the entries added: seqs From+1..To
	Checkpoint *merkle.Checkpoint
	// Deleted counts the entries added as leaf hashes only, their events
	// deleted by the server (UpdateOptions.AllowDeleted).
	Deleted uint64
}

// Update fetches the source's latest signed checkpoint and the entries the
// mirror lacks up to its size, verifies them against it, and stores them.
// An error wrapping ErrNotVerified leaves the mirror as it was and means the
// log broke its promises; any other error leaves it as it was too.
func (m *Mirror) Update(ctx context.Context, src Source, opts UpdateOptions) (*Updated, error) {
	text, cp, err := m.latest(ctx, src, opts.BehindWait)
	if err != nil {
		return nil, err
	}
	if m.cp != nil && cp.Origin != m.cp.Origin {
		return nil, notVerified("the server's checkpoint is of log %q, the mirror's of %q", cp.Origin, m.cp.Origin)
	}
	switch {
	case cp.Size < m.st.Size:
		return nil, notVerified("the server's latest checkpoint has %d entries, fewer than the %d verified before: "+
			"a rolled-back log (or a replica that stayed behind)", cp.Size, m.st.Size)
	case cp.Size == m.st.Size:
		if cp.Root != m.frontier.Root() {
			return nil, notVerified("the server's checkpoint of size %d has another root than the one verified before: a fork", cp.Size)
		}
		if m.cp == nil || cp.ReceivedBefore.After(m.cp.ReceivedBefore) {
			if err := m.commit(m.st, text, cp); err != nil {
				return nil, err
			}
		}
		return &Updated{From: m.st.Size, To: m.st.Size, Checkpoint: cp}, nil
	}
	if m.cp != nil && cp.ReceivedBefore.Before(m.cp.ReceivedBefore) {
		return nil, notVerified("the server's checkpoint of size %d has an earlier horizon (%s) than the one of size %d verified before (%s)",
			cp.Size, cp.ReceivedBefore.Format(time.RFC3339Nano), m.cp.Size, m.cp.ReceivedBefore.Format(time.RFC3339Nano))
	}
	next, deleted, err := m.fetch(ctx, src, cp, opts)
	if err != nil {
		return nil, err
	}
	from := m.st.Size
	if err := m.commit(next.st, text, cp); err != nil {
		if m.cp != cp { // state.json was not replaced: drop the new lines
			m.cutEntries()
		} else {
			m.st, m.frontier = next.st, next.frontier
		}
		return nil, err
	}
	m.st, m.frontier = next.st, next.frontier
	return &Updated{From: from, To: cp.Size, Checkpoint: cp, Deleted: deleted}, nil
}

// latest fetches the source's latest checkpoint and verifies its signature.
// One smaller than the mirror's is asked for again for up to wait: behind a
// load balancer, a replica that does not sign serves the checkpoints the
// signer stored a moment after it (PostgreSQL replicas), and the next call
// may reach another replica.
func (m *Mirror) latest(ctx context.Context, src Source, wait time.Duration) ([]byte, *merkle.Checkpoint, error) {
	if wait == 0 {
		wait = DefaultBehindWait
	}
	deadline := time.Now().Add(wait)
	for {
		text, err := src.Checkpoint(ctx)
		if err != nil {
			return nil, nil, err
		}
		cp, err := merkle.OpenCheckpoint(text, m.verifier)
		if errors.Is(err, merkle.ErrNotWitnessed) {
			// A witness down or slow: not the log's fault; nothing to
			// update against until a checkpoint is cosigned (--follow
			// tries again).
			return nil, nil, fmt.Errorf("the server's latest checkpoint: %w", err)
		}
		if err != nil {
			return nil, nil, notVerified("the server's checkpoint: %v", err)
		}
		if cp.Size >= m.st.Size || time.Now().After(deadline) {
			return text, cp, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pending is an update's new state before it is committed.
type pending struct {
	st       state
	frontier *merkle.Frontier
}

// fetch appends the entries m.st.Size..cp.Size-1 to entries.jsonl (synced)
// and returns the state that verifies against cp and the number of deleted
// leaves among them; on failure it cuts them off again.
func (m *Mirror) fetch(ctx context.Context, src Source, cp *merkle.Checkpoint, opts UpdateOptions) (_ *pending, deleted uint64, err error) {
	f, err := os.OpenFile(filepath.Join(m.dir, EntriesFile), os.O_WRONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			f.Truncate(m.st.Bytes)
			f.Sync()
		}
		f.Close()
	}()
	if _, err := f.Seek(m.st.Bytes, io.SeekStart); err != nil {
		return nil, 0, err
	}
	frontier, _ := merkle.NewFrontier(m.st.Size, m.frontier.Hashes())
	next := &pending{st: m.st, frontier: frontier}
	w := bufio.NewWriterSize(f, 1<<20)
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = audittrail.MaxLogEntries
	}
	var line []byte
	for p := range fetchAhead(ctx, src, next.st.Size, cp.Size, pageSize) {
		if ctx.Err() != nil {
			break
		}
		if p.err != nil {
			return nil, 0, p.err
		}
		switch {
		case p.Len() == 0 && p.CommittedSize < cp.Size:
			// A server always has the events its checkpoints cover; one that
			// says otherwise read a stale count (its database did not
			// answer): not a verdict, try again.
			return nil, 0, fmt.Errorf("logmirror: the server reports %d committed events, fewer than its checkpoint's %d: try again", p.CommittedSize, cp.Size)
		case p.Len() == 0:
			return nil, 0, notVerified("the server returns no entry at leaf %d (%d committed) although its checkpoint covers %d", next.st.Size, p.CommittedSize, cp.Size)
		case len(p.Deleted) > 0 && len(p.Events) > 0:
			return nil, 0, notVerified("the server's page from leaf %d holds both events and deleted leaves", next.st.Size)
		case len(p.Deleted) > 0 && !opts.AllowDeleted:
			return nil, 0, fmt.Errorf("logmirror: %w: the events from leaf %d on (%d of them at least) were deleted by the server's retention, only their leaf hashes are left; "+
				"mirror their leaf hashes in their place only if the log's retention policy explains it (--allow-deleted)",
				ErrDeleted, next.st.Size, len(p.Deleted))
		}
		for _, h := range p.Deleted {
			if err := next.frontier.Append(h); err != nil {
				return nil, 0, err
			}
			line = appendDeletedLine(line[:0], h)
			if _, err := w.Write(line); err != nil {
				return nil, 0, err
			}
			next.st.Size++
			next.st.Bytes += int64(len(line))
			deleted++
		}
		for _, e := range p.Events {
			if err := m.check(next, cp, e); err != nil {
				return nil, 0, err
			}
			if err := next.frontier.Append(merkle.LeafHash(e)); err != nil {
				return nil, 0, err
			}
			if line, err = appendLine(line[:0], e); err != nil {
				return nil, 0, err
			}
			if _, err := w.Write(line); err != nil {
				return nil, 0, err
			}
			next.st.Size++
			next.st.Bytes += int64(len(line))
			next.st.LastReceiveTime = e.ReceiveTime
		}
		if opts.Progress != nil {
			opts.Progress(next.st.Size, cp.Size)
		}
	}
	if next.st.Size < cp.Size { // the fetching stopped: only a cancelled ctx does that
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("logmirror: the fetching stopped at leaf %d of %d", next.st.Size, cp.Size)
	}
	if root := next.frontier.Root(); root != cp.Root {
		return nil, 0, notVerified("the log's entries 1..%d do not hash to the root of its signed checkpoint of that size: "+
			"the server signed other events than it serves", cp.Size)
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	next.st.Frontier = nil
	for _, h := range next.frontier.Hashes() {
		next.st.Frontier = append(next.st.Frontier, h[:])
	}
	return next, deleted, nil
}

// page is one answer of Source.LogPage.
type page struct {
	*audittrail.LogEntries
	err error
}

// fetchAhead yields the pages of leaves from..to-1 in order, each cut to
// the leaves asked for, fetching the next while the caller checks one (the
// server's work and the mirror's overlap). It ends after a page with an
// error or no events; stopping the loop early stops the fetching.
func fetchAhead(ctx context.Context, src Source, from, to uint64, pageSize int) iter.Seq[page] {
	return func(yield func(page) bool) {
		ctx, cancel := context.WithCancel(ctx)
		pages := make(chan page, 1)
		go func() {
			defer close(pages)
			for from < to {
				n := min(uint64(pageSize), to-from)
				var p page
				p.LogEntries, p.err = src.LogPage(ctx, from, int(n))
				if p.LogEntries == nil {
					p.LogEntries = &audittrail.LogEntries{}
				}
				if uint64(len(p.Events)) > n {
					p.Events = p.Events[:n]
				}
				if uint64(len(p.Deleted)) > n {
					p.Deleted = p.Deleted[:n]
				}
				select {
				case pages <- p:
				case <-ctx.Done():
					return
				}
				if p.err != nil || p.Len() == 0 {
					return
				}
				from += uint64(p.Len())
			}
		}()
		defer func() {
			cancel()
			for range pages { // wait for the fetcher to end
			}
		}()
		for p := range pages {
			if !yield(p) {
				return
			}
		}
	}
}

// check checks one fetched entry: its seq, and its receive time against the
// previous entry and the horizons of the checkpoints before and after it.
func (m *Mirror) check(next *pending, cp *merkle.Checkpoint, e *audittrail.Event) error {
	want := next.st.Size + 1
	switch {
	case e.Seq != want:
		return notVerified("the server returned seq %d at leaf %d", e.Seq, want-1)
	case e.ReceiveTime.Before(next.st.LastReceiveTime):
		return notVerified("seq %d was received at %s, before seq %d (%s): the log keeps receive times in order",
			e.Seq, e.ReceiveTime.Format(time.RFC3339Nano), e.Seq-1, next.st.LastReceiveTime.Format(time.RFC3339Nano))
	case m.cp != nil && e.ReceiveTime.Before(m.cp.ReceivedBefore):
		return notVerified("seq %d was received at %s, before the horizon %s of the checkpoint of size %d, which does not hold it",
			e.Seq, e.ReceiveTime.Format(time.RFC3339Nano), m.cp.ReceivedBefore.Format(time.RFC3339Nano), m.cp.Size)
	case !e.ReceiveTime.Before(cp.ReceivedBefore):
		return notVerified("seq %d was received at %s, not before the horizon %s of the checkpoint of size %d, which holds it",
			e.Seq, e.ReceiveTime.Format(time.RFC3339Nano), cp.ReceivedBefore.Format(time.RFC3339Nano), cp.Size)
	}
	return nil
}

// commit makes st and the checkpoint text the mirror's, durably: the entries
// are synced before.
func (m *Mirror) commit(st state, text []byte, cp *merkle.Checkpoint) error {
	if st.Frontier == nil {
		st.Frontier = [][]byte{}
	}
	st.Checkpoint = string(text)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	// state.json is the commit. The file checkpoint follows; until it does
	// (a crash in between), it is an older checkpoint of a prefix of the
	// entries, which Verify accepts, and Open rewrites it.
	if err := replaceFile(filepath.Join(m.dir, StateFile), append(data, '\n')); err != nil {
		return err
	}
	m.cp, m.st.Checkpoint = cp, st.Checkpoint
	return replaceFile(filepath.Join(m.dir, CheckpointFile), text)
}

// replaceFile writes data to path durably (the mirror's files are 0640).
func replaceFile(path string, data []byte) error { return durablefile.Replace(path, data, 0o640) }

// appendLine appends e's line of entries.jsonl: the API's JSON of the event
// (as a search answers it), compact, and a newline.
func appendLine(b []byte, e *audittrail.Event) ([]byte, error) {
	p := wire.EventToProto(e)
	if out, ok := fastjson.AppendEvent(b, p); ok {
		return append(out, '\n'), nil
	}
	j, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(p)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	// protojson varies its spacing on purpose; the file should not.
	if err := json.Compact(&buf, j); err != nil {
		return nil, err
	}
	b = append(b, buf.Bytes()...)
	return append(b, '\n'), nil
}

// deletedPrefix starts the line of a deleted leaf, and no event's line (the
// Event message has no such field).
const deletedPrefix = `{"deletedLeafHash":"`

// appendDeletedLine appends the line of a leaf whose event was deleted:
// its leaf hash, in the JSON of the API's bytes (standard base64).
func appendDeletedLine(b []byte, h tlog.Hash) []byte {
	b = append(b, deletedPrefix...)
	b = base64.StdEncoding.AppendEncode(b, h[:])
	return append(b, "\"}\n"...)
}

// parseDeletedLine returns the leaf hash of a line of a deleted leaf, and
// false for any other line.
func parseDeletedLine(line []byte) (tlog.Hash, bool, error) {
	var h tlog.Hash
	rest, ok := bytes.CutPrefix(line, []byte(deletedPrefix))
	if !ok {
		return h, false, nil
	}
	text, ok := bytes.CutSuffix(rest, []byte(`"}`))
	// One spelling per hash: strict padding bits, and no line breaks
	// (which the decoder skips), so exactly 44 characters.
	b, err := base64.StdEncoding.Strict().DecodeString(string(text))
	if !ok || err != nil || len(b) != len(h) || len(text) != base64.StdEncoding.EncodedLen(len(h)) {
		return h, true, errors.New(`a deleted leaf's line must be {"deletedLeafHash":"<its 32-byte leaf hash in base64>"}`)
	}
	copy(h[:], b)
	return h, true, nil
}

// parseLine is the inverse of appendLine for the event with seq.
func parseLine(line []byte, seq uint64) (*audittrail.Event, error) {
	var p pb.Event
	if err := protojson.Unmarshal(line, &p); err != nil {
		return nil, err
	}
	e, err := wire.EventFromOutputProto(&p)
	if err != nil {
		return nil, err
	}
	e.Seq = seq
	return e, nil
}

// hashText is a hash as the messages print it.
func hashText(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
