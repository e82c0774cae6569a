package bpf

import (
	"os"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/event"
)

// TestSetCapture: detached, the node's processes leave no record and no
// count; attached again, they are recorded as before; the counters stay
// exact across the toggles; after Detach, SetCapture refuses to attach.
func TestSetCapture(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 1 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	c := collect(p)
	before := runTrue(t, 3)
	if err := p.SetCapture(false); err != nil {
		t.Fatalf("SetCapture(false): %v", err)
	}
	if err := p.SetCapture(false); err != nil {
		t.Fatalf("SetCapture(false) twice: %v", err)
	}
	dark := runTrue(t, 3)
	if err := p.SetCapture(true); err != nil {
		t.Fatalf("SetCapture(true): %v", err)
	}
	n := len(p.links)
	if err := p.SetCapture(true); err != nil || len(p.links) != n {
		t.Fatalf("SetCapture(true) twice: %v, links %d then %d", err, n, len(p.links))
	}
	after := runTrue(t, 3)
	time.Sleep(100 * time.Millisecond)
	recs, cnt := c.finish(t)
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Fatalf("lifecycle drops in a 1 MiB ring for 9 processes: %v", cnt.Dropped)
	}
	seen := byPid(recs, append(append(append([]uint32(nil), before...), dark...), after...))
	for _, pid := range append(before, after...) {
		l := seen[pid]
		if l == nil || l.fork == nil || l.exec == nil || l.exit == nil {
			t.Errorf("pid %d, run while attached: lifecycle %+v, want fork, exec and exit", pid, l)
		}
	}
	for _, pid := range dark {
		if l := seen[pid]; l.fork != nil || l.exec != nil || l.exit != nil || l.syscalls != 0 {
			t.Errorf("pid %d, run while detached: recorded %+v", pid, l)
		}
	}
	if err := p.SetCapture(true); err == nil {
		t.Error("SetCapture(true) after Detach: no error")
	}
	if len(p.links) != 0 {
		t.Errorf("%d links after Detach and a refused SetCapture", len(p.links))
	}
}
