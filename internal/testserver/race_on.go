//go:build race

package testserver

// raceEnabled: this test binary runs with the race detector, and so does the
// server it builds (go build -race), so that end-to-end tests check the
// server process too.
const raceEnabled = true
