package merkle

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the log: the tree of Size leaves has
// root Root, and its leaves are exactly the events received before
// ReceivedBefore.
//
// Its text (Marshal) is a C2SP tlog-checkpoint body with one extension line:
//
//	<origin>
//	<size, decimal>
//	<root, base64>
//	received-before <UTC time, 2006-01-02T15:04:05.000000000Z>
//
// Only a Checkpoint returned by OpenCheckpoint, and not modified since, is
// verified (see Verified); the proof verifiers refuse any other.
type Checkpoint struct {
	// Origin names the log. It is also the name of the log's signing key.
	Origin string
	// Size is the number of leaves; the leaf of the event with sequence
	// number s is leaf s-1, so the tree holds the events with Seq 1..Size.
	Size uint64
	// Root is the RFC 6962 root hash of the tree of Size leaves.
	Root tlog.Hash
	// ReceivedBefore is the receive-time horizon: every leaf of the tree is
	// an event with ReceiveTime < ReceivedBefore, and every event with
	// ReceiveTime < ReceivedBefore is a leaf of the tree. (The log keeps
	// ReceiveTime nondecreasing in Seq, so later events are received at or
	// after it.) It is stored at nanosecond precision in UTC.
	ReceivedBefore time.Time

	signed   string   // the note text OpenCheckpoint checked the signature of
	signedBy []string // the keys whose signatures it checked, as "<name>+<hash>"
}

// SignedBy names the keys of the verifier given to OpenCheckpoint whose
// valid signatures the checkpoint carries ("<origin>+<key hash>", as the
// public key text starts), in the note's order: during a rotation of the
// log's key, the new key and the previous one.
func (c *Checkpoint) SignedBy() []string { return slices.Clone(c.signedBy) }

// HorizonKeyword starts the checkpoint's extension line.
const HorizonKeyword = "received-before"

// HorizonLayout is the one accepted form of the horizon time.
const HorizonLayout = "2006-01-02T15:04:05.000000000Z"

// Bounds of ReceivedBefore: the range of storable event times, end included.
var (
	MinHorizon = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxHorizon = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	maxOriginLen      = 255
	maxCheckpointText = 1024
	// maxNoteSize bounds a signed checkpoint: the text and up to a few dozen
	// signature lines (witness cosignatures, key rotation).
	maxNoteSize = 16 << 10
)

var (
	errNotVerified = errors.New("merkle: checkpoint is not signature-verified: obtain it from OpenCheckpoint and do not modify it")
)

// ValidOrigin reports whether s can be a log origin and so a note key name:
// 1 to 255 bytes of UTF-8, printable, without spaces or '+'.
func ValidOrigin(s string) bool {
	if s == "" || len(s) > maxOriginLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '+' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Marshal returns the checkpoint's note text. It fails when a field is out
// of range: an invalid origin, a size beyond MaxTreeSize, an empty tree with
// a root other than EmptyRoot, a horizon outside [MinHorizon, MaxHorizon].
func (c *Checkpoint) Marshal() ([]byte, error) {
	if !ValidOrigin(c.Origin) {
		return nil, fmt.Errorf("merkle: checkpoint origin %q is invalid", c.Origin)
	}
	if c.Size > MaxTreeSize {
		return nil, fmt.Errorf("merkle: checkpoint size %d exceeds the maximum", c.Size)
	}
	if c.Size == 0 && c.Root != EmptyRoot {
		return nil, errors.New("merkle: checkpoint of the empty tree must have the empty root")
	}
	t := c.ReceivedBefore.UTC()
	if t.Before(MinHorizon) || t.After(MaxHorizon) {
		return nil, fmt.Errorf("merkle: checkpoint horizon %s is out of range", t.Format(time.RFC3339Nano))
	}
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Root[:]))
	b.WriteByte('\n')
	b.WriteString(HorizonKeyword)
	b.WriteByte(' ')
	b.WriteString(t.Format(HorizonLayout))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Parse parses a checkpoint note text (the body without signatures). It is
// strict: exactly the four lines Marshal writes, each newline-terminated,
// the size in decimal without leading zeros, the root in canonical padded
// base64, the horizon in HorizonLayout; anything else is an error, and
// Marshal of the result returns text. The result is not verified.
func Parse(text []byte) (*Checkpoint, error) {
	if len(text) > maxCheckpointText {
		return nil, errors.New("merkle: checkpoint text too long")
	}
	if !utf8.Valid(text) {
		return nil, errors.New("merkle: checkpoint text is not UTF-8")
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, errors.New("merkle: checkpoint text must end with a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) != 4 {
		return nil, fmt.Errorf("merkle: checkpoint text has %d lines, want 4", len(lines))
	}
	c := &Checkpoint{Origin: lines[0]}
	if !ValidOrigin(c.Origin) {
		return nil, fmt.Errorf("merkle: checkpoint origin %q is invalid", c.Origin)
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return nil, err
	}
	c.Size = size
	root, err := parseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("merkle: checkpoint root: %w", err)
	}
	c.Root = root
	ts, ok := strings.CutPrefix(lines[3], HorizonKeyword+" ")
	if !ok {
		return nil, fmt.Errorf("merkle: checkpoint line 4 must be %q and a time", HorizonKeyword)
	}
	t, err := time.Parse(HorizonLayout, ts)
	if err != nil || t.Format(HorizonLayout) != ts {
		return nil, fmt.Errorf("merkle: checkpoint horizon %q is not in the form %s", ts, HorizonLayout)
	}
	c.ReceivedBefore = t
	out, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(out, text) {
		return nil, errors.New("merkle: checkpoint text is not canonical")
	}
	return c, nil
}

func parseSize(s string) (uint64, error) {
	if s == "" || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return 0, fmt.Errorf("merkle: checkpoint size %q is malformed", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("merkle: checkpoint size %q is malformed", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > MaxTreeSize {
		return 0, fmt.Errorf("merkle: checkpoint size %q is out of range", s)
	}
	return n, nil
}

// parseHash decodes a hash in canonical padded standard base64.
func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	if len(s) != 44 {
		return h, errors.New("malformed hash: want 44 base64 characters")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, errors.New("malformed hash")
	}
	copy(h[:], b)
	return h, nil
}

// EmptyCheckpoint returns the checkpoint of log origin's empty tree: size
// 0, EmptyRoot, horizon MinHorizon. It is verified without a signature,
// since every tree of the log extends the empty one and every event was
// received after MinHorizon: the older end of a window that starts at the
// log's first event (client.VerifiedWindow).
func EmptyCheckpoint(origin string) (*Checkpoint, error) {
	c := &Checkpoint{Origin: origin, Root: EmptyRoot, ReceivedBefore: MinHorizon}
	text, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	c.signed = string(text)
	return c, nil
}

// Verified reports whether c came from OpenCheckpoint (or EmptyCheckpoint)
// and is unchanged since.
func (c *Checkpoint) Verified() bool {
	if c == nil || c.signed == "" {
		return false
	}
	text, err := c.Marshal()
	return err == nil && string(text) == c.signed
}

// Sign returns the signed note of c, signed by signer and then by each of
// cosigners (the keys being rotated out, docs/design/verifiable-log.md,
// "Rotating the signing key"). Every key's name must be c.Origin.
func Sign(c *Checkpoint, signer note.Signer, cosigners ...note.Signer) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("merkle: Sign: nil signer")
	}
	text, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	signers := append([]note.Signer{signer}, cosigners...)
	for _, s := range signers {
		if s == nil {
			return nil, errors.New("merkle: Sign: nil signer")
		}
		if s.Name() != c.Origin {
			return nil, fmt.Errorf("merkle: Sign: key name %q is not the checkpoint origin %q", s.Name(), c.Origin)
		}
	}
	return note.Sign(&note.Note{Text: string(text)}, signers...)
}

// OpenCheckpoint checks that msg is a signed note carrying a valid signature
// by verifier (by any of its keys when it is a KeyRing; other signatures,
// such as witness cosignatures, are ignored unless verifier is Witnessed,
// whose policy must accept them), that its text is a well-formed
// checkpoint (Parse), and that its origin is the verifier's key name. It
// returns the verified checkpoint.
func OpenCheckpoint(msg []byte, verifier note.Verifier) (*Checkpoint, error) {
	if verifier == nil {
		return nil, errors.New("merkle: OpenCheckpoint: nil verifier")
	}
	if len(msg) > maxNoteSize {
		return nil, errors.New("merkle: signed checkpoint too large")
	}
	keys := Keys(verifier)
	n, err := note.Open(msg, note.VerifierList(keys...))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		// Signed, but by none of the log's keys (only other keys, or
		// witnesses): say so in the words of docs/configuration.md and of
		// the Python verifier, not note's "no verifiable signatures".
		return nil, fmt.Errorf("merkle: signed checkpoint: no signature by the log's key %s", verifier.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("merkle: signed checkpoint: %w", err)
	}
	var signedBy []string
	for _, s := range n.Sigs {
		for _, k := range keys {
			if s.Name == k.Name() && s.Hash == k.KeyHash() {
				signedBy = append(signedBy, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
		}
	}
	if len(signedBy) == 0 {
		return nil, errors.New("merkle: signed checkpoint: no signature by the log's key")
	}
	c, err := Parse([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if c.Origin != verifier.Name() {
		return nil, fmt.Errorf("merkle: checkpoint origin %q is not the key name %q", c.Origin, verifier.Name())
	}
	if w, ok := verifier.(*witnessed); ok {
		if err := w.policy.Check(msg); err != nil {
			return nil, fmt.Errorf("merkle: signed checkpoint of %d leaves: %w: %w", c.Size, ErrNotWitnessed, err)
		}
	}
	c.signed, c.signedBy = n.Text, signedBy
	return c, nil
}

// GenerateKey returns a new Ed25519 key pair for the log origin in the note
// key encodings: skey "PRIVATE+KEY+<origin>+<hash>+<key>" (secret) and vkey
// "<origin>+<hash>+<key>" (public). rand is typically crypto/rand.Reader.
func GenerateKey(rand io.Reader, origin string) (skey, vkey string, err error) {
	if !ValidOrigin(origin) {
		return "", "", fmt.Errorf("merkle: origin %q is invalid", origin)
	}
	return note.GenerateKey(rand, origin)
}

// NewSigner parses the text of a private key file: a note signer key,
// optionally followed by one newline.
func NewSigner(keyText []byte) (note.Signer, error) {
	k, err := keyLine(keyText)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(k)
	if err != nil {
		return nil, fmt.Errorf("merkle: private key: %w", err)
	}
	if !ValidOrigin(s.Name()) {
		return nil, fmt.Errorf("merkle: private key name %q is not a valid origin", s.Name())
	}
	return s, nil
}

// NewVerifier parses the text of a public key file: a note verifier key,
// optionally followed by one newline. A file of several keys, one per line
// (the log's keys across a rotation of its signing key), gives a *KeyRing.
func NewVerifier(keyText []byte) (note.Verifier, error) {
	if bytes.HasPrefix(keyText, []byte("PRIVATE+KEY+")) {
		// The commonest mix-up: the server's log-signing.key given where
		// its public half belongs. Say so, rather than "malformed
		// verifier id".
		return nil, errors.New("merkle: this is a private signing key (log-signing.key): give the log's public key (log-verification.key, or the public line \"audittrail keygen\" printed)")
	}
	lines := strings.Split(strings.TrimSuffix(string(keyText), "\n"), "\n")
	if len(lines) > 1 {
		return newKeyRing(lines)
	}
	k, err := keyLine(keyText)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(k)
	if err != nil {
		return nil, fmt.Errorf("merkle: public key: %w", err)
	}
	if !ValidOrigin(v.Name()) {
		return nil, fmt.Errorf("merkle: public key name %q is not a valid origin", v.Name())
	}
	return v, nil
}

func keyLine(text []byte) (string, error) {
	s := strings.TrimSuffix(string(text), "\n")
	if s == "" || strings.ContainsAny(s, "\n\r\t ") {
		return "", errors.New("merkle: a key file holds one key on one line")
	}
	return s, nil
}
