package pebblestore

import (
	"fmt"
	"strings"
	"testing"
)

// TestValueTable: ids are dense and stable, lookups exact (also when every
// hash clashes), values of every size come back byte for byte, and a view
// taken earlier still reads its values after the table grew.
func TestValueTable(t *testing.T) {
	for _, collide := range []bool{false, true} {
		t.Run(fmt.Sprintf("collide=%v", collide), func(t *testing.T) {
			collideForTest = collide
			defer func() { collideForTest = false }()
			tab := newValueTable()
			var want []string
			add := func(v string) {
				t.Helper()
				if id := tab.add([]byte(v)); int(id) != len(want) {
					t.Fatalf("add(%.20q) = %d, want %d", v, id, len(want))
				}
				want = append(want, v)
			}
			add("")
			for i := range 3000 {
				add(fmt.Sprintf("users/%d", i))
			}
			add(strings.Repeat("x", maxChunkSize+1)) // larger than any chunk
			early := tab.view()
			for i := range 3000 {
				add(fmt.Sprintf("workspaces/%d/%s", i, strings.Repeat("y", i%300)))
			}
			if collide && len(tab.clash) == 0 {
				t.Fatal("no clashing hash: the test does not exercise the clash map")
			}
			if tab.len() != len(want) {
				t.Fatalf("len %d, want %d", tab.len(), len(want))
			}
			for id, v := range want {
				if got := tab.at(uint32(id)); got != v {
					t.Fatalf("at(%d) = %.20q, want %.20q", id, got, v)
				}
				if got, ok := tab.lookup([]byte(v)); !ok || int(got) != id {
					t.Fatalf("lookup(%.20q) = %d, %v, want %d", v, got, ok, id)
				}
			}
			for id := range early.len() {
				if got := early.at(id); got != want[id] {
					t.Fatalf("an earlier view reads %.20q at %d, want %.20q", got, id, want[id])
				}
			}
			for _, v := range []string{"users/3000", "users/", "x", "workspaces/1/"} {
				if id, ok := tab.lookup([]byte(v)); ok {
					t.Errorf("lookup(%q) = %d for a value never added", v, id)
				}
			}
		})
	}
}
