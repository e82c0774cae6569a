package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// startJS starts an embedded server and returns a JetStream context on it.
// Everything is torn down when the test ends.
func startJS(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	if !strings.HasPrefix(srv.URL(), "nats://127.0.0.1:") {
		t.Errorf("URL = %q, want a loopback nats:// URL", srv.URL())
	}
	nc, err := bus.Connect(srv.URL(), "bus-test")
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	// Generous: only there to avoid a hang, never to judge speed.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ensure(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
}

func streamMsgs(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State.Msgs
}

func TestEmbeddedJetStreamAndStreams(t *testing.T) {
	ctx := testCtx(t)
	nc, js := startJS(t)

	if !nc.IsConnected() {
		t.Fatal("client not connected to the embedded server")
	}
	acct, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatalf("JetStream not enabled on the embedded server: %v", err)
	}
	if acct.Streams != 0 {
		t.Fatalf("fresh server has %d streams, want 0", acct.Streams)
	}

	// Twice: the second call must update in place, not fail.
	for i := 0; i < 2; i++ {
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
			t.Fatalf("EnsureStreams call %d: %v", i+1, err)
		}
	}
	want := map[string][]string{
		bus.StreamRaw:      {bus.PrefixRaw + ">", bus.PrefixSnapshot + ">"},
		bus.StreamEnriched: {bus.PrefixEnriched + ">"},
		bus.StreamStats:    {bus.PrefixStats + ">"},
		bus.StreamDLQ:      {bus.PrefixDLQ + ">"},
	}
	for name, subjects := range want {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s missing after EnsureStreams: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s info: %v", name, err)
		}
		got := slices.Clone(info.Config.Subjects)
		slices.Sort(got)
		slices.Sort(subjects)
		if !slices.Equal(got, subjects) {
			t.Errorf("stream %s subjects = %v, want %v", name, got, subjects)
		}
		if info.Config.Storage != jetstream.MemoryStorage {
			t.Errorf("stream %s storage = %v, want memory", name, info.Config.Storage)
		}
		if name == bus.StreamDLQ {
			if info.Config.Discard != jetstream.DiscardOld || info.Config.MaxBytes != bus.DefaultDLQMaxBytes || info.Config.MaxAge != bus.DefaultDLQMaxAge {
				t.Errorf("stream %s: discard %v, max bytes %d, max age %v; want the newest dead letters kept within the DLQ limits",
					name, info.Config.Discard, info.Config.MaxBytes, info.Config.MaxAge)
			}
		} else {
			// Junk must not shut real data out: DiscardOld with a per-node
			// (per-subject) message limit and a message size limit.
			if info.Config.Discard != jetstream.DiscardOld {
				t.Errorf("stream %s discard = %v, want DiscardOld", name, info.Config.Discard)
			}
			if info.Config.MaxMsgsPerSubject <= 0 || info.Config.MaxMsgSize <= 0 {
				t.Errorf("stream %s: max msgs per subject %d, max msg size %d; want both bounded",
					name, info.Config.MaxMsgsPerSubject, info.Config.MaxMsgSize)
			}
		}
		if info.Config.Duplicates <= 0 {
			t.Errorf("stream %s has no duplicate window", name)
		}
	}
	acct, err = js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Streams != 4 {
		t.Errorf("after two EnsureStreams the account has %d streams, want 4", acct.Streams)
	}

	// Each subject family lands in its own stream.
	pub := bus.JetStreamPublisher{JS: js}
	for _, subj := range []string{bus.RawSubject("n1"), bus.SnapshotSubject("n1"), bus.EnrichedSubject("n1"), bus.StatsSubject("n1")} {
		if err := pub.Publish(ctx, bus.Msg{Subject: subj, Data: []byte(subj)}); err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
	}
	if n := streamMsgs(t, ctx, js, bus.StreamRaw); n != 2 {
		t.Errorf("%s holds %d messages, want 2 (raw + snapshot)", bus.StreamRaw, n)
	}
	if n := streamMsgs(t, ctx, js, bus.StreamEnriched); n != 1 {
		t.Errorf("%s holds %d messages, want 1", bus.StreamEnriched, n)
	}
	if n := streamMsgs(t, ctx, js, bus.StreamStats); n != 1 {
		t.Errorf("%s holds %d messages, want 1", bus.StreamStats, n)
	}
}

func TestJetStreamPublisherDeduplicates(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)

	pub := bus.JetStreamPublisher{JS: js}
	m := bus.Msg{Subject: bus.RawSubject("n1"), ID: "n1.boot.1.1", Data: []byte("first")}
	for i := 0; i < 2; i++ {
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("publish %d: %v", i+1, err)
		}
	}
	if n := streamMsgs(t, ctx, js, bus.StreamRaw); n != 1 {
		t.Fatalf("two publishes with the same Nats-Msg-Id stored %d messages, want 1", n)
	}
	// A different id is a different message.
	m.ID = "n1.boot.1.2"
	if err := pub.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, ctx, js, bus.StreamRaw); n != 2 {
		t.Fatalf("after a new id the stream holds %d messages, want 2", n)
	}
	// The header carrying the id reaches the stream.
	s, _ := js.Stream(ctx, bus.StreamRaw)
	raw, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(nats.MsgIdHdr); got != "n1.boot.1.1" {
		t.Errorf("stored Nats-Msg-Id = %q, want n1.boot.1.1", got)
	}
	if string(raw.Data) != "first" {
		t.Errorf("stored data = %q", raw.Data)
	}
}

func TestJetStreamPublisherNoStream(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)
	err := bus.JetStreamPublisher{JS: js}.Publish(ctx, bus.Msg{Subject: "nostream.x", ID: "id-1"})
	if err == nil {
		t.Fatal("publish to a subject no stream captures returned nil: a message would be lost silently")
	}
	if !strings.Contains(err.Error(), "nostream.x") || !strings.Contains(err.Error(), "id-1") {
		t.Errorf("error %q does not name subject and msg id", err)
	}
}

func TestAsyncPublisherFlush(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)

	p := &bus.AsyncPublisher{JS: js}
	// More than the 256 pending futures that trigger a reap, and one
	// reused buffer: the publisher must copy it.
	const n = 600
	buf := make([]byte, 16)
	for i := 0; i < n; i++ {
		buf = fmt.Appendf(buf[:0], "msg-%05d", i)
		if err := p.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n1"), ID: fmt.Sprintf("id-%d", i), Data: buf}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	failed, err := p.Flush()
	if failed != 0 || err != nil {
		t.Fatalf("Flush = %d failures, %v; want 0, nil", failed, err)
	}
	if got := streamMsgs(t, ctx, js, bus.StreamStats); got != n {
		t.Fatalf("stream holds %d messages after Flush, want %d", got, n)
	}
	s, _ := js.Stream(ctx, bus.StreamStats)
	for _, seq := range []uint64{1, 257, n} {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("msg-%05d", seq-1); string(m.Data) != want {
			t.Errorf("stream seq %d holds %q, want %q (buffer not copied?)", seq, m.Data, want)
		}
	}
	// A second flush with nothing pending is a no-op.
	if failed, err := p.Flush(); failed != 0 || err != nil {
		t.Errorf("empty Flush = %d, %v", failed, err)
	}
}

func TestAsyncPublisherCountsFailures(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)
	p := &bus.AsyncPublisher{JS: js}
	if err := p.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n1"), Data: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, bus.Msg{Subject: "nostream.x", Data: []byte("lost")}); err != nil {
		// An immediate error is also an honest report.
		t.Logf("publish failed immediately: %v", err)
		return
	}
	failed, err := p.Flush()
	if failed != 1 || err == nil {
		t.Fatalf("Flush after a publish no stream takes = %d, %v; want 1 failure with an error", failed, err)
	}
	if !strings.Contains(err.Error(), "nostream.x") {
		t.Errorf("error %q does not name the subject", err)
	}
	// Failures are reported once.
	if failed, err := p.Flush(); failed != 0 || err != nil {
		t.Errorf("second Flush = %d, %v; want 0, nil", failed, err)
	}
}

func TestWaitConsumed(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)

	const stream, durable = bus.StreamStats, "test-durable"
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.JetStreamPublisher{JS: js}
	const n = 5
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n1"), Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing consumed: must time out, naming stream and consumer.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = bus.WaitConsumed(short, js, stream, durable)
	cancel()
	if err == nil {
		t.Fatal("WaitConsumed returned nil with 5 unconsumed messages")
	}
	if !strings.Contains(err.Error(), stream) || !strings.Contains(err.Error(), durable) {
		t.Errorf("timeout error %q does not name stream %s and consumer %s", err, stream, durable)
	}

	// Fetch without acking: still pending acks, still not consumed.
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != n {
		t.Fatalf("fetched %d messages, want %d", len(msgs), n)
	}
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	err = bus.WaitConsumed(short, js, stream, durable)
	cancel()
	if err == nil {
		t.Fatal("WaitConsumed returned nil while 5 messages were delivered but not acked")
	}

	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.WaitConsumed(ctx, js, stream, durable); err != nil {
		t.Fatalf("WaitConsumed after every message was acked: %v", err)
	}

	// An unknown consumer never counts as consumed.
	short, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	err = bus.WaitConsumed(short, js, stream, "no-such-consumer")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "no-such-consumer") {
		t.Errorf("WaitConsumed on a missing consumer = %v, want a timeout naming it", err)
	}
}

// TestWaitConsumedRightAfterPublish: the server counts a stored message
// into a consumer's pending count from a queue, so consumer info can say
// "nothing pending" just after a publish was acked. WaitConsumed must not
// believe it: each round publishes one message and asks at once.
func TestWaitConsumedRightAfterPublish(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)
	const stream, durable = bus.StreamStats, "right-after"
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubjects: []string{bus.StatsSubject("n1")},
	}); err != nil {
		t.Fatal(err)
	}
	pub := bus.JetStreamPublisher{JS: js}
	for round := 0; round < 40; round++ {
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n1"), Data: []byte{byte(round)}}); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		err := bus.WaitConsumed(short, js, stream, durable)
		cancel()
		if err == nil {
			t.Fatalf("round %d: WaitConsumed returned nil right after a publish nobody consumed", round)
		}
	}
	// A message on another subject is not the consumer's to consume.
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n2"), Data: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(40, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 40 {
		t.Fatalf("fetched %d messages, want 40", got)
	}
	if err := bus.WaitConsumed(ctx, js, stream, durable); err != nil {
		t.Fatalf("WaitConsumed after all 40 were acked (one message of another subject stored after them): %v", err)
	}
}

func TestValidNode(t *testing.T) {
	for _, bad := range []string{"a.b", "*", "", ">", "a b", "tab\there", "x\x01", strings.Repeat("n", 129)} {
		if err := bus.ValidNode(bad); err == nil {
			t.Errorf("ValidNode(%q) = nil, want an error", bad)
		}
	}
	for _, good := range []string{"node-1", "n", "ip-10-0-0-1_eu", strings.Repeat("n", 128)} {
		if err := bus.ValidNode(good); err != nil {
			t.Errorf("ValidNode(%q) = %v, want nil", good, err)
		}
	}
}

func TestParseSubject(t *testing.T) {
	for _, c := range []struct {
		subject string
		kind    bus.Kind
		node    string
	}{
		{bus.RawSubject("node-1"), bus.KindRaw, "node-1"},
		{bus.SnapshotSubject("node-1"), bus.KindSnapshot, "node-1"},
		{bus.EnrichedSubject("n2"), bus.KindEnriched, "n2"},
		{bus.StatsSubject("n3"), bus.KindStats, "n3"},
		{bus.ProcSubject("n4"), bus.KindProc, "n4"},
		{"ringwise.raw.ip-10-0-0-1_eu", bus.KindRaw, "ip-10-0-0-1_eu"},
	} {
		k, node, err := bus.ParseSubject(c.subject)
		if err != nil || k != c.kind || node != c.node {
			t.Errorf("ParseSubject(%q) = %q, %q, %v; want %q, %q, nil", c.subject, k, node, err, c.kind, c.node)
		}
		if got := bus.Subject(c.kind, c.node); got != c.subject {
			t.Errorf("Subject(%q, %q) = %q, want %q", c.kind, c.node, got, c.subject)
		}
	}
	for _, bad := range []string{
		"", "plain", "ringwise", "ringwise.", "ringwise.raw", "ringwise.raw.", "ringwise.raw.a.b",
		"ringwise.bogus.n1", "ringwise.alerts", "ringwise.dlq.raw.n1", "other.raw.n1", "ringwise.raw.*",
		"ringwise.raw.>", "RINGWISE.raw.n1", "ringwise.raw." + strings.Repeat("n", 129),
	} {
		if k, node, err := bus.ParseSubject(bad); err == nil || !errors.Is(err, bus.ErrSubject) {
			t.Errorf("ParseSubject(%q) = %q, %q, %v; want an error wrapping ErrSubject", bad, k, node, err)
		}
	}
	if bus.RawSubject("x") != "ringwise.raw.x" || bus.EnrichedSubject("x") != "ringwise.enriched.x" {
		t.Errorf("subject layout changed: %s %s", bus.RawSubject("x"), bus.EnrichedSubject("x"))
	}
	if got := bus.DLQSubject(bus.KindRaw, "n1"); got != "ringwise.dlq.raw.n1" {
		t.Errorf("DLQSubject = %q", got)
	}
	if got := bus.DLQSubject("", "a.b"); got != "ringwise.dlq.unknown.unknown" {
		t.Errorf("DLQSubject of an unparsed subject = %q", got)
	}
}
