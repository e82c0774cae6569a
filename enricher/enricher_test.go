package enricher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// sensorStart is the sensor's attach time in the scripted runs.
const sensorStart = uint64(1_000_000_000_000)

type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	ctx context.Context
}

func startEnv(t *testing.T) *env {
	t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(srv.URL(), "enricher-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Generous: only to avoid hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	// The raw stream stores messages above the consume loop's limit (the
	// default raw MaxMsgSize equals it and refuses them at publish), so
	// the tests can show the loop dead-letters them as "oversized".
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true, RawMaxMsgSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, js: js, ctx: ctx}
}

func (e *env) publish(t *testing.T, subject, id string, data []byte) {
	t.Helper()
	if err := (bus.JetStreamPublisher{JS: e.js}).Publish(e.ctx, bus.Msg{Subject: subject, ID: id, Data: data}); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

func (e *env) publishSnapshot(t *testing.T, node string, procs ...event.ProcInfo) {
	t.Helper()
	data, err := event.EncodeSnapshot(&event.Snapshot{Node: node, BootID: "boot", SensorStartNs: sensorStart, Procs: procs})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, bus.SnapshotSubject(node), node+".snapshot", data)
}

func (e *env) publishBatch(t *testing.T, node string, b *event.Batch) {
	t.Helper()
	if b.Node == "" {
		b.Node = node
	}
	b.BootID, b.SensorStartNs = "boot", sensorStart
	data, err := event.NewCodec().Encode(b)
	if err != nil {
		t.Fatalf("encode batch %d: %v", b.Seq, err)
	}
	e.publish(t, bus.RawSubject(node), b.MsgID(), data)
}

// runEnricher starts the enricher and returns a stop function that waits
// for Run to return (and fails the test on error).
func (e *env) runEnricher(t *testing.T, cfg enricher.Config) (*enricher.Enricher, func()) {
	t.Helper()
	cfg.JS = e.js
	en, err := enricher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("enricher Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("enricher Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return en, stop
}

// waitDone waits until the enricher's durable consumer has processed (acked
// or terminated) everything in the raw stream.
func (e *env) waitDone(t *testing.T, durable string) {
	t.Helper()
	// The consumer is created by Run; WaitConsumed retries until it exists.
	if err := bus.WaitConsumed(e.ctx, e.js, bus.StreamRaw, durable); err != nil {
		t.Fatalf("enricher did not consume the raw stream: %v", err)
	}
}

// enriched reads every enriched batch of node with an ordered consumer.
func (e *env) enriched(t *testing.T, node string) []event.EnrichedBatch {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.StreamEnriched)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx, jetstream.WithSubjectFilter(bus.EnrichedSubject(node)))
	if err != nil {
		t.Fatal(err)
	}
	want := info.State.Subjects[bus.EnrichedSubject(node)]
	cons, err := s.OrderedConsumer(e.ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.EnrichedSubject(node)}})
	if err != nil {
		t.Fatal(err)
	}
	codec := event.NewCodec()
	var out []event.EnrichedBatch
	for uint64(len(out)) < want {
		mb, err := cons.Fetch(int(want)-len(out), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range mb.Messages() {
			n++
			var b event.EnrichedBatch
			if err := codec.DecodeEnriched(m.Data(), &b); err != nil {
				t.Fatalf("enriched message %d does not decode: %v", len(out), err)
			}
			// Strings are fresh per decode; events are a new slice each time.
			out = append(out, b)
		}
		if n == 0 {
			t.Fatalf("got %d of %d enriched batches", len(out), want)
		}
	}
	return out
}

// ---- event builders ----------------------------------------------------

func fork(ts uint64, pid, ppid uint32, start uint64, comm string) event.Event {
	e := event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, Type: event.TypeFork}, PPid: ppid, UID: 1000, GID: 1000}
	e.SetComm(comm)
	return e
}

func exec(ts uint64, pid, ppid uint32, start uint64, comm, exe string, args ...string) event.Event {
	e := event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: ppid, UID: 1000, GID: 1000,
		Exe: []byte(exe), Args: []byte(strings.Join(args, "\x00") + "\x00")}
	e.SetComm(comm)
	return e
}

func sys(ts uint64, pid uint32, start uint64, execID uint32, nr uint32) event.Event {
	return event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, ExecID: execID, Type: event.TypeSyscall}, Syscall: nr, Ret: 3}
}

func exit(ts uint64, pid uint32, start uint64, execID uint32) event.Event {
	return event.Event{Header: event.Header{TsNs: ts, StartNs: start, Tid: pid, Pid: pid, ExecID: execID, Type: event.TypeExit, Flags: event.FlagGroupDead}}
}

func withLifecycleDrops(n uint64) event.Counters {
	var c event.Counters
	c.Dropped[event.CategoryLifecycle] = n
	c.Attempted[event.CategoryLifecycle] = n
	return c
}

// ---- tests -------------------------------------------------------------

func TestEnrichThroughJetStream(t *testing.T) {
	e := startEnv(t)
	const node = "node-a"
	e.publishSnapshot(t, node,
		event.ProcInfo{Pid: 1, Comm: "init", ExePath: "/sbin/init", Cmdline: "/sbin/init", StartNs: 10_000_000},
		event.ProcInfo{Pid: 100, PPid: 1, UID: 0, Comm: "bash", ExePath: "/bin/bash", Cmdline: "bash -l", StartNs: 500_000_000},
	)
	s := sensorStart
	e.publishBatch(t, node, &event.Batch{Seq: 1, Events: []event.Event{
		fork(s+100, 200, 100, s+50, "bash"),
		exec(s+200, 200, 100, s+50, "cat", "/bin/cat", "cat", "/etc/hosts"),
		sys(s+300, 200, s+50, 1, 0),
		sys(s+310, 100, 500_000_000, 0, 1), // the shell itself, from the snapshot
	}})
	e.publishBatch(t, node, &event.Batch{Seq: 2, Counters: withLifecycleDrops(2), Events: []event.Event{
		sys(s+400, 200, s+50, 1, 1),
		sys(s+500, 300, s+450, 1, 2), // born after the sensor attached, fork lost
		exit(s+600, 200, s+50, 1),
	}})

	en, stop := e.runEnricher(t, enricher.Config{Durable: "enr-1", Node: node})
	e.waitDone(t, "enr-1")
	stop()

	batches := e.enriched(t, node)
	if len(batches) != 2 {
		t.Fatalf("%d enriched batches, want 2", len(batches))
	}
	for i, b := range batches {
		if b.RawSeq != uint64(i+1) || b.Node != node || b.BootID != "boot" || b.SensorStartNs != sensorStart {
			t.Errorf("enriched batch %d envelope: seq %d node %q boot %q start %d", i, b.RawSeq, b.Node, b.BootID, b.SensorStartNs)
		}
	}
	if got := batches[1].Counters.Dropped[event.CategoryLifecycle]; got != 2 {
		t.Errorf("enriched batch 2 carries lifecycle drops %d, want the raw batch's 2", got)
	}
	b1, b2 := batches[0].Events, batches[1].Events
	if len(b1) != 4 || len(b2) != 3 {
		t.Fatalf("enriched batches hold %d and %d events, want 4 and 3", len(b1), len(b2))
	}

	// Fork inherits from the snapshot's bash; after exec the name is cat.
	if f := b1[0]; f.Missing != 0 || f.ProcExePath != "/bin/bash" || f.ProcPPid != 100 {
		t.Errorf("fork enriched as %+v", f)
	}
	for _, ev := range []event.Enriched{b1[2], b2[0]} {
		if ev.Missing != 0 || ev.ProcName != "cat" || ev.ProcExePath != "/bin/cat" || ev.ProcCmdline != "cat /etc/hosts" ||
			ev.ProcPPid != 100 || ev.ProcUID != 1000 || ev.Source != event.SourceState {
			t.Errorf("syscall after exec enriched as name %q exe %q cmd %q ppid %d uid %d missing %v source %v",
				ev.ProcName, ev.ProcExePath, ev.ProcCmdline, ev.ProcPPid, ev.ProcUID, ev.Missing, ev.Source)
		}
	}
	if sh := b1[3]; sh.Missing != 0 || sh.ProcName != "bash" || sh.ProcCmdline != "bash -l" || sh.Source != event.SourceSnapshot {
		t.Errorf("syscall of the snapshot's shell enriched as %+v", sh)
	}
	if lost := b2[1]; lost.Missing != event.AllFields || lost.Reason != event.ReasonForkDropped || lost.ProcName != "" {
		t.Errorf("syscall of a process whose fork was dropped: missing %v reason %v name %q; want all fields, fork_dropped",
			lost.Missing, lost.Reason, lost.ProcName)
	}
	if x := b2[2]; x.ProcName != "cat" || x.Missing != 0 {
		t.Errorf("exit enriched as name %q missing %v", x.ProcName, x.Missing)
	}

	st := en.Stats()
	if st.Batches != 2 || st.Events != 7 || st.Snapshots != 1 || st.SeqGaps != 0 || st.Nodes != 1 || st.PubErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if len(st.BadInput) != 0 {
		t.Errorf("BadInput = %v, want none", st.BadInput)
	}
	ts, ok := en.TableStats(node)
	if !ok || ts.Missing != 1 || ts.Reason(event.ReasonForkDropped) != 1 || ts.Forks != 1 || ts.Execs != 1 || ts.Exits != 1 {
		t.Errorf("TableStats(%s) = %+v, %v", node, ts, ok)
	}
}

func TestBadInputDoesNotLoseGoodBatches(t *testing.T) {
	e := startEnv(t)
	const node = "node-b"
	s := sensorStart
	good := func(seq uint64) *event.Batch {
		pid := uint32(1000 + seq)
		start := s + seq*1000
		return &event.Batch{Seq: seq, Events: []event.Event{
			fork(start+1, pid, 1, start, "sh"),
			exec(start+2, pid, 1, start, fmt.Sprintf("job%d", seq), "/usr/bin/job", "job"),
			sys(start+3, pid, start, 1, 0),
		}}
	}
	codec := event.NewCodec()
	e.publishSnapshot(t, node, event.ProcInfo{Pid: 1, Comm: "init", ExePath: "/sbin/init", StartNs: 10_000_000})

	// Each bad message goes in between good batches, and must end in the
	// DLQ with its reason, original subject and sequence.
	type dead struct {
		reason string
		seq    uint64
		size   int
	}
	var want []dead
	bad := func(reason string, data []byte, schemaHeader string) {
		t.Helper()
		m := &nats.Msg{Subject: bus.RawSubject(node), Data: data, Header: nats.Header{}}
		if schemaHeader != "" {
			m.Header.Set(bus.HeaderSchema, schemaHeader)
		}
		ack, err := e.js.PublishMsg(e.ctx, m)
		if err != nil {
			t.Fatalf("publish %s (%d bytes): %v", reason, len(data), err)
		}
		want = append(want, dead{reason, ack.Sequence, len(data)})
	}

	e.publishBatch(t, node, good(1))
	bad("malformed", []byte("garbage, not msgpack at all"), "")
	e.publishBatch(t, node, good(2))

	full, err := codec.Encode(&event.Batch{Seq: 97, Node: node, BootID: "boot", SensorStartNs: s, Events: good(97).Events})
	if err != nil {
		t.Fatal(err)
	}
	bad("malformed", bytes.Clone(full[:len(full)/2]), "") // truncated msgpack

	v2 := good(99)
	v2.Schema = event.SchemaVersion + 1
	v2.Node, v2.BootID, v2.SensorStartNs = node, "boot", s
	data, err := codec.Encode(v2)
	if err != nil {
		t.Fatal(err)
	}
	bad("schema_version", data, "") // payload says a newer schema
	e.publishBatch(t, node, good(3))
	bad("schema_version", bytes.Clone(full), fmt.Sprint(event.SchemaVersion+1)) // header says a newer schema

	// 5 MB: the embedded server takes it (max payload 32 MiB), the loop
	// refuses it before decoding (bus.DefaultMaxMessageBytes).
	huge := bytes.Repeat([]byte{0x90}, 5<<20)
	bad("oversized", huge, "")
	e.publishBatch(t, node, good(4))

	other := good(98)
	other.Node, other.BootID, other.SensorStartNs = "other-node", "boot", s
	data, err = codec.Encode(other)
	if err != nil {
		t.Fatal(err)
	}
	bad("node_mismatch", data, "")
	e.publishBatch(t, node, good(5))

	en, stop := e.runEnricher(t, enricher.Config{Durable: "enr-bad", Node: node})
	e.waitDone(t, "enr-bad")
	stop()

	batches := e.enriched(t, node)
	if len(batches) != 5 {
		t.Fatalf("%d enriched batches, want the 5 good ones", len(batches))
	}
	for i, b := range batches {
		if b.RawSeq != uint64(i+1) {
			t.Errorf("enriched batch %d has raw seq %d", i, b.RawSeq)
		}
		if len(b.Events) != 3 {
			t.Errorf("enriched batch %d has %d events", i, len(b.Events))
			continue
		}
		if got, want := b.Events[2].ProcName, fmt.Sprintf("job%d", i+1); got != want || b.Events[2].Missing != 0 {
			t.Errorf("batch %d syscall name %q missing %v, want %q", i+1, got, b.Events[2].Missing, want)
		}
	}
	st := en.Stats()
	wantBad := map[string]uint64{"malformed": 2, "schema_version": 2, "oversized": 1, "node_mismatch": 1}
	for k, v := range wantBad {
		if st.BadInput[k] != v || st.Consumer.Poisoned[k] != v {
			t.Errorf("BadInput[%s] = %d, consumer poisoned %d, want %d (all: %v)", k, st.BadInput[k], st.Consumer.Poisoned[k], v, st.BadInput)
		}
	}
	if len(st.BadInput) != len(wantBad) {
		t.Errorf("BadInput = %v, want exactly %v", st.BadInput, wantBad)
	}
	if st.Consumer.DeadLettered != uint64(len(want)) || st.Consumer.DeadLetterErrors != 0 || st.Consumer.Acked != 6 {
		t.Errorf("consumer stats %+v; want %d dead letters and 6 acks (snapshot and 5 batches)", st.Consumer, len(want))
	}
	dls, err := bus.ListDeadLetters(e.ctx, e.js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(want) {
		t.Fatalf("DLQ holds %d messages, want %d", len(dls), len(want))
	}
	for i, w := range want {
		d := dls[i]
		if d.Reason != w.reason || d.OriginalSeq != w.seq || d.OriginalSubject != bus.RawSubject(node) || d.Size != w.size ||
			d.Subject != "ringwise.dlq.raw."+node || d.OriginalStream != bus.StreamRaw || d.Consumer != "enr-bad" {
			t.Errorf("dead letter %d = %+v; want reason %s, seq %d, size %d", i, d, w.reason, w.seq, w.size)
		}
	}
	if st.Batches != 5 || st.Events != 15 || st.SeqGaps != 0 {
		t.Errorf("Stats = %+v, want 5 batches, 15 events, no gaps", st)
	}

	// Bad messages were terminated, not left for redelivery.
	cons, err := e.js.Consumer(e.ctx, bus.StreamRaw, "enr-bad")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer has %d ack-pending and %d redelivered messages", info.NumAckPending, info.NumRedelivered)
	}
}

// lookupResponder answers /proc lookups for node like a sensor would: the
// known processes, not_found for the rest. It counts requests per pid.
type lookupResponder struct {
	mu    sync.Mutex
	known map[uint32]event.ProcInfo
	asked map[uint32]int
}

func (l *lookupResponder) serve(t *testing.T, nc *nats.Conn, node string) {
	t.Helper()
	sub, err := nc.Subscribe(bus.ProcSubject(node), func(m *nats.Msg) {
		var req procfs.LookupRequest
		var rep procfs.LookupReply
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request"
		} else {
			l.mu.Lock()
			l.asked[req.Pid]++
			p, ok := l.known[req.Pid]
			l.mu.Unlock()
			if ok {
				rep.Proc = p
			} else {
				rep.Error = procfs.ErrLookupNotFound
			}
		}
		data, _ := json.Marshal(&rep)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestLookups(t *testing.T) {
	e := startEnv(t)
	const node = "node-c"
	// The responder runs on its own connection, like a sensor elsewhere.
	rnc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rnc.Close)
	lr := &lookupResponder{
		known: map[uint32]event.ProcInfo{
			400: {Pid: 400, PPid: 1, UID: 33, GID: 33, StartNs: 700_000_000, Comm: "nginx", ExePath: "/usr/sbin/nginx", Cmdline: "nginx -g daemon off;"},
		},
		asked: map[uint32]int{},
	}
	lr.serve(t, rnc, node)

	// No snapshot: the processes are strangers. Both started before the
	// sensor attached and the ring dropped nothing.
	e.publishBatch(t, node, &event.Batch{Seq: 1, Events: []event.Event{
		sys(sensorStart+10, 400, 700_000_000+3_000_000, 2, 0), // /proc's start is tick-rounded
		sys(sensorStart+20, 500, 800_000_000, 1, 1),
		sys(sensorStart+30, 400, 700_000_000+3_000_000, 2, 2),
		sys(sensorStart+40, 500, 800_000_000, 1, 3),
	}})
	en, stop := e.runEnricher(t, enricher.Config{Durable: "enr-lookup", Node: node, NC: e.nc,
		// Generous, so a slow CI never turns a hit into lookup_failed.
		State: state.Config{LookupTimeout: 10 * time.Second}})
	e.waitDone(t, "enr-lookup")
	stop()

	batches := e.enriched(t, node)
	if len(batches) != 1 || len(batches[0].Events) != 4 {
		t.Fatalf("enriched: %d batches", len(batches))
	}
	evs := batches[0].Events
	for _, i := range []int{0, 2} {
		ev := evs[i]
		if ev.Missing != 0 || ev.Source != event.SourceLookup || ev.ProcName != "nginx" || ev.ProcExePath != "/usr/sbin/nginx" ||
			ev.ProcCmdline != "nginx -g daemon off;" || ev.ProcUID != 33 || ev.ProcPPid != 1 {
			t.Errorf("event %d of the looked-up pid: name %q exe %q uid %d missing %v source %v", i, ev.ProcName, ev.ProcExePath, ev.ProcUID, ev.Missing, ev.Source)
		}
	}
	for _, i := range []int{1, 3} {
		ev := evs[i]
		if ev.Missing != event.AllFields || ev.Reason != event.ReasonProcGone {
			t.Errorf("event %d of a gone pid: missing %v reason %v; want all fields, process_gone_before_lookup", i, ev.Missing, ev.Reason)
		}
	}
	lr.mu.Lock()
	asked := map[uint32]int{400: lr.asked[400], 500: lr.asked[500]}
	lr.mu.Unlock()
	// One lookup per process: the hit is in the table, the miss negatively cached.
	if asked[400] != 1 || asked[500] != 1 {
		t.Errorf("lookups per pid = %v, want one each", asked)
	}
	ts, _ := en.TableStats(node)
	if ts.LookupHits != 1 || ts.LookupMisses != 1 || ts.LookupErrors != 0 {
		t.Errorf("table lookups: hits %d misses %d errors %d", ts.LookupHits, ts.LookupMisses, ts.LookupErrors)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := enricher.New(enricher.Config{}); err == nil {
		t.Error("New without JetStream or publisher succeeded")
	}
	if _, err := enricher.New(enricher.Config{Publisher: nopPub{}, Node: "a.b"}); err == nil {
		t.Error("New accepted node a.b")
	}
}

type nopPub struct{}

func (nopPub) Publish(context.Context, bus.Msg) error { return nil }

// flakyPub fails the publishes it is told to, and records the rest.
type flakyPub struct {
	mu     sync.Mutex
	failOn map[string]int // msg id -> failures left
	ok     []string
}

func (f *flakyPub) Publish(_ context.Context, m bus.Msg) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn[m.ID] > 0 {
		f.failOn[m.ID]--
		return fmt.Errorf("publish %s: nats: timeout", m.ID)
	}
	f.ok = append(f.ok, m.ID)
	return nil
}

// A batch whose enriched publish failed is NAKed and redelivered later,
// after newer batches went through: the redelivery must be enriched, not
// mistaken for a duplicate.
func TestRedeliveryAfterPublishFailureIsNotLost(t *testing.T) {
	const node = "node-d"
	codec := event.NewCodec()
	enc := func(seq uint64) []byte {
		b := &event.Batch{Node: node, BootID: "boot", SensorStartNs: sensorStart, Seq: seq,
			Events: []event.Event{sys(sensorStart+seq, 100, 10, 0, uint32(seq))}}
		data, err := codec.Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(data)
	}
	id := func(seq uint64) string {
		return (&event.EnrichedBatch{Node: node, BootID: "boot", SensorStartNs: sensorStart, RawSeq: seq}).MsgID()
	}
	// Three failures in a row: more than the enricher retries in place.
	pub := &flakyPub{failOn: map[string]int{id(2): 3}}
	en, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subj := bus.RawSubject(node)
	if err := en.Handle(ctx, subj, enc(1)); err != nil {
		t.Fatal(err)
	}
	if err := en.Handle(ctx, subj, enc(2)); err == nil {
		t.Fatal("Handle returned nil although the enriched publish failed")
	}
	if err := en.Handle(ctx, subj, enc(3)); err != nil {
		t.Fatal(err)
	}
	// JetStream redelivers seq 2 after the NAK delay.
	if err := en.Handle(ctx, subj, enc(2)); err != nil {
		t.Fatal(err)
	}
	// A true duplicate is still dropped.
	if err := en.Handle(ctx, subj, enc(3)); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	got := append([]string(nil), pub.ok...)
	pub.mu.Unlock()
	want := []string{id(1), id(3), id(2)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("enriched batches published: %v, want %v (the redelivered batch 2 was lost)", got, want)
	}
	st := en.Stats()
	if st.Batches != 3 || st.Events != 3 || st.PubErrors != 1 || st.SeqGaps != 0 {
		t.Errorf("Stats = %+v, want 3 batches, 3 events, 1 publish error, no gaps", st)
	}
}

// One transient failure is retried in place: no NAK, order kept.
func TestTransientPublishFailureRetriedInPlace(t *testing.T) {
	const node = "node-e"
	codec := event.NewCodec()
	b := &event.Batch{Node: node, BootID: "boot", SensorStartNs: sensorStart, Seq: 1,
		Events: []event.Event{sys(sensorStart+1, 100, 10, 0, 1)}}
	data, err := codec.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	id := (&event.EnrichedBatch{Node: node, BootID: "boot", SensorStartNs: sensorStart, RawSeq: 1}).MsgID()
	pub := &flakyPub{failOn: map[string]int{id: 1}}
	en, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Handle(context.Background(), bus.RawSubject(node), bytes.Clone(data)); err != nil {
		t.Fatalf("a single transient failure was not retried: %v", err)
	}
	if len(pub.ok) != 1 || pub.ok[0] != id {
		t.Fatalf("published %v", pub.ok)
	}
}
