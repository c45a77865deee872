package testserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/syncbuf"
)

// recordingTB records what Errorf is given.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// TestCheckRaces: a race report anywhere in the server's output (a crashed
// run's included) fails the test; output without one does not.
func TestCheckRaces(t *testing.T) {
	for _, tc := range []struct {
		name, logs string
		want       string // "" for no failure
	}{
		{"clean", "stdout: audittrail: ready public=http://127.0.0.1:1 internal=http://127.0.0.1:2\n", ""},
		{"one report", "==================\n" + raceReport + "\nWrite at 0x00c000 by goroutine 7:\n", "1 data race(s)"},
		{"two runs", raceReport + "\ntestserver: SIGKILL\n" + raceReport + "\n", "2 data race(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &recordingTB{TB: t}
			s := &Server{tb: tb, logs: &syncbuf.Buffer{}}
			s.logs.Write([]byte(tc.logs))
			s.checkRaces()
			switch {
			case tc.want == "" && len(tb.failures) > 0:
				t.Errorf("failures %q, want none", tb.failures)
			case tc.want != "" && (len(tb.failures) != 1 || !strings.Contains(tb.failures[0], tc.want)):
				t.Errorf("failures %q, want one saying %q", tb.failures, tc.want)
			}
		})
	}
}
