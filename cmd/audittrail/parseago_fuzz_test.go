package main

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseAgo: parseAgo (--since, --ttl, --retention) never panics and
// returns either an error or a positive duration that means what was
// written: N days are N×24h, a Go duration is itself, "NdD" is their sum.
// No input wraps around int64 nanoseconds into another period.
func FuzzParseAgo(f *testing.F) {
	for _, s := range []string{"90d", "24h", "1d12h", "0", "-5d", "106751d", "106752d", "9999999999d", "1d-1h", "d", "5dd", "1d2562047h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseAgo(s)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("parseAgo(%q) = %v, not positive", s, d)
		}
		days, rest, hasDays := strings.Cut(s, "d")
		if !hasDays {
			rest = s
		}
		var want time.Duration
		if hasDays {
			n, err := strconv.ParseInt(days, 10, 64)
			if err != nil || n < 0 {
				t.Fatalf("parseAgo(%q) accepted days %q", s, days)
			}
			want = time.Duration(n) * 24 * time.Hour
			if n != int64(want/(24*time.Hour)) {
				t.Fatalf("parseAgo(%q) = %v: %d days do not fit a duration", s, d, n)
			}
		}
		if rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil {
				t.Fatalf("parseAgo(%q) accepted %q", s, rest)
			}
			if (r > 0 && want > 0 && want+r < want) || (r < 0 && want+r > want) {
				t.Fatalf("parseAgo(%q) = %v: the sum overflows", s, d)
			}
			want += r
		}
		if d != want {
			t.Fatalf("parseAgo(%q) = %v, want %v", s, d, want)
		}
	})
}

// FuzzParseRFC3339: parseRFC3339 (--start, --until, create --end) accepts
// what time.Parse accepts but an offset RFC 3339 does not allow (+24:00,
// +23:60: errOffset), and the time it returns has the offset written: none
// wraps into another (time.Parse reads +23:60 as +24:00, a day).
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-01-02T15:04:05Z", "2026-01-02T15:04:05.123456789+23:59", "2026-01-02T15:04:05-23:59",
		"2026-01-02T15:04:05+24:00", "2026-01-02T15:04:05+23:60", "2026-01-02T15:04:05-00:00", "2026-01-02T15:04:05+00:60", "2026-01-02T15:04:05+99:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseRFC3339(s)
		want, perr := time.Parse(time.RFC3339Nano, s)
		switch {
		case perr != nil:
			if err == nil {
				t.Fatalf("parseRFC3339(%q) accepted what time.Parse refuses: %v", s, perr)
			}
			return
		case errors.Is(err, errOffset):
			return
		case err != nil:
			t.Fatalf("parseRFC3339(%q): %v, where time.Parse accepts it", s, err)
		case !got.Equal(want):
			t.Fatalf("parseRFC3339(%q) = %v, time.Parse %v", s, got, want)
		}
		if n := len(s); s[n-1] != 'Z' && s[n-1] != 'z' {
			if off := got.Format("-07:00"); off != s[n-6:] && !(off == "+00:00" && s[n-5:] == "00:00") {
				t.Fatalf("parseRFC3339(%q) has the offset %s", s, off)
			}
		}
	})
}
