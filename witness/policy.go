package witness

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// maxPolicySize bounds a policy file: a few lines per witness.
const maxPolicySize = 64 << 10

// Policy is a witness policy: the witnesses a log asks to cosign its
// checkpoints (with their add-checkpoint URLs) and the quorum of
// cosignatures a verifier requires before it trusts a checkpoint.
//
// The text is the policy format of Sigsum as transparency-dev/formats reads
// it (the format Tessera logs are configured with), so one file serves the
// log and its verifiers:
//
//	witness w1 witness1.example/w+1a2b3c4d+BAn... https://witness1.example/
//	witness w2 witness2.example/w+5e6f7a8b+BAn... https://witness2.example/
//	group both all w1 w2
//	quorum both
//
// A witness line names the witness, its public key (a vkey of a
// cosignature/v1 key, type 0x04, as `audittrail witness` prints it) and the
// prefix of its add-checkpoint endpoint; group lines combine witnesses and
// groups with a threshold ("any", "all" or a number); the quorum line names
// the component a checkpoint must satisfy ("none" for no requirement).
type Policy struct {
	group     fwitness.Group
	witnesses []Witness
	quorum    string
}

// Witness is one witness of a Policy.
type Witness struct {
	Name     string        // its name in the policy file
	KeyName  string        // the name in its cosignatures (the vkey's)
	URL      string        // its add-checkpoint URL
	Verifier note.Verifier // checks its cosignature/v1 signatures

	publicKey string // the Ed25519 key, whatever the vkey's type byte
}

// ParsePolicy parses the text of a policy file.
func ParsePolicy(text []byte) (*Policy, error) {
	if len(text) > maxPolicySize {
		return nil, fmt.Errorf("witness policy: %d bytes, more than the %d a policy may have", len(text), maxPolicySize)
	}
	// The library checks the structure and answers whether a checkpoint
	// satisfies the quorum; it keeps the witnesses' names to itself, and
	// they are what an error message must name, so the witness lines are
	// read here too.
	group, err := fwitness.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	p := &Policy{group: group, quorum: "none"}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "quorum":
			p.quorum = fields[1]
		case "group":
			// A group of threshold 0 ("group g 0 w1", or "group g all"
			// without members) is satisfied by no cosignature at all: the
			// library takes it, and a quorum through it would demand
			// nothing while reading as a requirement.
			threshold := len(fields[3:])
			switch fields[2] {
			case "any":
				threshold = 1
			case "all":
			default:
				threshold, _ = strconv.Atoi(fields[2])
			}
			if threshold < 1 {
				return nil, fmt.Errorf("witness policy: group %s has threshold 0: it would accept a checkpoint without any cosignature (write \"quorum none\" for no requirement)", fields[1])
			}
			// The library counts each listed member, so a member listed
			// twice would count its one cosignature twice: "group g 2 w1
			// w1" would be satisfied by w1 alone.
			seen := make(map[string]bool)
			for _, m := range fields[3:] {
				if seen[m] {
					return nil, fmt.Errorf("witness policy: group %s: %s is listed twice", fields[1], m)
				}
				seen[m] = true
			}
		case "witness":
			v, err := fnote.NewVerifierForCosignatureV1(fields[2])
			if err != nil {
				return nil, fmt.Errorf("witness policy: witness %s: %w", fields[1], err)
			}
			u, err := url.Parse(fields[3])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("witness policy: witness %s: the URL %q is not an http or https URL", fields[1], fields[3])
			}
			_, key, _ := strings.Cut(strings.SplitN(fields[2], "+", 2)[1], "+") // name+hash+key
			raw, err := base64.StdEncoding.DecodeString(key)
			if err != nil || len(raw) < 2 {
				return nil, fmt.Errorf("witness policy: witness %s: malformed key", fields[1])
			}
			p.witnesses = append(p.witnesses, Witness{
				Name: fields[1], KeyName: v.Name(), URL: u.JoinPath("add-checkpoint").String(), Verifier: v,
				publicKey: string(raw[1:]),
			})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	// The cosignature/v1 message does not name the witness: one key under
	// two names would make one witness's signature count twice.
	seen := make(map[string]string)
	for _, w := range p.witnesses {
		if other, ok := seen[w.publicKey]; ok {
			return nil, fmt.Errorf("witness policy: witnesses %s and %s have the same key", other, w.Name)
		}
		seen[w.publicKey] = w.Name
	}
	return p, nil
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(path string) (*Policy, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	p, err := ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Witnesses returns the witnesses of the policy, in the file's order.
func (p *Policy) Witnesses() []Witness { return append([]Witness(nil), p.witnesses...) }

// ErrQuorum is wrapped by Check's error when a checkpoint lacks the
// cosignatures the policy requires.
var ErrQuorum = errors.New("witness cosignatures missing")

// Check returns nil when the signed note msg (a checkpoint with its
// signatures) carries the cosignatures the policy requires, and otherwise
// an error wrapping ErrQuorum that names the witnesses that cosigned it and
// those that did not. Signatures by keys outside the policy are ignored; a
// signature by a witness's key that does not verify counts as absent.
func (p *Policy) Check(msg []byte) error {
	if p.group.Satisfied(msg) {
		return nil
	}
	var have, missing []string
	for _, w := range p.witnesses {
		if Cosigned(msg, w.Verifier) {
			have = append(have, w.Name)
		} else {
			missing = append(missing, w.Name)
		}
	}
	by := "no witness"
	if len(have) > 0 {
		by = "witnesses " + strings.Join(have, ", ")
	}
	return fmt.Errorf("%w: the checkpoint is cosigned by %s, short of the policy's quorum %q (not cosigned by %s)",
		ErrQuorum, by, p.quorum, strings.Join(missing, ", "))
}

// Cosigned reports whether the signed note msg carries a valid signature
// by v.
func Cosigned(msg []byte, v note.Verifier) bool {
	n, err := note.Open(msg, note.VerifierList(v))
	return err == nil && len(n.Sigs) == 1
}
