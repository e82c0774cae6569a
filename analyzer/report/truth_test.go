package report

import (
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

func TestReadTruth(t *testing.T) {
	lines := `{"pid":101,"ppid":100,"comm":"rwflood","exe":"/tmp/f/rwflood"}

{"pid":102,"ppid":100,"comm":"rwflood","exe":"/tmp/f/rwflood"}
`
	procs, err := ReadTruth(strings.NewReader(lines))
	if err != nil || len(procs) != 2 || procs[1] != (TruthProc{Pid: 102, PPid: 100, Comm: "rwflood", Exe: "/tmp/f/rwflood"}) {
		t.Fatalf("%v %+v", err, procs)
	}
	procs, err = ReadTruth(strings.NewReader(` [{"pid":5,"ppid":1,"comm":"c","exe":"/e"}]`))
	if err != nil || len(procs) != 1 || procs[0].Pid != 5 {
		t.Fatalf("array: %v %+v", err, procs)
	}
	if procs, err := ReadTruth(strings.NewReader("")); err != nil || len(procs) != 0 {
		t.Fatalf("empty: %v %+v", err, procs)
	}
	if _, err := ReadTruth(strings.NewReader(`{"pid":1}` + "\n" + `{"pid":`)); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ReadTruth(strings.NewReader(`{"ppid":1}`)); err == nil {
		t.Fatal("pid 0 accepted")
	}
}

func TestTruthChecker(t *testing.T) {
	const (
		parent  = 100
		pre     = 1 // the flood's ExecID: children's pre-exec events
		post    = 2 // after the helper's exec
		comm    = "rwflood"
		exe     = "/tmp/f/rwflood"
		parComm = "ringwise"
		parExe  = "/usr/bin/ringwise"
	)
	procs := []TruthProc{
		{101, parent, comm, exe, "", "", 0, 0}, // matched
		{102, parent, comm, exe, "", "", 0, 0}, // missing only: neither matched nor wrong
		{103, parent, comm, exe, "", "", 0, 0}, // stale pre-exec name on a post-exec event: wrong
		{104, parent, comm, exe, "", "", 0, 0}, // wrong ppid on a pre-exec event: wrong
		{105, parent, comm, exe, "", "", 0, 0}, // never seen
	}
	tc := NewTruthChecker(procs)
	b := batch("n", 1,
		// 101: fork (parent's name), exec, syscall: all right.
		known(event.TypeFork, 101, pre, parent, parComm, parExe),
		known(event.TypeExec, 101, post, parent, comm, exe),
		known(event.TypeSyscall, 101, post, parent, comm, exe),
		// an unrelated process
		known(event.TypeSyscall, 999, 7, 1, "other", "/other"),
		// 102: fork lost; everything is missing.
		ev(event.TypeSyscall, 102, post, event.AllFields, event.ReasonForkDropped),
		ev(event.TypeExit, 102, post, event.AllFields, event.ReasonForkDropped),
	)
	// 103: exec lost, yet the enricher kept the pre-exec name: wrong.
	stale := known(event.TypeSyscall, 103, post, parent, parComm, parExe)
	b2 := batch("n", 2,
		known(event.TypeFork, 103, pre, parent, parComm, parExe),
		stale,
		// and with the name missing but exepath stale: still wrong.
		func() event.Enriched {
			e := known(event.TypeSyscall, 103, post, parent, "", parExe)
			e.Missing = event.FieldName
			return e
		}(),
		// 104: pre-exec event with a wrong ppid (pid reuse gone wrong).
		known(event.TypeSyscall, 104, pre, 4242, parComm, parExe),
		// 104: post-exec event partly missing but right where known.
		func() event.Enriched {
			e := known(event.TypeSyscall, 104, post, parent, comm, "")
			e.Missing = event.FieldExePath | event.FieldCmdline
			return e
		}(),
	)
	// Post-exec events before the exec that reveals the post-exec id are
	// judged correctly too: the exec arrives only in the next batch.
	tc.AddBatch(b2)
	tc.AddBatch(b)
	tc.AddBatch(nil)

	got := tc.Result()
	want := TruthResult{Processes: 5, Matched: 1, Wrong: 2, WrongEvents: 3, Events: 10, MissingEvents: 4, Unseen: 1, PostExecID: post}
	if got != want {
		t.Errorf("result\n%+v\nwant\n%+v", got, want)
	}
}

func TestTruthCheckerNoExecSeen(t *testing.T) {
	tc := NewTruthChecker([]TruthProc{{Pid: 1, PPid: 9, Comm: "c", Exe: "/e"}})
	tc.AddBatch(batch("n", 1,
		known(event.TypeSyscall, 1, 1, 9, "parent", "/p"), // can't tell pre from post: only ppid checked
		known(event.TypeSyscall, 1, 1, 8, "parent", "/p"),
	))
	got := tc.Result()
	if got.Events != 2 || got.WrongEvents != 1 || got.Wrong != 1 || got.Matched != 0 || got.PostExecID != 0 {
		t.Errorf("%+v", got)
	}
}

func TestTruthCommTruncation(t *testing.T) {
	long := "a-very-long-helper-name"
	tc := NewTruthChecker([]TruthProc{{Pid: 1, PPid: 9, Comm: long, Exe: "/e"}})
	tc.AddBatch(batch("n", 1, known(event.TypeExec, 1, 2, 9, long[:event.CommLen-1], "/e")))
	if r := tc.Result(); r.Matched != 1 || r.Wrong != 0 {
		t.Errorf("%+v", r)
	}
}

// A post-exec image attached to a pre-exec event (the exec record overtook
// the syscalls made before it) must count as wrong.
func TestTruthPreExecImage(t *testing.T) {
	tc := NewTruthChecker([]TruthProc{{Pid: 7, PPid: 1, Comm: "rwflood", Exe: "/t/rwflood", ParentComm: "ringwise", ParentExe: "/bin/ringwise"}})
	b := &event.EnrichedBatch{Node: "n", RawSeq: 1}
	ev := func(typ event.Type, execID uint32, name, exe string) event.Enriched {
		return event.Enriched{Event: event.Event{Header: event.Header{Type: typ, Pid: 7, Tid: 7, ExecID: execID}}, ProcPPid: 1, ProcName: name, ProcExePath: exe}
	}
	b.Events = []event.Enriched{
		ev(event.TypeSyscall, 1, "ringwise", "/bin/ringwise"), // right
		ev(event.TypeSyscall, 1, "rwflood", "/t/rwflood"),     // pre-exec event, post-exec image: wrong
		ev(event.TypeExec, 2, "rwflood", "/t/rwflood"),
	}
	tc.AddBatch(b)
	r := tc.Result()
	if r.WrongEvents != 1 || r.Wrong != 1 || r.Matched != 1 {
		t.Fatalf("%+v", r)
	}
}

// A truth pid later held by an unrelated process: its events (started after
// the child was reaped) are foreign, not wrong; the child's own are judged.
func TestTruthPidReusedAfterReap(t *testing.T) {
	const parent, post = 100, 2
	procs := []TruthProc{{Pid: 101, PPid: parent, Comm: "rwflood", Exe: "/f/rwflood", BornAfterNs: 1000, ReapedNs: 2000}}
	tc := NewTruthChecker(procs)
	child := known(event.TypeExec, 101, post, parent, "rwflood", "/f/rwflood")
	child.StartNs = 1500
	// Same pid and exec counter, another image: a later holder of pid 101.
	later := known(event.TypeSyscall, 101, post, 7, "go", "/usr/local/go/bin/go")
	later.StartNs = 2500
	tc.AddBatch(batch("n", 1, child, later))
	r := tc.Result()
	if r.Wrong != 0 || r.WrongEvents != 0 || r.Matched != 1 || r.Foreign != 1 || r.Events != 1 {
		t.Fatalf("got %+v, want 1 matched, 0 wrong, 1 foreign event, 1 judged event", r)
	}
	// Without the recorded life the same later event is judged, and wrong:
	// the check above is what tells them apart.
	procs[0].BornAfterNs, procs[0].ReapedNs = 0, 0
	tc = NewTruthChecker(procs)
	tc.AddBatch(batch("n", 1, child, later))
	if r := tc.Result(); r.Wrong != 1 || r.Foreign != 0 {
		t.Fatalf("without lifetimes got %+v, want the later holder judged wrong", r)
	}
}
