package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/ringwise/ringwise/services/event"
)

// TruthProc is one flood child as the flood recorded it (one JSON object per
// line).
type TruthProc struct {
	Pid  uint32 `json:"pid"`
	PPid uint32 `json:"ppid"`
	Comm string `json:"comm"`
	Exe  string `json:"exe"`
	// ParentComm and ParentExe, when set, are the image the child runs
	// between fork and exec (its parent's): pre-exec events are checked
	// against them, so a post-exec image attached too early counts as wrong.
	ParentComm string `json:"parent_comm,omitempty"`
	ParentExe  string `json:"parent_exe,omitempty"`
	// BornAfterNs and ReapedNs, when set, bound the child's life in
	// CLOCK_BOOTTIME: an event whose process started outside them belongs
	// to another holder of the pid and is counted Foreign, not judged.
	BornAfterNs uint64 `json:"born_after_ns,omitempty"`
	ReapedNs    uint64 `json:"reaped_ns,omitempty"`
}

// ReadTruth reads the flood's ground truth: JSON objects separated by
// whitespace (one per line as the flood writes them), or one JSON array of
// them. Records with pid 0 are rejected.
func ReadTruth(r io.Reader) ([]TruthProc, error) {
	br := bufio.NewReader(r)
	// Peek at the first non-space byte: '[' means one array.
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read truth: %w", err)
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		_ = br.UnreadByte()
		if c == '[' {
			var procs []TruthProc
			if err := json.NewDecoder(br).Decode(&procs); err != nil {
				return nil, fmt.Errorf("read truth: %w", err)
			}
			return procs, checkTruth(procs)
		}
		break
	}
	dec := json.NewDecoder(br)
	var procs []TruthProc
	for {
		var p TruthProc
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return procs, fmt.Errorf("read truth: record %d: %w", len(procs)+1, err)
		}
		procs = append(procs, p)
	}
	return procs, checkTruth(procs)
}

func checkTruth(procs []TruthProc) error {
	for i, p := range procs {
		if p.Pid == 0 {
			return fmt.Errorf("read truth: record %d: pid 0", i+1)
		}
	}
	return nil
}

// TruthResult compares enrichment with the flood's ground truth.
type TruthResult struct {
	// Processes is the number of distinct truth pids.
	Processes int `json:"processes"`
	// Matched counts processes with at least one post-exec event whose
	// proc.name, proc.exepath and proc.ppid are all known and right.
	Matched int `json:"matched"`
	// Wrong counts processes with at least one wrong event.
	Wrong int `json:"wrong"`
	// WrongEvents counts events with a known but wrong value: worse than
	// missing, because nothing flags it.
	WrongEvents int `json:"wrong_events"`
	// Events counts events of truth pids.
	Events int `json:"events"`
	// MissingEvents counts events of truth pids with missing fields.
	MissingEvents int `json:"missing_events"`
	// Unseen counts truth processes without any event.
	Unseen int `json:"unseen"`
	// Foreign counts events under a truth pid from a process that started
	// outside the child's recorded life: another holder of the pid (the
	// node runs more than the flood), left unjudged.
	Foreign int `json:"foreign_events"`
	// PostExecID is the exec counter taken as post-exec (0 if no exec of a
	// truth pid was seen; then only proc.ppid is checked).
	PostExecID uint32 `json:"post_exec_id"`
}

// execGroup aggregates the events of one truth pid with one ExecID.
type execGroup struct {
	execID    uint32
	events    int
	missing   int
	ppidWrong int  // events whose known ppid is wrong
	preWrong  int  // events whose known ppid, or name/exepath against the parent's image, is wrong
	anyWrong  int  // events whose known name, exepath or ppid is wrong
	full      bool // an event with name, exepath and ppid known and right
}

type truthState struct {
	proc   TruthProc
	groups []execGroup // few: pre-exec and post-exec
}

// TruthChecker checks enriched events of the flood's children against the
// ground truth. Not safe for concurrent use.
//
// A flood child is forked by the flood process (its events carry the
// parent's ExecID b and comm) and then execs the helper once (ExecID b+1).
// The post-exec ExecID is the highest ExecID of any exec event of a truth
// pid; they share it because all have the same parent. Because that is only
// known once the exec events have been seen, events are aggregated per
// (pid, ExecID) and judged in Result.
//
// A truth pid reused by an unrelated process is told apart by the task
// start time when the truth records the child's life (BornAfterNs,
// ReapedNs); such events count as Foreign.
type TruthChecker struct {
	foreign  int
	procs    map[uint32]*truthState
	haveExec bool
	postExec uint32
}

// NewTruthChecker returns a checker for procs; for a pid listed twice the
// last record wins.
func NewTruthChecker(procs []TruthProc) *TruthChecker {
	t := &TruthChecker{procs: make(map[uint32]*truthState, len(procs))}
	for _, p := range procs {
		t.procs[p.Pid] = &truthState{proc: p}
	}
	return t
}

// commEqual compares a kernel comm (at most CommLen-1 bytes) with the
// truth's, which may be longer than the kernel keeps.
func commEqual(kernel, truth string) bool {
	if kernel == truth {
		return true
	}
	return len(truth) > event.CommLen-1 && kernel == truth[:event.CommLen-1]
}

// AddBatch looks at the events of b whose Pid is a truth pid.
func (t *TruthChecker) AddBatch(b *event.EnrichedBatch) {
	if b == nil {
		return
	}
	for i := range b.Events {
		e := &b.Events[i]
		st := t.procs[e.Pid]
		if st == nil {
			continue
		}
		if p := &st.proc; p.ReapedNs != 0 && (e.StartNs < p.BornAfterNs || e.StartNs > p.ReapedNs) {
			t.foreign++
			continue
		}
		if e.Type == event.TypeExec && (!t.haveExec || e.ExecID > t.postExec) {
			t.haveExec, t.postExec = true, e.ExecID
		}
		var g *execGroup
		for j := range st.groups {
			if st.groups[j].execID == e.ExecID {
				g = &st.groups[j]
				break
			}
		}
		if g == nil {
			st.groups = append(st.groups, execGroup{execID: e.ExecID})
			g = &st.groups[len(st.groups)-1]
		}
		known := ^e.Missing
		ppidKnown := known&event.FieldPPid != 0
		nameKnown := known&event.FieldName != 0
		exeKnown := known&event.FieldExePath != 0
		ppidWrong := ppidKnown && e.ProcPPid != st.proc.PPid
		nameWrong := nameKnown && !commEqual(e.ProcName, st.proc.Comm)
		exeWrong := exeKnown && e.ProcExePath != st.proc.Exe
		g.events++
		if e.Missing != 0 {
			g.missing++
		}
		if ppidWrong {
			g.ppidWrong++
		}
		preNameWrong := nameKnown && st.proc.ParentComm != "" && !commEqual(e.ProcName, st.proc.ParentComm)
		preExeWrong := exeKnown && st.proc.ParentExe != "" && e.ProcExePath != st.proc.ParentExe
		if ppidWrong || preNameWrong || preExeWrong {
			g.preWrong++
		}
		if ppidWrong || nameWrong || exeWrong {
			g.anyWrong++
		} else if ppidKnown && nameKnown && exeKnown {
			g.full = true
		}
	}
}

// Result judges the events seen so far.
func (t *TruthChecker) Result() TruthResult {
	res := TruthResult{Processes: len(t.procs), Foreign: t.foreign}
	if t.haveExec {
		res.PostExecID = t.postExec
	}
	for _, st := range t.procs {
		if len(st.groups) == 0 {
			res.Unseen++
			continue
		}
		wrong, matched := 0, false
		for _, g := range st.groups {
			res.Events += g.events
			res.MissingEvents += g.missing
			if t.haveExec && g.execID == t.postExec {
				wrong += g.anyWrong
				matched = matched || g.full
			} else {
				wrong += g.preWrong
			}
		}
		res.WrongEvents += wrong
		if wrong > 0 {
			res.Wrong++
		}
		if matched {
			res.Matched++
		}
	}
	return res
}
