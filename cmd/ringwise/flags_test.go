package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/syscalls"
)

// TestSensorCaptureSet checks what --syscalls gives the probe: the default
// capture set without the flag, every syscall (nil) for "all", exactly the
// names given otherwise; and that the default hook is sys_exit.
func TestSensorCaptureSet(t *testing.T) {
	parse := func(args ...string) ([]uint32, bpf.SyscallHook) {
		t.Helper()
		var sf sensorFlags
		fs := flag.NewFlagSet("sensor", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		sf.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		cfg, err := sf.config()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return cfg.Probe.CaptureSyscalls, cfg.Probe.SyscallHook
	}
	def, hook := parse()
	want, _, err := syscalls.ParseList(syscalls.Native(), syscalls.DefaultCapture())
	if err != nil || len(want) == 0 {
		t.Fatalf("default capture set: %v, %v", want, err)
	}
	if !slices.Equal(def, want) {
		t.Errorf("no --syscalls: capture %v; want the default set %v", def, want)
	}
	if hook != bpf.HookSysExit {
		t.Errorf("default --syscall-hook = %q; want %q", hook, bpf.HookSysExit)
	}
	if read, _ := syscalls.Number(syscalls.Native(), "read"); slices.Contains(def, read) {
		t.Errorf("default set captures read (%d)", read)
	}
	if all, _ := parse("--syscalls", "all"); all != nil {
		t.Errorf("--syscalls all: capture %v; want nil (every syscall)", all)
	}
	openat, _ := syscalls.Number(syscalls.Native(), "openat")
	if got, _ := parse("--syscalls", "openat"); !slices.Equal(got, []uint32{openat}) {
		t.Errorf("--syscalls openat: capture %v; want [%d]", got, openat)
	}
	var sf sensorFlags
	fs := flag.NewFlagSet("sensor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sf.register(fs)
	_ = fs.Parse([]string{"--syscalls", "all", "--syscall-hook", "fexit"})
	if _, err := sf.config(); err == nil || !strings.Contains(err.Error(), "needs a capture set") {
		t.Errorf("--syscalls all --syscall-hook fexit: err %v; want it refused", err)
	}
}
