package logsign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// SharedStore is a LogStore that several replicas of the service share
// (postgres.Store; docs/design/verifiable-log.md, "Several replicas").
// Exactly one replica at a time, the leader, integrates and signs; the
// others serve the checkpoints and proofs it stores, and one of them takes
// over when it goes away. The store elects the leader and fences the
// writes: AppendTree fails for a replica that is not the leader, and
// whenever the stored tree is not the one the write extends, so that two
// replicas that both believe they lead cannot fork the tree.
type SharedStore interface {
	audittrail.LogStore
	// LeadLog reports whether this replica is the leader, making it the
	// leader when no replica is. It does not wait.
	LeadLog(ctx context.Context) (bool, error)
	// BindVerifierKey records key as the log's public key when the store
	// has none (key "" records nothing) and returns the recorded one, ""
	// when there is none. Checkpoints signed by one replica must verify
	// with the key the others serve: the first signer's key is the log's.
	BindVerifierKey(ctx context.Context, key string) (string, error)
	// ReplaceVerifierKey records key as the log's public keys if the
	// recorded ones are still old, and returns the recorded ones after (a
	// rotation of the signing key, docs/design/verifiable-log.md).
	ReplaceVerifierKey(ctx context.Context, old, key string) (string, error)
	// ResignLog gives up the leadership LeadLog took, so that another
	// replica can take it.
	ResignLog()
}

// openShared is New for a SharedStore: the log's key is the one the store
// records, and a replica whose signing key is another one (or that has
// none) serves the log but never leads.
func (l *Log) openShared(ctx context.Context, ss SharedStore) error {
	cfg := &l.cfg
	own := ""
	if cfg.Signer != nil {
		if own = cfg.VerifierKey; own == "" {
			return errors.New("logsign: VerifierKey is required with a Signer")
		}
	}
	bound, err := ss.BindVerifierKey(ctx, own)
	if err != nil {
		return err
	}
	if cfg.Signer != nil && bound != own && bound != "" && mayRotate(bound, own) {
		// A rotation of the signing key: this replica signs with a key the
		// log's recorded keys do not start with, and lists that one
		// among its previous keys (or the rotation ends and it drops them).
		was := bound
		if bound, err = ss.ReplaceVerifierKey(ctx, was, own); err != nil {
			return err
		}
		if bound == own {
			cfg.Logger.WarnContext(ctx, "verifiable log: the log's public keys changed (a rotation of its signing key)", "from", was, "to", own)
		}
	}
	switch {
	case bound == "":
		return errors.New("logsign: the log has no public key yet, and this replica has no signing key to give it")
	case bound != own && cfg.Signer != nil:
		cfg.Logger.ErrorContext(ctx, "verifiable log: this replica's signing key is not the log's, so it serves the log but never signs; "+
			"give every replica the log's signing key (--log-key), or to rotate it, the new key with the previous one (--log-previous-key)", "log_key", bound, "replica_key", own)
		cfg.Signer = nil
	case bound != own:
		cfg.Logger.InfoContext(ctx, "verifiable log: this replica has no signing key; it serves the log but never signs", "log_key", bound)
	}
	l.signerKey = firstKey(own)
	cfg.VerifierKey = bound
	v, err := merkle.NewVerifier([]byte(bound))
	if err != nil {
		return fmt.Errorf("logsign: the log's recorded public key: %w", err)
	}
	l.verifier, l.keys, l.shared = v, bound, ss
	return l.refresh(ctx)
}

// keysMayHaveChanged reports whether the signatures of the signed note msg,
// which verifies with v, say that another replica may have changed the
// log's keys: a signature in the log's name by a key v does not hold (a
// rotation started: the new key signs, the current one cosigns, so the
// note still verifies), or a key of v's that did not sign (a rotation
// ended and dropped it). The latter is also every checkpoint of a
// rotation from a public key only (--log-previous-key of a lost key),
// which costs one read of the recorded keys per new checkpoint then.
func keysMayHaveChanged(msg []byte, v note.Verifier) bool {
	keys := merkle.Keys(v)
	n, err := note.Open(msg, note.VerifierList(keys...))
	if err != nil {
		return false
	}
	if len(n.Sigs) < len(keys) {
		return true
	}
	for _, s := range n.UnverifiedSigs {
		if s.Name == v.Name() {
			return true
		}
	}
	return false
}

// firstKey is the first line of a key file's text: the current key.
func firstKey(keys string) string {
	first, _, _ := strings.Cut(keys, "\n")
	return first
}

// keyLines is the set of keys of a key file's text.
func keyLines(keys string) []string {
	return strings.Split(strings.TrimSuffix(keys, "\n"), "\n")
}

// mayRotate reports whether a replica whose keys are own may record them
// in place of the log's recorded keys bound: own's keys include bound's
// current key. That is the start of a rotation (own signs with a new key
// and cosigns with the current one) and its end (own drops the keys it
// was rotating from).
func mayRotate(bound, own string) bool {
	return slices.Contains(keyLines(own), firstKey(bound))
}

// checkStillSigner makes sure, before a leader stores a checkpoint, that
// the log's recorded keys still include its signing key and that the
// checkpoint will carry a signature by the recorded current key (the first):
// another replica may have rotated the key since this one opened the store.
// A replica that opened before a rotation started signs with the old key
// alone, and verifiers that took the new key would refuse its checkpoints;
// one whose key the rotation's end dropped could not be verified by the
// others at all. Either way this replica resigns and never leads again, and
// its checkpoint is not stored. The caller holds l.mu.
func (l *Log) checkStillSigner(ctx context.Context) error {
	bound, err := l.shared.BindVerifierKey(ctx, "")
	if err != nil {
		return err
	}
	var why string
	switch {
	case !slices.Contains(keyLines(bound), l.signerKey):
		why = "this replica's signing key is no longer one of the log's"
	case !l.signsWith(firstKey(bound)):
		why = "this replica does not sign with the log's current key (another replica started a rotation of the key)"
	default:
		return nil
	}
	l.retired.Store(true)
	l.leading, l.synced = false, false
	l.shared.ResignLog()
	l.cfg.Logger.ErrorContext(ctx, "verifiable log: "+why+": it stops signing; restart it with the new key (and, until the rotation ends, the previous one)",
		"log_key", bound, "replica_key", l.signerKey)
	return errors.New("logsign: " + why)
}

// signsWith reports whether the checkpoints this replica signs carry a
// signature by the public key text vkey: its signer's or a cosigner's.
func (l *Log) signsWith(vkey string) bool {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return false
	}
	for _, s := range append([]note.Signer{l.cfg.Signer}, l.cfg.Cosigners...) {
		if s != nil && s.Name() == v.Name() && s.KeyHash() == v.KeyHash() {
			return true
		}
	}
	return false
}

// refresh loads what the leader stored: the latest checkpoint, then the
// tree size (read after it, so it covers the checkpoint). A checkpoint that
// does not verify with the log's key is never served.
func (l *Log) refresh(ctx context.Context) error {
	note, err := l.shared.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	size, err := l.shared.TreeSize()
	if err != nil {
		return err
	}
	if old, _ := l.Checkpoint(); note != nil && !bytes.Equal(note, old) {
		c, err := merkle.OpenCheckpoint(note, l.keyVerifier())
		if err != nil {
			// The leader may sign with keys recorded after this replica
			// read them (a rotation): read them again.
			if err = l.reloadKeys(ctx); err == nil {
				c, err = merkle.OpenCheckpoint(note, l.keyVerifier())
			}
		} else if keysMayHaveChanged(note, l.keyVerifier()) {
			if rerr := l.reloadKeys(ctx); rerr != nil && !errors.Is(rerr, errKeysUnchanged) {
				return rerr
			}
		}
		if err != nil {
			return fmt.Errorf("logsign: the latest stored checkpoint does not verify with the log's key: %w", err)
		}
		l.cpMu.Lock()
		l.latest, l.cp = note, c
		l.cpMu.Unlock()
	}
	l.mu.Lock()
	l.size = size
	l.mu.Unlock()
	return nil
}

// errKeysUnchanged is reloadKeys' answer when the recorded keys are the
// ones this replica has.
var errKeysUnchanged = errors.New("the log's keys did not change")

// reloadKeys reads the log's recorded public keys again, and writes them to
// Config.VerifierKeyFile when they changed.
func (l *Log) reloadKeys(ctx context.Context) error {
	bound, err := l.shared.BindVerifierKey(ctx, "")
	if err != nil {
		return err
	}
	if bound == l.VerifierKey() {
		return errKeysUnchanged
	}
	v, err := merkle.NewVerifier([]byte(bound))
	if err != nil {
		return fmt.Errorf("logsign: the log's recorded public key: %w", err)
	}
	if err := l.writeKeys(bound); err != nil {
		return err
	}
	l.cfg.Logger.InfoContext(ctx, "verifiable log: the log's public keys changed (a rotation of its signing key on another replica)", "keys", bound)
	l.cpMu.Lock()
	l.verifier, l.keys = v, bound
	l.cpMu.Unlock()
	return nil
}

// lead reports whether this replica leads, and when it has just become the
// leader (or its last step failed) reloads the state that the store holds,
// which another leader may have advanced.
func (l *Log) lead(ctx context.Context) (bool, error) {
	if l.cfg.Signer == nil || l.retired.Load() {
		return false, nil
	}
	ok, err := l.shared.LeadLog(ctx)
	l.mu.Lock()
	was, synced := l.leading, l.synced
	l.leading = ok && err == nil
	if !l.leading {
		l.synced = false
	}
	l.mu.Unlock()
	if err != nil || !ok {
		if was && ctx.Err() == nil {
			l.cfg.Logger.WarnContext(ctx, "verifiable log: this replica no longer integrates", "err", err)
		}
		return false, err
	}
	if !was {
		l.cfg.Logger.InfoContext(ctx, "verifiable log: this replica is the leader: it integrates and signs")
	}
	if !synced {
		if err := l.reload(ctx); err != nil {
			return false, err
		}
	}
	return true, nil
}

// reload loads the stored state before leading: tree size, latest
// checkpoint and the receive time of the last leaf.
func (l *Log) reload(ctx context.Context) error {
	if err := l.refresh(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var lastRT time.Time
	if l.size > 0 {
		evs, err := l.cfg.Store.EventsBySeq(ctx, l.size, l.size)
		if err != nil {
			return err
		}
		lastRT = evs[0].ReceiveTime
	}
	l.lastRT, l.lastSign, l.synced = lastRT, time.Time{}, true
	return nil
}

// unsync makes the next lead reload the stored state (after a failed step:
// the store may have refused a write because another leader moved on).
func (l *Log) unsync() {
	l.mu.Lock()
	l.synced = false
	l.mu.Unlock()
}

// Leading reports whether this replica integrates and signs: always for a
// store that is not shared, else while it is the SharedStore's leader.
func (l *Log) Leading() bool {
	if l.shared == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// catchUp makes a replica that does not lead see a tree size it is asked
// about (a client may hold a checkpoint newer than its last refresh).
func (l *Log) catchUp(size uint64) {
	if l.shared == nil || size <= l.treeSize() {
		return
	}
	stored, err := l.shared.TreeSize()
	if err != nil {
		return
	}
	l.mu.Lock()
	if !l.leading && stored > l.size {
		l.size = stored
	}
	l.mu.Unlock()
}

// errThrottle logs Run's errors at most every 5 seconds (a database outage
// fails every step), with the number left out.
type errThrottle struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (t *errThrottle) log(ctx context.Context, logger *slog.Logger, err error) {
	t.mu.Lock()
	now := time.Now()
	if now.Sub(t.last) < 5*time.Second {
		t.dropped++
		t.mu.Unlock()
		return
	}
	n := t.dropped
	t.last, t.dropped = now, 0
	t.mu.Unlock()
	logger.ErrorContext(ctx, "verifiable log: integration failed", "err", err, "failures_not_logged", n)
}
