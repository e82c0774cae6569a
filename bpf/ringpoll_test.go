package bpf

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// TestRingWaitsInNetpoller: a read with a deadline parks in the runtime's
// netpoller, returns at its deadline when nothing comes, and returns a
// record a child's fork and exec wrote before the deadline.
func TestRingWaitsInNetpoller(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 1 << 20, Layout: ringspec.LayoutSplit, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	for _, r := range p.Rings() {
		if err := r.WaitsInNetpoller(); err != nil {
			t.Fatalf("%s ring: %v", r.Name(), err)
		}
	}
	lc := p.Rings()[0]
	var ev event.Event
	for i := 0; i < 20; i++ {
		start := time.Now()
		err := lc.Read(&ev, start.Add(20*time.Millisecond))
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("read %d with a 20 ms deadline took %v", i, took)
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
}
