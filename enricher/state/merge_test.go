package state

import (
	"context"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// TestSnapshotMergeComparesContainer: a snapshot entry that agrees with a
// live process's name, exe and command line but not with the container id
// its cgroup gave it (moving it into another container, or out to the
// host) contradicts its known image: counted and dropped, and the events
// keep the cgroup's container id. Where the state could not resolve the
// cgroup, the snapshot's /proc fills the container id in.
func TestSnapshotMergeComparesContainer(t *testing.T) {
	const start = sensorStart + 100
	eng := NewEngine(Config{Containers: fakeContainers{7: "3f4e5d6c7b8a", 1: ""}})
	var evs []event.Event
	for _, p := range []struct {
		pid    uint32
		cgroup uint64
	}{{4000, 7}, {4001, 1}, {4002, 99}} { // in a container, on the host, unresolvable
		ex := execEv(p.pid, 1, start, 2, "nginx", "/usr/sbin/nginx", "nginx", "-g", "daemon off;")
		ex.CgroupID = p.cgroup
		evs = append(evs, ex)
	}
	eng.Enrich(context.Background(), batch(0, evs...), nil)

	img := func(pid uint32, container string) event.ProcInfo {
		return event.ProcInfo{Pid: pid, PPid: 1, UID: 1000, GID: 1000, StartNs: start, Comm: "nginx",
			ExePath: "/usr/sbin/nginx", Cmdline: "nginx -g daemon off;", ContainerID: container}
	}
	r := eng.Merge([]event.ProcInfo{
		img(4000, ""),             // out of its container to the host
		img(4001, "deadbeef0000"), // from the host into a container
		img(4002, "abcdef012345"), // the state did not know: filled
		img(4000, "3f4e5d6c7b8a"), // the truth: agrees
	})
	want := MergeResult{Agreed: 2, Contradicting: 2, ContradictingContainer: 2}
	if r != want {
		t.Errorf("merge %+v, want %+v", r, want)
	}
	out := eng.Enrich(context.Background(), batch(0, sysEv(4000, start, 2), sysEv(4001, start, 2), sysEv(4002, start, 2)), nil)
	for i, wantC := range []string{"3f4e5d6c7b8a", "", "abcdef012345"} {
		if out[i].ContainerID != wantC || out[i].ProcName != "nginx" || out[i].Missing != 0 {
			t.Errorf("pid %d after the snapshot: container.id %q name %q missing %v, want %q nginx none", out[i].Pid, out[i].ContainerID, out[i].ProcName, out[i].Missing, wantC)
		}
	}
	// Once filled in, the container id binds as well.
	if r := eng.Merge([]event.ProcInfo{img(4002, "")}); r.ContradictingContainer != 1 {
		t.Errorf("merge after the fill %+v, want 1 container contradiction", r)
	}
}
