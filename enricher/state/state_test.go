package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

type step struct {
	drops uint64
	evs   []event.Event
	want  []want
}

type scenario struct {
	name  string
	cfg   Config
	seed  []event.ProcInfo
	steps []step
	after func(t *testing.T, e *Engine)
}

const (
	bashStart = 500               // before the sensor attached
	t1        = 2_000_000_000     // after
	t2        = 3_000_000_000     // after
	t3        = 4_000_000_000     // after
	tickStart = 5_000_000_000     // /proc granularity
	tickEvent = tickStart + 3_000 // the kernel's exact value
)

var (
	bashExec = execEv(100, 1, bashStart, 1, "bash", "/bin/bash", "bash", "-l")
	bashWant = known("bash", "/bin/bash", "bash -l", 1)
)

func scenarios() []scenario {
	setuidNr, _ := syscalls.Number(syscalls.Native(), "setuid")
	return []scenario{
		{
			name: "normal fork exec syscalls exit",
			steps: []step{{
				evs: []event.Event{
					bashExec,
					forkEv(200, 100, t1, 1, "bash"),
					sysEv(200, t1, 1),
					execEv(200, 100, t1, 2, "curl", "/usr/bin/curl", "curl", "-s", "http://x"),
					sysEv(200, t1, 2),
					exitEv(200, 200, t1, 2, true),
					sysEv(100, bashStart, 1),
				},
				want: []want{
					bashWant,
					known("bash", "/bin/bash", "bash -l", 100),
					known("bash", "/bin/bash", "bash -l", 100),
					known("curl", "/usr/bin/curl", "curl -s http://x", 100),
					known("curl", "/usr/bin/curl", "curl -s http://x", 100),
					known("curl", "/usr/bin/curl", "curl -s http://x", 100),
					bashWant,
				},
			}, {
				// A late event of the exited process is still enriched.
				evs:  []event.Event{sysEv(200, t1, 2)},
				want: []want{known("curl", "/usr/bin/curl", "curl -s http://x", 100)},
			}},
			after: func(t *testing.T, e *Engine) {
				s := e.Stats()
				if s.Procs != 2 || s.Live != 1 || s.Missing != 0 || s.Forks != 1 || s.Execs != 2 || s.Exits != 1 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "lost fork, exec seen",
			steps: []step{{
				drops: 5,
				evs:   []event.Event{execEv(300, 100, t1, 3, "ls", "/bin/ls", "ls", "-la"), sysEv(300, t1, 3)},
				want:  []want{known("ls", "/bin/ls", "ls -la", 100), known("ls", "/bin/ls", "ls -la", 100)},
			}},
		},
		{
			name: "lost fork and exec with lifecycle drops",
			steps: []step{{
				drops: 7,
				evs:   []event.Event{sysEv(400, t1, 2), sysEv(400, t1, 2), exitEv(400, 400, t1, 2, true)},
				want:  []want{missingAll(event.ReasonForkDropped), missingAll(event.ReasonForkDropped), missingAll(event.ReasonForkDropped)},
			}},
			after: func(t *testing.T, e *Engine) {
				s := e.Stats()
				if s.Missing != 3 || s.Reason(event.ReasonForkDropped) != 3 || s.NegativeHits != 2 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "no state without drops",
			steps: []step{{
				evs:  []event.Event{sysEv(401, 50, 1)},
				want: []want{missingAll(event.ReasonNoState)},
			}},
		},
		{
			name: "lost exec never shows the parent's name",
			steps: []step{{
				drops: 1,
				evs: []event.Event{
					bashExec,
					forkEv(500, 100, t1, 1, "bash"),
					sysEv(500, t1, 2), // exec 2 was lost
					sysEv(500, t1, 2),
					sysTid(501, 500, t1, 1), // a thread not yet affected: ExecID older, known
					// the process forks: its child's inherited path is unknown too
					forkEv(502, 500, t2, 2, "python3"),
				},
				want: []want{
					bashWant,
					known("bash", "/bin/bash", "bash -l", 100),
					{ppid: 100, uid: 1000, missing: fieldsExec, reason: event.ReasonExecDropped, source: event.SourceState},
					{ppid: 100, uid: 1000, missing: fieldsExec, reason: event.ReasonExecDropped, source: event.SourceState},
					known("bash", "/bin/bash", "bash -l", 100),
					{name: "python3", ppid: 500, uid: 1000, missing: fieldsInherit, reason: event.ReasonExecDropped, source: event.SourceState},
				},
			}},
			after: func(t *testing.T, e *Engine) {
				for _, p := range e.Snapshot() {
					if p.Pid == 500 || p.Pid == 502 {
						t.Errorf("snapshot hands over stale or partial process %+v", p)
					}
				}
			},
		},
		{
			name: "lost exit and pid reuse",
			steps: []step{{
				evs: []event.Event{
					execEv(600, 100, t1, 2, "nginx", "/usr/sbin/nginx", "nginx"),
					sysEv(600, t1, 2),
				},
				want: []want{known("nginx", "/usr/sbin/nginx", "nginx", 100), known("nginx", "/usr/sbin/nginx", "nginx", 100)},
			}, {
				// nginx's exit and the new process's fork were lost.
				drops: 2,
				evs:   []event.Event{sysEv(600, t2, 2), sysEv(600, t2, 2)},
				want:  []want{missingAll(event.ReasonPidReused), missingAll(event.ReasonPidReused)},
			}},
			after: func(t *testing.T, e *Engine) {
				s := e.Stats()
				if s.PidReuseDetected != 1 || s.Procs != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "fork replaces a stale entry",
			steps: []step{{
				evs: []event.Event{
					bashExec,
					execEv(601, 100, t1, 2, "nginx", "/usr/sbin/nginx", "nginx"),
					forkEv(601, 100, t2, 1, "bash"), // nginx's exit was lost
					sysEv(601, t2, 1),
				},
				want: []want{
					bashWant,
					known("nginx", "/usr/sbin/nginx", "nginx", 100),
					known("bash", "/bin/bash", "bash -l", 100),
					known("bash", "/bin/bash", "bash -l", 100),
				},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.PidReuseDetected != 1 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "pid reuse after a seen exit is not a lost exit",
			steps: []step{{
				evs: []event.Event{
					execEv(602, 100, t1, 2, "a", "/a", "a"),
					exitEv(602, 602, t1, 2, true),
					sysEv(602, t2, 1),
				},
				want: []want{known("a", "/a", "a", 100), known("a", "/a", "a", 100), missingAll(event.ReasonNoState)},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.PidReuseDetected != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "eviction",
			cfg:  Config{MaxProcs: 2},
			steps: []step{{
				evs: []event.Event{
					execEv(701, 100, t1, 2, "a", "/a", "a"),
					execEv(702, 100, t1, 2, "b", "/b", "b"),
					sysEv(701, t1, 2), // 702 is now least recently used
					execEv(703, 100, t1, 2, "c", "/c", "c"),
					sysEv(702, t1, 2),
					sysEv(701, t1, 2),
				},
				want: []want{
					known("a", "/a", "a", 100),
					known("b", "/b", "b", 100),
					known("a", "/a", "a", 100),
					known("c", "/c", "c", 100),
					missingAll(event.ReasonEvicted),
					known("a", "/a", "a", 100),
				},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.Evictions != 1 || s.EvictionsLive != 1 || s.Procs != 2 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "exited entries are evicted first",
			cfg:  Config{MaxProcs: 2},
			steps: []step{{
				evs: []event.Event{
					execEv(711, 100, t1, 2, "a", "/a", "a"),
					execEv(712, 100, t1, 2, "b", "/b", "b"),
					exitEv(712, 712, t1, 2, true),
					sysEv(711, t1, 2),
					execEv(713, 100, t1, 2, "c", "/c", "c"),
					sysEv(711, t1, 2),
					sysEv(712, t1, 2), // late event of the evicted, exited process
				},
				want: []want{
					known("a", "/a", "a", 100),
					known("b", "/b", "b", 100),
					known("b", "/b", "b", 100),
					known("a", "/a", "a", 100),
					known("c", "/c", "c", 100),
					known("a", "/a", "a", 100),
					missingAll(event.ReasonEvicted),
				},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.Evictions != 1 || s.EvictionsLive != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "threads",
			steps: []step{{
				evs: []event.Event{
					execEv(800, 100, t1, 2, "java", "/usr/bin/java", "java", "-jar", "app.jar"),
					threadForkEv(801, 800, t1, 2),
					sysTid(801, 800, t1, 2),
					exitEv(801, 800, t1, 2, false),
					sysEv(800, t1, 2),
				},
				want: []want{
					known("java", "/usr/bin/java", "java -jar app.jar", 100),
					known("java", "/usr/bin/java", "java -jar app.jar", 100),
					known("java", "/usr/bin/java", "java -jar app.jar", 100),
					known("java", "/usr/bin/java", "java -jar app.jar", 100),
					known("java", "/usr/bin/java", "java -jar app.jar", 100),
				},
			}},
			after: func(t *testing.T, e *Engine) {
				s := e.Stats()
				if s.Procs != 1 || s.Live != 1 || s.ThreadForks != 1 || s.ThreadExits != 1 || s.Forks != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "thread fork of an unknown process creates nothing",
			steps: []step{{
				evs:  []event.Event{threadForkEv(811, 810, 50, 1), sysTid(811, 810, 50, 1)},
				want: []want{missingAll(event.ReasonNoState), missingAll(event.ReasonNoState)},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.Procs != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "snapshot seed adopts the first exec id",
			seed: []event.ProcInfo{
				{Pid: 900, PPid: 1, UID: 0, GID: 0, StartNs: tickStart, Comm: "sshd", ExePath: "/usr/sbin/sshd", Cmdline: "sshd -D"},
			},
			steps: []step{{
				drops: 3,
				evs: []event.Event{
					sysEv(900, tickEvent, 7),
					sysEv(900, tickEvent, 6), // made before exec 7: the image is 7's
					sysEv(900, tickEvent, 8), // exec 8 lost
					sysEv(900, tickStart+30_000_000, 7),
				},
				want: []want{
					{name: "sshd", exe: "/usr/sbin/sshd", cmd: "sshd -D", ppid: 1, source: event.SourceSnapshot},
					{ppid: 1, missing: fieldsExec, reason: event.ReasonOutOfOrder, source: event.SourceSnapshot},
					{ppid: 1, missing: fieldsExec, reason: event.ReasonExecDropped, source: event.SourceSnapshot},
					// another process: /proc's tolerance no longer applies once the exact start is known
					missingAll(event.ReasonPidReused),
				},
			}},
		},
		{
			name: "a record from before an applied exec is not given the new image",
			steps: []step{{
				evs: []event.Event{
					forkEv(1100, 1, t1, 1, "sh"),
					execEv(1100, 1, t1, 2, "ls", "/usr/bin/ls", "ls"),
					sysEv(1100, t1, 1), // read late: made by "sh" before the exec
				},
				want: []want{
					{name: "sh", ppid: 1, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState},
					known("ls", "/usr/bin/ls", "ls", 1),
					{ppid: 1, uid: 1000, missing: fieldsExec, reason: event.ReasonOutOfOrder, source: event.SourceState},
				},
			}},
		},
		{
			name: "a late record of an older process keeps the newer entry",
			steps: []step{{
				evs: []event.Event{
					execEv(1200, 1, t2, 2, "new", "/bin/new", "new"),
					sysEv(1200, t1, 2), // the pid's previous holder, read late
					sysEv(1200, t2, 2),
				},
				want: []want{
					known("new", "/bin/new", "new", 1),
					missingAll(event.ReasonOutOfOrder),
					known("new", "/bin/new", "new", 1),
				},
			}},
		},
		{
			name: "a worker that drops root shows its new uid",
			steps: []step{{
				evs: []event.Event{
					execEv(1300, 1, t1, 2, "nginx", "/usr/sbin/nginx", "nginx"),
					func() event.Event { e := sysEv(1300, t1, 2); e.Syscall, e.SysArgs[0] = setuidNr, 33; return e }(), // setuid(33)
					sysEv(1300, t1, 2),
					func() event.Event {
						e := sysEv(1300, t1, 2)
						e.Syscall, e.Ret, e.SysArgs[0] = setuidNr, -1, 0
						return e
					}(), // failed setuid(0)
					sysEv(1300, t1, 2),
				},
				want: []want{
					known("nginx", "/usr/sbin/nginx", "nginx", 1),
					{name: "nginx", exe: "/usr/sbin/nginx", cmd: "nginx", ppid: 1, uid: 33, source: event.SourceState},
					{name: "nginx", exe: "/usr/sbin/nginx", cmd: "nginx", ppid: 1, uid: 33, source: event.SourceState},
					{name: "nginx", exe: "/usr/sbin/nginx", cmd: "nginx", ppid: 1, uid: 33, source: event.SourceState},
					{name: "nginx", exe: "/usr/sbin/nginx", cmd: "nginx", ppid: 1, uid: 33, source: event.SourceState},
				},
			}},
		},
		{
			name: "a fork never takes the image of another holder of the parent's pid",
			steps: []step{{
				drops: 3, // python3's exit, the new holder's fork and exec were lost
				evs: []event.Event{
					execEv(1400, 1, t1, 2, "python3", "/usr/bin/python3", "python3", "job.py"),
					func() event.Event { // forked by pid 1400, but one that started at t2
						e := forkEv(1401, 1400, t2+1, 3, "bash")
						e.ForkerPid, e.ForkerStartNs = 1400, t2
						return e
					}(),
				},
				want: []want{
					known("python3", "/usr/bin/python3", "python3 job.py", 1),
					{name: "bash", ppid: 1400, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState},
				},
			}},
		},
		{
			name: "fork of an unknown parent",
			steps: []step{{
				evs: []event.Event{
					forkEv(1000, 999, t1, 1, "sh"),
					sysEv(1000, t1, 1),
					execEv(1000, 999, t1, 2, "true", "/bin/true", "true"),
				},
				want: []want{
					{name: "sh", ppid: 999, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState},
					{name: "sh", ppid: 999, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState},
					known("true", "/bin/true", "true", 999),
				},
			}},
		},
		{
			name: "disorder: syscall read before its exec and fork",
			steps: []step{{
				drops: 4,
				evs: []event.Event{
					bashExec,
					sysEv(1100, t1, 1),
					forkEv(1100, 100, t1, 1, "bash"),
					sysEv(1100, t1, 2),
					execEv(1100, 100, t1, 2, "make", "/usr/bin/make", "make", "-j8"),
					sysEv(1100, t1, 2),
				},
				want: []want{
					bashWant,
					known("bash", "/bin/bash", "bash -l", 100),
					known("bash", "/bin/bash", "bash -l", 100),
					known("make", "/usr/bin/make", "make -j8", 100),
					known("make", "/usr/bin/make", "make -j8", 100),
					known("make", "/usr/bin/make", "make -j8", 100),
				},
			}},
			after: func(t *testing.T, e *Engine) {
				if s := e.Stats(); s.Reordered != 2 || s.Lookups != 0 {
					t.Errorf("stats: %+v", s)
				}
			},
		},
		{
			name: "hints fill name ppid uid",
			steps: []step{{
				drops: 1,
				evs: func() []event.Event {
					e := sysEv(1200, t1, 1)
					e.Flags |= event.FlagHints
					e.SetComm("stress")
					e.PPid, e.UID, e.GID = 42, 33, 33
					return []event.Event{e, e}
				}(),
				want: []want{
					{name: "stress", ppid: 42, uid: 33, missing: fieldsInherit, reason: event.ReasonForkDropped, source: event.SourceHints},
					{name: "stress", ppid: 42, uid: 33, missing: fieldsInherit, reason: event.ReasonForkDropped, source: event.SourceHints},
				},
			}},
		},
		{
			// bpf Config.Hints: the ring dropped the exec, and the process's
			// next syscall exit wrote it again (FlagHints) ahead of its own
			// record: the entry is rebuilt, later events are whole.
			name: "replayed exec restores the entry",
			steps: []step{{
				drops: 1,
				evs: func() []event.Event {
					r := execEv(1400, 100, t1, 2, "curl", "/usr/bin/curl", "curl", "-s")
					r.Flags |= event.FlagHints
					return []event.Event{
						bashExec,
						forkEv(1400, 100, t1, 1, "bash"),
						r,
						sysEv(1400, t1, 2),
					}
				}(),
				want: []want{
					bashWant,
					known("bash", "/bin/bash", "bash -l", 100),
					{name: "curl", exe: "/usr/bin/curl", cmd: "curl -s", ppid: 100, uid: 1000, source: event.SourceHints},
					{name: "curl", exe: "/usr/bin/curl", cmd: "curl -s", ppid: 100, uid: 1000, source: event.SourceHints},
				},
			}},
		},
		{
			// A replayed fork: the child inherits its forker's image.
			name: "replayed fork inherits the parent's image",
			steps: []step{{
				drops: 1,
				evs: func() []event.Event {
					r := forkEv(1500, 100, t1, 1, "bash")
					r.Flags |= event.FlagHints
					r.ForkerPid, r.ForkerStartNs = 100, bashStart
					return []event.Event{bashExec, r, sysEv(1500, t1, 1)}
				}(),
				want: []want{
					bashWant,
					{name: "bash", exe: "/bin/bash", cmd: "bash -l", ppid: 100, uid: 1000, source: event.SourceHints},
					{name: "bash", exe: "/bin/bash", cmd: "bash -l", ppid: 100, uid: 1000, source: event.SourceHints},
				},
			}},
		},
		{
			name: "cmdline without trailing NUL and empty args",
			steps: []step{{
				evs: func() []event.Event {
					a := execEv(1300, 100, t1, 2, "x", "/x")
					a.Args = []byte("x\x00--flag")
					b := execEv(1301, 100, t1, 2, "y", "/y")
					b.Args = nil
					return []event.Event{a, b}
				}(),
				want: []want{known("x", "/x", "x --flag", 100), known("y", "/y", "", 100)},
			}},
		},
	}
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			e := NewEngine(sc.cfg)
			if sc.seed != nil {
				e.Seed(sc.seed)
			}
			var out []event.Enriched
			for si, st := range sc.steps {
				if len(st.want) != len(st.evs) {
					t.Fatalf("step %d: %d events, %d wants", si, len(st.evs), len(st.want))
				}
				out = e.Enrich(context.Background(), batch(st.drops, st.evs...), out[:0])
				if len(out) != len(st.evs) {
					t.Fatalf("step %d: %d enriched for %d events", si, len(out), len(st.evs))
				}
				for i := range out {
					check(t, fmt.Sprintf("step %d event %d", si, i), out[i], st.want[i])
					if out[i].Event.TsNs != st.evs[i].TsNs || out[i].Tid != st.evs[i].Tid {
						t.Errorf("step %d event %d: raw event not carried", si, i)
					}
				}
			}
			if sc.after != nil {
				sc.after(t, e)
			}
		})
	}
}

// fakeLookup serves procs and counts calls.
type fakeLookup struct {
	procs map[uint32]event.ProcInfo
	err   error
	block bool
	calls int
}

func (f *fakeLookup) Lookup(ctx context.Context, pid uint32) (event.ProcInfo, error) {
	f.calls++
	if f.block {
		<-ctx.Done()
		return event.ProcInfo{}, ctx.Err()
	}
	if f.err != nil {
		return event.ProcInfo{}, f.err
	}
	p, ok := f.procs[pid]
	if !ok {
		return event.ProcInfo{}, fmt.Errorf("pid %d: %w", pid, ErrNotFound)
	}
	return p, nil
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	sshd := event.ProcInfo{Pid: 900, PPid: 1, UID: 0, StartNs: tickStart, Comm: "sshd", ExePath: "/usr/sbin/sshd", Cmdline: "sshd -D"}
	lookedUp := want{name: "sshd", exe: "/usr/sbin/sshd", cmd: "sshd -D", ppid: 1, source: event.SourceLookup}

	t.Run("success", func(t *testing.T) {
		f := &fakeLookup{procs: map[uint32]event.ProcInfo{900: sshd}}
		e := NewEngine(Config{Lookup: f})
		out := e.Enrich(ctx, batch(0, sysEv(900, tickEvent, 4), sysEv(900, tickEvent, 4)), nil)
		check(t, "first", out[0], lookedUp)
		check(t, "second", out[1], lookedUp)
		if s := e.Stats(); f.calls != 1 || s.Lookups != 1 || s.LookupHits != 1 || s.Procs != 1 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
		// The exec id of the event was adopted: a newer one is a lost exec.
		out = e.Enrich(ctx, batch(0, sysEv(900, tickEvent, 5)), out[:0])
		check(t, "after exec", out[0], want{ppid: 1, missing: fieldsExec, reason: event.ReasonExecDropped, source: event.SourceLookup})
	})

	t.Run("not found, negative cache", func(t *testing.T) {
		f := &fakeLookup{}
		e := NewEngine(Config{Lookup: f})
		out := e.Enrich(ctx, batch(0, sysEv(901, 50, 1), sysEv(901, 50, 1)), nil)
		out = e.Enrich(ctx, batch(0, sysEv(901, 50, 1)), out)
		for i := range out {
			check(t, fmt.Sprint(i), out[i], missingAll(event.ReasonProcGone))
		}
		if s := e.Stats(); f.calls != 1 || s.LookupMisses != 1 || s.NegativeHits != 2 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
	})

	t.Run("another process under the pid", func(t *testing.T) {
		f := &fakeLookup{procs: map[uint32]event.ProcInfo{900: sshd}}
		e := NewEngine(Config{Lookup: f})
		out := e.Enrich(ctx, batch(0, sysEv(900, tickStart+uint64(time.Second), 1)), nil)
		check(t, "0", out[0], missingAll(event.ReasonProcGone))
	})

	t.Run("fork dropped outranks the lookup's answer", func(t *testing.T) {
		f := &fakeLookup{}
		e := NewEngine(Config{Lookup: f})
		out := e.Enrich(ctx, batch(9, sysEv(902, t1, 1)), nil)
		check(t, "0", out[0], missingAll(event.ReasonForkDropped))
		if f.calls != 1 {
			t.Errorf("calls %d", f.calls)
		}
	})

	t.Run("error", func(t *testing.T) {
		f := &fakeLookup{err: errors.New("nats: no responders")}
		e := NewEngine(Config{Lookup: f})
		out := e.Enrich(ctx, batch(0, sysEv(903, 50, 1), sysEv(903, 50, 1)), nil)
		check(t, "0", out[0], missingAll(event.ReasonLookupFailed))
		check(t, "1", out[1], missingAll(event.ReasonLookupFailed))
		if s := e.Stats(); f.calls != 1 || s.LookupErrors != 1 || s.NegativeHits != 1 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		f := &fakeLookup{block: true}
		e := NewEngine(Config{Lookup: f, LookupTimeout: 20 * time.Millisecond})
		start := time.Now()
		out := e.Enrich(ctx, batch(0, sysEv(904, 50, 1), sysEv(905, 50, 1), sysEv(906, 50, 1)), nil)
		if d := time.Since(start); d < 20*time.Millisecond || d > 2*time.Second {
			t.Errorf("lookups took %v, want about 20ms (one timeout, then none)", d)
		}
		for i := range out {
			check(t, fmt.Sprint(i), out[i], missingAll(event.ReasonLookupFailed))
		}
		if s := e.Stats(); f.calls != 1 || s.LookupTimeouts != 1 || s.LookupsSkipped != 2 || s.NegativeEntries != 1 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
		// The next batch tries the skipped ones again, not the timed-out one.
		f.block = false
		e.Enrich(ctx, batch(0, sysEv(904, 50, 1), sysEv(905, 50, 1)), out[:0])
		if f.calls != 2 {
			t.Errorf("calls %d, want 2", f.calls)
		}
	})

	// A child whose forker is not in the table (a take-over from a fresh
	// snapshot that has not arrived, or the forker's own fork dropped): the
	// forker, alive and named with its start time by the fork record, is
	// looked up once, and its children inherit its image.
	t.Run("forker absent from the table", func(t *testing.T) {
		flood := event.ProcInfo{Pid: 1400, PPid: 1, UID: 1000, GID: 1000, StartNs: tickStart, Comm: "flood", ExePath: "/usr/bin/flood", Cmdline: "flood -n 3"}
		f := &fakeLookup{procs: map[uint32]event.ProcInfo{1400: flood}}
		e := NewEngine(Config{Lookup: f})
		child := func(pid uint32, start uint64) event.Event {
			c := forkEv(pid, 1400, start, 3, "flood")
			c.ForkerPid, c.ForkerStartNs = 1400, tickEvent
			return c
		}
		c1, c2 := uint64(tickEvent+1_000_000), uint64(tickEvent+2_000_000) // after the forker's start
		out := e.Enrich(ctx, batch(0, child(1401, c1), sysEv(1401, c1, 3), child(1402, c2), sysEv(1402, c2, 3)), nil)
		inherited := want{name: "flood", exe: "/usr/bin/flood", cmd: "flood -n 3", ppid: 1400, uid: 1000, source: event.SourceState}
		for i := range out {
			check(t, fmt.Sprint(i), out[i], inherited)
		}
		if s := e.Stats(); f.calls != 1 || s.ForkerLookups != 1 || s.LookupHits != 1 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
		// The forker's exec counter came from the record: its own later
		// events are known, and a newer exec of it is a lost exec.
		out = e.Enrich(ctx, batch(0, sysEv(1400, tickEvent, 3), sysEv(1400, tickEvent, 4)), out[:0])
		check(t, "forker", out[0], want{name: "flood", exe: "/usr/bin/flood", cmd: "flood -n 3", ppid: 1, uid: 1000, source: event.SourceLookup})
		check(t, "forker after exec", out[1], want{ppid: 1, uid: 1000, missing: fieldsExec, reason: event.ReasonExecDropped, source: event.SourceLookup})
	})

	t.Run("forker gone: parent unknown, asked once", func(t *testing.T) {
		f := &fakeLookup{}
		e := NewEngine(Config{Lookup: f})
		var evs []event.Event
		for pid := uint32(1501); pid <= 1503; pid++ {
			c := forkEv(pid, 1500, t1, 3, "x")
			c.ForkerPid, c.ForkerStartNs = 1500, tickEvent
			evs = append(evs, c)
		}
		out := e.Enrich(ctx, batch(0, evs...), nil)
		for i := range out {
			check(t, fmt.Sprint(i), out[i], want{name: "x", ppid: 1500, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState})
		}
		if s := e.Stats(); f.calls != 1 || s.ForkerLookups != 1 || s.NegativeHits != 2 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
		// The forker's own late event: gone, as its lookup said, not
		// parent_unknown.
		out = e.Enrich(ctx, batch(0, sysEv(1500, tickEvent, 3)), out[:0])
		check(t, "forker", out[0], missingAll(event.ReasonProcGone))
	})

	t.Run("another process under the forker's pid", func(t *testing.T) {
		// /proc has a newer holder of pid 1600: it lends nothing.
		f := &fakeLookup{procs: map[uint32]event.ProcInfo{1600: {Pid: 1600, StartNs: t2, Comm: "new", ExePath: "/new"}}}
		e := NewEngine(Config{Lookup: f})
		c := forkEv(1601, 1600, t1, 3, "x")
		c.ForkerPid, c.ForkerStartNs = 1600, tickEvent
		out := e.Enrich(ctx, batch(0, c), nil)
		check(t, "0", out[0], want{name: "x", ppid: 1600, uid: 1000, missing: fieldsInherit, reason: event.ReasonParentUnknown, source: event.SourceState})
		if s := e.Stats(); s.LookupMisses != 1 || s.Procs != 1 {
			t.Errorf("stats %+v", s)
		}
	})

	t.Run("budget per batch", func(t *testing.T) {
		f := &fakeLookup{}
		e := NewEngine(Config{Lookup: f, MaxLookupsPerBatch: 2})
		out := e.Enrich(ctx, batch(0, sysEv(910, 50, 1), sysEv(911, 50, 1), sysEv(912, 50, 1)), nil)
		check(t, "2", out[2], missingAll(event.ReasonLookupFailed))
		out = e.Enrich(ctx, batch(0, sysEv(912, 50, 1)), out[:0])
		check(t, "next batch", out[0], missingAll(event.ReasonProcGone))
		if s := e.Stats(); f.calls != 3 || s.LookupsSkipped != 1 {
			t.Errorf("calls %d stats %+v", f.calls, s)
		}
	})

	t.Run("evicted outranks lookup miss", func(t *testing.T) {
		f := &fakeLookup{}
		e := NewEngine(Config{Lookup: f, MaxProcs: 1})
		out := e.Enrich(ctx, batch(0,
			execEv(920, 100, 50, 2, "a", "/a", "a"),
			execEv(921, 100, 50, 2, "b", "/b", "b"),
			sysEv(920, 50, 2)), nil)
		check(t, "2", out[2], missingAll(event.ReasonEvicted))
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	e := NewEngine(Config{})
	e.Enrich(context.Background(), batch(0,
		bashExec,
		forkEv(200, 100, t1, 1, "bash"),
		execEv(201, 100, t1, 2, "vim", "/usr/bin/vim", "vim", "a.txt"),
		exitEv(200, 200, t1, 1, true),
	), nil)
	snap := e.Snapshot()
	if len(snap) != 2 || snap[0].Pid != 100 || snap[1].Pid != 201 || snap[1].Cmdline != "vim a.txt" {
		t.Fatalf("snapshot %+v", snap)
	}
	n := NewEngine(Config{})
	n.Seed(snap)
	out := n.Enrich(context.Background(), batch(0, sysEv(201, t1, 2)), nil)
	check(t, "handed over", out[0], want{name: "vim", exe: "/usr/bin/vim", cmd: "vim a.txt", ppid: 100, uid: 1000, source: event.SourceSnapshot})
	// Seed resets.
	n.Seed(nil)
	if s := n.Stats(); s.Procs != 0 {
		t.Errorf("after reset: %+v", s)
	}
}

func TestStatsCounts(t *testing.T) {
	e := NewEngine(Config{})
	e.Enrich(context.Background(), batch(1, bashExec, sysEv(5, t1, 1), sysEv(6, t1, 1)), nil)
	s := e.Stats()
	if s.Events != 3 || s.Missing != 2 || s.Reason(event.ReasonForkDropped) != 2 {
		t.Errorf("stats %+v", s)
	}
	if m := s.ReasonCounts(); m["fork_dropped"] != 2 || len(m) != 1 {
		t.Errorf("reason counts %v", m)
	}
	if m := s.FieldCounts(); m["proc.name"] != 2 || len(m) != 5 {
		t.Errorf("field counts %v", m)
	}
	if s.BySource[event.SourceState] != 1 || s.BySource[event.SourceNone] != 2 {
		t.Errorf("by source %v", s.BySource)
	}
}
