package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseRequest: a body the parser accepts is exactly what Marshal
// writes for what it parsed (one encoding of every request, so a witness
// cannot be made to read a proof or a size other than the log wrote), and
// no body makes it panic.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\naudit.example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— audit.example.com/log AAAA\n"))
	f.Add([]byte("old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"))
	f.Add([]byte("old 01\n\n"))
	f.Add([]byte("old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			return
		}
		if len(r.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines accepted", len(r.Proof))
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("parsed %q, marshalled back as %q", body, got)
		}
	})
}

// FuzzParseTreeHead: an accepted checkpoint text starts with the lines its
// tree head writes back, and the rest are non-empty extension lines.
func FuzzParseTreeHead(f *testing.F) {
	f.Add("audit.example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
	f.Add("audit.example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nreceived-before 2026-11-28T00:00:00Z\n")
	f.Add("o\n00\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
	f.Fuzz(func(t *testing.T, text string) {
		th, err := parseTreeHead(text)
		if err != nil {
			return
		}
		head := fmt.Sprintf("%s\n%d\n%s\n", th.Origin, th.Size, base64.StdEncoding.EncodeToString(th.Hash[:]))
		rest, ok := strings.CutPrefix(text, head)
		if !ok {
			t.Fatalf("parsed %q as %q", text, head)
		}
		if rest != "" && (strings.Contains(rest, "\n\n") || strings.HasPrefix(rest, "\n") || !strings.HasSuffix(rest, "\n")) {
			t.Fatalf("extension lines %q accepted", rest)
		}
	})
}
