package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// `ringwise nats --config` counts the nodes of its identities and creates
// the streams the sensors write with the strict per-node bound, and says so.
func TestNATSStrictStreamLimits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	files, err := bus.WriteAuthConfig(dir, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cmdNATS(ctx, []string{"--config", files.Config, "--listen", addr, "--store", t.TempDir(), "--stream-max-bytes", fmt.Sprint(64 << 20)}, &stdout, &stderr)
	}()
	deadline := time.After(60 * time.Second) // hang guard only
	for !strings.Contains(stderr.String(), "(Ctrl-C to stop)") {
		select {
		case err := <-done:
			t.Fatalf("ringwise nats: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("ringwise nats never ready:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	want := bus.StrictMsgsPerSubject(64<<20, 2, 2, bus.DefaultRawMaxMsgSize)
	if line := fmt.Sprintf("stream %s: %d bytes, per node subject at most %d messages", bus.StreamRaw, 64<<20, want); !strings.Contains(stderr.String(), line) || !strings.Contains(stderr.String(), "strict: 2 nodes") {
		t.Errorf("stderr does not say %q (strict, 2 nodes):\n%s", line, stderr.String())
	}
	opt, err := nats.NkeyOptionFromSeed(files.Seeds["admin"])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxMsgsPerSubject != want || c.MaxBytes != 64<<20 || c.Discard != jetstream.DiscardOld {
		t.Errorf("%s: %d per subject, %d bytes, discard %v; want %d, %d, old", bus.StreamRaw, c.MaxMsgsPerSubject, c.MaxBytes, c.Discard, want, 64<<20)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ringwise nats: %v", err)
	}
}
