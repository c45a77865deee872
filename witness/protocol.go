package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// The add-checkpoint exchange of c2sp.org/tlog-witness, written out here
// because it is a few lines of text each way and both ends are ours to test;
// the signatures themselves are transparency-dev/formats' and x/mod's.

const (
	// MaxProofLines is the most consistency proof lines a request may hold
	// (the spec's bound: a proof between two trees of up to 2^63 leaves).
	MaxProofLines = 63
	// MaxRequestSize bounds a request body: the old size, 63 proof lines
	// and a checkpoint with its signatures (merkle's bound on a note is 16
	// KiB).
	MaxRequestSize = 32 << 10
	// SizeContentType is the content type of a 409 answer's body, the
	// witness's latest cosigned size.
	SizeContentType = "text/x.tlog.size"
)

// Request is an add-checkpoint request: the size of the tree the witness
// cosigned last (as the log believes), a consistency proof from it to the
// checkpoint's, and the signed checkpoint.
type Request struct {
	OldSize    uint64
	Proof      []tlog.Hash
	Checkpoint []byte // signed note text
}

// Marshal returns the request body.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ParseRequest parses an add-checkpoint request body.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("the request is larger than %d bytes", MaxRequestSize)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, errors.New(`the request does not start with an "old <size>" line`)
	}
	size, ok := strings.CutPrefix(string(line), "old ")
	if !ok {
		return nil, errors.New(`the request does not start with an "old <size>" line`)
	}
	old, err := parseSize(size)
	if err != nil {
		return nil, fmt.Errorf("old size: %w", err)
	}
	r := &Request{OldSize: old}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errors.New("the request ends before the empty line that separates the proof from the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, fmt.Errorf("the consistency proof has more than %d lines", MaxProofLines)
		}
		h, ok := decodeHash(line)
		if !ok {
			return nil, fmt.Errorf("consistency proof line %d is not a base64 SHA-256 hash", len(r.Proof)+1)
		}
		r.Proof = append(r.Proof, h)
	}
	r.Checkpoint = rest
	return r, nil
}

// decodeHash decodes the one base64 encoding of a hash (padded, its unused
// bits zero). The length is checked first: Decode writes up to
// DecodedLen bytes, more than a hash for a longer or unpadded line
// (FuzzParseRequest found the panic).
func decodeHash(b []byte) (tlog.Hash, bool) {
	var h tlog.Hash
	if len(b) != base64.StdEncoding.EncodedLen(len(h)) {
		return h, false
	}
	var buf [33]byte // DecodedLen(44)
	n, err := base64.StdEncoding.Strict().Decode(buf[:], b)
	if err != nil || n != len(h) {
		return h, false
	}
	copy(h[:], buf[:n])
	return h, true
}

// parseSize parses a tree size as the protocol writes it: decimal, no
// leading zeros, at most 2^63-1.
func parseSize(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q is not a tree size", s)
	}
	return n, nil
}

// maxTreeSize is the largest tree whose proofs tlog checks: above 2^62
// its tlog.CheckTree never returns (maxpow2 shifts past 63 bits), and
// the witness checks under its lock. The protocol allows sizes up to
// 2^63-1; no log comes near either.
const maxTreeSize = 1 << 62

// treeHead is the first three lines of a checkpoint (c2sp.org/tlog-checkpoint),
// which are what a cosignature attests to; extension lines (ours: the
// receive-time horizon) are signed but not interpreted.
type treeHead struct {
	Origin string
	Size   uint64
	Hash   tlog.Hash
}

// parseTreeHead reads the tree head of a checkpoint's text (the note's
// text, without signatures).
func parseTreeHead(text string) (treeHead, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return treeHead{}, errors.New("the checkpoint has fewer than three lines")
	}
	for _, l := range lines[3 : len(lines)-1] {
		if l == "" {
			return treeHead{}, errors.New("the checkpoint has an empty extension line")
		}
	}
	var th treeHead
	th.Origin = lines[0]
	if th.Origin == "" {
		return treeHead{}, errors.New("the checkpoint's origin line is empty")
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return treeHead{}, fmt.Errorf("the checkpoint's size line: %w", err)
	}
	if size > maxTreeSize {
		return treeHead{}, fmt.Errorf("the checkpoint's tree has %d leaves, more than the %d this witness checks proofs for", size, uint64(maxTreeSize))
	}
	th.Size = size
	h, ok := decodeHash([]byte(lines[2]))
	if !ok {
		return treeHead{}, errors.New("the checkpoint's root hash line is not a base64 SHA-256 hash")
	}
	th.Hash = h
	return th, nil
}

// signatureLines returns the signature lines ("— name base64\n") of a
// witness's answer, refusing anything else.
func signatureLines(body []byte) ([]string, error) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, errors.New("the answer is not newline-terminated signature lines")
	}
	var out []string
	for _, l := range strings.SplitAfter(string(body[:len(body)-1]), "\n") {
		l = strings.TrimSuffix(l, "\n")
		if !strings.HasPrefix(l, "— ") || strings.Count(l, " ") != 2 {
			return nil, fmt.Errorf("the answer's line %q is not a note signature line", truncate(l, 80))
		}
		out = append(out, l+"\n")
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
