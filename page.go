package audittrail

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Cursor is a position in the newest-first order of events: (event time,
// sequence number), both descending. A search that resumes at a cursor
// returns only events strictly after it in that order, i.e. events with an
// earlier time, or the same time and a smaller sequence number. Because every
// event has a unique, fixed position, paging never duplicates or skips an
// event that existed when the first page was served.
type Cursor struct {
	Time int64  // event time, Unix nanoseconds
	Seq  uint64 // sequence number
}

// Before reports whether an event at (t, seq) comes after c in newest-first
// order, that is, whether a search resuming at c may return it.
func (c Cursor) Before(t int64, seq uint64) bool {
	return t < c.Time || (t == c.Time && seq < c.Seq)
}

// PageTokenKeySize is the size of the key that authenticates page tokens.
const PageTokenKeySize = 32

// pageToken is what a page token carries. The encoding is versioned and
// authenticated with HMAC-SHA256 (truncated to 128 bits) under a server key,
// so a token cannot be forged or altered, and it is bound to the filter and
// the caller it was issued for.
type pageToken struct {
	Cursor    Cursor
	End       int64    // the resolved end of the range, fixed at the first page
	Filter    [16]byte // Filter.Fingerprint of the request
	Principal [8]byte  // digest of the caller's principal name
}

const (
	pageTokenVersion = 1
	pageTokenBody    = 1 + 8 + 8 + 8 + 16 + 8
	pageTokenMAC     = 16
)

func principalDigest(name string) (d [8]byte) {
	s := sha256.Sum256([]byte("principal\x00" + name))
	copy(d[:], s[:])
	return d
}

func sealPageToken(key []byte, t pageToken) string {
	b := make([]byte, 0, pageTokenBody+pageTokenMAC)
	b = append(b, pageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Cursor.Time))
	b = binary.BigEndian.AppendUint64(b, t.Cursor.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(t.End))
	b = append(b, t.Filter[:]...)
	b = append(b, t.Principal[:]...)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	b = m.Sum(b)[:pageTokenBody+pageTokenMAC]
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadPageToken = Errorf(EInvalid, "page_token is invalid: pass the next_page_token of the previous response unchanged")

func openPageToken(key []byte, s string) (pageToken, error) {
	var t pageToken
	// Strict decoding rejects the forms the lenient decoder would accept for
	// the same bytes (line breaks, non-zero padding bits): a token is valid
	// only exactly as it was issued.
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != pageTokenBody+pageTokenMAC || b[0] != pageTokenVersion || base64.RawURLEncoding.EncodeToString(b) != s {
		return t, errBadPageToken
	}
	m := hmac.New(sha256.New, key)
	m.Write(b[:pageTokenBody])
	if !hmac.Equal(m.Sum(nil)[:pageTokenMAC], b[pageTokenBody:]) {
		return t, errBadPageToken
	}
	p := b[1:]
	t.Cursor.Time = int64(binary.BigEndian.Uint64(p))
	t.Cursor.Seq = binary.BigEndian.Uint64(p[8:])
	t.End = int64(binary.BigEndian.Uint64(p[16:]))
	copy(t.Filter[:], p[24:40])
	copy(t.Principal[:], p[40:48])
	return t, nil
}

// timeFromNanos converts Unix nanoseconds to a UTC time.
func timeFromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
