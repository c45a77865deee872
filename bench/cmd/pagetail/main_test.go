package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 200)
	for i := range ds {
		ds[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {99, 198}, {99.9, 200}, {100, 200}, {0, 1}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("percentile(1..200, %v) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("percentile of one sample = %d, want 7", got)
	}
}
