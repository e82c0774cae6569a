package state

import (
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

const sensorStart = 1_000_000_000

func mk(typ event.Type, flags uint8, tid, pid uint32, start uint64, execID uint32) event.Event {
	return event.Event{Header: event.Header{
		TsNs: start + 1, StartNs: start, Tid: tid, Pid: pid, ExecID: execID, Type: typ, Flags: flags,
	}}
}

func forkEv(pid, ppid uint32, start uint64, execID uint32, comm string) event.Event {
	e := mk(event.TypeFork, 0, pid, pid, start, execID)
	e.PPid, e.UID, e.GID = ppid, 1000, 1000
	e.SetComm(comm)
	return e
}

func threadForkEv(tid, pid uint32, start uint64, execID uint32) event.Event {
	e := mk(event.TypeFork, event.FlagThread, tid, pid, start, execID)
	e.SetComm("worker")
	return e
}

func execEv(pid, ppid uint32, start uint64, execID uint32, comm, exe string, argv ...string) event.Event {
	e := mk(event.TypeExec, 0, pid, pid, start, execID)
	e.PPid, e.UID, e.GID = ppid, 1000, 1000
	e.SetComm(comm)
	e.Exe = []byte(exe)
	e.Args = []byte(strings.Join(argv, "\x00") + "\x00")
	return e
}

func sysEv(pid uint32, start uint64, execID uint32) event.Event {
	e := mk(event.TypeSyscall, 0, pid, pid, start, execID)
	e.Syscall = 0
	return e
}

func sysTid(tid, pid uint32, start uint64, execID uint32) event.Event {
	return mk(event.TypeSyscall, 0, tid, pid, start, execID)
}

func exitEv(tid, pid uint32, start uint64, execID uint32, groupDead bool) event.Event {
	var f uint8
	if groupDead {
		f = event.FlagGroupDead
	}
	return mk(event.TypeExit, f, tid, pid, start, execID)
}

func batch(lifecycleDrops uint64, evs ...event.Event) *event.Batch {
	b := &event.Batch{Schema: event.SchemaVersion, Node: "n1", SensorStartNs: sensorStart, Events: evs}
	b.Counters.Dropped[event.CategoryLifecycle] = lifecycleDrops
	return b
}

// want describes an expected enriched event. Unset strings expect "" (and
// with Missing, unknown).
type want struct {
	name, exe, cmd string
	ppid, uid      uint32
	missing        event.Field
	reason         event.Reason
	source         event.Source
}

func check(t *testing.T, label string, got event.Enriched, w want) {
	t.Helper()
	if got.ProcName != w.name || got.ProcExePath != w.exe || got.ProcCmdline != w.cmd ||
		got.ProcPPid != w.ppid || got.ProcUID != w.uid || got.Missing != w.missing ||
		got.Reason != w.reason || got.Source != w.source {
		t.Errorf("%s (pid %d tid %d %v):\n got  name=%q exe=%q cmd=%q ppid=%d uid=%d missing=%v reason=%v source=%v\n want name=%q exe=%q cmd=%q ppid=%d uid=%d missing=%v reason=%v source=%v",
			label, got.Pid, got.Tid, got.Type,
			got.ProcName, got.ProcExePath, got.ProcCmdline, got.ProcPPid, got.ProcUID, got.Missing, got.Reason, got.Source,
			w.name, w.exe, w.cmd, w.ppid, w.uid, w.missing, w.reason, w.source)
	}
	checkInvariants(t, got)
}

func checkInvariants(t *testing.T, o event.Enriched) {
	t.Helper()
	if (o.Missing == 0) != (o.Reason == event.ReasonNone) {
		t.Errorf("pid %d: missing=%v but reason=%v", o.Pid, o.Missing, o.Reason)
	}
	if o.Missing&event.FieldName != 0 && o.ProcName != "" ||
		o.Missing&event.FieldExePath != 0 && o.ProcExePath != "" ||
		o.Missing&event.FieldCmdline != 0 && o.ProcCmdline != "" ||
		o.Missing&event.FieldPPid != 0 && o.ProcPPid != 0 ||
		o.Missing&event.FieldUID != 0 && (o.ProcUID != 0 || o.ProcGID != 0) {
		t.Errorf("pid %d: missing fields %v hold values: %+v", o.Pid, o.Missing, o)
	}
}

// known is a fully known state-sourced expectation.
func known(name, exe, cmd string, ppid uint32) want {
	return want{name: name, exe: exe, cmd: cmd, ppid: ppid, uid: 1000, source: event.SourceState}
}

func missingAll(r event.Reason) want {
	return want{missing: event.AllFields, reason: r}
}
