package postgres_test

import (
	"context"
	"runtime"
	"testing"
	"weak"

	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/postgres"
)

// openUseClose opens a store on url, reads its tokens (which creates the
// tables on first use), closes it and returns a weak pointer to it.
//
//go:noinline
func openUseClose(t *testing.T, url string) weak.Pointer[postgres.Store] {
	s := mustOpen(t, url)
	if _, err := s.ListTokens(context.Background()); err != nil {
		t.Error(err)
	}
	s.Close()
	return weak.Make(s)
}

// TestClosedStoreReleased: a closed store that nobody holds is freed. A
// package-level map (which stores had created the token tables) kept every
// store that had served a token request, with its pool and caches, for
// the life of the process.
func TestClosedStoreReleased(t *testing.T) {
	url := pgtest.Start(t)
	w := openUseClose(t, url)
	runtime.GC()
	runtime.GC()
	if w.Value() != nil {
		t.Error("the closed store is still reachable")
	}
}
