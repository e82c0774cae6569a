package enricher_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// TestContainerIDInBothModes: a process forked into a container's cgroup
// gets the container.id that the node's sensor resolves for that cgroup id,
// in shared mode and in scaled mode (the default) alike. Scaled mode's
// owned tables had no cgroup resolver, so every new process of a container
// lost its container.id there.
func TestContainerIDInBothModes(t *testing.T) {
	const cgroup, containerID = 7001, "3f4e5d6c7b8a"
	for _, mode := range []string{"shared", "scaled"} {
		t.Run(mode, func(t *testing.T) {
			e := startEnv(t)
			node := "node-ctr-" + mode
			rnc, err := nats.Connect(e.nc.ConnectedUrl())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rnc.Close)
			var cgroupAsks atomic.Int64
			sub, err := rnc.Subscribe(bus.ProcSubject(node), func(m *nats.Msg) {
				var req procfs.LookupRequest
				rep := procfs.LookupReply{Error: procfs.ErrLookupNotFound}
				if json.Unmarshal(m.Data, &req) == nil && req.CgroupID == cgroup {
					cgroupAsks.Add(1)
					rep = procfs.LookupReply{Cgroup: &procfs.CgroupInfo{ID: cgroup, Path: "/system.slice/docker-" + containerID + ".scope", ContainerID: containerID}}
				}
				data, _ := json.Marshal(&rep)
				_ = m.Respond(data)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Unsubscribe() })
			if err := rnc.Flush(); err != nil {
				t.Fatal(err)
			}

			e.publishSnapshot(t, node, event.ProcInfo{Pid: 100, PPid: 1, StartNs: 50_000_000, Comm: "containerd-shim", ExePath: "/usr/bin/containerd-shim"})
			child := fork(sensorStart+10, 200, 100, sensorStart+5, "containerd-shim")
			child.CgroupID = cgroup
			e.publishBatch(t, node, &event.Batch{Seq: 1, Events: []event.Event{child, sys(sensorStart+20, 200, sensorStart+5, 0, 0)}})

			cfg := enricher.Config{NC: e.nc, State: state.Config{LookupTimeout: 10 * time.Second}}
			if mode == "scaled" {
				b, err := bus.EnsureBuckets(e.ctx, e.js, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				cfg.Scale = &enricher.ScaleConfig{ID: "e1", Buckets: b, MemberTTL: time.Second, LeaseTTL: time.Second,
					CheckpointBatches: 5, CheckpointInterval: 200 * time.Millisecond}
			} else {
				cfg.Durable, cfg.Node = "enr-ctr", node
			}
			_, stop := e.runEnricher(t, cfg)
			var batches []event.EnrichedBatch
			waitFor(t, func() bool {
				batches = e.enriched(t, node)
				return len(batches) == 1
			})
			stop()
			evs := batches[0].Events
			if len(evs) != 2 {
				t.Fatalf("%d enriched events, want 2", len(evs))
			}
			for i, ev := range evs {
				if ev.ContainerID != containerID {
					t.Errorf("event %d (%v) of the forked child: container.id %q, want %q (missing %v, reason %v)", i, ev.Type, ev.ContainerID, containerID, ev.Missing, ev.Reason)
				}
			}
			if cgroupAsks.Load() != 1 {
				t.Errorf("%d cgroup lookups, want 1 (resolved once, then cached)", cgroupAsks.Load())
			}
		})
	}
}
