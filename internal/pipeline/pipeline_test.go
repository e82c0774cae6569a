package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// fakeProbe is a sensor.Probe whose single ring serves a scripted stream
// and then stays empty; its counters report the scripted lifecycle drops.
type fakeProbe struct {
	mu       sync.Mutex
	recs     []event.Event
	pos      int
	total    [event.NumCategories]uint64
	dropped  [event.NumCategories]uint64
	detached bool
	flushed  bool
}

func (p *fakeProbe) Rings() (lifecycle, syscalls sensor.Ring) { return nil, fakeRing{p} }
func (p *fakeProbe) Counters() (event.Counters, error) {
	var c event.Counters
	for i := range c.Attempted {
		c.Attempted[i] = p.total[i] + p.dropped[i]
		c.Dropped[i] = p.dropped[i]
	}
	return c, nil
}
func (p *fakeProbe) SetShedding(bool) error { return nil }
func (p *fakeProbe) Detach() error {
	p.mu.Lock()
	p.detached = true
	p.mu.Unlock()
	return nil
}
func (p *fakeProbe) Close() error { return nil }

type fakeRing struct{ p *fakeProbe }

func (r fakeRing) Name() string { return "shared" }
func (r fakeRing) Size() int    { return 1 << 20 }
func (r fakeRing) Pending() int {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return (len(r.p.recs) - r.p.pos) * 64
}
func (r fakeRing) Flush() error {
	r.p.mu.Lock()
	r.p.flushed = true
	r.p.mu.Unlock()
	return nil
}
func (r fakeRing) Read(ev *event.Event, deadline time.Time) error {
	p := r.p
	p.mu.Lock()
	if p.pos < len(p.recs) {
		rec := &p.recs[p.pos]
		p.pos++
		exe, args := ev.Exe, ev.Args
		*ev = *rec
		ev.Exe = append(exe[:0], rec.Exe...)
		ev.Args = append(args[:0], rec.Args...)
		p.mu.Unlock()
		return nil
	}
	if p.flushed {
		p.flushed = false
		p.mu.Unlock()
		return bpf.ErrFlushed
	}
	p.mu.Unlock()
	if d := time.Until(deadline); d > 0 {
		time.Sleep(min(d, time.Millisecond))
	}
	return os.ErrDeadlineExceeded
}

const (
	workers   = 4
	lostPid   = 9999
	lostCalls = 5
)

// script is fork, exec, 3 syscalls and exit for each worker, then syscalls
// of a process born after the sensor attached whose fork and exec were
// dropped. base must be after the sensor's start.
func script(base uint64) (evs []event.Event, dropped [event.NumCategories]uint64) {
	ts := base
	next := func() uint64 { ts += 1000; return ts }
	for k := 0; k < workers; k++ {
		pid := uint32(2000 + k)
		start := base + uint64(k)
		e := event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, Type: event.TypeFork}, PPid: 1}
		e.SetComm("sh")
		evs = append(evs, e)
		e = event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: 1,
			Exe: []byte("/usr/bin/worker"), Args: []byte(fmt.Sprintf("worker\x00%d\x00", k))}
		e.SetComm(fmt.Sprintf("worker-%d", k))
		evs = append(evs, e)
		for s := 0; s < 3; s++ {
			evs = append(evs, event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeSyscall}, Syscall: uint32(s)})
		}
		e = event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExit, Flags: event.FlagGroupDead}, PPid: 1}
		e.SetComm(fmt.Sprintf("worker-%d", k))
		evs = append(evs, e)
	}
	for s := 0; s < lostCalls; s++ {
		evs = append(evs, event.Event{Header: event.Header{TsNs: next(), StartNs: base + 100, Tid: lostPid, Pid: lostPid, ExecID: 1, Type: event.TypeSyscall}, Syscall: 1})
	}
	dropped[event.CategoryLifecycle] = 2 // the lost process's fork and exec
	return evs, dropped
}

func fakeProcRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "1 (init) S 0 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte("/sbin/init\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRunWithFakeProbe(t *testing.T) {
	var (
		probe *fakeProbe
		evs   []event.Event
	)
	loads := 0
	cfg := sensor.Config{
		Node:   "fake",
		BootID: "boot-fake",
		Procfs: procfs.FS{Root: fakeProcRoot(t)},
		// Stats often, so they are published while batches are.
		StatsInterval: 20 * time.Millisecond,
		LoadProbe: func(bpf.Config) (sensor.Probe, error) {
			loads++
			// One second ahead: every scripted process starts after the
			// sensor attaches, which happens right after loading.
			var dropped [event.NumCategories]uint64
			evs, dropped = script(sensor.MonotonicNs() + uint64(time.Second))
			probe = &fakeProbe{recs: evs, dropped: dropped}
			for i := range evs {
				probe.total[evs[i].Type.Category()]++
			}
			return probe, nil
		},
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard only
	defer cancel()
	res, err := pipeline.Run(ctx, pipeline.Options{Sensor: cfg, Duration: time.Second, Events: &out})
	if err != nil {
		t.Fatalf("pipeline.Run: %v", err)
	}
	if loads != 1 || probe == nil {
		t.Fatalf("LoadProbe called %d times", loads)
	}
	if !probe.detached {
		t.Error("probe not detached at the end")
	}

	s := res.Summary
	n := uint64(len(evs))
	if s.Sensor.Attempted != s.Sensor.Delivered+s.Sensor.Dropped {
		t.Errorf("sensor attempted %d != delivered %d + dropped %d", s.Sensor.Attempted, s.Sensor.Delivered, s.Sensor.Dropped)
	}
	if s.Sensor.Delivered != n || s.Sensor.DroppedLifecycle != 2 || s.Sensor.DroppedSyscall != 0 {
		t.Errorf("sensor delivered %d (want %d), dropped lifecycle %d syscall %d", s.Sensor.Delivered, n, s.Sensor.DroppedLifecycle, s.Sensor.DroppedSyscall)
	}
	if s.Analyzer.Events != s.Sensor.Delivered || s.Enricher.Events != s.Sensor.Delivered || res.Enricher.Events != n {
		t.Errorf("events: analyzer %d, enricher %d (stats %d), sensor delivered %d; want all equal",
			s.Analyzer.Events, s.Enricher.Events, res.Enricher.Events, s.Sensor.Delivered)
	}
	if s.Analyzer.Missing != lostCalls || s.Analyzer.ByReason["fork_dropped"] != lostCalls || s.Analyzer.LifecycleAttributed != lostCalls {
		t.Errorf("missing %d, by_reason %v, lifecycle attributed %d; want %d fork_dropped",
			s.Analyzer.Missing, s.Analyzer.ByReason, s.Analyzer.LifecycleAttributed, lostCalls)
	}
	if s.Analyzer.BatchGaps != 0 || s.Analyzer.DuplicateBatches != 0 {
		t.Errorf("batch gaps %d, duplicates %d", s.Analyzer.BatchGaps, s.Analyzer.DuplicateBatches)
	}
	if !s.Sensor.Final {
		t.Error("summary: sensor final stats not seen")
	}
	if !res.Sensor.Consistent || res.Sensor.PublishErrors != 0 {
		t.Errorf("sensor result: consistent %v, publish errors %d", res.Sensor.Consistent, res.Sensor.PublishErrors)
	}
	if len(res.Enricher.BadInput) != 0 || res.Enricher.SeqGaps != 0 {
		t.Errorf("enricher: bad input %v, seq gaps %d", res.Enricher.BadInput, res.Enricher.SeqGaps)
	}
	if res.Recommendation == nil {
		t.Error("no recommendation although stats with a series were published")
	}

	// One Falco-like JSON line per event, in stream order.
	all := out.String()
	sc := bufio.NewScanner(strings.NewReader(all))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines int
	var lostSeen, namedSeen int
	for sc.Scan() {
		var line struct {
			OutputFields map[string]json.RawMessage `json:"output_fields"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%q\nall:\n%s", lines+1, err, sc.Bytes(), all[:min(len(all), 3000)])
		}
		name, ok := line.OutputFields["proc.name"]
		if !ok {
			t.Fatalf("line %d has no output_fields.\"proc.name\": %s", lines+1, sc.Bytes())
		}
		var pid uint32
		if err := json.Unmarshal(line.OutputFields["proc.pid"], &pid); err != nil {
			t.Fatalf("line %d: proc.pid: %v", lines+1, err)
		}
		var evType string
		_ = json.Unmarshal(line.OutputFields["evt.type"], &evType)
		switch {
		case pid == lostPid:
			lostSeen++
			if string(name) != "null" {
				t.Errorf("line %d: proc.name of the lost process = %s, want null", lines+1, name)
			}
		case evType != "clone": // after exec: the exec's comm
			var got string
			if err := json.Unmarshal(name, &got); err != nil || got != fmt.Sprintf("worker-%d", pid-2000) {
				t.Errorf("line %d (%s pid %d): proc.name = %s", lines+1, evType, pid, name)
			} else {
				namedSeen++
			}
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if uint64(lines) != n {
		t.Errorf("%d event lines, want %d", lines, n)
	}
	if lostSeen != lostCalls || namedSeen != workers*5 {
		t.Errorf("lines: %d of the lost process, %d named; want %d and %d", lostSeen, namedSeen, lostCalls, workers*5)
	}
}

func TestRunSensorConfigError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := pipeline.Run(ctx, pipeline.Options{Sensor: sensor.Config{Node: "bad.node", BootID: "b",
		LoadProbe: func(bpf.Config) (sensor.Probe, error) { return &fakeProbe{}, nil }}, Duration: time.Second})
	if err == nil {
		t.Fatal("pipeline.Run with an invalid node name returned nil")
	}
}
