package sensor_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// containerReport is what the sensor in its own pid namespace saw.
type containerReport struct {
	NsPid     int               `json:"ns_pid"`     // os.Getpid in the namespace
	GlobalPid uint32            `json:"global_pid"` // bpf.GlobalTGID
	OwnProcs  int               `json:"own_procs"`  // processes in its own /proc
	Snapshot  map[uint32]string `json:"snapshot"`   // pid → comm
	Events    map[uint32]int    `json:"events"`     // pid → events
	Comms     map[uint32]string `json:"comms"`      // pid → comm of lifecycle records
	Err       string            `json:"err,omitempty"`
}

// TestHelperContainerSensor is not a test: it is the sensor of
// TestSensorInPidNamespace, started as pid 1 of a new pid and mount
// namespace (RINGWISE_CONTAINER=<dir>): it mounts its own /proc, with the
// host's at <dir>/proc (HOST_ROOT=<dir>, as a container gets /host), and
// runs the sensor until the parent's workload is done.
func TestHelperContainerSensor(t *testing.T) {
	dir := os.Getenv("RINGWISE_CONTAINER")
	if dir == "" {
		t.Skip("helper process for TestSensorInPidNamespace")
	}
	rep := containerReport{NsPid: os.Getpid(), Snapshot: map[uint32]string{}, Events: map[uint32]int{}, Comms: map[uint32]string{}}
	fail := func(err error) {
		rep.Err = err.Error()
		b, _ := json.Marshal(&rep)
		_ = os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644)
		os.Exit(3)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail(err)
	}
	hostProc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(hostProc, 0o755); err != nil {
		fail(err)
	}
	if err := unix.Mount("/proc", hostProc, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		fail(err)
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fail(err)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			rep.OwnProcs++
		}
	}
	os.Setenv(procfs.HostRootEnv, dir)
	g, err := bpf.GlobalTGID(procfs.HostProc(os.Getenv))
	if err != nil {
		fail(err)
	}
	rep.GlobalPid = g

	pub := &recPub{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// The parent removes "go" when its workload is done.
		for {
			if _, err := os.Stat(filepath.Join(dir, "go")); err != nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err = sensor.Run(ctx, sensor.Config{
		Node: testNode, BootID: "boot", Publisher: pub, ExcludeSelf: true,
		Probe: bpf.Config{RingSize: 16 << 20},
		Ready: func() { _ = os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644) },
	})
	if err != nil {
		fail(err)
	}
	codec := event.NewCodec()
	for _, m := range pub.all() {
		switch m.Subject {
		case bus.SnapshotSubject(testNode):
			s, err := event.DecodeSnapshot(m.Data)
			if err != nil {
				fail(err)
			}
			for _, p := range s.Procs {
				rep.Snapshot[p.Pid] = p.Comm
			}
		case bus.RawSubject(testNode):
			var b event.Batch
			if err := codec.Decode(m.Data, &b); err != nil {
				fail(err)
			}
			for i := range b.Events {
				ev := &b.Events[i]
				rep.Events[ev.Pid]++
				if ev.Type != event.TypeSyscall {
					rep.Comms[ev.Pid] = ev.CommString()
				}
			}
		}
	}
	b, _ := json.Marshal(&rep)
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		os.Exit(4)
	}
	os.Exit(0)
}

// TestSensorInPidNamespace runs the sensor as a container without hostPID
// runs it: pid 1 of its own pid namespace, with its own /proc and the
// host's under HOST_ROOT. Nothing it records comes from itself (it is
// excluded by its global tgid, not by its namespace pid 1), the host's
// processes are in its snapshot with their names, and no host process is
// hidden (host pid 1, which the namespace pid would have excluded, is not).
func TestSensorInPidNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates pid and mount namespaces and loads BPF")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperContainerSensor$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RINGWISE_CONTAINER="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sensorPid := uint32(cmd.Process.Pid) // global: this test runs in the initial namespace
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			os.Remove(filepath.Join(dir, "go"))
			cmd.Wait()
			t.Fatalf("sensor not ready in 20s: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Host workload: processes of ours, named.
	var kids []uint32
	for range 5 {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, uint32(c.Process.Pid))
	}
	for range 100 {
		_, _ = os.Stat("/")
	}
	time.Sleep(100 * time.Millisecond)
	os.Remove(filepath.Join(dir, "go"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sensor: %v: %s", err, out.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("no report: %v: %s", err, out.String())
	}
	var rep containerReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" {
		t.Fatalf("sensor: %s", rep.Err)
	}
	t.Logf("sensor: pid %d in its namespace, global %d; %d processes in its own /proc, %d in the host's snapshot; events from %d processes",
		rep.NsPid, rep.GlobalPid, rep.OwnProcs, len(rep.Snapshot), len(rep.Events))
	if rep.NsPid != 1 || rep.GlobalPid != sensorPid {
		t.Errorf("namespace pid %d (want 1), global tgid %d (want %d)", rep.NsPid, rep.GlobalPid, sensorPid)
	}
	if n := rep.Events[sensorPid]; n != 0 {
		t.Errorf("%d events from the sensor itself (global pid %d)", n, sensorPid)
	}
	// Host processes named: this test's own process and host pid 1.
	me := uint32(os.Getpid())
	myComm, _ := os.ReadFile("/proc/self/comm")
	if got := rep.Snapshot[me]; got != strings.TrimSpace(string(myComm)) {
		t.Errorf("host process %d in the snapshot as %q, want %q", me, got, strings.TrimSpace(string(myComm)))
	}
	initComm, _ := os.ReadFile("/proc/1/comm")
	if got := rep.Snapshot[1]; got != strings.TrimSpace(string(initComm)) {
		t.Errorf("host pid 1 in the snapshot as %q, want %q", got, strings.TrimSpace(string(initComm)))
	}
	if len(rep.Snapshot) <= rep.OwnProcs {
		t.Errorf("snapshot of %d processes: the sensor read its own /proc (%d), not the host's", len(rep.Snapshot), rep.OwnProcs)
	}
	// No host process hidden: ours and our children were recorded.
	if rep.Events[me] == 0 {
		t.Errorf("no events from this host process %d", me)
	}
	for _, k := range kids {
		if rep.Events[k] == 0 || rep.Comms[k] != "true" {
			t.Errorf("host child %d: %d events, named %q", k, rep.Events[k], rep.Comms[k])
		}
	}
}
