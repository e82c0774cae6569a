package sensor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
	"github.com/ringwise/ringwise/services/ringspec"
)

// ---- fake probe -------------------------------------------------------

// fakeProbe serves scripted records from one or more fake rings. A record is
// visible once the probe's clock has reached its TsNs; the clock advances by
// step on every Read of any ring (step 0: everything visible at once), so
// with several rings records arrive interleaved as they would from a kernel.
type fakeProbe struct {
	mu    sync.Mutex
	rings []*fakeRing
	clock uint64
	step  uint64

	total   [event.NumCategories]uint64 // records scripted per category
	dropped [event.NumCategories]uint64 // reported as dropped by the "kernel"
	bogus   [event.NumCategories]uint64 // added to Attempted only: inconsistent counters

	drained     chan struct{}
	drainedOnce sync.Once
	detached    atomic.Bool
	closed      atomic.Bool
	readsAfter  atomic.Int64 // reads served after Detach
	shedCalls   atomic.Int64
	delivered   atomic.Int64
	readOnEmpty atomic.Int64
	// onDetach, when set, runs in Detach under mu: the "kernel" finishing
	// records that were in flight when the links closed.
	onDetach func()
}

type fakeRing struct {
	p       *fakeProbe
	name    string
	size    int
	recs    []event.Event
	pos     int  // guarded by p.mu
	flushed bool // guarded by p.mu; a Flush not yet answered with ErrFlushed
	flushes int  // guarded by p.mu
}

func newFakeProbe(step uint64, dropped [event.NumCategories]uint64, rings map[string][]event.Event, order ...string) *fakeProbe {
	p := &fakeProbe{step: step, dropped: dropped, drained: make(chan struct{})}
	for _, name := range order {
		r := &fakeRing{p: p, name: name, size: 1 << 20, recs: rings[name]}
		for i := range r.recs {
			p.total[r.recs[i].Type.Category()]++
		}
		p.rings = append(p.rings, r)
	}
	if step == 0 {
		p.clock = ^uint64(0)
	} else {
		// Start just before the first record.
		p.clock = ^uint64(0)
		for _, r := range p.rings {
			if len(r.recs) > 0 && r.recs[0].TsNs < p.clock {
				p.clock = r.recs[0].TsNs
			}
		}
	}
	return p
}

// Rings serves the fixture's rings by their script names.
func (p *fakeProbe) Rings() (lifecycle, syscalls sensor.Ring) {
	var others []sensor.Ring
	for _, r := range p.rings {
		if r.name == "lifecycle" {
			lifecycle = r
		} else {
			others = append(others, r)
		}
	}
	if len(others) > 1 {
		// The falco layout's rings, one per CPU group, read as one.
		return lifecycle, sensor.MergeRings(others...)
	}
	return lifecycle, others[0]
}

func (p *fakeProbe) Counters() (event.Counters, error) {
	var c event.Counters
	for i := range c.Attempted {
		c.Attempted[i] = p.total[i] + p.dropped[i] + p.bogus[i]
		c.Dropped[i] = p.dropped[i]
	}
	return c, nil
}

func (p *fakeProbe) SetShedding(bool) error { p.shedCalls.Add(1); return nil }
func (p *fakeProbe) Close() error           { p.closed.Store(true); return nil }
func (p *fakeProbe) Detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.onDetach != nil && !p.detached.Load() {
		p.onDetach()
	}
	p.detached.Store(true)
	return nil
}

// allDrained reports whether every ring served every record. Caller holds mu.
func (p *fakeProbe) allDrained() bool {
	for _, r := range p.rings {
		if r.pos < len(r.recs) {
			return false
		}
	}
	return true
}

func (r *fakeRing) Name() string { return r.name }

func (r *fakeRing) Size() int { return r.size }

func (r *fakeRing) Flush() error {
	r.p.mu.Lock()
	r.flushed = true
	r.flushes++
	r.p.mu.Unlock()
	return nil
}

func (r *fakeRing) Pending() int {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return (len(r.recs) - r.pos) * 64
}

func (r *fakeRing) Read(ev *event.Event, deadline time.Time) error {
	p := r.p
	p.mu.Lock()
	if p.step > 0 && p.clock != ^uint64(0) {
		p.clock += p.step
	}
	if r.pos < len(r.recs) && r.recs[r.pos].TsNs <= p.clock {
		rec := &r.recs[r.pos]
		r.pos++
		exe, args := ev.Exe, ev.Args
		*ev = *rec
		ev.Exe = append(exe[:0], rec.Exe...)
		ev.Args = append(args[:0], rec.Args...)
		if p.detached.Load() {
			p.readsAfter.Add(1)
		}
		p.delivered.Add(1)
		p.mu.Unlock()
		return nil
	}
	if p.allDrained() {
		p.drainedOnce.Do(func() { close(p.drained) })
	}
	if r.flushed {
		r.flushed = false
		p.mu.Unlock()
		return bpf.ErrFlushed
	}
	p.mu.Unlock()
	p.readOnEmpty.Add(1)
	// Like a real ring, wait a little for data when the deadline allows, so
	// the reader does not spin.
	if d := time.Until(deadline); d > 0 {
		time.Sleep(min(d, 200*time.Microsecond))
	}
	return os.ErrDeadlineExceeded
}

// ---- recording publisher ---------------------------------------------

type recPub struct {
	mu   sync.Mutex
	msgs []bus.Msg
	fail func(bus.Msg) error
}

func (r *recPub) Publish(_ context.Context, m bus.Msg) error {
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	c := bus.Msg{Subject: m.Subject, ID: m.ID, Data: bytes.Clone(m.Data), Schema: m.Schema}
	if m.Header != nil {
		c.Header = m.Header
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, c)
	r.mu.Unlock()
	return nil
}

func (r *recPub) all() []bus.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Msg(nil), r.msgs...)
}

// ---- scripted workload -----------------------------------------------

const testNode = "node-1"

// script returns fork, exec, syscalls and exit for procs processes, plus a
// few syscalls of an unknown process, in TsNs order from base.
func script(base uint64, procs int) []event.Event {
	var evs []event.Event
	ts := base
	next := func() uint64 { ts += 1000; return ts }
	for k := 0; k < procs; k++ {
		pid := uint32(1000 + k)
		start := base + uint64(k)*10
		var e event.Event
		e = event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, Type: event.TypeFork, CPU: uint16(k % 4)}, PPid: 1}
		e.SetComm("sh")
		evs = append(evs, e)
		e = event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: 1,
			Exe: []byte("/usr/bin/worker"), Args: []byte(fmt.Sprintf("worker\x00-n\x00%d\x00", k))}
		e.SetComm(fmt.Sprintf("worker-%d", k))
		evs = append(evs, e)
		for s := 0; s < 3; s++ {
			evs = append(evs, event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeSyscall},
				Syscall: uint32(s), Ret: int64(s), SysArgs: [3]uint64{uint64(k), uint64(s), 7}})
		}
		e = event.Event{Header: event.Header{TsNs: next(), StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExit, Flags: event.FlagGroupDead}, PPid: 1, ExitCode: int32(k)}
		e.SetComm(fmt.Sprintf("worker-%d", k))
		evs = append(evs, e)
	}
	// A process whose lifecycle records were dropped: syscalls only.
	for s := 0; s < 4; s++ {
		evs = append(evs, event.Event{Header: event.Header{TsNs: next(), StartNs: base + 5, Tid: 9999, Pid: 9999, ExecID: 1, Type: event.TypeSyscall}, Syscall: 42})
	}
	return evs
}

func splitByRing(evs []event.Event) map[string][]event.Event {
	m := map[string][]event.Event{}
	for _, e := range evs {
		if e.Type.Category() == event.CategoryLifecycle {
			m["lifecycle"] = append(m["lifecycle"], e)
		} else {
			m["syscall"] = append(m["syscall"], e)
		}
	}
	return m
}

// fakeProc writes a minimal /proc with the given processes.
func fakeProc(t *testing.T, procs ...event.ProcInfo) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(p.Pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n",
			p.Pid, p.Comm, p.PPid, p.Pid, p.Pid, p.StartNs/10_000_000)
		files := map[string]string{
			"stat":    stat,
			"status":  fmt.Sprintf("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n", p.Comm, p.UID, p.UID, p.UID, p.UID, p.GID, p.GID, p.GID, p.GID),
			"cmdline": strings.ReplaceAll(p.Cmdline, " ", "\x00") + "\x00",
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// runSensor runs sensor.Run with p until p's rings are drained, then
// cancels and returns the result.
func runSensor(t *testing.T, cfg sensor.Config, p *fakeProbe) (sensor.Result, error) {
	t.Helper()
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return p, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		res sensor.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := sensor.Run(ctx, cfg)
		done <- out{r, err}
	}()
	select {
	case <-p.drained:
	case o := <-done:
		t.Fatalf("sensor.Run returned before the fake ring was drained: %v", o.err)
	case <-time.After(60 * time.Second):
		t.Fatal("fake ring not drained within 60s")
	}
	cancel()
	select {
	case o := <-done:
		return o.res, o.err
	case <-time.After(60 * time.Second):
		t.Fatal("sensor.Run did not return within 60s of cancel")
	}
	return sensor.Result{}, nil
}

func baseConfig(t *testing.T, pub bus.Publisher) sensor.Config {
	return sensor.Config{
		Node:           testNode,
		BootID:         "boot-abc",
		Publisher:      pub,
		BatchMaxEvents: 5,
		Procfs: procfs.FS{Root: fakeProc(t,
			event.ProcInfo{Pid: 1, PPid: 0, Comm: "init", Cmdline: "/sbin/init", StartNs: 10_000_000},
			event.ProcInfo{Pid: 4242, PPid: 1, UID: 1000, GID: 1000, Comm: "daemon", Cmdline: "daemon --serve", StartNs: 50_000_000},
		)},
	}
}

// published splits the recorded messages by kind and decodes them.
type published struct {
	snapshotIdx int
	snapshot    *event.Snapshot
	batches     []event.Batch
	batchMsgs   []bus.Msg
	stats       []event.Stats
	firstRawIdx int
}

func decodeAll(t *testing.T, msgs []bus.Msg) published {
	t.Helper()
	out := published{snapshotIdx: -1, firstRawIdx: -1}
	codec := event.NewCodec()
	for i, m := range msgs {
		switch m.Subject {
		case bus.SnapshotSubject(testNode):
			if out.snapshot != nil {
				t.Errorf("second snapshot at message %d", i)
			}
			s, err := event.DecodeSnapshot(m.Data)
			if err != nil {
				t.Fatalf("snapshot does not decode: %v", err)
			}
			out.snapshot, out.snapshotIdx = s, i
		case bus.RawSubject(testNode):
			var b event.Batch
			if err := codec.Decode(m.Data, &b); err != nil {
				t.Fatalf("raw batch %d does not decode: %v", len(out.batches), err)
			}
			// Decode reuses buffers; keep a deep copy.
			evs := make([]event.Event, len(b.Events))
			for j, e := range b.Events {
				evs[j] = e
				evs[j].Exe = bytes.Clone(e.Exe)
				evs[j].Args = bytes.Clone(e.Args)
			}
			b.Events = evs
			if out.firstRawIdx < 0 {
				out.firstRawIdx = i
			}
			out.batches = append(out.batches, b)
			out.batchMsgs = append(out.batchMsgs, m)
		case bus.StatsSubject(testNode):
			var st event.Stats
			if err := json.Unmarshal(m.Data, &st); err != nil {
				t.Fatalf("stats message does not decode as JSON event.Stats: %v", err)
			}
			out.stats = append(out.stats, st)
		default:
			t.Errorf("message %d on unexpected subject %q", i, m.Subject)
		}
	}
	return out
}

func sameEvent(a, b *event.Event) bool {
	return a.Header == b.Header && a.PPid == b.PPid && a.UID == b.UID && a.GID == b.GID && a.Comm == b.Comm &&
		bytes.Equal(a.Exe, b.Exe) && bytes.Equal(a.Args, b.Args) && a.ExitCode == b.ExitCode &&
		a.Syscall == b.Syscall && a.Ret == b.Ret && a.SysArgs == b.SysArgs
}

// checkCommon asserts what holds for every layout.
func checkCommon(t *testing.T, p published, cfg sensor.Config, res sensor.Result, want []event.Event, dropped [event.NumCategories]uint64) {
	t.Helper()
	// Snapshot first.
	if p.snapshot == nil || p.snapshotIdx != 0 {
		t.Fatalf("snapshot published at index %d, want first message", p.snapshotIdx)
	}
	if p.snapshot.Node != testNode || p.snapshot.BootID != cfg.BootID || p.snapshot.SensorStartNs == 0 {
		t.Errorf("snapshot envelope = node %q boot %q start %d", p.snapshot.Node, p.snapshot.BootID, p.snapshot.SensorStartNs)
	}
	var daemon *event.ProcInfo
	for i := range p.snapshot.Procs {
		if p.snapshot.Procs[i].Pid == 4242 {
			daemon = &p.snapshot.Procs[i]
		}
	}
	if len(p.snapshot.Procs) != 2 || daemon == nil || daemon.Comm != "daemon" || daemon.UID != 1000 || daemon.Cmdline != "daemon --serve" {
		t.Errorf("snapshot procs = %+v, want init and daemon from the fake /proc", p.snapshot.Procs)
	}

	if len(p.batches) == 0 {
		t.Fatal("no raw batches published")
	}
	ids := map[string]bool{}
	var got []event.Event
	for i, b := range p.batches {
		m := p.batchMsgs[i]
		if b.Seq != uint64(i+1) {
			t.Errorf("batch %d has Seq %d, want %d (consecutive from 1)", i, b.Seq, i+1)
		}
		if ids[m.ID] {
			t.Errorf("batch %d reuses Nats-Msg-Id %q", i, m.ID)
		}
		ids[m.ID] = true
		if m.ID != b.MsgID() {
			t.Errorf("batch %d published with id %q, envelope says %q", i, m.ID, b.MsgID())
		}
		if m.Schema != event.SchemaVersion {
			t.Errorf("batch %d: published with schema %d, want %d (the %s header)", i, m.Schema, event.SchemaVersion, bus.HeaderSchema)
		}
		if b.Node != testNode || b.BootID != cfg.BootID || b.Schema != event.SchemaVersion {
			t.Errorf("batch %d envelope: node %q boot %q schema %d", i, b.Node, b.BootID, b.Schema)
		}
		if b.SensorStartNs != p.snapshot.SensorStartNs {
			t.Errorf("batch %d SensorStartNs %d != snapshot's %d", i, b.SensorStartNs, p.snapshot.SensorStartNs)
		}
		// With two rings a batch closes between chunks only and may hold
		// up to twice BatchMaxEvents.
		maxEvents := cfg.BatchMaxEvents
		if cfg.Probe.Layout == ringspec.LayoutSplit {
			maxEvents *= 2
		}
		if len(b.Events) == 0 || len(b.Events) > maxEvents {
			t.Errorf("batch %d has %d events, want 1..%d", i, len(b.Events), maxEvents)
		}
		if len(b.Events) > 0 && (b.FirstTsNs != b.Events[0].TsNs || b.LastTsNs != b.Events[len(b.Events)-1].TsNs) {
			t.Errorf("batch %d time range [%d,%d] does not match its events", i, b.FirstTsNs, b.LastTsNs)
		}
		if b.Counters.Dropped != dropped {
			t.Errorf("batch %d carries dropped %v, want %v", i, b.Counters.Dropped, dropped)
		}
		got = append(got, b.Events...)
	}
	// Cumulative delivered counters never go back.
	for i := 1; i < len(p.batches); i++ {
		for c := 0; c < event.NumCategories; c++ {
			if p.batches[i].Counters.Delivered[c] < p.batches[i-1].Counters.Delivered[c] {
				t.Errorf("batch %d delivered[%d] went back", i, c)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("published %d events, scripted %d", len(got), len(want))
	}

	// Final stats.
	if len(p.stats) == 0 {
		t.Fatal("no stats published")
	}
	final := p.stats[len(p.stats)-1]
	if !final.Final {
		t.Errorf("last stats message has Final=false")
	}
	for i, st := range p.stats[:len(p.stats)-1] {
		if st.Final {
			t.Errorf("stats message %d of %d is Final", i, len(p.stats))
		}
	}
	var wantDelivered [event.NumCategories]uint64
	for _, e := range want {
		wantDelivered[e.Type.Category()]++
	}
	if final.Counters.Delivered != wantDelivered || final.Counters.Dropped != dropped {
		t.Errorf("final stats delivered %v dropped %v, want %v %v", final.Counters.Delivered, final.Counters.Dropped, wantDelivered, dropped)
	}
	for c := 0; c < event.NumCategories; c++ {
		if final.Counters.Attempted[c] != final.Counters.Delivered[c]+final.Counters.Dropped[c] {
			t.Errorf("final stats %s: attempted %d != delivered %d + dropped %d", event.Category(c),
				final.Counters.Attempted[c], final.Counters.Delivered[c], final.Counters.Dropped[c])
		}
	}
	if final.LastBatchSeq != uint64(len(p.batches)) || final.Batches != uint64(len(p.batches)) {
		t.Errorf("final stats: last seq %d, batches %d; %d batches were published", final.LastBatchSeq, final.Batches, len(p.batches))
	}
	if final.Node != testNode || final.SensorStartNs != p.snapshot.SensorStartNs {
		t.Errorf("final stats node %q start %d", final.Node, final.SensorStartNs)
	}
	// Last batch's counters are the full account too (closed after the drain).
	if last := p.batches[len(p.batches)-1]; last.Counters.Delivered != wantDelivered {
		t.Errorf("last batch delivered %v, want %v", last.Counters.Delivered, wantDelivered)
	}

	if !res.Consistent {
		t.Errorf("Result.Consistent = false")
	}
	if res.Counters.Delivered != wantDelivered || res.Counters.Dropped != dropped {
		t.Errorf("Result counters delivered %v dropped %v", res.Counters.Delivered, res.Counters.Dropped)
	}
	if res.Batches != uint64(len(p.batches)) || res.PublishErrors != 0 {
		t.Errorf("Result batches %d publish errors %d; published %d", res.Batches, res.PublishErrors, len(p.batches))
	}
	if res.SensorStartNs != p.snapshot.SensorStartNs {
		t.Errorf("Result.SensorStartNs %d != snapshot's %d", res.SensorStartNs, p.snapshot.SensorStartNs)
	}
}

func TestRunSharedRing(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 5)
	dropped := [event.NumCategories]uint64{3, 11}
	probe := newFakeProbe(0, dropped, map[string][]event.Event{"shared": evs}, "shared")
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	res, err := runSensor(t, cfg, probe)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !probe.detached.Load() || !probe.closed.Load() {
		t.Errorf("probe detached=%v closed=%v; want both after Run", probe.detached.Load(), probe.closed.Load())
	}
	p := decodeAll(t, pub.all())
	checkCommon(t, p, cfg, res, evs, dropped)
	if p.firstRawIdx <= p.snapshotIdx {
		t.Errorf("raw batch before the snapshot")
	}

	// One ring: published in exactly the ring's order.
	i := 0
	for _, b := range p.batches {
		for j := range b.Events {
			if i < len(evs) && !sameEvent(&b.Events[j], &evs[i]) {
				t.Fatalf("event %d published as %+v, want %+v", i, b.Events[j], evs[i])
			}
			i++
		}
	}
	if res.Ring.Layout != "shared" || res.Ring.SizeBytes != 1<<20 {
		t.Errorf("Result.Ring = %+v", res.Ring)
	}
}

func TestRunSplitRingsSortedWithinBatch(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 12)
	dropped := [event.NumCategories]uint64{0, 0}
	// Step: roughly one record per read becomes visible, so the reader sees
	// the rings fill concurrently, as from the kernel.
	probe := newFakeProbe(700, dropped, splitByRing(evs), "lifecycle", "syscall")
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.Probe.Layout = ringspec.LayoutSplit
	cfg.BatchMaxEvents = 7
	res, err := runSensor(t, cfg, probe)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	p := decodeAll(t, pub.all())
	checkCommon(t, p, cfg, res, evs, dropped)

	seen := map[uint64]int{}
	for bi, b := range p.batches {
		for j := 1; j < len(b.Events); j++ {
			if b.Events[j].TsNs < b.Events[j-1].TsNs {
				t.Errorf("batch %d (seq %d) not sorted by time: event %d ts %d after ts %d (%v)",
					bi, b.Seq, j, b.Events[j].TsNs, b.Events[j-1].TsNs, tsList(b.Events))
				break
			}
		}
		for j := range b.Events {
			seen[b.Events[j].TsNs]++
		}
	}
	// Every scripted record exactly once (TsNs are unique in the script).
	for i := range evs {
		if seen[evs[i].TsNs] != 1 {
			t.Errorf("record ts %d (%s pid %d) published %d times", evs[i].TsNs, evs[i].Type, evs[i].Pid, seen[evs[i].TsNs])
		}
	}
	if res.Ring.Layout != "split" || res.Ring.LifecycleSizeBytes != 1<<20 || res.Ring.SizeBytes != 1<<20 {
		t.Errorf("Result.Ring = %+v", res.Ring)
	}
}

// TestRunDrainReadsToTheFlush: records the kernel finishes while the links
// close are in the rings only after Detach. The drain flushes every ring
// once and reads each up to its flush marker, so they are published and the
// counters agree without a second pass.
func TestRunDrainReadsToTheFlush(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 6)
	rings := splitByRing(evs)
	// Hold back the last two records of each ring until Detach.
	held := map[string][]event.Event{}
	for name, recs := range rings {
		rings[name], held[name] = recs[:len(recs)-2], recs[len(recs)-2:]
	}
	probe := newFakeProbe(0, [event.NumCategories]uint64{}, rings, "lifecycle", "syscall")
	for _, r := range probe.rings {
		for _, e := range held[r.name] {
			probe.total[e.Type.Category()]++
		}
	}
	probe.onDetach = func() {
		for _, r := range probe.rings {
			r.recs = append(r.recs, held[r.name]...)
		}
	}
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.Probe.Layout = ringspec.LayoutSplit
	res, err := runSensor(t, cfg, probe)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.Consistent {
		t.Error("counters inconsistent after the drain")
	}
	p := decodeAll(t, pub.all())
	n := 0
	for _, b := range p.batches {
		n += len(b.Events)
	}
	if n != len(evs) {
		t.Errorf("published %d of %d events: the drain missed the records finished at Detach", n, len(evs))
	}
	probe.mu.Lock()
	defer probe.mu.Unlock()
	for _, r := range probe.rings {
		if r.flushes != 1 || r.flushed || r.pos != len(r.recs) {
			t.Errorf("ring %s: %d flushes, marker pending %v, read %d of %d; want one flush read to its marker",
				r.name, r.flushes, r.flushed, r.pos, len(r.recs))
		}
	}
}

func tsList(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s@%d", e.Type, e.TsNs%1_000_000)
	}
	return out
}

func TestRunInconsistentCounters(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 2)
	probe := newFakeProbe(0, [event.NumCategories]uint64{1, 0}, map[string][]event.Event{"shared": evs}, "shared")
	probe.bogus[event.CategorySyscall] = 3 // attempts the kernel counted but nobody delivered or dropped
	pub := &recPub{}
	res, err := runSensor(t, baseConfig(t, pub), probe)
	if err == nil {
		t.Fatal("Run returned nil with attempted != delivered + dropped")
	}
	if !strings.Contains(err.Error(), "inconsistent") {
		t.Errorf("error %q does not say the counters are inconsistent", err)
	}
	if res.Consistent {
		t.Error("Result.Consistent = true")
	}
	// It still published everything and the final stats.
	p := decodeAll(t, pub.all())
	n := 0
	for _, b := range p.batches {
		n += len(b.Events)
	}
	if n != len(evs) {
		t.Errorf("published %d events, want %d even when counters disagree", n, len(evs))
	}
	if len(p.stats) == 0 || !p.stats[len(p.stats)-1].Final {
		t.Error("no final stats after an inconsistent drain")
	}
}

func TestRunConfigErrors(t *testing.T) {
	loaded := false
	load := func(bpf.Config) (sensor.Probe, error) {
		loaded = true
		return newFakeProbe(0, [2]uint64{}, nil), nil
	}
	for _, tc := range []struct {
		name string
		cfg  sensor.Config
		want string
	}{
		{"dotted node", sensor.Config{Node: "a.b", BootID: "b", Publisher: &recPub{}, LoadProbe: load}, "a.b"},
		{"wildcard node", sensor.Config{Node: "*", BootID: "b", Publisher: &recPub{}, LoadProbe: load}, "*"},
		{"empty node", sensor.Config{Node: "", BootID: "b", Publisher: &recPub{}, LoadProbe: load}, "empty"},
		{"no publisher", sensor.Config{Node: "n1", BootID: "b", LoadProbe: load}, "publisher"},
		{"batch too big", sensor.Config{Node: "n1", BootID: "b", Publisher: &recPub{}, LoadProbe: load, BatchMaxEvents: sensor.MaxBatchEventsForEnriched + 1}, fmt.Sprintf("at most %d events", sensor.MaxBatchEventsForEnriched)},
		{"bad water marks", sensor.Config{Node: "n1", BootID: "b", Publisher: &recPub{}, LoadProbe: load, ShedHighWater: 0.5, ShedLowWater: 0.9}, "water"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loaded = false
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := sensor.Run(ctx, tc.cfg)
			if err == nil {
				t.Fatal("Run accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sensor:") {
				t.Errorf("error %q: want a sensor: error mentioning %q", err, tc.want)
			}
			if loaded {
				t.Error("probe loaded despite a bad config")
			}
		})
	}
}

func TestRunLoadProbeError(t *testing.T) {
	boom := errors.New("no CAP_BPF")
	_, err := sensor.Run(context.Background(), sensor.Config{Node: "n1", BootID: "b", Publisher: &recPub{},
		LoadProbe: func(bpf.Config) (sensor.Probe, error) { return nil, boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the load error wrapped", err)
	}
}

func TestRunSnapshotPublishError(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 1)
	probe := newFakeProbe(0, [2]uint64{}, map[string][]event.Event{"shared": evs}, "shared")
	pub := &recPub{fail: func(m bus.Msg) error {
		if m.Subject == bus.SnapshotSubject(testNode) {
			return errors.New("nats down")
		}
		return nil
	}}
	cfg := baseConfig(t, pub)
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return probe, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := sensor.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("Run = %v, want a snapshot publish error (no batch may precede the snapshot)", err)
	}
	if len(pub.all()) != 0 {
		t.Errorf("published %d messages after the snapshot failed", len(pub.all()))
	}
	if !probe.closed.Load() {
		t.Error("probe not closed after a failed run")
	}
}

// endlessProbe produces syscall records for as long as it is attached;
// with gated set, only once open is (an empty ring until then).
type endlessProbe struct {
	delivered atomic.Uint64
	detached  atomic.Bool
	flushed   atomic.Bool
	gated     bool
	open      atomic.Bool
}

func (p *endlessProbe) Rings() (lifecycle, syscalls sensor.Ring) { return nil, endlessRing{p} }
func (p *endlessProbe) Counters() (event.Counters, error) {
	var c event.Counters
	c.Attempted[event.CategorySyscall] = p.delivered.Load()
	return c, nil
}
func (p *endlessProbe) SetShedding(bool) error { return nil }
func (p *endlessProbe) Detach() error          { p.detached.Store(true); return nil }
func (p *endlessProbe) Close() error           { return nil }

type endlessRing struct{ p *endlessProbe }

func (r endlessRing) Name() string { return "shared" }
func (r endlessRing) Size() int    { return 1 << 20 }
func (r endlessRing) Pending() int { return 0 }
func (r endlessRing) Flush() error { r.p.flushed.Store(true); return nil }
func (r endlessRing) Read(ev *event.Event, deadline time.Time) error {
	if r.p.detached.Load() {
		if r.p.flushed.Swap(false) {
			return bpf.ErrFlushed
		}
		return os.ErrDeadlineExceeded
	}
	if r.p.gated && !r.p.open.Load() {
		// An empty ring waits until the deadline, as a real one does.
		if d := time.Until(deadline); d > 0 {
			time.Sleep(d)
		}
		return os.ErrDeadlineExceeded
	}
	n := r.p.delivered.Add(1)
	ev.Reset()
	ev.Header = event.Header{TsNs: n, StartNs: 1, Pid: 7, Tid: 7, Type: event.TypeSyscall}
	time.Sleep(50 * time.Microsecond) // a modest event rate
	return nil
}

// overlapPub records whether two Publish calls were ever in flight at once.
// A stats publish holds the line open until a batch publish shows up (or a
// generous timeout passes), so that a sensor publishing from two goroutines
// is caught every time rather than by luck.
type overlapPub struct {
	inflight     atomic.Int32
	overlap      atomic.Bool
	statsActive  atomic.Bool
	holdUsed     atomic.Bool
	batchEntered chan struct{}
	enteredOnce  sync.Once
	statsDone    chan struct{}
	doneOnce     sync.Once
}

func (p *overlapPub) Publish(_ context.Context, m bus.Msg) error {
	if p.inflight.Add(1) > 1 {
		p.overlap.Store(true)
	}
	defer p.inflight.Add(-1)
	switch m.Subject {
	case bus.RawSubject(testNode):
		if p.statsActive.Load() {
			p.enteredOnce.Do(func() { close(p.batchEntered) })
		}
	case bus.StatsSubject(testNode):
		if p.holdUsed.CompareAndSwap(false, true) { // hold only the first one
			p.statsActive.Store(true)
			select {
			case <-p.batchEntered:
			case <-time.After(2 * time.Second):
			}
			p.statsActive.Store(false)
			p.doneOnce.Do(func() { close(p.statsDone) })
		}
	}
	return nil
}

// bus.Publisher need only be safe for one goroutine (AsyncPublisher is not
// safe for more), so the sensor must not publish stats from its sampler
// while the reader publishes a batch.
func TestRunPublishesFromOneGoroutineAtATime(t *testing.T) {
	probe := &endlessProbe{}
	pub := &overlapPub{batchEntered: make(chan struct{}), statsDone: make(chan struct{})}
	cfg := sensor.Config{
		Node: testNode, BootID: "b", Publisher: pub, Procfs: procfs.FS{Root: fakeProc(t)},
		BatchMaxEvents: 64, BatchMaxDelay: 2 * time.Millisecond,
		SampleInterval: 5 * time.Millisecond, StatsInterval: 5 * time.Millisecond,
		LoadProbe: func(bpf.Config) (sensor.Probe, error) { return probe, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := sensor.Run(ctx, cfg)
		done <- err
	}()
	select {
	case <-pub.statsDone:
	case <-time.After(60 * time.Second):
		t.Fatal("no stats published within 60s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
	}
	if pub.overlap.Load() {
		t.Fatal("the sensor called Publisher.Publish from two goroutines at once (stats from the sampler during a batch publish)")
	}
}

// byCPUGroup deals the records over rings as the falco layout does: by the
// CPU that wrote them, cpusPerRing CPUs per ring.
func byCPUGroup(evs []event.Event, cpusPerRing int) (map[string][]event.Event, []string) {
	m := map[string][]event.Event{}
	var names []string
	for i := range evs {
		name := fmt.Sprintf("cpus%d", int(evs[i].CPU)/cpusPerRing)
		if _, ok := m[name]; !ok {
			names = append(names, name)
		}
		m[name] = append(m[name], evs[i])
	}
	sort.Strings(names)
	return m, names
}

// TestRunFalcoRingsMerged: the falco layout's rings (one per CPU group) are
// read as one stream, every record once, each batch in time order, and the
// result names the ring count.
func TestRunFalcoRingsMerged(t *testing.T) {
	evs := script(sensor.MonotonicNs(), 12)
	for i := range evs {
		evs[i].CPU = uint16(i % 6) // 6 CPUs, 2 per ring: 3 rings
	}
	rings, names := byCPUGroup(evs, 2)
	if len(names) != 3 {
		t.Fatalf("%d rings", len(names))
	}
	dropped := [event.NumCategories]uint64{0, 0}
	probe := newFakeProbe(700, dropped, rings, names...)
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.Probe.Layout = ringspec.LayoutFalco
	cfg.BatchMaxEvents = 9
	res, err := runSensor(t, cfg, probe)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	p := decodeAll(t, pub.all())
	checkCommon(t, p, cfg, res, evs, dropped)
	seen := map[uint64]int{}
	for bi, b := range p.batches {
		for j := 1; j < len(b.Events); j++ {
			if b.Events[j].TsNs < b.Events[j-1].TsNs {
				t.Errorf("batch %d not sorted by time: %v", bi, tsList(b.Events))
				break
			}
		}
		for j := range b.Events {
			seen[b.Events[j].TsNs]++
		}
	}
	for i := range evs {
		if seen[evs[i].TsNs] != 1 {
			t.Errorf("record ts %d (%s pid %d) published %d times", evs[i].TsNs, evs[i].Type, evs[i].Pid, seen[evs[i].TsNs])
		}
	}
	if res.Ring.Layout != ringspec.LayoutFalco || res.Ring.Rings != 3 || res.Ring.CPUsPerRing != ringspec.DefaultCPUsPerRing || res.Ring.SizeBytes != 1<<20 {
		t.Errorf("Result.Ring = %+v", res.Ring)
	}
}

// A batch is cut by bytes as well as by events: with exec records of the
// largest exe and arguments, every published batch stays within
// BatchMaxBytes (so the raw stream, which counts every node's share in
// messages of its maximum size, never refuses one), and nothing is lost.
func TestRunCutsBatchesByBytes(t *testing.T) {
	base := sensor.MonotonicNs()
	var evs []event.Event
	for k := 0; k < 40; k++ {
		pid := uint32(2000 + k)
		e := event.Event{Header: event.Header{TsNs: base + uint64(k+1)*1000, StartNs: base, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: 1,
			Exe: bytes.Repeat([]byte{'/'}, event.MaxExeLen), Args: append(bytes.Repeat([]byte{'a'}, event.MaxArgsLen-1), 0)}
		e.SetComm("big")
		evs = append(evs, e)
	}
	probe := newFakeProbe(0, [event.NumCategories]uint64{}, map[string][]event.Event{"shared": evs}, "shared")
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.BatchMaxEvents, cfg.BatchMaxBytes = 1024, 64<<10
	if _, err := runSensor(t, cfg, probe); err != nil {
		t.Fatalf("Run: %v", err)
	}
	n, batches := 0, 0
	for _, m := range pub.all() {
		if m.Subject != bus.RawSubject(testNode) {
			continue
		}
		batches++
		if len(m.Data) > cfg.BatchMaxBytes {
			t.Errorf("batch %d: %d bytes, above BatchMaxBytes %d", batches, len(m.Data), cfg.BatchMaxBytes)
		}
		var b event.Batch
		if err := event.NewCodec().Decode(m.Data, &b); err != nil {
			t.Fatal(err)
		}
		n += len(b.Events)
	}
	if n != len(evs) || batches < 2 {
		t.Errorf("%d events in %d batches, want all %d in more than one", n, batches, len(evs))
	}
}
