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

// TestValueTableForget: forgotten values are no longer found (also when
// they were the first of a hash others share), every other value still is,
// a forgotten value added again gets a new id, views read the old values,
// and a table loaded with erased ids keeps the ids after them in place.
func TestValueTableForget(t *testing.T) {
	for _, collide := range []bool{false, true} {
		t.Run(fmt.Sprintf("collide=%v", collide), func(t *testing.T) {
			collideForTest = collide
			defer func() { collideForTest = false }()
			tab := newValueTable()
			var vals []string
			for i := range 200 {
				vals = append(vals, fmt.Sprintf("principal-%d", i))
				tab.add([]byte(vals[i]))
			}
			view := tab.view()
			var forget []uint32
			for id := range uint32(200) {
				if id%3 == 0 {
					forget = append(forget, id)
				}
			}
			n := tab.forget(forget)
			if want := len(forget) * len("principal-1"); n < want {
				t.Fatalf("forget returned %d bytes, want at least %d", n, want)
			}
			for id, v := range vals {
				got, ok := tab.lookup([]byte(v))
				if forgotten := id%3 == 0; forgotten == ok || (ok && int(got) != id) {
					t.Fatalf("lookup(%q) after forgetting every third = %d, %v", v, got, ok)
				}
				if view.at(id) != v || tab.at(uint32(id)) != v {
					t.Fatalf("the place of %q changed", v)
				}
			}
			if id := tab.add([]byte(vals[0])); id != 200 {
				t.Fatalf("a forgotten value added again got id %d, want 200", id)
			}
			if got, ok := tab.lookup([]byte(vals[0])); !ok || got != 200 {
				t.Fatalf("lookup of the value added again: %d, %v", got, ok)
			}

			loaded := newValueTable()
			loaded.add([]byte("a"))
			if id := loaded.addErased(); id != 1 || loaded.at(1) != "" {
				t.Fatalf("addErased: id %d reads %q", id, loaded.at(1))
			}
			if id := loaded.add([]byte("b")); id != 2 {
				t.Fatalf("the value after an erased one got id %d, want 2", id)
			}
			if _, ok := loaded.lookup(nil); ok {
				t.Fatal(`an erased value is found as ""`)
			}
		})
	}
}
