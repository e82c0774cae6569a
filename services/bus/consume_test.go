package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// runConsumer runs c until stop is called; stop waits for Run and returns
// its error.
func runConsumer(t *testing.T, ctx context.Context, c *bus.Consumer) (stop func() error) {
	t.Helper()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// publish stores m and returns its stream sequence.
func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, m *nats.Msg) uint64 {
	t.Helper()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("publish %s (%d bytes): %v", m.Subject, len(m.Data), err)
	}
	return ack.Sequence
}

// TestConsumerPoisonGoesToDLQ: poison of each kind is terminated, counted
// and dead-lettered with its reason, original subject and sequence, while
// every valid message around it is handled exactly once.
func TestConsumerPoisonGoesToDLQ(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	// A raw stream that stores messages above the consume loop's limit,
	// so that the loop's own "oversized" check is what meets them (the
	// default raw MaxMsgSize equals that limit, refusing them at publish).
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true, RawMaxMsgSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	h := func(_ context.Context, d bus.Delivery) error {
		if d.Kind != bus.KindRaw || d.Node != "n1" {
			return fmt.Errorf("delivery %s parsed as %q %q", d.Subject, d.Kind, d.Node)
		}
		if bytes.HasPrefix(d.Data, []byte("poison")) {
			return bus.PoisonAs("malformed", errors.New("test payload says poison"))
		}
		if bytes.HasPrefix(d.Data, []byte("plain-poison")) {
			return bus.Poison(errors.New("no reason given"))
		}
		mu.Lock()
		seen[string(d.Data)]++
		mu.Unlock()
		return nil
	}
	spec := bus.ConsumerSpec{Stream: bus.StreamRaw, Durable: "poison-test", FilterSubjects: []string{bus.PrefixRaw + ">"}, Schema: 1}
	c, err := bus.NewConsumer(js, spec, h)
	if err != nil {
		t.Fatal(err)
	}

	type poison struct {
		seq     uint64
		subject string
		reason  string
		size    int
	}
	var want []poison
	valid := 0
	big := bytes.Repeat([]byte{0xc1}, 5<<20) // 5 MB: the embedded server takes up to 32 MiB
	for i := 0; i < 60; i++ {
		subj := bus.RawSubject("n1")
		switch i {
		case 7:
			m := &nats.Msg{Subject: subj, Data: []byte("poison 1")}
			want = append(want, poison{publish(t, ctx, js, m), subj, "malformed", len(m.Data)})
		case 15:
			m := &nats.Msg{Subject: subj, Data: big}
			want = append(want, poison{publish(t, ctx, js, m), subj, bus.ReasonOversized, len(big)})
		case 23:
			m := &nats.Msg{Subject: subj, Data: []byte("ok but schema 2"), Header: nats.Header{}}
			m.Header.Set(bus.HeaderSchema, "2")
			want = append(want, poison{publish(t, ctx, js, m), subj, bus.ReasonSchemaVersion, len(m.Data)})
		case 31:
			m := &nats.Msg{Subject: "ringwise.raw.a.b", Data: []byte("dotted node")}
			want = append(want, poison{publish(t, ctx, js, m), m.Subject, bus.ReasonBadSubject, len(m.Data)})
		case 39:
			m := &nats.Msg{Subject: subj, Data: []byte("plain-poison")}
			want = append(want, poison{publish(t, ctx, js, m), subj, bus.ReasonBadInput, len(m.Data)})
		default:
			// Valid, with and without a schema header of the right version.
			if err := (bus.JetStreamPublisher{JS: js}).Publish(ctx, bus.Msg{Subject: subj, Data: []byte("ok-" + strconv.Itoa(i)), Schema: i % 2}); err != nil {
				t.Fatal(err)
			}
			valid++
		}
	}
	stop := runConsumer(t, ctx, c)
	if err := bus.WaitConsumed(ctx, js, bus.StreamRaw, "poison-test"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	mu.Lock()
	if len(seen) != valid {
		t.Errorf("handled %d distinct valid messages, want %d", len(seen), valid)
	}
	for k, n := range seen {
		if n != 1 || !bytes.HasPrefix([]byte(k), []byte("ok-")) {
			t.Errorf("message %q handled %d times", k, n)
		}
	}
	mu.Unlock()

	st := c.Stats()
	if st.Acked != uint64(valid) || st.DeadLettered != uint64(len(want)) || st.DeadLetterErrors != 0 || st.Retried != 0 {
		t.Errorf("stats = %+v; want %d acked, %d dead-lettered, no errors or retries", st, valid, len(want))
	}
	for _, p := range want {
		if st.Poisoned[p.reason] != 1 {
			t.Errorf("Poisoned[%s] = %d, want 1 (all: %v)", p.reason, st.Poisoned[p.reason], st.Poisoned)
		}
	}
	dls, err := bus.ListDeadLetters(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(want) {
		t.Fatalf("DLQ holds %d messages, want %d: %+v", len(dls), len(want), dls)
	}
	for i, p := range want {
		dl := dls[i]
		if dl.Reason != p.reason || dl.OriginalSubject != p.subject || dl.OriginalSeq != p.seq || dl.OriginalStream != bus.StreamRaw ||
			dl.Size != p.size || dl.Consumer != "poison-test" || dl.Error == "" {
			t.Errorf("dead letter %d = %+v; want reason %s, subject %s, seq %d, size %d", i, dl, p.reason, p.subject, p.seq, p.size)
		}
		wantSubj := "ringwise.dlq.raw.n1"
		if p.reason == bus.ReasonBadSubject {
			wantSubj = "ringwise.dlq.unknown.unknown"
		}
		if dl.Subject != wantSubj {
			t.Errorf("dead letter %d on %s, want %s", i, dl.Subject, wantSubj)
		}
		if dl.Truncated != (p.size > bus.DeadLetterMaxData) {
			t.Errorf("dead letter %d: truncated %v with original size %d", i, dl.Truncated, p.size)
		}
	}
}

// TestConsumerRetryRedelivers: a retryable error naks; the message comes back
// and is handled once; a message that keeps failing ends in the DLQ after
// MaxDeliver deliveries.
func TestConsumerRetryRedelivers(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)

	var (
		mu         sync.Mutex
		done       = map[string]int{}
		deliveries = map[string][]uint64{}
	)
	h := func(_ context.Context, d bus.Delivery) error {
		k := string(d.Data)
		mu.Lock()
		defer mu.Unlock()
		deliveries[k] = append(deliveries[k], d.Delivered)
		switch {
		case k == "always":
			return errors.New("downstream unavailable")
		case k == "m3" && d.Delivered == 1:
			return errors.New("transient")
		}
		done[k]++
		return nil
	}
	spec := bus.ConsumerSpec{Stream: bus.StreamStats, Durable: "retry-test", MaxDeliver: 3, RetryBase: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond}
	c, err := bus.NewConsumer(js, spec, h)
	if err != nil {
		t.Fatal(err)
	}
	var alwaysSeq uint64
	for i := 0; i < 6; i++ {
		publish(t, ctx, js, &nats.Msg{Subject: bus.StatsSubject("n1"), Data: []byte("m" + strconv.Itoa(i))})
	}
	alwaysSeq = publish(t, ctx, js, &nats.Msg{Subject: bus.StatsSubject("n1"), Data: []byte("always")})
	stop := runConsumer(t, ctx, c)
	if err := bus.WaitConsumed(ctx, js, bus.StreamStats, "retry-test"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 6; i++ {
		if k := "m" + strconv.Itoa(i); done[k] != 1 {
			t.Errorf("%s handled %d times, want 1", k, done[k])
		}
	}
	if got := deliveries["m3"]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("m3 deliveries = %v, want [1 2]", got)
	}
	if got := deliveries["always"]; len(got) != 3 {
		t.Errorf("always-failing message delivered %v, want 3 times (MaxDeliver)", got)
	}
	st := c.Stats()
	// m3 once, "always" twice before its last delivery.
	if st.Retried != 3 || st.Acked != 6 || st.Poisoned[bus.ReasonMaxDeliver] != 1 || st.DeadLettered != 1 {
		t.Errorf("stats = %+v", st)
	}
	dls, err := bus.ListDeadLetters(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Reason != bus.ReasonMaxDeliver || dls[0].OriginalSeq != alwaysSeq || dls[0].Subject != "ringwise.dlq.stats.n1" {
		t.Errorf("DLQ = %+v, want the always-failing message as max_deliver", dls)
	}
}

func TestBackoffIncreasesAndIsBounded(t *testing.T) {
	s := bus.ConsumerSpec{RetryBase: 100 * time.Millisecond, RetryMax: time.Second}
	prev := time.Duration(0)
	for d := uint64(1); d <= 100; d++ {
		b := s.Backoff(d)
		if b < prev || b > time.Second || b < 100*time.Millisecond {
			t.Fatalf("Backoff(%d) = %v after %v", d, b, prev)
		}
		prev = b
	}
	if s.Backoff(1) != 100*time.Millisecond || s.Backoff(2) != 200*time.Millisecond || s.Backoff(100) != time.Second {
		t.Errorf("Backoff 1, 2, 100 = %v %v %v", s.Backoff(1), s.Backoff(2), s.Backoff(100))
	}
	if d := (bus.ConsumerSpec{}).Backoff(1 << 40); d != bus.DefaultRetryMax {
		t.Errorf("default Backoff of a huge delivery count = %v, want %v", d, bus.DefaultRetryMax)
	}
}

// TestConsumerDrainLosesNothing: cancelling mid-stream stops the loop
// after it settled what it had received; a new loop on the same durable
// handles exactly the rest.
func TestConsumerDrainLosesNothing(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)
	const n = 3000
	pub := &bus.AsyncPublisher{JS: js}
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject("n1"), Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if failed, err := pub.Flush(); failed != 0 {
		t.Fatalf("%d publishes failed: %v", failed, err)
	}

	var (
		mu    sync.Mutex
		count = map[string]int{}
	)
	spec := bus.ConsumerSpec{Stream: bus.StreamStats, Durable: "drain-test", PullBatch: 100}
	runCtx, cancel := context.WithCancel(ctx)
	var first int
	h := func(_ context.Context, d bus.Delivery) error {
		mu.Lock()
		count[string(d.Data)]++
		first++
		if first == n/3 {
			cancel() // mid-stream, with a pull batch in the buffer
		}
		mu.Unlock()
		return nil
	}
	c1, err := bus.NewConsumer(js, spec, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Run(runCtx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st1 := c1.Stats()
	mu.Lock()
	handled1 := len(count)
	mu.Unlock()
	if handled1 >= n || st1.Acked != uint64(handled1) {
		t.Fatalf("first loop handled %d of %d and acked %d: it did not stop, or left handled messages unacked", handled1, n, st1.Acked)
	}

	c2, err := bus.NewConsumer(js, spec, func(_ context.Context, d bus.Delivery) error {
		mu.Lock()
		count[string(d.Data)]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, ctx, c2)
	if err := bus.WaitConsumed(ctx, js, bus.StreamStats, "drain-test"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(count) != n {
		t.Errorf("handled %d distinct messages of %d", len(count), n)
	}
	for k, c := range count {
		if c != 1 {
			t.Errorf("message %s handled %d times", k, c)
		}
	}
	t.Logf("first loop handled %d (cancelled at %d), second %d", handled1, n/3, n-handled1)
}

func TestNewConsumerRefusesIncompleteSpecs(t *testing.T) {
	_, js := startJS(t)
	h := func(context.Context, bus.Delivery) error { return nil }
	for _, c := range []struct {
		js   jetstream.JetStream
		spec bus.ConsumerSpec
		h    bus.Handler
	}{
		{nil, bus.ConsumerSpec{Stream: "S", Durable: "d"}, h},
		{js, bus.ConsumerSpec{Durable: "d"}, h},
		{js, bus.ConsumerSpec{Stream: "S"}, h},
		{js, bus.ConsumerSpec{Stream: "S", Durable: "d"}, nil},
	} {
		if _, err := bus.NewConsumer(c.js, c.spec, c.h); err == nil {
			t.Errorf("NewConsumer(%+v) accepted", c.spec)
		}
	}
}
