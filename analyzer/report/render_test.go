package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

type renderedLine struct {
	Time         string         `json:"time"`
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Ringwise     struct {
		Missing []string `json:"missing"`
		Reason  *string  `json:"reason"`
		Source  string   `json:"source"`
		ExecID  uint32   `json:"exec_id"`
		StartNs uint64   `json:"start_ns"`
	} `json:"ringwise"`
}

func decodeLine(t *testing.T, line []byte) renderedLine {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var r renderedLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("invalid JSON %v: %s", err, line)
	}
	return r
}

const wallOffset = 1_795_765_000_000_000_000

func TestAppendFalcoJSONMissing(t *testing.T) {
	e := ev(event.TypeSyscall, 4321, 3, event.FieldName|event.FieldExePath|event.FieldCmdline|event.FieldPPid|event.FieldUID, event.ReasonForkDropped)
	e.Tid = 4322
	e.TsNs = 432_123_456_789
	e.StartNs = 400_000_000_000
	e.Syscall = nativeNr(t, "openat")
	e.Ret = 3
	line := AppendFalcoJSON(nil, &e, wallOffset, "node-a")
	r := decodeLine(t, line)
	if r.Time != "2026-11-27T07:43:52.123456789Z" || r.Rule != RenderRule || r.Priority != "Debug" || r.Source != "syscall" || r.Hostname != "node-a" {
		t.Errorf("header: %+v", r)
	}
	of := r.OutputFields
	want := map[string]any{
		"evt.time": json.Number("1795765432123456789"), "evt.type": "openat", "proc.pid": json.Number("4321"), "proc.tid": json.Number("4322"),
		"proc.ppid": nil, "proc.name": nil, "proc.exepath": nil, "proc.cmdline": nil, "user.uid": nil, "evt.rawres": json.Number("3"),
		"container.id": "host",
	}
	if !maps.Equal(of, want) {
		t.Errorf("output_fields\n%v\nwant\n%v", of, want)
	}
	for _, w := range []string{"07:43:52.123456789: Debug ringwise event evt.type=openat", "proc.name=<NA>", "proc.exepath=<NA>", "proc.ppid=-1",
		"user.uid=4294967295", "proc.cmdline=<NA>", "proc.pid=4321", "ringwise.reason=fork_dropped"} {
		if !strings.Contains(r.Output, w) {
			t.Errorf("output %q lacks %q", r.Output, w)
		}
	}
	rw := r.Ringwise
	if strings.Join(rw.Missing, ",") != "proc.ppid,proc.name,proc.exepath,proc.cmdline,user.uid" || rw.Reason == nil || *rw.Reason != "fork_dropped" ||
		rw.Source != "none" || rw.ExecID != 3 || rw.StartNs != 400_000_000_000 {
		t.Errorf("ringwise %+v", rw)
	}

	// Round trip through AnalyzeFalco.
	s, st, err := AnalyzeFalco(bytes.NewReader(line))
	if err != nil || st.Events != 1 {
		t.Fatal(err, st)
	}
	wantField := map[string]uint64{"proc.ppid": 1, "proc.name": 1, "proc.exepath": 1, "proc.cmdline": 1, "user.uid": 1}
	if !maps.Equal(s.Analyzer.ByField, wantField) || !maps.Equal(s.Analyzer.ByReason, map[string]uint64{"fork_dropped": 1}) ||
		s.Analyzer.LifecycleAttributed != 1 || s.Node != "node-a" {
		t.Errorf("round trip: %+v", s.Analyzer)
	}
}

func TestAppendFalcoJSONKnownAndEscaping(t *testing.T) {
	e := known(event.TypeExec, 77, 2, 1, "we\"ird\\na\x01me", "/tmp/a b/\xff\xfeexe\u2028")
	e.ProcCmdline = "sh -c 'echo \"hi\"\n'\t<b>&"
	e.ProcUID = 0
	e.TsNs = 5
	line := AppendFalcoJSON([]byte("prefix"), &e, 0, "n\"1")
	if !bytes.HasPrefix(line, []byte("prefix{")) {
		t.Fatalf("did not append: %q", line)
	}
	r := decodeLine(t, line[len("prefix"):])
	of := r.OutputFields
	if of["proc.name"] != "we\"ird\\na\x01me" || of["proc.exepath"] != "/tmp/a b/\ufffd\ufffdexe\u2028" || of["proc.cmdline"] != e.ProcCmdline ||
		of["user.uid"] != json.Number("0") || of["proc.ppid"] != json.Number("1") || of["evt.type"] != "execve" || r.Hostname != "n\"1" {
		t.Errorf("output_fields %v", of)
	}
	if _, ok := of["evt.rawres"]; ok {
		t.Error("evt.rawres on a non-syscall event")
	}
	if r.Time != "1970-01-01T00:00:00.000000005Z" {
		t.Errorf("time %q", r.Time)
	}
	if len(r.Ringwise.Missing) != 0 || r.Ringwise.Reason != nil || r.Ringwise.Source != "state" {
		t.Errorf("ringwise %+v", r.Ringwise)
	}
	if strings.Contains(r.Output, "<NA>") || strings.Contains(r.Output, "ringwise.reason") {
		t.Errorf("output %q", r.Output)
	}
	s, _, err := AnalyzeFalco(bytes.NewReader(line[len("prefix"):]))
	if err != nil || s.Analyzer.Events != 1 || s.Analyzer.Missing != 0 {
		t.Errorf("round trip %v %+v", err, s.Analyzer)
	}
}

func TestAppendFalcoJSONTypes(t *testing.T) {
	for _, tc := range []struct {
		typ  event.Type
		nr   uint32
		want string
	}{
		{event.TypeFork, 0, "clone"}, {event.TypeExit, 0, "procexit"}, {event.TypeExec, 0, "execve"},
		{event.TypeSyscall, nativeNr(t, "read"), "read"}, {event.TypeSyscall, nativeNr(t, "execve"), "execve"},
		{event.TypeSyscall, nativeNr(t, "exit_group"), "exit_group"}, {event.TypeSyscall, 999, "syscall_999"},
	} {
		e := ev(tc.typ, 1, 1, event.FieldUID, event.ReasonNone)
		e.Syscall = tc.nr
		r := decodeLine(t, AppendFalcoJSON(nil, &e, 0, "n"))
		if r.OutputFields["evt.type"] != tc.want || !strings.Contains(r.Output, "evt.type="+tc.want+" ") {
			t.Errorf("%v/%d: evt.type %v", tc.typ, tc.nr, r.OutputFields["evt.type"])
		}
		if r.Ringwise.Reason == nil || *r.Ringwise.Reason != ReasonUnspecified {
			t.Errorf("reason %v", r.Ringwise.Reason)
		}
	}
}

// TestAppendFalcoJSONABIs names syscall records by their own ABI: an ia32
// setuid32 is setuid (Falco maps ia32 calls to their 64-bit names), arm64's
// 113 is clock_gettime (x86_64's is setreuid), socketcall has no 64-bit
// name and an AArch32 call no table: both stay numbers.
func TestAppendFalcoJSONABIs(t *testing.T) {
	num := func(a syscalls.ABI, name string) uint32 {
		nr, ok := syscalls.Number(a, name)
		if !ok {
			t.Fatalf("no %s on %s", name, a)
		}
		return nr
	}
	for _, tc := range []struct {
		abi  syscalls.ABI
		nr   uint32
		want string
	}{
		{syscalls.IA32, num(syscalls.IA32, "setuid32"), "setuid"},
		{syscalls.IA32, num(syscalls.IA32, "_llseek"), "lseek"},
		{syscalls.IA32, num(syscalls.IA32, "socketcall"), fmt.Sprintf("syscall_%d", num(syscalls.IA32, "socketcall"))},
		{syscalls.ARM64, 113, "clock_gettime"},
		{syscalls.X86_64, 113, "setreuid"},
		{event.ABIOther, 23, "syscall_23"},
	} {
		e := ev(event.TypeSyscall, 1, 1, 0, event.ReasonNone)
		e.ABI, e.Syscall, e.VPid, e.ContainerID = tc.abi, tc.nr, 7, "3f4e5d6c7b8a"
		r := decodeLine(t, AppendFalcoJSON(nil, &e, 0, "n"))
		if r.OutputFields["evt.type"] != tc.want {
			t.Errorf("%s %d: evt.type %v, want %s", tc.abi, tc.nr, r.OutputFields["evt.type"], tc.want)
		}
		if r.OutputFields["container.id"] != "3f4e5d6c7b8a" || r.OutputFields["proc.vpid"] != json.Number("7") {
			t.Errorf("container.id %v proc.vpid %v", r.OutputFields["container.id"], r.OutputFields["proc.vpid"])
		}
	}
}

func TestAppendFalcoJSONAllocs(t *testing.T) {
	e := ev(event.TypeSyscall, 4321, 3, event.FieldName|event.FieldPPid, event.ReasonExecDropped)
	e.ProcExePath, e.ProcCmdline = "/usr/bin/x", "x -y"
	e.Syscall = 12345
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFalcoJSON(buf[:0], &e, wallOffset, "node") }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

func FuzzAppendFalcoJSON(f *testing.F) {
	f.Add("bash", "/bin/bash", "bash -c x", "node", uint8(0), uint8(1), uint32(257))
	f.Add("\xff\x00\"", "\u2028", "\\", "", uint8(31), uint8(9), uint32(1<<31))
	f.Fuzz(func(t *testing.T, name, exe, cmd, node string, missing, reason uint8, nr uint32) {
		e := ev(event.TypeSyscall, 1, 1, event.Field(missing), event.Reason(reason))
		e.ProcName, e.ProcExePath, e.ProcCmdline, e.Syscall = name, exe, cmd, nr
		line := AppendFalcoJSON(nil, &e, -1<<40, node)
		if !json.Valid(line) || !utf8.Valid(line) {
			t.Fatalf("invalid JSON: %q", line)
		}
		var r renderedLine
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		if e.Missing&event.FieldName == 0 && r.OutputFields["proc.name"] != strings.ToValidUTF8(name, "\ufffd") {
			// encoding/json replaces each invalid byte; compare loosely.
			if utf8.ValidString(name) {
				t.Fatalf("proc.name %q want %q", r.OutputFields["proc.name"], name)
			}
		}
	})
}

// nativeNr is the number of syscall name in the ABI events are read in.
func nativeNr(t testing.TB, name string) uint32 {
	t.Helper()
	nr, ok := syscalls.Number(syscalls.Native(), name)
	if !ok {
		t.Fatalf("no %s syscall on %s", name, syscalls.Native())
	}
	return nr
}

// The text report gives each field's share of the missing events and of
// all events: 4 of 200 events lack the exe path (2 % of events, every
// missing one), 1 lacks the name (0.5 %, a quarter of the missing).
func TestWriteTextMissingByFieldShares(t *testing.T) {
	var s Summary
	s.Analyzer.Events, s.Analyzer.Missing = 200, 4
	s.Analyzer.ByField = map[string]uint64{"proc.exepath": 4, "proc.name": 1}
	var out bytes.Buffer
	WriteText(&out, s)
	txt := out.String()
	for _, w := range []string{
		"missing by field (share of missing events, of all events):\n",
		"  proc.exepath          4  100.00%    2.00% of events\n",
		"  proc.name             1   25.00%    0.50% of events\n",
	} {
		if !strings.Contains(txt, w) {
			t.Errorf("report lacks %q:\n%s", w, txt)
		}
	}
}
