// Package logsign runs the verifiable log of an audit trail (see
// docs/design/verifiable-log.md): it integrates committed events into the
// Merkle tree of package merkle, stores the tree's hashes through an
// audittrail.LogStore, signs checkpoints with the log's Ed25519 note key,
// and serves proofs. When replicas share the store (SharedStore), one of
// them integrates and signs and the others serve what it stores.
package logsign

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/merkle"
)

// Key file names in the data directory.
const (
	SigningKeyFile      = "log-signing.key"
	VerificationKeyFile = "log-verification.key"
)

// DefaultOrigin names the log when a new key is created without an origin.
const DefaultOrigin = "audittrail/log"

// LoadOrCreateKey reads <dir>/log-signing.key, or creates it (mode 0600)
// with a new Ed25519 key named origin. It (re)writes the public key to
// <dir>/log-verification.key (mode 0644) and returns the signer and the
// public key text.
func LoadOrCreateKey(dir, origin string) (note.Signer, string, error) {
	s, vkey, err := LoadOrCreateKeyFile(filepath.Join(dir, SigningKeyFile), origin, true)
	if err != nil {
		return nil, "", err
	}
	if err := WriteVerifierKey(filepath.Join(dir, VerificationKeyFile), vkey); err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

// LoadOrCreateKeyFile reads the signing key file at path or, when there is
// none and create is set, creates it (mode 0600, never overwriting one made
// concurrently) with a new Ed25519 key named origin. It returns the signer
// and the public key text. Without create, a missing file is an error
// wrapping fs.ErrNotExist.
func LoadOrCreateKeyFile(path, origin string, create bool) (note.Signer, string, error) {
	if origin == "" {
		origin = DefaultOrigin
	}
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		skey, vkey, err := merkle.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, "", err
		}
		if err := durablefile.Create(path, []byte(skey+"\n"), 0o600); errors.Is(err, fs.ErrExist) {
			// Another server made it first: use that one.
			return LoadOrCreateKeyFile(path, origin, false)
		} else if err != nil {
			return nil, "", fmt.Errorf("logsign: write signing key: %w", err)
		}
		s, err := merkle.NewSigner([]byte(skey))
		return s, vkey, err
	} else if err != nil {
		return nil, "", fmt.Errorf("logsign: read signing key: %w", err)
	}
	s, err := merkle.NewSigner(text)
	if err != nil {
		return nil, "", err
	}
	vkey, err := publicKey(string(text))
	if err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

// CreateKeyFile creates the signing key file path (mode 0600) with a new
// Ed25519 key named origin ("" means DefaultOrigin), refusing to replace a
// file that exists, and returns the public key text.
func CreateKeyFile(path, origin string) (string, error) {
	if origin == "" {
		origin = DefaultOrigin
	}
	skey, vkey, err := merkle.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", err
	}
	if err := durablefile.Create(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("logsign: write signing key: %w", err)
	}
	return vkey, nil
}

// LoadPreviousKey reads the file of a key the log is rotated from
// (docs/design/verifiable-log.md, "Rotating the signing key"): a signing
// key, which then cosigns every checkpoint (signer not nil) so that
// verifiers holding its public key keep working, or public keys only (one
// or more lines), which the latest stored checkpoint may be signed by but
// which sign nothing (a lost or compromised key). It returns the public
// key text.
func LoadPreviousKey(path string) (note.Signer, string, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("logsign: read previous key: %w", err)
	}
	if strings.HasPrefix(string(text), "PRIVATE+KEY+") {
		s, err := merkle.NewSigner(text)
		if err != nil {
			return nil, "", fmt.Errorf("logsign: previous key %s: %w", path, err)
		}
		vkey, err := publicKey(string(text))
		if err != nil {
			return nil, "", fmt.Errorf("logsign: previous key %s: %w", path, err)
		}
		return s, vkey, nil
	}
	if _, err := merkle.NewVerifier(text); err != nil {
		return nil, "", fmt.Errorf("logsign: previous key %s: %w", path, err)
	}
	return nil, strings.TrimSuffix(string(text), "\n"), nil
}

// KeyName is the name of the public keys text vkeys (the log's origin), ""
// when it does not parse.
func KeyName(vkeys string) string {
	v, err := merkle.NewVerifier([]byte(vkeys))
	if err != nil {
		return ""
	}
	return v.Name()
}

// WriteVerifierKey writes the public key text vkey to path (mode 0644),
// unless the file holds it already.
func WriteVerifierKey(path, vkey string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == vkey+"\n" {
		return nil
	}
	if err := os.WriteFile(path, []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("logsign: write verification key: %w", err)
	}
	return nil
}

// publicKey derives the verifier key text from the private key text
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>".
func publicKey(skey string) (string, error) {
	skey = strings.TrimSuffix(skey, "\n")
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("logsign: malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("logsign: malformed signing key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// Config configures a Log.
type Config struct {
	Store audittrail.LogStore
	// Signer signs checkpoints. It may be nil only when Store is a
	// SharedStore: the Log then serves what other replicas sign.
	Signer note.Signer
	// Cosigners sign every checkpoint too: the keys being rotated out
	// (docs/design/verifiable-log.md, "Rotating the signing key"), so that
	// whoever holds only an old public key keeps verifying until they take
	// the new one. Their names must be the Signer's.
	Cosigners []note.Signer
	// VerifierKey is the log's public key text (from LoadOrCreateKey): the
	// Signer's key first, then any earlier keys of the log whose
	// signatures its stored checkpoints may carry, one per line
	// (merkle.JoinKeys), cosigners' included. The latest stored checkpoint
	// must verify with one of them. With a SharedStore, the keys recorded
	// in the store win (see SharedStore.BindVerifierKey).
	VerifierKey string
	// VerifierKeyFile, when set, is where the log's public keys are kept
	// for verifiers (the data directory's log-verification.key): New
	// writes them there, and a replica sharing the store writes them again
	// when it sees that they changed (another replica rotated the signing
	// key), so that the copy a verifier takes is never one the log's
	// checkpoints stopped being signed with.
	VerifierKeyFile string
	// Interval between integrations; 0 means 200 ms.
	Interval time.Duration
	// SignInterval is the minimum time between two signed checkpoints while
	// events arrive; 0 means 800 ms, so that with Interval 200 ms a
	// checkpoint is signed about once a second while events arrive (a round
	// catching up with a backlog can take up to 2 s before it signs).
	SignInterval time.Duration
	// KeepAllCheckpoints keeps every stored checkpoint whose horizon is
	// this recent; older ones are thinned to the last of each hour
	// (thin.go). 0 keeps them all.
	KeepAllCheckpoints time.Duration
	// Witnesses, when set, cosign every checkpoint before it is stored
	// (witness.Cosigner; docs/design/verifiable-log.md, "Witnesses"): the
	// stored and served checkpoint carries the cosignatures that came back.
	Witnesses Cosigner
	// WitnessQuorum, when set with Witnesses, is the check a checkpoint's
	// cosignatures must pass to be stored (witness.Policy.Check): one that
	// fails is withheld, and the latest checkpoint stays the last that
	// passed, while the tree grows; the next round signs and asks again.
	// Nil stores every checkpoint, cosigned or not.
	WitnessQuorum func(cp []byte) error
	// WitnessInterval, when positive, is the least time between two
	// requests to the witnesses (public witnesses take few per log): the
	// checkpoints signed in between are stored without cosignatures, or,
	// with WitnessQuorum, not signed at all, so that one checkpoint is
	// signed, cosigned and stored per interval.
	WitnessInterval time.Duration
	// BatchSize bounds the events read per integration step; 0 means 10000.
	BatchSize int
	Logger    *slog.Logger
	Now       func() time.Time
}

// Cosigner adds witnesses' cosignatures to a signed checkpoint cp of the
// tree of size leaves, given the consistency proofs they ask for
// (witness.Cosigner). It returns cp with what it got, cp itself when no
// witness answered.
type Cosigner interface {
	Cosign(ctx context.Context, cp []byte, size uint64, prove func(old, new uint64) ([]tlog.Hash, error)) []byte
}

// Log integrates events, signs checkpoints and serves proofs.
type Log struct {
	cfg Config

	mu       sync.Mutex // serialises integration
	size     uint64     // integrated leaves (stored tree size)
	lastRT   time.Time  // receive time of leaf size-1
	lastSign time.Time
	lastAsk  time.Time // when the witnesses were last asked (WitnessInterval)
	// lastThin is the time of the last thinning pass, thinFrom the size
	// the next round resumes from, thinMore set when the last round
	// stopped before the end of its pass (thin.go; guarded by thinMu).
	thinMu   sync.Mutex
	lastThin time.Time
	thinFrom uint64
	thinMore bool
	thinned  atomic.Uint64 // checkpoints deleted
	// thinPage and thinPages are the page size of a thinning read and the
	// reads per round (the defaults; tests make them small).
	thinPage, thinPages int

	// retired is set when a replica sharing the store finds that the log's
	// recorded keys no longer include its signing key (a rotation moved on
	// without it): it never leads again.
	retired   atomic.Bool
	signerKey string // the public key of Signer, with a SharedStore

	// shared is Store when several replicas share it (shared.go). leading
	// is set while this replica is the leader, synced once it has loaded
	// the stored state since (both guarded by mu).
	shared  SharedStore
	leading bool
	synced  bool
	errLog  errThrottle // Run's error log
	// failures counts Run's rounds that failed (Failures).
	failures atomic.Uint64
	// withheld counts the checkpoints WitnessQuorum refused (Withheld);
	// withholding says the last one was (guarded by mu).
	withheld    atomic.Uint64
	withholding bool

	cpMu     sync.RWMutex
	latest   []byte             // latest signed checkpoint
	cp       *merkle.Checkpoint // its parsed form
	verifier note.Verifier      // the log's keys (a merkle.KeyRing after a rotation)
	keys     string             // their text

	// proofs caches the tree's shared hashes for CachedInclusionProofs
	// (proofcache.go), made on first use with levels >= cacheLevel and the
	// newest cacheTail leaves.
	proofs     atomic.Pointer[merkle.ProofCache]
	cacheLevel int
	cacheTail  uint64
}

// New opens the log over its store, loading the tree size and the latest
// stored checkpoint.
func New(ctx context.Context, cfg Config) (*Log, error) {
	shared, _ := cfg.Store.(SharedStore)
	if cfg.Store == nil || (cfg.Signer == nil && shared == nil) {
		return nil, errors.New("logsign: Store and Signer are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.SignInterval <= 0 {
		cfg.SignInterval = 800 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Log{cfg: cfg, cacheLevel: merkle.DefaultCacheLevel, cacheTail: merkle.DefaultCacheTail,
		thinPage: defaultThinPage, thinPages: defaultThinPagesPerRound}
	if shared != nil {
		if err := l.openShared(ctx, shared); err != nil {
			return nil, err
		}
		return l, l.writeKeys(l.keys)
	}
	size, err := cfg.Store.TreeSize()
	if err != nil {
		return nil, err
	}
	l.size = size
	if size > 0 {
		evs, err := cfg.Store.EventsBySeq(ctx, size, size)
		if err != nil {
			return nil, err
		}
		l.lastRT = evs[0].ReceiveTime
	}
	latest, err := cfg.Store.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	v, err := merkle.NewVerifier([]byte(cfg.VerifierKey))
	if err != nil {
		return nil, err
	}
	l.verifier, l.keys = v, cfg.VerifierKey
	if latest != nil {
		c, err := merkle.OpenCheckpoint(latest, v)
		if err != nil {
			return nil, fmt.Errorf("logsign: the latest stored checkpoint does not verify with the signing key; "+
				"if the log's key is being replaced, give the previous one too (--log-previous-key): %w", err)
		}
		l.latest, l.cp = latest, c
	}
	return l, l.writeKeys(l.keys)
}

// writeKeys writes the public keys text keys to Config.VerifierKeyFile,
// when set.
func (l *Log) writeKeys(keys string) error {
	if l.cfg.VerifierKeyFile == "" {
		return nil
	}
	return WriteVerifierKey(l.cfg.VerifierKeyFile, keys)
}
