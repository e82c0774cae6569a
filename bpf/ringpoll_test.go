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

// TestFlushEndsPastDeadlineReads: after Flush, reads with a past deadline
// (as the falco layout's merged reader makes them) end with ErrFlushed,
// not os.ErrDeadlineExceeded for ever, although the ring is empty and the
// netpoller's wait is not asked.
func TestFlushEndsPastDeadlineReads(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 1 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	r := p.Rings()[0]
	var ev event.Event
	for round := 0; round < 2; round++ {
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		flushed := false
		for i := 0; i < 100000 && !flushed; i++ {
			switch err := r.Read(&ev, time.Unix(0, 1)); {
			case errors.Is(err, ErrFlushed):
				flushed = true
			case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatal(err)
			}
		}
		if !flushed {
			t.Fatalf("round %d: no ErrFlushed after Flush in 100000 reads with a past deadline", round)
		}
		// And the ring waits in the netpoller again afterwards.
		start := time.Now()
		if err := r.Read(&ev, start.Add(20*time.Millisecond)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
}

// TestCloseEndsParkedRead: a read parked in the netpoller when the probe
// closes returns os.ErrClosed, as ringbuf's own wait did.
func TestCloseEndsParkedRead(t *testing.T) {
	needRoot(t)
	p, err := Load(Config{RingSize: 1 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Rings()[0]
	done := make(chan error, 1)
	go func() {
		var ev event.Event
		for {
			err := r.Read(&ev, time.Now().Add(time.Minute))
			if err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // parked by now, most likely
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a parked read did not return within 10 s of Close")
	}
}
