package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// syncBuffer is a bytes.Buffer safe for a writer and a later reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServicesApartReportEnricherCount runs `ringwise enricher` and
// `ringwise analyzer` as separate services (each its own NATS connection) on
// an embedded NATS, feeds them a scripted sensor's raw stream with bad input
// in it, and checks that the standalone analyzer reports the enricher's own
// event count (it said 0 before), and that `ringwise dlq` lists the bad input.
func TestServicesApartReportEnricherCount(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.URL()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second) // hang guard only
	defer cancel()

	// The scripted sensor: a snapshot, then batches of fork, exec and a
	// syscall, then final stats; a garbage batch and a node mismatch in
	// between.
	nc, err := bus.Connect(url, "test-sensor")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	const node, boot, start = "apart", "boot-1", uint64(1_000_000_000)
	pub := bus.JetStreamPublisher{JS: js}
	snap, err := event.EncodeSnapshot(&event.Snapshot{Node: node, BootID: boot, SensorStartNs: start,
		Procs: []event.ProcInfo{{Pid: 1, Comm: "init", ExePath: "/sbin/init", StartNs: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.SnapshotSubject(node), Data: snap, Schema: event.SchemaVersion}); err != nil {
		t.Fatal(err)
	}
	codec := event.NewCodec()
	const batches = 20
	var delivered uint64
	for seq := uint64(1); seq <= batches; seq++ {
		pid := uint32(100 + seq)
		ts := start + seq*1000
		b := &event.Batch{Seq: seq, Node: node, BootID: boot, SensorStartNs: start}
		fork := event.Event{Header: event.Header{TsNs: ts + 1, StartNs: ts, Tid: pid, Pid: pid, Type: event.TypeFork}, PPid: 1}
		fork.SetComm("sh")
		exec := event.Event{Header: event.Header{TsNs: ts + 2, StartNs: ts, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeExec}, PPid: 1,
			Exe: []byte("/usr/bin/job"), Args: []byte("job\x00")}
		exec.SetComm("job")
		b.Events = append(b.Events, fork, exec)
		for i := uint64(0); i < seq; i++ { // batches of different sizes
			b.Events = append(b.Events, event.Event{Header: event.Header{TsNs: ts + 3 + i, StartNs: ts, Tid: pid, Pid: pid, ExecID: 1, Type: event.TypeSyscall}, Syscall: 0})
		}
		delivered += uint64(len(b.Events))
		data, err := codec.Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.RawSubject(node), ID: b.MsgID(), Data: data, Schema: event.SchemaVersion}); err != nil {
			t.Fatal(err)
		}
		switch seq {
		case 5:
			if err := pub.Publish(ctx, bus.Msg{Subject: bus.RawSubject(node), Data: []byte("garbage")}); err != nil {
				t.Fatal(err)
			}
		case 9:
			other := *b
			other.Node = "someone-else"
			data, err := codec.Encode(&other)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, bus.Msg{Subject: bus.RawSubject(node), Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := event.Stats{Node: node, BootID: boot, SensorStartNs: start, LastBatchSeq: batches, Batches: batches, Final: true}
	st.Counters.Attempted[event.CategorySyscall] = delivered
	st.Counters.Delivered[event.CategorySyscall] = delivered
	stData, _ := json.Marshal(st)
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject(node), Data: stData}); err != nil {
		t.Fatal(err)
	}

	// The two services, as the CLI runs them.
	svcCtx, stopSvcs := context.WithCancel(ctx)
	// A service that exits early ends the wait below.
	waitCtx, svcExited := context.WithCancel(ctx)
	defer svcExited()
	var wg sync.WaitGroup
	var enrOut, enrErr, anaOut, anaErr syncBuffer
	codes := make([]int, 2)
	for i, args := range [][]string{
		// Shared mode: its durable consumer tells when everything is
		// consumed (the scaled mode has its own tests, scale_root_test.go).
		{"enricher", "--nats", url, "--memory-streams", "--mode", "shared"},
		{"analyzer", "--nats", url, "--memory-streams", "--http", "127.0.0.1:0"},
	} {
		out, errw := &enrOut, &enrErr
		if i == 1 {
			out, errw = &anaOut, &anaErr
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer svcExited()
			codes[i] = run(svcCtx, args, out, errw)
		}()
	}
	// The consumers the services run with their default names.
	enr, err := enricher.New(enricher.Config{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append([]bus.ConsumerSpec{enr.Spec()}, analyzer.New(analyzer.Config{}).Specs()...) {
		if err := bus.WaitConsumed(waitCtx, js, c.Stream, c.Durable); err != nil {
			stopSvcs()
			wg.Wait()
			t.Fatalf("%v\nenricher: %s\nanalyzer: %s", err, enrErr.String(), anaErr.String())
		}
	}
	stopSvcs()
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("exit codes %v\nenricher: %s\nanalyzer: %s", codes, enrErr.String(), anaErr.String())
	}

	report := anaOut.String()
	m := regexp.MustCompile(`enricher: (\d+) events enriched`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("standalone analyzer report names no enricher count:\n%s", report)
	}
	if n, _ := strconv.ParseUint(m[1], 10, 64); n != delivered {
		t.Errorf("standalone analyzer: enricher %d events, want %d (all delivered)\n%s", n, delivered, report)
	}
	if !strings.Contains(report, fmt.Sprintf("%d analyzed", delivered)) {
		t.Errorf("standalone analyzer did not analyse all %d events:\n%s", delivered, report)
	}
	if !strings.Contains(enrErr.String(), fmt.Sprintf("%d batches, %d events", batches, delivered)) {
		t.Errorf("enricher's own line: %s", enrErr.String())
	}

	// The bad input is in the DLQ, and `ringwise dlq` says so.
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"dlq", "--nats", url}, &out, &errb); code != 0 {
		t.Fatalf("dlq: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"malformed", "node_mismatch", bus.RawSubject(node), "2 dead letters: malformed 1 node_mismatch 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ringwise dlq lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(ctx, []string{"dlq", "--nats", url, "--json", "--limit", "1"}, &out, &errb); code != 0 {
		t.Fatalf("dlq --json: exit %d: %s", code, errb.String())
	}
	var dls []bus.DeadLetter
	if err := json.Unmarshal(out.Bytes(), &dls); err != nil {
		t.Fatalf("dlq --json: %v\n%s", err, out.String())
	}
	if len(dls) != 1 || dls[0].Reason != "malformed" || dls[0].Size != len("garbage") || dls[0].OriginalSeq != 7 {
		t.Errorf("dlq --json --limit 1 = %+v; want the garbage message (raw seq 7: snapshot, 5 batches, then it)", dls)
	}
}
