package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/internal/syncbuf"
)

// TestConcurrentWrites: every write of concurrent writers is kept whole
// (run with -race to check the locking).
func TestConcurrentWrites(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 800 || len(b.String()) != 800*5 {
		t.Fatalf("%d whole lines, %d bytes; want 800 and %d", got, len(b.String()), 800*5)
	}
}
