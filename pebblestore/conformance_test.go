package pebblestore_test

import (
	"context"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/storetest"
)

// TestConformance runs the conformance suite of audittrail.Store on the
// embedded store. The suite reopens stores from the same directory to test
// durability. Replay a random failure with STORETEST_SEED=<logged seed>.
func TestConformance(t *testing.T) {
	storetest.RunHarness(t, storetest.Harness{
		Open: func(t *testing.T, dir string) audittrail.Store {
			s, err := pebblestore.Open(context.Background(), pebblestore.Config{Dir: dir})
			if err != nil {
				t.Fatalf("pebblestore.Open(%s): %v", dir, err)
			}
			return s
		},
	})
}
