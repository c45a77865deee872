package postgres

import (
	"bytes"
	"encoding/json"
	"strings"
)

// PostgreSQL text and jsonb cannot hold the byte 0x00, which the API allows
// in every string. Strings are stored escaped: 0x01 becomes 0x01 0x01 and 0x00
// becomes 0x01 0x02; every other byte is itself. The escaping maps each
// character on its own, so it keeps equality (a = b exactly when their
// escaped forms are equal), and a substring, prefix or suffix of a value
// stays one of the escaped value: LIKE patterns built from escaped literals
// never miss a match. Strings without 0x00 and 0x01 (all of them, in
// practice) are stored unchanged.

const (
	escByte = 0x01
	escNUL  = 0x02 // 0x01 0x02 stands for 0x00
)

// encodeText escapes s for storage.
func encodeText(s string) string {
	if strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, escByte) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteByte(escByte)
			b.WriteByte(escNUL)
		case escByte:
			b.WriteByte(escByte)
			b.WriteByte(escByte)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeText reverses encodeText. A malformed escape (which encodeText never
// writes) is kept as it is.
func decodeText(s string) string {
	if strings.IndexByte(s, escByte) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == escByte && i+1 < len(s) {
			switch s[i+1] {
			case escNUL:
				b.WriteByte(0)
				i++
				continue
			case escByte:
				b.WriteByte(escByte)
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// encodeMap returns the jsonb text of m with keys and values escaped, or nil
// (SQL NULL) for a nil map: nil and empty maps are the same content, but
// the store gives back what it was given.
func encodeMap(m map[string]string) (*string, error) {
	if m == nil {
		return nil, nil
	}
	enc := make(map[string]string, len(m))
	for k, v := range m {
		enc[encodeText(k)] = encodeText(v)
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(enc); err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	return &s, nil
}

// decodeMap reverses encodeMap.
func decodeMap(s *string) (map[string]string, error) {
	if s == nil {
		return nil, nil
	}
	var enc map[string]string
	if err := json.Unmarshal([]byte(*s), &enc); err != nil {
		return nil, err
	}
	if enc == nil {
		return nil, nil // JSON null
	}
	m := make(map[string]string, len(enc))
	for k, v := range enc {
		m[decodeText(k)] = decodeText(v)
	}
	return m, nil
}
