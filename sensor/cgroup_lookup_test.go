package sensor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// TestCgroupLookup: the sensor answers cgroup lookups from its host's
// cgroup hierarchy (CgroupRoot), and procfs.NATSLookup.ContainerID turns
// them into Falco's container.id: "" for a host cgroup, not found for a
// cgroup that is gone.
func TestCgroupLookup(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(srv.URL(), "cgroup-lookup-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	cgroups := t.TempDir()
	const id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	ctr := filepath.Join("system.slice", "docker-"+id+".scope")
	host := filepath.Join("system.slice", "cron.service")
	for _, d := range []string{ctr, host} {
		if err := os.MkdirAll(filepath.Join(cgroups, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctrID, _ := procfs.CgroupID(cgroups, ctr)
	hostID, _ := procfs.CgroupID(cgroups, host)

	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.NC, cfg.CgroupRoot = nc, cgroups
	probe := newFakeProbe(0, [event.NumCategories]uint64{}, map[string][]event.Event{"shared": nil}, "shared")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return probe, nil }
	done := make(chan error, 1)
	go func() { _, err := sensor.Run(ctx, cfg); done <- err }()
	<-ready

	l := procfs.NATSLookup{NC: nc, Node: cfg.Node}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	if got, err := l.ContainerID(lctx, ctrID); err != nil || got != id[:12] {
		t.Errorf("container cgroup %d: %q, %v", ctrID, got, err)
	}
	if got, err := l.ContainerID(lctx, hostID); err != nil || got != "" {
		t.Errorf("host cgroup %d: %q, %v", hostID, got, err)
	}
	if _, err := l.ContainerID(lctx, 1<<60); !errors.Is(err, procfs.ErrNotFound) {
		t.Errorf("unknown cgroup: %v, want not found", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
