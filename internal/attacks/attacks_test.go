package attacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// world is one NATS server run from `ringwise nats --init-auth`'s config,
// with the streams its admin made, and services that each connect with
// their own identity.
type world struct {
	t     *testing.T
	url   string
	files bus.AuthFiles
	admin jetstream.JetStream
	ctx   context.Context
}

func newWorld(t *testing.T, so bus.StreamOptions, nodes ...string) *world {
	t.Helper()
	files, err := bus.WriteAuthConfig(filepath.Join(t.TempDir(), "auth"), nodes)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{ConfigFile: files.Config, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	// A hang guard only, never a judge of speed.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w := &world{t: t, url: srv.URL(), files: files, ctx: ctx}
	_, w.admin = w.connect(bus.RoleAdmin, "")
	so.Memory = true
	if err := bus.EnsureStreams(ctx, w.admin, so); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) connect(role bus.Role, node string) (*nats.Conn, jetstream.JetStream) {
	w.t.Helper()
	opts, err := bus.Auth{CredsFile: w.files.Seeds[bus.IdentityName(role, node)], Role: role, Node: node}.Options()
	if err != nil {
		w.t.Fatal(err)
	}
	opts = append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := bus.Connect(w.url, "attack-test-"+bus.IdentityName(role, node), opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		w.t.Fatal(err)
	}
	return nc, js
}

// run starts f in the background; the cleanup cancels it and waits.
func (w *world) run(name string, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				w.t.Errorf("%s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			w.t.Errorf("%s did not return after cancel", name)
		}
	})
}

func (w *world) startEnricher(cfg enricher.Config) *enricher.Enricher {
	w.t.Helper()
	nc, js := w.connect(bus.RoleEnricher, "")
	cfg.JS, cfg.NC = js, nc
	e, err := enricher.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.run("enricher", e.Run)
	return e
}

func (w *world) startAnalyzer() *analyzer.Analyzer {
	w.t.Helper()
	nc, js := w.connect(bus.RoleAnalyzer, "")
	a := analyzer.New(analyzer.Config{JS: js, NC: nc})
	w.run("analyzer", a.Run)
	return a
}

// eventually polls cond until it holds or the world's guard expires.
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	for !cond() {
		select {
		case <-w.ctx.Done():
			w.t.Fatalf("never: %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func subjectCount(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

const (
	boot = "boot-1"
	run  = uint64(1e9)
)

// sensor publishes as node's identity, as the sensor does.
type sensor struct {
	w    *world
	node string
	js   jetstream.JetStream
	seq  uint64
}

func (w *world) sensor(node string) *sensor {
	_, js := w.connect(bus.RoleSensor, node)
	return &sensor{w: w, node: node, js: js}
}

func (s *sensor) publish(subject, id string, data []byte) error {
	ctx, cancel := context.WithTimeout(s.w.ctx, 5*time.Second)
	defer cancel()
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	_, err := s.js.Publish(ctx, subject, data, opts...)
	return err
}

func (s *sensor) snapshot(procs ...event.ProcInfo) error {
	data, err := event.EncodeSnapshot(&event.Snapshot{Node: s.node, BootID: boot, SensorStartNs: run, Part: 1, Parts: 1, Procs: procs})
	if err != nil {
		s.w.t.Fatal(err)
	}
	return s.publish(bus.SnapshotSubject(s.node), "", data)
}

func (s *sensor) batch(events ...event.Event) error {
	s.seq++
	b := &event.Batch{Node: s.node, BootID: boot, SensorStartNs: run, Seq: s.seq, Events: events}
	data, err := event.NewCodec().Encode(b)
	if err != nil {
		s.w.t.Fatal(err)
	}
	return s.publish(bus.RawSubject(s.node), b.MsgID(), data)
}

func (s *sensor) stats(n, dropped uint64) error {
	st := event.Stats{Node: s.node, BootID: boot, SensorStartNs: run, Batches: s.seq, LastBatchSeq: s.seq}
	for c := range st.Counters.Attempted {
		st.Counters.Attempted[c], st.Counters.Delivered[c], st.Counters.Dropped[c] = n+dropped, n, dropped
	}
	data, _ := json.Marshal(&st)
	return s.publish(bus.StatsSubject(s.node), "", data)
}

func execEvent(ts uint64, pid uint32, start uint64, comm, exe string) event.Event {
	e := event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: 1,
		Exe: []byte(exe), Args: []byte(comm + "\x00")}
	e.SetComm(comm)
	return e
}

func sysEvent(ts uint64, pid uint32, start uint64) event.Event {
	return event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeSyscall}, Ret: 1}
}

// Forged snapshot and stats: without the node's identity they cannot
// arrive at all; with it (a compromised node), the snapshot cannot turn a
// live python3 into sshd and the stats cannot move the drop rate.
func TestForgedSnapshotAndStats(t *testing.T) {
	w := newWorld(t, bus.StreamOptions{}, "vm", "evil")
	e := w.startEnricher(enricher.Config{})
	a := w.startAnalyzer()
	vm := w.sensor("vm")

	if err := vm.snapshot(event.ProcInfo{Pid: 1, StartNs: 1e6, Comm: "systemd", ExePath: "/sbin/init"}); err != nil {
		t.Fatal(err)
	}
	if err := vm.batch(execEvent(2e9, 500, 2e9, "python3", "/usr/bin/python3")); err != nil {
		t.Fatal(err)
	}
	if err := vm.stats(100, 0); err != nil {
		t.Fatal(err)
	}

	// Without vm's identity: anonymous is refused, and another node's
	// identity cannot publish vm's snapshot or stats.
	if _, err := bus.Connect(w.url, "anonymous"); err == nil {
		t.Errorf("anonymous connection accepted")
	}
	evil := w.sensor("evil")
	forgedSnap, _ := event.EncodeSnapshot(&event.Snapshot{Node: "vm", BootID: boot, SensorStartNs: run, Part: 1, Parts: 1,
		Procs: []event.ProcInfo{{Pid: 500, StartNs: 2e9, Comm: "sshd", ExePath: "/usr/sbin/sshd"}}})
	if err := evil.publish(bus.SnapshotSubject("vm"), "", forgedSnap); err == nil {
		t.Errorf("node evil's identity published a snapshot for vm")
	}
	if err := evil.publish(bus.StatsSubject("vm"), "", []byte(`{"node":"vm"}`)); err == nil {
		t.Errorf("node evil's identity published stats for vm")
	}
	if n := subjectCount(t, w.admin, bus.StreamRaw, bus.SnapshotSubject("vm")); n != 1 {
		t.Errorf("%d snapshots stored for vm, want only its own 1", n)
	}

	// With vm's identity: the forged snapshot is merged, its contradicting
	// entry dropped; the forged stats jump is taken back.
	if err := vm.publish(bus.SnapshotSubject("vm"), "", forgedSnap); err != nil {
		t.Fatal(err)
	}
	if err := vm.stats(200, 1800); err != nil { // 90 % dropped
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := vm.batch(sysEvent(3e9+uint64(i), 500, 2e9)); err != nil {
			t.Fatal(err)
		}
	}
	if err := vm.stats(300, 0); err != nil {
		t.Fatal(err)
	}
	w.eventually("analyzer saw 6 events and 3 stats", func() bool {
		s := a.Summary("vm")
		return s.Analyzer.Events == 6 && s.Sensor.Attempted == 2*300
	})
	s := a.Summary("vm")
	if s.Sensor.DropPct != 0 {
		t.Errorf("drop %% = %.1f after the forged stats, want 0", s.Sensor.DropPct)
	}
	if s.Analyzer.Missing != 0 {
		t.Errorf("missing %d, want 0", s.Analyzer.Missing)
	}
	if st := e.Stats(); st.SnapshotEntries.Contradicting != 1 {
		t.Errorf("enricher snapshot entries %+v, want 1 contradicting", st.SnapshotEntries)
	}
	// Every event of python3 came out as python3, none as sshd.
	names := enrichedNames(t, w, "vm")
	for _, n := range names {
		if n != "python3" {
			t.Errorf("an event of pid 500 came out as %q", n)
		}
	}
	if len(names) != 6 {
		t.Errorf("%d enriched events, want 6", len(names))
	}
	// The counters are in /api/summary, per service.
	w.eventually("enricher's health in the analyzer's summary", func() bool {
		for name, h := range a.Summary("").Services {
			if strings.HasPrefix(name, "enricher/") && h.Limits["snapshot_entries_contradicting"] == 1 {
				return true
			}
		}
		return false
	})
	if h := a.Summary("").Services["analyzer"]; h.Limits["stats_outliers_removed"] != 1 {
		t.Errorf("analyzer health %+v, want 1 stats outlier removed", h)
	}
}

// enrichedNames returns the process name of every enriched event of node.
func enrichedNames(t *testing.T, w *world, node string) []string {
	t.Helper()
	c, err := w.admin.OrderedConsumer(w.ctx, bus.StreamEnriched, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.EnrichedSubject(node)}})
	if err != nil {
		t.Fatal(err)
	}
	codec := event.NewCodec()
	var names []string
	for {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		var b event.EnrichedBatch
		if err := codec.DecodeEnriched(m.Data(), &b); err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events {
			names = append(names, ev.ProcName)
		}
	}
}

// Junk cannot shut out a well-behaved node: a 20 MiB message is refused;
// a node's identity flooding its own subject far past the stream's bytes
// only pushes out its own old messages, and every batch of the
// well-behaved node is stored, enriched and counted.
func TestJunkCannotShutOutANode(t *testing.T) {
	// Sized so that one node's share (perNode messages of at most msgSize)
	// is below the stream's bytes: junk can push out only its own.
	const streamBytes, perNode, msgSize = 32 << 20, 100, 256 << 10
	w := newWorld(t, bus.StreamOptions{MaxBytes: streamBytes, RawMaxMsgsPerNode: perNode, RawMaxMsgSize: msgSize}, "good", "junk")
	a := w.startAnalyzer()
	e := w.startEnricher(enricher.Config{})
	good, junk := w.sensor("good"), w.sensor("junk")

	huge := bytes.Repeat([]byte{0xc1}, 20<<20)
	if err := junk.publish(bus.RawSubject("junk"), "", huge); err == nil {
		t.Errorf("a 20 MiB message was stored")
	}
	big := bytes.Repeat([]byte{0xc1}, msgSize-64)
	var wg sync.WaitGroup
	wg.Add(1)
	junkErrs := 0
	go func() { // 3x the stream's bytes, while the good node publishes
		defer wg.Done()
		for i := 0; i < 3*streamBytes/len(big); i++ {
			if junk.publish(bus.RawSubject("junk"), "", big) != nil {
				junkErrs++
			}
		}
	}()
	const batches = perNode // a node within its own limit
	if err := good.snapshot(event.ProcInfo{Pid: 700, StartNs: 5e8, Comm: "nginx", ExePath: "/usr/sbin/nginx"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < batches; i++ {
		if err := good.batch(sysEvent(1e9+uint64(i), 700, 5e8)); err != nil {
			t.Fatalf("good node's batch %d refused while junk floods: %v", i+1, err)
		}
	}
	wg.Wait()
	if n := subjectCount(t, w.admin, bus.StreamRaw, bus.RawSubject("junk")); n > perNode {
		t.Errorf("junk holds %d messages, above its per-node limit of %d", n, perNode)
	}
	w.eventually("analyzer counted every good event", func() bool {
		return a.Summary("good").Analyzer.Events == batches
	})
	s := a.Summary("good")
	if s.Analyzer.Missing != 0 || s.Analyzer.BatchGaps != 0 {
		t.Errorf("good node: %d missing, %d gaps", s.Analyzer.Missing, s.Analyzer.BatchGaps)
	}
	if st := e.Stats(); st.SeqGaps != 0 {
		t.Errorf("enricher saw %d of the good node's batches missing", st.SeqGaps)
	}
	if bad := e.Stats().BadInput; bad["malformed"] == 0 {
		t.Errorf("junk the enricher read was not counted as malformed: %v", bad)
	}
	t.Logf("junk: %d of %d publishes refused (none expected: DiscardOld); enricher bad input %v", junkErrs, 3*streamBytes/len(big), e.Stats().BadInput)
}

// One node can never push out another node's data: with the streams sized
// for the nodes of the identities (StreamOptions.Nodes), a node flooding
// every subject it may publish on with maximum-size messages, far past the
// streams' bytes, neither gets another node's new messages refused nor
// removes any of its unconsumed ones (no service reads while it floods);
// it pushes out only its own. The control run, sized as before (per-node
// limits that do not fit the stream together), shows the flood does push
// out the other node's unconsumed batches there.
func TestFloodCannotPushOutAnotherNode(t *testing.T) {
	const streamBytes, msgSize = 8 << 20, 64 << 10
	// flood returns what the good node published and what it still has.
	flood := func(t *testing.T, so bus.StreamOptions) (w *world, published, goodRaw, goodStats uint64) {
		so.MaxBytes, so.RawMaxMsgSize, so.StatsMaxMsgSize = streamBytes, msgSize, msgSize
		w = newWorld(t, so, "good", "junk")
		good, junk := w.sensor("good"), w.sensor("junk")
		if err := good.snapshot(event.ProcInfo{Pid: 700, StartNs: 5e8, Comm: "nginx", ExePath: "/usr/sbin/nginx"}); err != nil {
			t.Fatal(err)
		}
		// Within its own per-node limit (31 batches here): what the good
		// node has is all it published.
		const before, after = 15, 5
		published = before + after
		for i := 0; i < before; i++ {
			if err := good.batch(sysEvent(1e9+uint64(i), 700, 5e8)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			if err := good.stats(uint64(10*(i+1)), 0); err != nil {
				t.Fatal(err)
			}
		}
		// Maximum-size messages (no headers: the payload is all of
		// MaxMsgSize) on each of junk's subjects, 3x the stream's bytes.
		full := bytes.Repeat([]byte{0xc1}, msgSize)
		for _, subj := range []string{bus.RawSubject("junk"), bus.SnapshotSubject("junk"), bus.StatsSubject("junk")} {
			for i := 0; i < 3*streamBytes/msgSize; i++ {
				if err := junk.publish(subj, "", full); err != nil {
					t.Fatalf("junk's own message %d on %s refused: %v", i+1, subj, err)
				}
				if i%128 == 0 { // the good node goes on meanwhile
					if err := good.batch(sysEvent(2e9+uint64(i), 700, 5e8)); err != nil {
						t.Fatalf("good node's batch refused while junk floods: %v", err)
					}
					published++
				}
			}
		}
		for i := 0; i < after; i++ {
			if err := good.batch(sysEvent(3e9+uint64(i), 700, 5e8)); err != nil {
				t.Fatalf("good node's batch refused after the flood: %v", err)
			}
		}
		return w, published, subjectCount(t, w.admin, bus.StreamRaw, bus.RawSubject("good")), subjectCount(t, w.admin, bus.StreamStats, bus.StatsSubject("good"))
	}

	t.Run("strict", func(t *testing.T) {
		w, published, raw, stats := flood(t, bus.StreamOptions{Nodes: 2})
		if raw != published {
			t.Errorf("good node's raw subject holds %d of its %d unconsumed batches: junk pushed some out", raw, published)
		}
		if snap := subjectCount(t, w.admin, bus.StreamRaw, bus.SnapshotSubject("good")); snap != 1 {
			t.Errorf("good node's snapshot: %d stored, want its 1", snap)
		}
		if stats != 3 {
			t.Errorf("good node's stats: %d of its 3 kept", stats)
		}
		cfgs, err := bus.StreamConfigs(bus.StreamOptions{Memory: true, MaxBytes: streamBytes, RawMaxMsgSize: msgSize, StatsMaxMsgSize: msgSize, Nodes: 2})
		if err != nil {
			t.Fatal(err)
		}
		perNode := uint64(cfgs[0].MaxMsgsPerSubject)
		if published > perNode {
			t.Fatalf("the good node published %d batches, above its own limit %d: the test is wrong", published, perNode)
		}
		if n := subjectCount(t, w.admin, bus.StreamRaw, bus.RawSubject("junk")); n != perNode {
			t.Errorf("junk holds %d raw messages, want its per-node limit %d", n, perNode)
		}
		// Then the services read: every good event arrives, no gap.
		a := w.startAnalyzer()
		w.startEnricher(enricher.Config{})
		w.eventually("analyzer counted every good event", func() bool { return a.Summary("good").Analyzer.Events == published })
		if s := a.Summary("good"); s.Analyzer.Missing != 0 || s.Analyzer.BatchGaps != 0 {
			t.Errorf("good node: %d missing, %d gaps", s.Analyzer.Missing, s.Analyzer.BatchGaps)
		}
		t.Logf("junk flooded %d messages of %d bytes on each of its 3 subjects into streams of %d bytes; per node subject limit %d; good kept all %d batches", 3*streamBytes/msgSize, msgSize, streamBytes, perNode, published)
	})
	t.Run("control: limits that do not fit", func(t *testing.T) {
		_, published, raw, _ := flood(t, bus.StreamOptions{RawMaxMsgsPerNode: 1000, StatsMaxMsgsPerNode: 1000})
		if raw >= published {
			t.Errorf("without the strict sizing the flood removed none of the good node's %d batches: the strict run proves nothing", published)
		}
		t.Logf("not strict: good kept %d of its %d unconsumed batches", raw, published)
	})
}

// A deleted stream is recreated by the admin's watcher and reported; no
// service hangs, and each returns promptly on cancel.
func TestDeletedStreamNoServiceHangs(t *testing.T) {
	w := newWorld(t, bus.StreamOptions{}, "vm")
	watcher := bus.NewStreamWatcher(w.admin)
	if made, err := watcher.Check(w.ctx); err != nil || len(made) != 0 {
		t.Fatalf("first check: %v %v", made, err)
	}
	nc, js := w.connect(bus.RoleEnricher, "")
	e, err := enricher.New(enricher.Config{JS: js, NC: nc})
	if err != nil {
		t.Fatal(err)
	}
	_, ajs := w.connect(bus.RoleAnalyzer, "")
	a := analyzer.New(analyzer.Config{JS: ajs})
	ectx, ecancel := context.WithCancel(context.Background())
	actx, acancel := context.WithCancel(context.Background())
	defer ecancel()
	defer acancel()
	edone, adone := make(chan error, 1), make(chan error, 1)
	go func() { edone <- e.Run(ectx) }()
	go func() { adone <- a.Run(actx) }()

	vm := w.sensor("vm")
	if err := vm.batch(sysEvent(1e9, 10, 1)); err != nil {
		t.Fatal(err)
	}
	w.eventually("first batch analysed", func() bool { return a.Summary("vm").Analyzer.Events == 1 })

	// An attacker with admin rights (or an operator's mistake) deletes the
	// enriched stream.
	if err := w.admin.DeleteStream(w.ctx, bus.StreamEnriched); err != nil {
		t.Fatal(err)
	}
	var made []string
	for i := 0; i < bus.StreamMissingChecks && err == nil && len(made) == 0; i++ {
		made, err = watcher.Check(w.ctx)
	}
	if err != nil || len(made) != 1 || made[0] != bus.StreamEnriched {
		t.Fatalf("watcher after the delete: made %v, err %v; want %s recreated", made, err, bus.StreamEnriched)
	}
	if err := vm.batch(sysEvent(2e9, 10, 1)); err != nil {
		t.Fatal(err)
	}
	// The analyzer's consumer went with the stream: it either reports that
	// (Run returns an error naming the stream) or goes on; it must not hang.
	var analyzerErr error
	select {
	case analyzerErr = <-adone:
		adone <- analyzerErr
	case <-time.After(3 * time.Second):
	}
	// The enricher goes on into the recreated stream.
	w.eventually("second batch enriched", func() bool { return e.Stats().Batches == 2 })

	ecancel()
	acancel()
	for name, ch := range map[string]chan error{"enricher": edone, "analyzer": adone} {
		select {
		case err := <-ch:
			if name == "analyzer" && err != nil && !strings.Contains(err.Error(), bus.StreamEnriched) {
				t.Errorf("analyzer's error does not name the stream: %v", err)
			}
			if name == "enricher" && err != nil {
				t.Errorf("enricher: %v", err)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing judgement
			t.Errorf("%s did not return after cancel", name)
		}
	}
	t.Logf("analyzer after the delete: %v", analyzerErr)
}

// 2,000 invented nodes (published with an identity that may: the admin's)
// stay within the enricher's and the analyzer's caps; the rest is refused,
// counted and dead-lettered, and a real node that was there goes on.
func TestInventedNodesStayWithinTheCap(t *testing.T) {
	const maxNodes, invented = 100, 2000
	w := newWorld(t, bus.StreamOptions{}, "vm")
	e := w.startEnricher(enricher.Config{MaxNodes: maxNodes})
	a := w.startAnalyzer()
	vm := w.sensor("vm")
	if err := vm.batch(sysEvent(1e9, 10, 1)); err != nil {
		t.Fatal(err)
	}
	w.eventually("vm's first batch", func() bool { return a.Summary("vm").Analyzer.Events == 1 })
	codec := event.NewCodec()
	for i := 0; i < invented; i++ {
		node := "invented-" + strconv.Itoa(i)
		data, err := codec.Encode(&event.Batch{Node: node, BootID: boot, SensorStartNs: run, Seq: 1, Events: []event.Event{sysEvent(1e9, 10, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.admin.PublishAsync(bus.RawSubject(node), data); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w.admin.PublishAsyncComplete():
	case <-w.ctx.Done():
		t.Fatal("invented batches not acked")
	}
	w.eventually("every invented batch handled", func() bool {
		st := e.Stats()
		return st.Batches+st.Limits.NodesRefused >= invented+1
	})
	if err := vm.batch(sysEvent(2e9, 10, 1)); err != nil {
		t.Fatal(err)
	}
	w.eventually("vm's second batch", func() bool { return a.Summary("vm").Analyzer.Events == 2 })
	st := e.Stats()
	if st.Nodes > maxNodes || st.Limits.NodesRefused != invented+1-maxNodes || st.BadInput["node_cap"] != st.Limits.NodesRefused {
		t.Errorf("enricher: %d nodes, limits %+v, bad input %v; want at most %d nodes and the rest refused as node_cap", st.Nodes, st.Limits, st.BadInput, maxNodes)
	}
	if n := len(a.Summary("").Nodes); n > maxNodes {
		t.Errorf("analyzer keeps %d nodes, above the enricher's cap %d", n, maxNodes)
	}
	dls, err := bus.ListDeadLetters(w.ctx, w.admin, 0)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(dls)) != st.Limits.NodesRefused {
		t.Errorf("%d dead letters, want the %d refused", len(dls), st.Limits.NodesRefused)
	}
}

// The scaled enricher (leases, checkpoints, ordered replay) works with the
// enricher identity's least privilege.
func TestScaledEnricherWithItsIdentity(t *testing.T) {
	w := newWorld(t, bus.StreamOptions{}, "vm")
	nc, js := w.connect(bus.RoleEnricher, "")
	b, err := bus.EnsureBuckets(w.ctx, js, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatalf("buckets with the enricher identity: %v", err)
	}
	e, err := enricher.New(enricher.Config{JS: js, NC: nc, Scale: &enricher.ScaleConfig{ID: "e1", Buckets: b, MemberTTL: time.Second, LeaseTTL: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	w.run("scaled enricher", e.Run)
	a := w.startAnalyzer()
	vm := w.sensor("vm")
	if err := vm.snapshot(event.ProcInfo{Pid: 10, StartNs: 1, Comm: "nginx", ExePath: "/usr/sbin/nginx"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := vm.batch(sysEvent(1e9+uint64(i), 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	w.eventually("20 events through the scaled enricher", func() bool { return a.Summary("vm").Analyzer.Events == 20 })
	if s := a.Summary("vm"); s.Analyzer.Missing != 0 {
		t.Errorf("missing %d", s.Analyzer.Missing)
	}
}

// The forged sequence of issue 9: with the node's identity, one batch that
// claims sequence 10^9 must not make the node's later batches look old.
// Duplicates are the raw stream's business, not the payload's.
func TestForgedSequenceCostsNoEvent(t *testing.T) {
	w := newWorld(t, bus.StreamOptions{}, "vm")
	w.startEnricher(enricher.Config{})
	a := w.startAnalyzer()
	vm := w.sensor("vm")
	for i := 0; i < 5; i++ {
		if err := vm.batch(sysEvent(1e9+uint64(i), 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	forged := vm.seq
	vm.seq = 1e9 - 1
	if err := vm.batch(sysEvent(2e9, 10, 1)); err != nil {
		t.Fatal(err)
	}
	vm.seq = forged
	for i := 0; i < 20; i++ {
		if err := vm.batch(sysEvent(3e9+uint64(i), 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// 5 + the forged 1 + 20: every event enriched and counted.
	w.eventually("all 26 events analysed", func() bool { return a.Summary("vm").Analyzer.Events == 26 })
}

// A forged boot id with forged batch numbers (the node's identity): a new
// boot id starts a new run only when its batches are consistent with one.
// A lone batch of boot "forged" numbered 10^9, with a snapshot of that run
// that would rename the node's live nginx, resets nothing: the snapshot is
// not applied, no batch of the real run looks lost or old, every event is
// enriched and counted. Even a forged run that starts at 1 (consistent, so
// adopted) costs the real run neither events nor false gaps once it goes on.
func TestForgedBootIDCostsNothing(t *testing.T) {
	w := newWorld(t, bus.StreamOptions{}, "vm")
	e := w.startEnricher(enricher.Config{})
	a := w.startAnalyzer()
	vm := w.sensor("vm")
	if err := vm.snapshot(event.ProcInfo{Pid: 10, StartNs: 1, Comm: "nginx", ExePath: "/usr/sbin/nginx"}); err != nil {
		t.Fatal(err)
	}
	real := func(n int) {
		for i := 0; i < n; i++ {
			if err := vm.batch(sysEvent(1e9+vm.seq, 10, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	forged := func(boot string, seq uint64) {
		b := &event.Batch{Node: "vm", BootID: boot, SensorStartNs: 7, Seq: seq, Events: []event.Event{sysEvent(2e9, 10, 1)}}
		data, err := event.NewCodec().Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := vm.publish(bus.RawSubject("vm"), b.MsgID(), data); err != nil {
			t.Fatal(err)
		}
	}
	real(5)
	if err := vm.stats(100, 0); err != nil {
		t.Fatal(err)
	}
	// Stats of the forged run: 90 % dropped, held until a batch shows the
	// run is real.
	fst := event.Stats{Node: "vm", BootID: "forged", SensorStartNs: 7, Batches: 1, LastBatchSeq: 1e9}
	for c := range fst.Counters.Attempted {
		fst.Counters.Attempted[c], fst.Counters.Delivered[c], fst.Counters.Dropped[c] = 2000, 200, 1800
	}
	fdata, _ := json.Marshal(&fst)
	if err := vm.publish(bus.StatsSubject("vm"), "", fdata); err != nil {
		t.Fatal(err)
	}
	snap, _ := event.EncodeSnapshot(&event.Snapshot{Node: "vm", BootID: "forged", SensorStartNs: 7, Part: 1, Parts: 1,
		Procs: []event.ProcInfo{{Pid: 10, StartNs: 1, Comm: "sshd", ExePath: "/usr/sbin/sshd"}}})
	if err := vm.publish(bus.SnapshotSubject("vm"), "", snap); err != nil {
		t.Fatal(err)
	}
	forged("forged", 1e9)
	real(10)
	w.eventually("16 events analysed", func() bool { return a.Summary("vm").Analyzer.Events == 16 })
	st := e.Stats()
	if st.SeqGaps != 0 || st.Limits.RunsRefused != 1 || st.Limits.RunsAdopted != 0 {
		t.Errorf("after a lone forged batch: %d gaps, limits %+v; want 0 gaps, 1 run refused, none adopted", st.SeqGaps, st.Limits)
	}
	names := enrichedNames(t, w, "vm")
	for i, n := range names {
		if n != "nginx" {
			t.Errorf("event %d of pid 10 came out as %q, want nginx (the forged run's snapshot applied?)", i, n)
		}
	}
	if err := vm.stats(200, 0); err != nil {
		t.Fatal(err)
	}
	w.eventually("the real run's second stats", func() bool { return a.Summary("vm").Sensor.Attempted >= 2*200 })
	if s := a.Summary("vm"); s.Sensor.DropPct != 0 {
		t.Errorf("drop %% = %.1f after the forged run's stats and batch, want 0 (the real run's)", s.Sensor.DropPct)
	}

	// A forged run consistent with one (it starts at 1): adopted, and the
	// real run, going on, is taken back without false gaps.
	forged("forged-2", 1)
	real(10)
	w.eventually("27 events analysed", func() bool { return a.Summary("vm").Analyzer.Events == 27 })
	st = e.Stats()
	if st.SeqGaps != 0 || st.Limits.RunsAdopted != 2 {
		t.Errorf("after a consistent forged run: %d gaps, limits %+v; want 0 gaps, 2 runs adopted (forged-2, then the real one back)", st.SeqGaps, st.Limits)
	}
	s := a.Summary("vm")
	if s.Analyzer.BatchGaps != 0 || s.Analyzer.Missing != 0 {
		t.Errorf("analyzer: %d batch gaps, %d missing; want 0, 0", s.Analyzer.BatchGaps, s.Analyzer.Missing)
	}
	w.eventually("the enricher's run counters in /api/summary", func() bool {
		for name, h := range a.Summary("").Services {
			if strings.HasPrefix(name, "enricher/") && h.Limits["runs_refused"] == 1 && h.Limits["runs_adopted"] == 2 {
				return true
			}
		}
		return false
	})
}
