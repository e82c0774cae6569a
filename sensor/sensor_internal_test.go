package sensor

import (
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// TestTrimSeries: a full series drops its oldest published samples (never
// unpublished ones) and keeps its order, so a long-running sensor keeps
// sampling.
func TestTrimSeries(t *testing.T) {
	mk := func(n int) []event.Sample {
		s := make([]event.Sample, n)
		for i := range s {
			s[i].TsNs = uint64(i)
		}
		return s
	}
	s, u := trimSeries(mk(7), 5, 8) // not full
	if len(s) != 7 || u != 5 {
		t.Fatalf("not full: %d samples, unpublished %d", len(s), u)
	}
	s, u = trimSeries(mk(8), 6, 8) // full: drop max/4 = 2 published
	if len(s) != 6 || u != 4 || s[0].TsNs != 2 || s[5].TsNs != 7 {
		t.Fatalf("full: %d samples from %d, unpublished %d", len(s), s[0].TsNs, u)
	}
	s, u = trimSeries(mk(8), 1, 8) // only one published: drop it alone
	if len(s) != 7 || u != 0 || s[0].TsNs != 1 {
		t.Fatalf("one published: %d samples from %d, unpublished %d", len(s), s[0].TsNs, u)
	}
	s, u = trimSeries(mk(8), 0, 8) // none published (NATS down): keep all
	if len(s) != 8 || u != 0 {
		t.Fatalf("none published: %d samples, unpublished %d", len(s), u)
	}
}
