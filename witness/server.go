package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/durablefile"
	"github.com/audittrail/audittrail/internal/flock"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Signer makes the witness's cosignatures (NewCosignatureSigner).
	Signer note.Signer
	// Logs are the public keys of the logs the witness cosigns, each log's
	// keys under its origin: a checkpoint must carry a valid signature by
	// one of them.
	Logs map[string][]note.Verifier
	// StateDir holds the latest checkpoint cosigned of each log. One
	// server per directory (it is locked).
	StateDir string
	Logger   *slog.Logger
}

// Server is a witness (c2sp.org/tlog-witness): it answers POST
// /add-checkpoint, cosigning a log's checkpoint when it is consistent with
// the latest one it cosigned for that log, which it keeps durably before
// answering. It is what an organization runs apart from the log (another
// machine, another team's keys) so that the log cannot show two histories
// without a witness refusing one.
type Server struct {
	cfg    ServerConfig
	mu     sync.Mutex // serialises the check and the write of the state
	state  serverState
	unlock func() error
	stats  map[string]*LogStats // by origin, guarded by mu
}

// LogStats counts a Server's answers about one log, for monitoring: a
// fork refused is the alert that matters.
type LogStats struct {
	Cosigned uint64 // checkpoints cosigned
	Conflict uint64 // 409: the log's idea of the witness's size was wrong (normal after a restart)
	Forked   uint64 // refused as not extending the tree cosigned: same size with another root, or a proof that does not verify
	Refused  uint64 // other refusals: no valid signature by the log's keys, malformed requests
	Size     uint64 // the size of the latest tree cosigned
}

// serverState is the state file: for each log origin, the latest checkpoint
// cosigned.
type serverState struct {
	Logs map[string]*logState `json:"logs"`
}

type logState struct {
	Size       uint64    `json:"size"`
	Hash       []byte    `json:"hash"`       // root hash, 32 bytes
	Checkpoint string    `json:"checkpoint"` // the note as submitted
	Cosigned   time.Time `json:"cosigned"`
}

const stateFile = "witness-state.json"

// NewServer opens the state directory (creating it) and returns the
// witness.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Signer == nil || len(cfg.Logs) == 0 || cfg.StateDir == "" {
		return nil, errors.New("witness: a signer, the logs' keys and a state directory are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// A key given twice (a key file and a rotation's file holding it too)
	// is one key: note.VerifierList would call it ambiguous and every
	// checkpoint of the log would be refused.
	logs := make(map[string][]note.Verifier, len(cfg.Logs))
	for origin, keys := range cfg.Logs {
		type id struct {
			name string
			hash uint32
		}
		seen := make(map[id]bool)
		for _, k := range keys {
			if !seen[id{k.Name(), k.KeyHash()}] {
				seen[id{k.Name(), k.KeyHash()}] = true
				logs[origin] = append(logs[origin], k)
			}
		}
	}
	cfg.Logs = logs
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, err
	}
	unlock, err := flock.Lock(filepath.Join(cfg.StateDir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("witness: another witness uses %s: %w", cfg.StateDir, err)
	}
	s := &Server{cfg: cfg, unlock: unlock, state: serverState{Logs: map[string]*logState{}}, stats: map[string]*LogStats{}}
	data, err := os.ReadFile(filepath.Join(cfg.StateDir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		unlock()
		return nil, err
	default:
		if err := json.Unmarshal(data, &s.state); err != nil {
			unlock()
			return nil, fmt.Errorf("witness: %s: %w", filepath.Join(cfg.StateDir, stateFile), err)
		}
		for origin, l := range s.state.Logs {
			if l == nil || len(l.Hash) != tlog.HashSize {
				unlock()
				return nil, fmt.Errorf("witness: %s: the state of %q is malformed", stateFile, origin)
			}
		}
	}
	return s, nil
}

// Close releases the state directory.
func (s *Server) Close() error { return s.unlock() }

// Stats returns the counts of each log the witness cosigns (by origin),
// since it started; Size is from the state.
func (s *Server) Stats() map[string]LogStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]LogStats, len(s.cfg.Logs))
	for origin := range s.cfg.Logs {
		var st LogStats
		if c := s.stats[origin]; c != nil {
			st = *c
		}
		if l := s.state.Logs[origin]; l != nil {
			st.Size = l.Size
		}
		out[origin] = st
	}
	return out
}

// count records the answer to a request about a known log.
func (s *Server) count(origin string, status int, fork bool) {
	if _, known := s.cfg.Logs[origin]; !known {
		return // a stranger's origin: not counted, so not a label to grow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.stats[origin]
	if c == nil {
		c = &LogStats{}
		s.stats[origin] = c
	}
	switch {
	case status == http.StatusOK:
		c.Cosigned++
	case fork:
		c.Forked++
	case status == http.StatusConflict:
		c.Conflict++
	default:
		c.Refused++
	}
}

// Latest returns the latest checkpoint the witness cosigned for origin (as
// the log submitted it), or nil.
func (s *Server) Latest(origin string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.state.Logs[origin]; l != nil {
		return []byte(l.Checkpoint)
	}
	return nil
}

// ServeHTTP serves POST /add-checkpoint; any other path is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.Error(w, "not found: a witness serves POST /add-checkpoint", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize+1))
	if err != nil {
		http.Error(w, fmt.Sprintf("the request is larger than %d bytes", MaxRequestSize), http.StatusRequestEntityTooLarge)
		return
	}
	cosig, status, size, origin, err := s.addCheckpoint(body)
	s.count(origin, status, errors.Is(err, errForked))
	switch {
	case status == http.StatusConflict && size != nil:
		w.Header().Set("Content-Type", SizeContentType)
		w.WriteHeader(status)
		fmt.Fprintf(w, "%d\n", *size)
	case err != nil:
		http.Error(w, err.Error(), status)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cosig)
	}
}

// addCheckpoint runs the checks of the spec, in its order, and cosigns. On
// a 409 about the old size, size is the witness's. origin is the
// checkpoint's, once read.
func (s *Server) addCheckpoint(body []byte) (cosig []byte, status int, size *uint64, origin string, err error) {
	req, err := ParseRequest(body)
	if err != nil {
		return nil, http.StatusBadRequest, nil, origin, err
	}
	text, _, ok := bytes.Cut(req.Checkpoint, []byte("\n\n"))
	if !ok {
		return nil, http.StatusBadRequest, nil, origin, errors.New("the checkpoint has no signatures")
	}
	origin, _, _ = strings.Cut(string(text), "\n")
	keys := s.cfg.Logs[origin]
	if len(keys) == 0 {
		return nil, http.StatusNotFound, nil, origin, fmt.Errorf("this witness does not cosign the log %q", origin)
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(keys...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified) || errors.As(err, &invalid):
		return nil, http.StatusForbidden, nil, origin, fmt.Errorf("the checkpoint carries no valid signature by the log's keys: %v", err)
	case err != nil:
		return nil, http.StatusBadRequest, nil, origin, fmt.Errorf("the checkpoint is not a signed note: %v", err)
	}
	th, err := parseTreeHead(n.Text)
	if err != nil {
		return nil, http.StatusBadRequest, nil, origin, err
	}
	if req.OldSize > th.Size {
		return nil, http.StatusBadRequest, nil, origin, fmt.Errorf("the old size %d is larger than the checkpoint's %d", req.OldSize, th.Size)
	}
	if req.OldSize == 0 && len(req.Proof) > 0 {
		return nil, http.StatusBadRequest, nil, origin, errors.New("a consistency proof from the empty tree must be empty")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.state.Logs[origin]
	if cur == nil {
		cur = &logState{Hash: emptyTree[:]}
	}
	if req.OldSize != cur.Size {
		return nil, http.StatusConflict, &cur.Size, origin, fmt.Errorf("the witness's latest size is %d", cur.Size)
	}
	var curHash tlog.Hash
	copy(curHash[:], cur.Hash)
	if req.OldSize == th.Size {
		if th.Hash != curHash {
			s.cfg.Logger.Warn("witness: a checkpoint of the size cosigned with another root hash: the log shows two trees",
				"origin", origin, "size", th.Size, "checkpoint", string(req.Checkpoint))
			return nil, http.StatusConflict, nil, origin, fmt.Errorf("%w: a tree of %d leaves with another root hash was cosigned", errForked, th.Size)
		}
	} else if req.OldSize > 0 {
		if err := tlog.CheckTree(req.Proof, int64(th.Size), th.Hash, int64(req.OldSize), curHash); err != nil {
			s.cfg.Logger.Warn("witness: a checkpoint not proven consistent with the one cosigned",
				"origin", origin, "old_size", req.OldSize, "size", th.Size, "checkpoint", string(req.Checkpoint), "err", err)
			return nil, http.StatusUnprocessableEntity, nil, origin, fmt.Errorf("%w: the consistency proof from %d to %d does not verify", errForked, req.OldSize, th.Size)
		}
	}
	sig, err := s.cfg.Signer.Sign([]byte(n.Text))
	if err != nil {
		return nil, http.StatusInternalServerError, nil, origin, fmt.Errorf("cosigning: %v", err)
	}
	next := &logState{Size: th.Size, Hash: th.Hash[:], Checkpoint: string(req.Checkpoint), Cosigned: time.Now().UTC()}
	if err := s.save(origin, next); err != nil {
		s.cfg.Logger.Error("witness: saving the state", "err", err)
		return nil, http.StatusInternalServerError, nil, origin, errors.New("the witness could not save its state")
	}
	// A note signature line: the key's name, then base64 of its 4-byte
	// hash and the signature (c2sp.org/signed-note).
	sigLine := fmt.Sprintf("— %s %s\n", s.cfg.Signer.Name(),
		base64.StdEncoding.EncodeToString(append(binary.BigEndian.AppendUint32(nil, s.cfg.Signer.KeyHash()), sig...)))
	return []byte(sigLine), http.StatusOK, nil, origin, nil
}

// errForked marks the refusals of a checkpoint that does not extend the
// tree cosigned.
var errForked = errors.New("not consistent with the checkpoint cosigned")

// save writes the state with origin's new entry durably, before the answer
// leaves (the spec: a witness that cosigned a size must never cosign a
// smaller one after a crash).
func (s *Server) save(origin string, l *logState) error {
	next := serverState{Logs: make(map[string]*logState, len(s.state.Logs)+1)}
	for k, v := range s.state.Logs {
		next.Logs[k] = v
	}
	next.Logs[origin] = l
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := durablefile.Replace(filepath.Join(s.cfg.StateDir, stateFile), append(data, '\n'), 0o640); err != nil {
		return err
	}
	s.state = next
	return nil
}

// emptyTree is the root hash of the empty tree, SHA-256 of nothing.
var emptyTree = sha256.Sum256(nil)

// GenerateKey returns a new witness key pair: skey, the private key (a note
// signer key, as `audittrail keygen` writes for a log), and vkey, the public
// key of its cosignatures (a cosignature/v1 vkey, type 0x04), which goes on
// the witness's line of a policy. name names the witness in its
// cosignatures, URL-like ("witness.example.com/audit").
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, plain, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("witness: %w", err)
	}
	vkey, err = fnote.VKeyToCosignatureV1(plain)
	if err != nil {
		return "", "", fmt.Errorf("witness: %w", err)
	}
	return skey, vkey, nil
}

// NewCosignatureSigner returns the signer of cosignature/v1 signatures of
// the private key skey (GenerateKey's), and the vkey of its cosignatures.
func NewCosignatureSigner(skey string) (note.Signer, string, error) {
	s, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(skey))
	if err != nil {
		return nil, "", fmt.Errorf("witness: the key is not a witness's private key: %w", err)
	}
	// The vkey of the cosignatures: the private key's public half, type
	// 0x04.
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5) // PRIVATE+KEY+name+hash+key
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if len(parts) != 5 || err != nil || len(raw) != 33 {
		return nil, "", errors.New("witness: the key is not an Ed25519 private key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, "", err
	}
	if vkey, err = fnote.VKeyToCosignatureV1(vkey); err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}
