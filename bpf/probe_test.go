package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// sysGetpid is getpid's syscall number, the syscall the shedding test floods.
func sysGetpid(t *testing.T) uint32 {
	t.Helper()
	nr, ok := syscalls.Number(syscalls.Native(), "getpid")
	if !ok {
		t.Fatalf("no getpid syscall on %s", syscalls.Native())
	}
	return nr
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF): loads and attaches BPF programs; run `go test` as root")
	}
	// BTF is a stated requirement (README "What it needs"): as root, a
	// kernel without it is a failure to report, not a reason to skip.
	if _, err := os.Stat(BTFPath); err != nil {
		t.Fatalf("kernel BTF is required at %s (CONFIG_DEBUG_INFO_BTF=y): %v", BTFPath, err)
	}
}

func load(t *testing.T, cfg Config) *Probe {
	t.Helper()
	p, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// rec is a decoded record kept by a test, with the ring it came from.
type rec struct {
	ring string
	event.Event
}

func keep(ring string, ev *event.Event) rec {
	r := rec{ring: ring, Event: *ev}
	r.Exe = append([]byte(nil), ev.Exe...)
	r.Args = append([]byte(nil), ev.Args...)
	return r
}

// collector reads every ring of a probe concurrently, as the sensor does.
type collector struct {
	p    *Probe
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	recs []rec
	errs []error
}

func collect(p *Probe) *collector {
	c := &collector{p: p, stop: make(chan struct{})}
	for _, r := range p.Rings() {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			var ev event.Event
			for {
				// Checked on every read, not only when one times out: a
				// probe that does not exclude this process records the
				// reader's own syscalls, so the ring may never run dry.
				select {
				case <-c.stop:
					return
				default:
				}
				err := r.Read(&ev, time.Now().Add(20*time.Millisecond))
				switch {
				case err == nil:
					c.mu.Lock()
					c.recs = append(c.recs, keep(r.Name(), &ev))
					c.mu.Unlock()
				case errors.Is(err, os.ErrDeadlineExceeded):
				default:
					c.mu.Lock()
					c.errs = append(c.errs, err)
					c.mu.Unlock()
					if errors.Is(err, os.ErrClosed) {
						return
					}
				}
			}
		}()
	}
	return c
}

// finish stops the readers, detaches the probe, drains every ring
// completely and returns all records and the final counters.
func (c *collector) finish(t *testing.T) ([]rec, event.Counters) {
	t.Helper()
	close(c.stop)
	c.wg.Wait()
	recs := append(c.recs, drain(t, c.p)...)
	for _, err := range c.errs {
		t.Errorf("read: %v", err)
	}
	cnt := finalCounters(t, c.p)
	return recs, cnt
}

// drain detaches the probe and reads every ring completely: Flush, then
// Read (blocking) until ErrFlushed.
func drain(t *testing.T, p *Probe) []rec {
	t.Helper()
	if err := p.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	var recs []rec
	var ev event.Event
	for _, r := range p.Rings() {
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			err := r.Read(&ev, time.Time{})
			if errors.Is(err, ErrFlushed) {
				break
			}
			if err != nil {
				t.Fatalf("drain %s: %v", r.Name(), err)
			}
			recs = append(recs, keep(r.Name(), &ev))
		}
		if n := r.Pending(); n != 0 {
			t.Errorf("ring %s: %d bytes pending after drain", r.Name(), n)
		}
	}
	return recs
}

// finalCounters reads the counters after a drain, fills Delivered from the
// rings and checks attempted == delivered + dropped per category.
func finalCounters(t *testing.T, p *Probe) event.Counters {
	t.Helper()
	cnt, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rings() {
		if r.Malformed() != 0 {
			t.Errorf("ring %s: %d malformed records", r.Name(), r.Malformed())
		}
		d := r.Delivered()
		for c := range d {
			cnt.Delivered[c] += d[c]
		}
	}
	for c := range event.NumCategories {
		if cnt.Attempted[c] != cnt.Delivered[c]+cnt.Dropped[c] {
			t.Errorf("%s: attempted %d != delivered %d + dropped %d",
				event.Category(c), cnt.Attempted[c], cnt.Delivered[c], cnt.Dropped[c])
		}
	}
	t.Logf("counters: attempted %v delivered %v dropped %v shed %v",
		cnt.Attempted, cnt.Delivered, cnt.Dropped, cnt.Shed)
	return cnt
}

// trueExe is /bin/true's file, symlinks resolved: the exe path a record
// carries (mm->exe_file), as /proc/<pid>/exe shows it.
var trueExe = func() string {
	p, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		return "/bin/true"
	}
	return p
}()

func runTrue(t *testing.T, n int) []uint32 {
	t.Helper()
	pids := make([]uint32, 0, n)
	for range n {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatalf("/bin/true: %v", err)
		}
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	return pids
}

type lifecycle struct {
	fork, exec, exit *rec
	syscalls         int
}

func byPid(recs []rec, pids []uint32) map[uint32]*lifecycle {
	m := map[uint32]*lifecycle{}
	for _, pid := range pids {
		m[pid] = &lifecycle{}
	}
	for i := range recs {
		r := &recs[i]
		l := m[r.Pid]
		if l == nil {
			continue
		}
		switch r.Type {
		case event.TypeFork:
			l.fork = r
		case event.TypeExec:
			l.exec = r
		case event.TypeExit:
			l.exit = r
		case event.TypeSyscall:
			l.syscalls++
		}
	}
	return m
}

func checkChild(t *testing.T, pid uint32, l *lifecycle, wantRing string) {
	t.Helper()
	me := uint32(os.Getpid())
	if l.fork == nil || l.exec == nil || l.exit == nil {
		t.Errorf("child %d: fork %v exec %v exit %v: lifecycle records missing", pid, l.fork != nil, l.exec != nil, l.exit != nil)
		return
	}
	for _, r := range []*rec{l.fork, l.exec, l.exit} {
		if r.Tid != pid || r.StartNs == 0 || r.StartNs != l.fork.StartNs || r.PPid != me || r.UID != 0 {
			t.Errorf("child %d %s: header %+v ppid %d uid %d", pid, r.Type, r.Header, r.PPid, r.UID)
		}
		if wantRing != "" && r.ring != wantRing {
			t.Errorf("child %d %s: read from ring %q, want %q", pid, r.Type, r.ring, wantRing)
		}
	}
	if l.fork.Flags&event.FlagThread != 0 {
		t.Errorf("child %d: fork flagged as thread", pid)
	}
	if self, err := procStartNs(os.Getpid()); err != nil || l.fork.ForkerPid != me || !event.SameStart(l.fork.ForkerStartNs, self) {
		t.Errorf("child %d: forker %d started %d, want %d started %d (%v)", pid, l.fork.ForkerPid, l.fork.ForkerStartNs, me, self, err)
	}
	if got := l.exec.CommString(); got != "true" {
		t.Errorf("child %d: exec comm %q, want true", pid, got)
	}
	if got := l.exit.CommString(); got != "true" {
		t.Errorf("child %d: exit comm %q, want true", pid, got)
	}
	if string(l.exec.Exe) != trueExe || string(l.exec.Args) != "/bin/true" || l.exec.Flags&event.FlagTruncated != 0 {
		t.Errorf("child %d: exec exe %q args %q flags %#x", pid, l.exec.Exe, l.exec.Args, l.exec.Flags)
	}
	if l.exec.ExecID != l.fork.ExecID+1 || l.exit.ExecID != l.exec.ExecID {
		t.Errorf("child %d: exec ids fork %d exec %d exit %d", pid, l.fork.ExecID, l.exec.ExecID, l.exit.ExecID)
	}
	if l.exit.Flags&event.FlagGroupDead == 0 || l.exit.ExitCode != 0 {
		t.Errorf("child %d: exit flags %#x code %d", pid, l.exit.Flags, l.exit.ExitCode)
	}
	if !(l.fork.TsNs <= l.exec.TsNs && l.exec.TsNs <= l.exit.TsNs) {
		t.Errorf("child %d: timestamps out of order", pid)
	}
	if l.syscalls == 0 {
		t.Errorf("child %d: no syscall records", pid)
	}
}

func TestLifecycleShared(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 64 << 10, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if rs := p.Rings(); len(rs) != 1 || rs[0].Name() != "shared" || rs[0].Size() != 64<<10 ||
		p.LifecycleRing() != nil || p.SyscallRing() != rs[0] {
		t.Fatalf("rings: %v", rs)
	}
	c := collect(p)
	pids := runTrue(t, 5)
	time.Sleep(100 * time.Millisecond)
	recs, cnt := c.finish(t)

	me := uint32(os.Getpid())
	nsys := 0
	for _, r := range recs {
		if r.Pid == me {
			t.Fatalf("record of the excluded test process: %+v", r.Header)
		}
		if r.Type == event.TypeSyscall {
			nsys++
		}
	}
	if nsys == 0 {
		t.Error("no syscall records")
	}
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Logf("lifecycle drops under system load (%d): checking delivered children only", cnt.Dropped[event.CategoryLifecycle])
	}
	for pid, l := range byPid(recs, pids) {
		if cnt.Dropped[event.CategoryLifecycle] != 0 && (l.fork == nil || l.exec == nil || l.exit == nil) {
			continue
		}
		checkChild(t, pid, l, "shared")
	}
	t.Logf("%d records, %d syscalls", len(recs), nsys)
}

func TestSplitLayout(t *testing.T) {
	needRoot(t)
	// The syscall ring is roomy: the test is about which ring a record
	// goes to, and a busy node (builds beside the test) filled 256 KiB with
	// its own syscalls until the children's records were dropped.
	p := load(t, Config{RingSize: 8 << 20, Layout: ringspec.LayoutSplit, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	rs := p.Rings()
	if len(rs) != 2 || rs[0].Name() != "lifecycle" || rs[1].Name() != "syscall" || rs[0].Size() != ringspec.DefaultLifecycleRingSize ||
		p.LifecycleRing() != rs[0] || p.SyscallRing() != rs[1] {
		t.Fatalf("rings: %d", len(rs))
	}
	c := collect(p)
	pids := runTrue(t, 3)
	time.Sleep(100 * time.Millisecond)
	recs, cnt := c.finish(t)
	for _, r := range recs {
		want := "syscall"
		if r.Type.Category() == event.CategoryLifecycle {
			want = "lifecycle"
		}
		if r.ring != want {
			t.Fatalf("%s record read from ring %s", r.Type, r.ring)
		}
	}
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Errorf("lifecycle drops in split layout: %d", cnt.Dropped[event.CategoryLifecycle])
	}
	for pid, l := range byPid(recs, pids) {
		checkChild(t, pid, l, "lifecycle")
	}
}

func TestThreadsAndExcludedForks(t *testing.T) {
	needRoot(t)
	// Not excluded this time: the test's own new threads show as thread forks.
	p := load(t, Config{RingSize: 1 << 20, Layout: ringspec.LayoutSplit})
	c := collect(p)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the thread dies with the goroutine: forces new threads
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	recs, _ := c.finish(t)
	me := uint32(os.Getpid())
	threads, exits := 0, 0
	for _, r := range recs {
		if r.Pid != me {
			continue
		}
		if r.Type == event.TypeFork {
			if r.Flags&event.FlagThread == 0 || r.Tid == me {
				t.Errorf("fork in own tgid not a thread: %+v", r.Header)
			}
			threads++
		}
		if r.Type == event.TypeExit {
			if r.Flags&event.FlagGroupDead != 0 {
				t.Errorf("thread exit flagged group-dead: %+v", r.Header)
			}
			exits++
		}
	}
	if threads == 0 || exits == 0 {
		t.Errorf("thread forks %d, thread exits %d: want both > 0", threads, exits)
	}
}

// TestHints loses a child's exec record on purpose (the ring is full and
// nobody reads it), then drains the ring and lets the child run a syscall:
// its next syscall exit must write the exec record again, flagged
// FlagHints, with the exe, ahead of that syscall's own record; plain
// syscall records never carry hints; and the counters still balance.
func TestHints(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 64 << 10, Hints: true, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	// Fill the ring: nothing reads it yet.
	for i := 0; ; i++ {
		runTrue(t, 20)
		cnt, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if cnt.Dropped[event.CategoryLifecycle] > 0 {
			break
		}
		if i == 50 {
			t.Fatalf("ring never filled: %+v", cnt)
		}
	}
	// The child execs into a full ring and blocks reading its stdin.
	cmd := exec.Command("/bin/sh", "-c", "read line")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start returns once the child has exec'ed: its exec record was lost.
	child := uint32(cmd.Process.Pid)
	c := collect(p) // room again
	time.Sleep(200 * time.Millisecond)
	in.Write([]byte("go\n"))
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	recs, cnt := c.finish(t)
	var replay *rec
	for i := range recs {
		r := &recs[i]
		if r.Type == event.TypeSyscall && r.Flags&event.FlagHints != 0 {
			t.Fatalf("syscall record with FlagHints: %+v", r.Header)
		}
		if r.Pid != child {
			continue
		}
		switch {
		case r.Type == event.TypeExec && r.Flags&event.FlagHints == 0:
			t.Skipf("the child's exec record was not dropped (the ring had room): nothing to replay")
		case r.Type == event.TypeExec:
			replay = r
		case r.Type == event.TypeSyscall && replay == nil:
			t.Errorf("a syscall record of the child before its replayed exec: %+v", r.Header)
		}
	}
	if replay == nil {
		t.Fatal("no replayed exec record of the child")
	}
	if exe := string(replay.Exe); !strings.HasSuffix(exe, "sh") || replay.CommString() != "sh" || replay.PPid != uint32(os.Getpid()) {
		t.Errorf("replayed exec: exe %q comm %q ppid %d", exe, replay.CommString(), replay.PPid)
	}
	for c := range event.NumCategories {
		if cnt.Attempted[c] != cnt.Delivered[c]+cnt.Dropped[c] {
			t.Errorf("category %d: attempted %d != delivered %d + dropped %d", c, cnt.Attempted[c], cnt.Delivered[c], cnt.Dropped[c])
		}
	}
}

// storm spawns n short-lived processes as fast as possible without reading.
func storm(t *testing.T, n int) []uint32 { return runTrue(t, n) }

func TestDropsShared(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 8192, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	storm(t, 200)
	drain(t, p)
	cnt := finalCounters(t, p)
	if event.Sum(cnt.Dropped) == 0 {
		t.Error("no drops with an 8KiB ring under a 200-process storm")
	}
}

func TestDropsSplit(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 8192, Layout: ringspec.LayoutSplit, LifecycleRingSize: 32 << 20,
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	pids := storm(t, 200)
	recs := drain(t, p)
	cnt := finalCounters(t, p)
	if cnt.Dropped[event.CategorySyscall] == 0 {
		t.Error("no syscall drops with an 8KiB syscall ring under a storm")
	}
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Errorf("lifecycle dropped %d with a 32MiB lifecycle ring", cnt.Dropped[event.CategoryLifecycle])
	}
	complete := 0
	for _, l := range byPid(recs, pids) {
		if l.fork != nil && l.exec != nil && l.exit != nil {
			complete++
		}
	}
	if complete != len(pids) {
		t.Errorf("complete lifecycles for %d of %d children", complete, len(pids))
	}
}

// TestHelperProcess is not a test: it is the child that floods getpid for
// TestShedding when re-executed with RINGWISE_HELPER=getpid:N.
func TestHelperProcess(t *testing.T) {
	v, ok := strings.CutPrefix(os.Getenv("RINGWISE_HELPER"), "getpid:")
	if !ok {
		t.Skip("helper process for TestShedding")
	}
	n, _ := strconv.Atoi(v)
	for range n {
		syscall.Getpid()
	}
	os.Exit(0)
}

func runGetpidFlood(t *testing.T, n int) uint32 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RINGWISE_HELPER=getpid:%d", n))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	return uint32(cmd.Process.Pid)
}

func TestShedding(t *testing.T) {
	needRoot(t)
	getpid := sysGetpid(t)
	const n = 20000
	p := load(t, Config{RingSize: 4 << 20, ShedSyscalls: []uint32{getpid},
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if err := p.SetShedding(true); err != nil {
		t.Fatal(err)
	}
	c := collect(p)
	shedPid := runGetpidFlood(t, n)
	if err := p.SetShedding(false); err != nil {
		t.Fatal(err)
	}
	keptPid := runGetpidFlood(t, 1000)
	time.Sleep(100 * time.Millisecond)
	recs, cnt := c.finish(t)

	if cnt.Shed[event.CategorySyscall] < n {
		t.Errorf("shed %d syscalls, want >= %d", cnt.Shed[event.CategorySyscall], n)
	}
	if cnt.Shed[event.CategoryLifecycle] != 0 {
		t.Errorf("lifecycle shed %d", cnt.Shed[event.CategoryLifecycle])
	}
	var shedOther, shedGetpid, keptGetpid int
	for _, r := range recs {
		if r.Type != event.TypeSyscall {
			continue
		}
		switch {
		case r.Pid == shedPid && r.Syscall == getpid:
			shedGetpid++
		case r.Pid == shedPid:
			shedOther++
		case r.Pid == keptPid && r.Syscall == getpid:
			keptGetpid++
		}
	}
	if shedGetpid != 0 {
		t.Errorf("%d getpid records delivered while shedding", shedGetpid)
	}
	if shedOther == 0 {
		t.Error("no other syscall records of the shedding-phase child: it was not traced at all")
	}
	if keptGetpid == 0 && cnt.Dropped[event.CategorySyscall] == 0 {
		t.Error("no getpid records after shedding was turned off")
	}
	t.Logf("shedding child: %d other syscalls; after: %d getpid records", shedOther, keptGetpid)
}

func TestLoadErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		_, err := Load(Config{RingSize: 1 << 16})
		if err == nil || !strings.Contains(err.Error(), "CAP_BPF") {
			t.Errorf("Load as non-root: %v, want a privileges error", err)
		}
	}
	for _, cfg := range []Config{
		{RingSize: 0},
		{RingSize: 12345},
		{RingSize: 1 << 16, Layout: "ring-per-cpu"},
		{RingSize: 1 << 16, Layout: ringspec.LayoutSplit, LifecycleRingSize: 3000},
		{RingSize: 1 << 16, WakeupBytes: -1},
	} {
		if p, err := Load(cfg); err == nil {
			p.Close()
			t.Errorf("Load(%+v) succeeded", cfg)
		} else {
			t.Logf("Load(%+v): %v", cfg, err)
		}
	}
}

// TestRingReadNoAlloc checks that reading a live ring (ReadInto + decode)
// does not allocate, including the non-blocking past-deadline path.
func TestRingReadNoAlloc(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 4 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	runTrue(t, 5) // hundreds of records, none read yet
	r := p.Rings()[0]
	if r.Pending() == 0 {
		t.Fatal("Pending() == 0 after a workload")
	}
	var ev event.Event
	past := time.Now().Add(-time.Second)
	if err := r.Read(&ev, past); err != nil { // warm up Exe/Args capacity
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := r.Read(&ev, past); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Ring.Read allocates %.2f times per record, want 0", allocs)
	}
	// Empty ring + past deadline: returns ErrDeadlineExceeded instead of
	// waiting (how long it takes is a benchmark's business, not a test's).
	drain(t, p)
	if err := r.Read(&ev, past); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("empty ring, past deadline: %v", err)
	}
	// Flush on an empty ring: a blocking Read returns ErrFlushed once, then
	// waits again (here: until its deadline).
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.Read(&ev, time.Time{}); !errors.Is(err, ErrFlushed) {
		t.Errorf("empty ring after Flush: %v, want ErrFlushed", err)
	}
	if err := r.Read(&ev, past); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("second read after one Flush: %v, want ErrDeadlineExceeded", err)
	}
	finalCounters(t, p)
}

// copyTrue copies /bin/true to path (an exe path is the file's, never a
// symlink's: exe_file).
func copyTrue(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestExecTruncation(t *testing.T) {
	needRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A path longer than ExeMax: its tail is kept, flagged truncated.
	longExe := dir
	for i := 0; len(longExe) < ExeMax+100; i++ {
		longExe += "/" + strings.Repeat(string(rune('a'+i)), 200)
	}
	longExe += "/true"
	copyTrue(t, longExe)
	// A path of exactly ExeMax bytes fits.
	exact := dir
	for i := 0; ExeMax-len(exact) > 201; i++ {
		exact += "/" + strings.Repeat(string(rune('m'+i)), 200)
	}
	exact += "/"
	exact += strings.Repeat("w", ExeMax-len(exact))
	copyTrue(t, exact)
	if len(exact) != ExeMax {
		t.Fatalf("exact path of %d bytes", len(exact))
	}
	p := load(t, Config{RingSize: 1 << 20, Layout: ringspec.LayoutSplit, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	c := collect(p)
	args := make([]string, 400) // 5,600 bytes: over ArgsMax
	for i := range args {
		args[i] = fmt.Sprintf("argument-%04d", i)
	}
	run := func(path string, args ...string) uint32 {
		cmd := exec.Command(path, args...)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return uint32(cmd.Process.Pid)
	}
	pidLong := run(longExe)
	pidExact := run(exact)
	pidArgs := run("/bin/true", args...)
	time.Sleep(50 * time.Millisecond)
	recs, _ := c.finish(t)
	m := byPid(recs, []uint32{pidLong, pidExact, pidArgs})
	if l := m[pidLong]; l.exec == nil || l.exec.Flags&event.FlagTruncated == 0 ||
		len(l.exec.Exe) > ExeMax || len(l.exec.Exe) < ExeMax-256 || !strings.HasSuffix(longExe, string(l.exec.Exe)) || l.exec.Exe[0] != '/' {
		t.Errorf("long exe not cut to its tail: %+v", l.exec)
	}
	if l := m[pidExact]; l.exec == nil || l.exec.Flags&event.FlagTruncated != 0 || string(l.exec.Exe) != exact {
		t.Errorf("exe of exactly %d bytes: %+v", ExeMax, l.exec)
	}
	full := strings.Join(append([]string{"/bin/true"}, args...), "\x00")
	if l := m[pidArgs]; l.exec == nil || l.exec.Flags&event.FlagTruncated == 0 ||
		string(l.exec.Args) != full[:ArgsMax] {
		t.Errorf("long argv not truncated: %+v", l.exec)
	}
}

// procStartNs reads a process's start time (ns since boot) from /proc.
func procStartNs(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	return ticks * 10_000_000, err
}

// BenchmarkReadEmptyRing times Ring.Read on an empty ring with a deadline in
// the past: the non-blocking poll the sensor's drain relies on. (Timing was
// once a 50 ms assertion in TestRingReadNoAlloc; wall-clock time belongs here.)
func BenchmarkReadEmptyRing(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_BPF): loads BPF programs")
	}
	p, err := Load(Config{RingSize: 1 << 20})
	if err != nil {
		b.Fatalf("Load: %v", err)
	}
	defer p.Close()
	if err := p.Detach(); err != nil {
		b.Fatalf("Detach: %v", err)
	}
	r := p.Rings()[0]
	var ev event.Event
	past := time.Now().Add(-time.Second)
	for r.Read(&ev, past) == nil { // drain what arrived before Detach
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(&ev, past); !errors.Is(err, os.ErrDeadlineExceeded) {
			b.Fatalf("empty ring, past deadline: %v", err)
		}
	}
}

func TestCaptureSyscalls(t *testing.T) {
	needRoot(t)
	getpid := sysGetpid(t)
	p := load(t, Config{RingSize: 4 << 20, CaptureSyscalls: []uint32{getpid},
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	c := collect(p)
	const n = 2000
	child := runGetpidFlood(t, n)
	time.Sleep(100 * time.Millisecond)
	recs, cnt := c.finish(t)
	var got, other, lifecycle, syscallRecs int
	for _, r := range recs {
		if r.Type == event.TypeSyscall {
			syscallRecs++
		}
		switch {
		case r.Type != event.TypeSyscall:
			lifecycle++
		case r.Syscall == getpid && r.Pid == child:
			got++
		case r.Syscall != getpid:
			other++
		}
	}
	if got < n || other != 0 {
		t.Errorf("captured %d getpid records of the child (want >= %d) and %d records of other syscalls (want 0)", got, n, other)
	}
	if lifecycle == 0 {
		t.Error("no lifecycle records: they must be captured whatever the syscall set")
	}
	// Syscalls outside the set are not counted either: attempted is exactly
	// the getpid records delivered plus the dropped ones.
	if a, d := cnt.Attempted[event.CategorySyscall], cnt.Dropped[event.CategorySyscall]; a != uint64(syscallRecs)+d {
		t.Errorf("attempted %d, but %d syscall records delivered and %d dropped", a, syscallRecs, d)
	}
	if _, err := Load(Config{RingSize: 1 << 20, CaptureSyscalls: []uint32{CaptureMaxNr}}); err == nil {
		t.Error("capture syscall number past the map: no error")
	}
}

// TestExecArgsMax: the args bound is a load-time setting. At 256 bytes a
// longer argv is cut there (flagged), a shorter one is whole, and the record
// costs the ring only what it keeps.
func TestExecArgsMax(t *testing.T) {
	needRoot(t)
	p := load(t, Config{RingSize: 1 << 20, ArgsMax: 256, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	c := collect(p)
	long := make([]string, 40) // 40 × 14 bytes: over 256
	for i := range long {
		long[i] = fmt.Sprintf("argument-%04d", i)
	}
	run := func(args ...string) uint32 {
		cmd := exec.Command("/bin/true", args...)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return uint32(cmd.Process.Pid)
	}
	pidLong, pidShort := run(long...), run("short")
	time.Sleep(50 * time.Millisecond)
	recs, _ := c.finish(t)
	m := byPid(recs, []uint32{pidLong, pidShort})
	full := strings.Join(append([]string{"/bin/true"}, long...), "\x00")
	if l := m[pidLong]; l.exec == nil || l.exec.Flags&event.FlagTruncated == 0 || string(l.exec.Args) != full[:256] {
		t.Errorf("argv not cut at 256: %+v", l.exec)
	}
	if l := m[pidShort]; l.exec == nil || l.exec.Flags&event.FlagTruncated != 0 || string(l.exec.Args) != "/bin/true\x00short" {
		t.Errorf("short argv: %+v", l.exec)
	}
	for _, bad := range []int{-1, ArgsMax + 1} {
		if _, err := Load(Config{RingSize: 1 << 20, ArgsMax: bad}); err == nil || !strings.Contains(err.Error(), "args max") {
			t.Errorf("ArgsMax %d: %v", bad, err)
		}
	}
}
