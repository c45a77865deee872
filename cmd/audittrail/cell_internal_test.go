package main

import "testing"

// TestCell: a table cell is one line of one column and cannot act on the
// terminal: control characters, line separators, bidirectional controls
// and invalid UTF-8 show as escapes; everything else is as it came.
func TestCell(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "-"},
		{"users/jane", "users/jane"},
		{"a\tb\nc\rd", "a b c d"},
		{"v\vtab\fff", `v\x0btab\x0cff`},
		{"\x1b[31mRED\x1b[0m\x1b]0;pwned\x07", `\x1b[31mRED\x1b[0m\x1b]0;pwned\x07`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"c1\u0085\u009b", `c1\u0085\u009b`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"bidi\u202eevil\u2066x\u2069", `bidi\u202eevil\u2066x\u2069`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"ok \uFFFD é 日本 🙂", "ok \uFFFD é 日本 🙂"},
	} {
		if got := cell(c.in); got != c.want {
			t.Errorf("cell(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
