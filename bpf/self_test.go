package bpf

import (
	"os"
	"testing"
)

func TestParseNSpid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"Name:\tx\nTgid:\t7\nNSpid:\t4242\t1\n", 4242, true}, // in a child pid namespace
		{"Tgid:\t7\nNSpid:\t7\n", 7, true},
		{"Tgid:\t9\n", 9, true}, // kernels without NSpid
		{"Name:\tx\n", 0, false},
		{"NSpid:\tx 1\n", 0, false},
	} {
		got, err := parseNSpid([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseNSpid(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestGlobalTGID: outside a pid namespace the kernel's id is os.Getpid; the
// BPF path and the /proc path agree. (In a pid namespace they differ from
// os.Getpid: the sensor's container test covers that.)
func TestGlobalTGID(t *testing.T) {
	needRoot(t)
	got, err := GlobalTGID("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if got != uint32(os.Getpid()) {
		t.Errorf("GlobalTGID = %d, os.Getpid = %d (this test runs in the initial pid namespace)", got, os.Getpid())
	}
	p := load(t, Config{RingSize: 1 << 20, ExcludeSelf: true})
	// The kernel path itself, not only the /proc fallback (6.10+ gives
	// syscall programs bpf_get_current_pid_tgid; this kernel is newer).
	if w, err := whoami(p.objs.Whoami); err != nil || w != uint32(os.Getpid()) {
		t.Errorf("rw_whoami = %d, %v; want %d", w, err, os.Getpid())
	}
	if p.SelfTGID() != uint32(os.Getpid()) {
		t.Errorf("SelfTGID = %d, want %d", p.SelfTGID(), os.Getpid())
	}
	c := collect(p)
	for range 200 {
		_ = os.Getpid()
		_, _ = os.Stat("/")
	}
	recs, _ := c.finish(t)
	for _, r := range recs {
		if r.Pid == uint32(os.Getpid()) {
			t.Fatalf("record of the excluded process itself: %+v", r.Header)
		}
	}
}
