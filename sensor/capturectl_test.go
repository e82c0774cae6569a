package sensor_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
)

// capProbe is a fake probe whose capture can be toggled; fail makes the
// next SetCapture fail.
type capProbe struct {
	*fakeProbe
	mu    sync.Mutex
	calls []bool
	fail  error
}

func (p *capProbe) SetCapture(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail; err != nil {
		p.fail = nil
		return err
	}
	p.calls = append(p.calls, on)
	return nil
}

// TestCaptureControl: the lab knob's socket turns "off" and "on" into the
// probe's SetCapture, answers each line, names a bad command and a failed
// toggle without ending the sensor, and is removed when the sensor ends.
func TestCaptureControl(t *testing.T) {
	p := &capProbe{fakeProbe: newFakeProbe(0, [event.NumCategories]uint64{}, map[string][]event.Event{"shared": nil}, "shared")}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	cfg := baseConfig(t, &recPub{})
	cfg.CaptureControl = sock
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return p, nil }
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := sensor.Run(ctx, cfg); done <- err }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("sensor.Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("sensor not ready within 30 s")
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v, mode %v; want a socket of mode 0600", sock, err, fi.Mode())
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	say := func(line string) string {
		t.Helper()
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		reply, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reply to %q: %v", line, err)
		}
		return strings.TrimSpace(reply)
	}
	if r := say("off"); r != "ok" {
		t.Errorf("off: %q", r)
	}
	if r := say("on"); r != "ok" {
		t.Errorf("on: %q", r)
	}
	if r := say("sideways"); !strings.HasPrefix(r, "error: ") || !strings.Contains(r, `"sideways"`) {
		t.Errorf("a bad command: %q, want an error naming it", r)
	}
	p.mu.Lock()
	p.fail = errors.New("attach refused")
	p.mu.Unlock()
	if r := say("on"); r != "error: attach refused" {
		t.Errorf("a failed toggle: %q", r)
	}
	if r := say("off"); r != "ok" {
		t.Errorf("off after errors: %q", r)
	}
	p.mu.Lock()
	got := append([]bool(nil), p.calls...)
	p.mu.Unlock()
	if want := []bool{false, true, false}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("SetCapture calls %v, want %v", got, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sensor.Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sensor.Run did not return within 30 s of cancel, with a control connection open")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after the sensor ended: %v, want it removed", err)
	}
}

// TestCaptureControlNeedsToggle: a probe that cannot detach its capture
// fails the knob at start, with a reason, instead of ignoring it.
func TestCaptureControlNeedsToggle(t *testing.T) {
	p := newFakeProbe(0, [event.NumCategories]uint64{}, map[string][]event.Event{"shared": nil}, "shared")
	cfg := baseConfig(t, &recPub{})
	cfg.CaptureControl = filepath.Join(t.TempDir(), "ctl.sock")
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return p, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := sensor.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot detach and attach") {
		t.Fatalf("sensor.Run with a probe without SetCapture: %v", err)
	}
}
