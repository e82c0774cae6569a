package sensor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// TestSnapshotOnRequest: a snapshot request on the sensor's lookup
// subject (real NATS) makes it publish a fresh snapshot on its snapshot
// subject, under message ids of its own (so the duplicate window does not
// drop it as the start snapshot again), and reply with what it queued; a
// second request within procfs.SnapshotRequestInterval is refused and
// counted.
func TestSnapshotOnRequest(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(srv.URL(), "snapshot-request-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.NC = nc
	probe := newFakeProbe(0, [event.NumCategories]uint64{}, map[string][]event.Event{"shared": nil}, "shared")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return probe, nil }
	done := make(chan struct {
		res sensor.Result
		err error
	}, 1)
	go func() {
		res, err := sensor.Run(ctx, cfg)
		done <- struct {
			res sensor.Result
			err error
		}{res, err}
	}()
	<-ready
	l := procfs.NATSLookup{NC: nc, Node: cfg.Node}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	rep, err := l.RequestSnapshot(rctx)
	if err != nil {
		t.Fatalf("snapshot request: %v", err)
	}
	if rep.Parts < 1 || !strings.Contains(rep.ID, ".snapshot-r1.1") {
		t.Errorf("reply %+v: want a part and an id of the first requested snapshot", rep)
	}
	if _, err := l.RequestSnapshot(rctx); err == nil || !strings.Contains(err.Error(), procfs.ErrSnapshotTooSoon) {
		t.Errorf("second request at once: %v, want %s", err, procfs.ErrSnapshotTooSoon)
	}
	// A malformed request is answered with an error and counted, and
	// the lookups go on.
	for _, bad := range [][]byte{[]byte("\xff\x00not a pid"), []byte(`{"pid":`), []byte("-1")} {
		m, err := nc.Request(bus.ProcSubject(cfg.Node), bad, 5*time.Second)
		if err != nil {
			t.Fatalf("bad request %q: %v", bad, err)
		}
		var brep procfs.LookupReply
		if err := json.Unmarshal(m.Data, &brep); err != nil || !strings.HasPrefix(brep.Error, "bad request") {
			t.Errorf("reply to %q: %s (%v), want a bad request error", bad, m.Data, err)
		}
	}
	if p, err := l.Lookup(rctx, 4242); err != nil || p.Comm != "daemon" {
		t.Errorf("lookup after bad requests: %+v, %v; want the fake /proc's daemon", p, err)
	}
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	var ids []string
	for _, m := range pub.all() {
		if m.Subject == bus.SnapshotSubject(cfg.Node) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] || ids[1] != rep.ID {
		t.Errorf("snapshot message ids %v: want the start snapshot's and the requested one's (%s)", ids, rep.ID)
	}
	if r.res.SnapshotsRequested != 1 || r.res.SnapshotsRefused != 1 {
		t.Errorf("result: %d requested, %d refused; want 1 and 1", r.res.SnapshotsRequested, r.res.SnapshotsRefused)
	}
	if r.res.BadLookupRequests != 3 {
		t.Errorf("result: %d bad lookup requests, want 3", r.res.BadLookupRequests)
	}
}
