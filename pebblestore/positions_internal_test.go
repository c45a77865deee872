package pebblestore

import (
	"encoding/binary"
	"slices"
	"testing"
)

// FuzzPositions: any value is decoded or reported corrupt, never a panic;
// the times of a group, however far apart, read back as written.
func FuzzPositions(f *testing.F) {
	f.Add([]byte{}, int64(0), int64(1))
	f.Add(appendPositions(nil, []recentEvent{{ns: 1764633600e9}, {ns: 1764633600e9 + 5}, {ns: 1764633599e9}}), int64(-1), int64(1<<62))
	f.Add([]byte{3, 0, 0}, int64(1<<63-1), int64(-1<<63))
	f.Fuzz(func(t *testing.T, v []byte, a, b int64) {
		if times, err := decodePositions(nil, v); err == nil {
			if len(times) == 0 {
				t.Fatalf("%x decoded to no time", v)
			}
		}
		// Groups made of the bytes of v as times around a and b.
		var recs []recentEvent
		for i, c := range v {
			base := a
			if c&1 == 1 {
				base = b
			}
			recs = append(recs, recentEvent{ns: base + int64(c) - 128, seq: uint64(i)})
		}
		if len(recs) == 0 {
			recs = append(recs, recentEvent{ns: a})
		}
		got, err := decodePositions(nil, appendPositions(nil, recs))
		if err != nil {
			t.Fatalf("%v: %v", recs, err)
		}
		want := make([]int64, len(recs))
		for i, r := range recs {
			want[i] = r.ns
		}
		if !slices.Equal(got, want) {
			t.Fatalf("read %v, wrote %v", got, want)
		}
	})
}

// TestPositionsValue: the layout of a positions value.
func TestPositionsValue(t *testing.T) {
	v := appendPositions(nil, []recentEvent{{ns: 100}, {ns: 90}, {ns: 95}})
	want := binary.AppendUvarint(nil, 3)
	for _, d := range []int64{100, -10, 5} {
		want = binary.AppendVarint(want, d)
	}
	if !slices.Equal(v, want) {
		t.Fatalf("value %x, want %x", v, want)
	}
	for _, bad := range [][]byte{nil, {0}, {2, 2}, append(slices.Clone(want), 0)} {
		if _, err := decodePositions(nil, bad); err == nil {
			t.Errorf("%x decoded without an error", bad)
		}
	}
}
