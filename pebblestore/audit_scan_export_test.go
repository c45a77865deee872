package pebblestore

import (
	"slices"
	"testing"

	"github.com/audittrail/audittrail/merkle"
)

// SetLogPositionsMinPartForTest sets the fewest positions LogPositions
// reads on one goroutine, so that a small store is read in several parts.
func SetLogPositionsMinPartForTest(n int) (restore func()) {
	old := logPositionsMinPart
	logPositionsMinPart = n
	return func() { logPositionsMinPart = old }
}

// TestSortEntries: entries sorted by key, the last of a repeated key kept,
// as a map built from them in order would hold.
func TestSortEntries(t *testing.T) {
	e := func(k, v string) merkle.MapEntry { return merkle.MapEntry{Key: k, Value: v} }
	in := []merkle.MapEntry{e("b", "1"), e("a", "1"), e("b", "2"), e("", "x"), e("a", "2"), e("c", "1"), e("b", "3")}
	got := sortEntries(slices.Clone(in))
	want := []merkle.MapEntry{e("", "x"), e("a", "2"), e("b", "3"), e("c", "1")}
	if !slices.Equal(got, want) {
		t.Fatalf("sortEntries(%q) = %q, want %q", in, got, want)
	}
	if got := sortEntries(nil); len(got) != 0 {
		t.Fatalf("sortEntries(nil) = %q", got)
	}
}
