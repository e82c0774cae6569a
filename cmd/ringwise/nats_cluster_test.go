package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// freePorts returns n TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestNATSClusterWithAuthCreatesStreams starts three `ringwise nats`
// servers of one cluster together, each from a config with the
// --init-auth identities (as the Kubernetes StatefulSet does). Every one
// must come up with the streams made by its admin, replicated on the three
// servers. Before the retry in ensureStreamsRetry, all three exited with
// "context deadline exceeded": a JetStream request sent before the cluster
// has a meta leader is never answered.
func TestNATSClusterWithAuthCreatesStreams(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth")
	if _, err := bus.WriteAuthConfig(auth, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 6) // client and cluster port per server
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard only
	defer cancel()
	type result struct {
		i   int
		err error
	}
	done := make(chan result, 3)
	outs := make([]*syncBuffer, 3)
	for i := range 3 {
		conf := filepath.Join(dir, fmt.Sprintf("s%d.conf", i))
		text := fmt.Sprintf("server_name: s%d\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\ncluster {\n  name: t\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\ninclude %q\n",
			i, ports[i], filepath.Join(dir, fmt.Sprintf("data%d", i)), ports[3+i], strings.Join(routes, ", "), "auth/nats.conf")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		outs[i] = &syncBuffer{}
		go func(i int) {
			err := cmdNATS(ctx, []string{"--config", conf, "--admin-creds", bus.SeedFile(auth, "admin")}, &syncBuffer{}, outs[i])
			done <- result{i, err}
		}(i)
	}
	// Each server says it is up only after its streams exist.
	for i := range 3 {
		for !strings.Contains(outs[i].String(), "NATS with JetStream on") {
			select {
			case r := <-done:
				t.Fatalf("server s%d exited: %v\n%s", r.i, r.err, outs[r.i].String())
			case <-ctx.Done():
				t.Fatalf("server s%d not up: %s", i, outs[i].String())
			case <-time.After(200 * time.Millisecond):
			}
		}
		t.Logf("s%d: %s", i, strings.TrimSpace(outs[i].String()))
	}
	opt, err := nats.NkeyOptionFromSeed(bus.SeedFile(auth, "admin"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(fmt.Sprintf("nats://127.0.0.1:%d", ports[1]), "test-admin", opt, nats.CustomInboxPrefix(bus.InboxPrefix(bus.RoleAdmin, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, bus.StreamRaw)
	if err != nil {
		t.Fatalf("%s: %v", bus.StreamRaw, err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("%s has %d replicas, want 3 (the cluster's size)", bus.StreamRaw, r)
	}
	cancel()
	for range 3 {
		if r := <-done; r.err != nil && r.err != context.Canceled {
			t.Errorf("server s%d: %v", r.i, r.err)
		}
	}
}
