package pebblestore_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestColumnUpgrade opens stores written before the value column (format
// 1): Open builds the column, once, and regex searches over inline values
// find every match. A build interrupted after writing the column (the
// format still says 1) is started over, not added to: a duplicated entry
// would return an event twice.
func TestColumnUpgrade(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", keep), func(t *testing.T) {
			defer pebblestore.SetColumnWindowsForTest(50, 2)()
			cfg := pebblestore.Config{Dir: t.TempDir(), CacheSize: 16 << 20, DictionaryLimit: 8}
			s := openStoreConfig(t, cfg)
			g := newGen(21)
			var all []*audittrail.Event
			for range 6 {
				all = append(all, stored(mustAppend(t, s, g.batch(250)))...)
			}
			if err := s.DowngradeForTest(keep); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStoreConfig(t, cfg)
			defer s.Close()
			r := rand.New(rand.NewPCG(3, 4))
			for i := range 200 {
				var f audittrail.Filter
				e := all[r.IntN(len(all))]
				fld := []audittrail.Field{audittrail.FieldResource, audittrail.FieldSourceIP, audittrail.FieldPrincipal}[r.IntN(3)]
				v := e.Value(fld)
				f.Regex[fld] = regexp_QuoteMeta(v[len(v)/2:]) + "$"
				q := compile(t, f)
				if d := diff(bruteForce(all, q, nil), drain(t, s, q, []int{1, 50}[r.IntN(2)], []int{0, 7}[r.IntN(2)])); d != "" {
					t.Fatalf("search %d, regex %q on %s: (-want +got)\n%s", i, f.Regex[fld], fld, d)
				}
			}
		})
	}
}
