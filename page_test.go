package audittrail

// Internal tests of page tokens: sealing and opening are unexported.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"strings"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{7}, PageTokenKeySize)

func sampleTokens() []pageToken {
	fp := (&Filter{StatusCodeRegex: "^0$"}).Fingerprint()
	return []pageToken{
		{},
		{Cursor: Cursor{Time: 1, Seq: 1}, End: 2, Filter: fp, Principal: principalDigest("users/alice")},
		{Cursor: Cursor{Time: math.MaxInt64, Seq: math.MaxUint64}, End: math.MaxInt64, Filter: [16]byte{0xff}, Principal: [8]byte{1, 2, 3}},
		{Cursor: Cursor{Time: math.MinInt64, Seq: 0}, End: -1, Principal: principalDigest("")},
		{Cursor: Cursor{Time: time.Date(2025, 8, 1, 0, 0, 0, 123, time.UTC).UnixNano(), Seq: 77}, End: time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC).UnixNano()},
	}
}

func TestPageTokenRoundTrip(t *testing.T) {
	for _, tok := range sampleTokens() {
		s := sealPageToken(testKey, tok)
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("token %q is not unpadded base64url", s)
		}
		got, err := openPageToken(testKey, s)
		if err != nil {
			t.Fatalf("open(seal(%+v)): %v", tok, err)
		}
		if got != tok {
			t.Errorf("open(seal(%+v)) = %+v", tok, got)
		}
		if sealPageToken(testKey, tok) != s {
			t.Error("sealing is not deterministic")
		}
	}
}

func TestPageTokenRefused(t *testing.T) {
	tok := sampleTokens()[1]
	s := sealPageToken(testKey, tok)
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	refused := func(what, s string, key []byte) {
		t.Helper()
		got, err := openPageToken(key, s)
		if err == nil {
			t.Errorf("%s: opened to %+v", what, got)
			return
		}
		if ErrorCode(err) != EInvalid || !strings.Contains(ErrorMessage(err), "page_token") {
			t.Errorf("%s: %v, want EInvalid naming page_token", what, err)
		}
		if got != (pageToken{}) {
			t.Errorf("%s: a cursor (%+v) with the error", what, got)
		}
	}
	refused("another key", s, bytes.Repeat([]byte{8}, PageTokenKeySize))
	refused("no key", s, nil)
	for i := range raw {
		for bit := range 8 {
			b := bytes.Clone(raw)
			b[i] ^= 1 << bit
			refused("bit flipped", base64.RawURLEncoding.EncodeToString(b), testKey)
		}
	}
	for n := range len(s) {
		refused("truncated", s[:n], testKey)
	}
	// A token of another version, correctly authenticated.
	b := bytes.Clone(raw[:pageTokenBody])
	b[0] = 2
	refused("version 2", resealRaw(b), testKey)
	refused("padded", base64.URLEncoding.EncodeToString(raw), testKey)
	refused("standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(s)+"+", testKey)
	refused("longer body", resealRaw(append(bytes.Clone(raw[:pageTokenBody]), 0)), testKey)
	refused("shorter body", resealRaw(bytes.Clone(raw[:pageTokenBody-1])), testKey)
}

// TestPageTokenCanonical: a token is accepted only in the exact form the
// server issued. base64.RawURLEncoding ignores CR and LF anywhere in the
// input and, without Strict, the two unused low bits of the last character,
// so altered token strings open to the original cursor.
func TestPageTokenCanonical(t *testing.T) {
	s := sealPageToken(testKey, sampleTokens()[1])
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	variants := map[string]string{
		"trailing newline":          s + "\n",
		"CRLF inside":               s[:10] + "\r\n" + s[10:],
		"last character's low bits": s[:len(s)-1] + string(alphabet[last^1]),
	}
	for name, v := range variants {
		if v == s {
			continue
		}
		if got, err := openPageToken(testKey, v); err == nil {
			t.Errorf("%s: the altered token %q opened to %+v; want EInvalid (decode with base64.RawURLEncoding.Strict() and refuse CR/LF, or compare the input with the re-encoded bytes)", name, v, got.Cursor)
		}
	}
}

// resealRaw authenticates body as sealPageToken does, whatever its length.
func resealRaw(body []byte) string {
	m := hmac.New(sha256.New, testKey)
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(m.Sum(body)[:len(body)+pageTokenMAC])
}

func TestPrincipalDigest(t *testing.T) {
	names := []string{"", "users/alice", "users/bob", "users/alice ", "services/x"}
	seen := map[[8]byte]string{}
	for _, n := range names {
		d := principalDigest(n)
		if d != principalDigest(n) {
			t.Errorf("principalDigest(%q) is not deterministic", n)
		}
		if prev, dup := seen[d]; dup {
			t.Errorf("principalDigest(%q) == principalDigest(%q)", n, prev)
		}
		seen[d] = n
	}
}

func TestCursorBefore(t *testing.T) {
	c := Cursor{Time: 100, Seq: 5}
	for _, x := range []struct {
		t    int64
		seq  uint64
		want bool
	}{
		{99, math.MaxUint64, true},
		{100, 4, true},
		{100, 0, true},
		{100, 5, false},
		{100, 6, false},
		{101, 0, false},
		{math.MinInt64, 0, true},
	} {
		if got := c.Before(x.t, x.seq); got != x.want {
			t.Errorf("%+v.Before(%d, %d) = %v, want %v", c, x.t, x.seq, got, x.want)
		}
	}
}

func TestSearchedUntil(t *testing.T) {
	start := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	q := &Query{Start: start, End: start.Add(240 * time.Hour)}
	mid := start.Add(100*time.Hour + 123)
	for _, c := range []struct {
		next *Cursor
		want time.Time
	}{
		{nil, start},
		{&Cursor{Time: mid.UnixNano(), Seq: 3}, mid},
		{&Cursor{Time: start.UnixNano(), Seq: 3}, start},
		{&Cursor{Time: start.UnixNano() - 1, Seq: 3}, start},
		{&Cursor{Time: math.MinInt64}, start},
	} {
		got := (&SearchResult{Next: c.next}).SearchedUntil(q)
		if !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("SearchedUntil with Next %+v = %v, want %v UTC", c.next, got, c.want)
		}
	}
}
