package sensor_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// TestFalcoLayoutDrainsOnRealBPF: with Falco's layout at one CPU per ring
// (several real rings, read through MergeRings) the sensor's drain ends,
// every record is read and the counters balance. The merged reader reads
// each ring with a past deadline and waits for each ring's ErrFlushed; a
// ring whose empty reads skipped ringbuf after Flush never gave it, and
// the drain spun for ever.
func TestFalcoLayoutDrainsOnRealBPF(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs for two rings of one CPU each")
	}
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.Procfs.Root = "" // the host's /proc, for the real probe's self lookup
	cfg.BatchMaxEvents = 0
	cfg.ExcludeSelf = true
	cfg.Probe = bpf.Config{RingSize: 1 << 20, Layout: ringspec.LayoutFalco, CPUsPerRing: 1, LifecycleOnly: true}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		res sensor.Result
		err error
	}
	done := make(chan out, 1)
	go func() { r, err := sensor.Run(ctx, cfg); done <- out{r, err} }()
	select {
	case <-ready:
	case o := <-done:
		t.Fatalf("sensor.Run: %v", o.err)
	case <-time.After(30 * time.Second):
		t.Fatal("not attached in 30 s")
	}
	const children = 20
	for range children {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	var o out
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the drain did not end within 30 s of cancel")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.Ring.Rings < 2 {
		t.Fatalf("%d rings: want one per CPU", o.res.Ring.Rings)
	}
	c := o.res.Counters
	if !o.res.Consistent {
		t.Errorf("counters do not balance: %+v", c)
	}
	if got := c.Delivered[event.CategoryLifecycle]; got < 3*children {
		t.Errorf("%d lifecycle records delivered for %d children (fork, exec, exit each)", got, children)
	}
}
