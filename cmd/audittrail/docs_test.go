package main

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The user documentation is read literally: these tests keep what it quotes
// mechanically (serve's flags, their variables and defaults, the metrics,
// relative links) in step with the code.

const repoRoot = "../.."

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	docFlagRe = regexp.MustCompile("`--([a-z0-9-]+)`")
	docEnvRe  = regexp.MustCompile("`(AUDITTRAIL_[A-Z0-9_]+)`")
	docCodeRe = regexp.MustCompile("`([^`]*)`")
)

// TestDocsServeFlags: the flag tables of docs/configuration.md name every
// flag of serve and no other, each with its environment variable and its
// default.
func TestDocsServeFlags(t *testing.T) {
	doc := readDoc(t, "docs/configuration.md")
	flags := NewMain().flagSet()
	documented := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 4 {
			t.Errorf("docs/configuration.md: a flag row without its columns: %s", line)
			continue
		}
		names := docFlagRe.FindAllStringSubmatch(cells[0], -1)
		envs := docEnvRe.FindAllStringSubmatch(cells[1], -1)
		if len(names) != len(envs) {
			t.Errorf("docs/configuration.md: %d flags but %d variables in the row %q", len(names), len(envs), cells[0])
			continue
		}
		for i, n := range names {
			name, env := n[1], envs[i][1]
			documented[name] = true
			f := flags.Lookup(name)
			if f == nil {
				t.Errorf("docs/configuration.md documents --%s, which serve does not have", name)
				continue
			}
			if serveEnv[name] != env {
				t.Errorf("docs/configuration.md gives --%s the variable %s; serve reads %s", name, env, serveEnv[name])
			}
			if want, ok := docDefault(cells[2]); ok && !sameDefault(want, f.DefValue) {
				t.Errorf("docs/configuration.md gives --%s the default %q; serve's is %q", name, cells[2], f.DefValue)
			}
		}
	}
	flags.VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] {
			t.Errorf("serve has --%s, which no table of docs/configuration.md documents", f.Name)
		}
	})
}

// docDefault reads a default column: "none" or "(empty...)" is the empty
// string; else the first code span (`24h` in "`24h`", `0` in "`0` (256
// MiB)"), else the plain word ("false"). A default computed from another
// flag (`<data-dir>/...`) is the empty string.
func docDefault(cell string) (string, bool) {
	cell = strings.TrimSpace(cell)
	switch {
	case cell == "none" || strings.HasPrefix(cell, "(empty"):
		return "", true
	case strings.HasPrefix(cell, "`<data-dir>"):
		return "", true
	}
	if m := docCodeRe.FindStringSubmatch(cell); m != nil {
		return m[1], true
	}
	if f := strings.Fields(cell); len(f) > 0 {
		return f[0], true
	}
	return "", false
}

func sameDefault(doc, def string) bool {
	if doc == def || strings.EqualFold(doc, def) {
		return true
	}
	if def == "" {
		return doc == "0" // a flag.Value whose zero prints empty
	}
	if a, err := time.ParseDuration(doc); err == nil {
		if b, err := time.ParseDuration(def); err == nil {
			return a == b
		}
	}
	if a, err := strconv.ParseFloat(doc, 64); err == nil {
		if b, err := strconv.ParseFloat(def, 64); err == nil {
			return a == b
		}
	}
	return false
}

var metricNameRe = regexp.MustCompile(`"(audittrail_[a-z_]*[a-z])"`)

// TestDocsMetrics: every metric the server registers (a name in
// server/*.go) is a row of the table of docs/configuration.md, "Metrics",
// and every row names one of them.
func TestDocsMetrics(t *testing.T) {
	doc := readDoc(t, "docs/configuration.md")
	start := strings.Index(doc, "\n## Metrics\n")
	if start < 0 {
		t.Fatal(`docs/configuration.md has no section "Metrics"`)
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	rows := map[string]bool{}
	for m := range strings.SplitSeq(section, "\n") {
		if r := regexp.MustCompile("^\\| `(audittrail_[a-z_]+)` \\|").FindStringSubmatch(m); r != nil {
			rows[r[1]] = true
		}
	}
	files, err := filepath.Glob(filepath.Join(repoRoot, "server", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricNameRe.FindAllStringSubmatch(string(b), -1) {
			registered[m[1]] = true
		}
	}
	if len(registered) < 10 {
		t.Fatalf("found only %d metric names in server/*.go: the pattern no longer matches how they are declared", len(registered))
	}
	for name := range registered {
		if !rows[name] {
			t.Errorf("the server registers %s, which docs/configuration.md (\"Metrics\") does not list", name)
		}
	}
	for name := range rows {
		if !registered[name] {
			t.Errorf("docs/configuration.md (\"Metrics\") lists %s, which the server does not register", name)
		}
	}
}

var (
	mdLinkRe   = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	mdCodeRe   = regexp.MustCompile("`[^`]*`")
	mdHeadRe   = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*$`)
	mdSchemeRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// TestDocsRelativeLinks: every relative link of the repository's markdown
// files (outside code) names a file that exists and, for a markdown file,
// a heading it has (GitHub's anchors).
func TestDocsRelativeLinks(t *testing.T) {
	var docs []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 10 {
		t.Fatalf("found only %d markdown files under %s", len(docs), repoRoot)
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := map[string]bool{}
		seen := map[string]int{}
		for _, line := range proseLines(string(b)) {
			m := mdHeadRe.FindStringSubmatch(line.text)
			if m == nil {
				continue
			}
			slug := slugify(m[1])
			if n := seen[slug]; n > 0 {
				a[slug+"-"+strconv.Itoa(n)] = true
			} else {
				a[slug] = true
			}
			seen[slug]++
		}
		anchors[path] = a
		return a
	}
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, doc)
		for _, line := range proseLines(string(b)) {
			for _, m := range mdLinkRe.FindAllStringSubmatch(mdCodeRe.ReplaceAllString(line.text, ""), -1) {
				target := m[1]
				if mdSchemeRe.MatchString(target) {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := doc
				if file != "" {
					path = filepath.Join(filepath.Dir(doc), file)
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s:%d: the link %s names no file", rel, line.n, target)
					continue
				}
				if anchor != "" && strings.HasSuffix(path, ".md") && !anchorsOf(path)[anchor] {
					t.Errorf("%s:%d: the link %s names no heading of %s", rel, line.n, target, file)
				}
			}
		}
	}
}

type mdLine struct {
	n    int
	text string
}

// proseLines returns the lines of a markdown text outside fenced code.
func proseLines(s string) []mdLine {
	var out []mdLine
	fenced := false
	for i, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, mdLine{i + 1, l})
		}
	}
	return out
}

// slugify is GitHub's anchor of a heading: lower case, code marks and
// punctuation dropped, spaces made hyphens.
func slugify(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
