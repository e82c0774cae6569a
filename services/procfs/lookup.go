package procfs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// LookupRequest asks a node's sensor for one process (JSON, request/reply
// on ringwise.proc.<node>).
type LookupRequest struct {
	Pid uint32 `json:"pid"`
	// CgroupID, when set, asks for a cgroup instead of a process: the
	// reply's Cgroup (path and container id).
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	// Snapshot, when set, asks for a fresh /proc snapshot instead: the
	// sensor publishes it on ringwise.snapshot.<node>, in order with its
	// raw batches, and replies (Snapshot) once it is queued. A new owner
	// of the node without a checkpoint asks for one rather than replaying
	// the node's whole stream. The sensor answers at most one such request
	// per SnapshotRequestInterval.
	Snapshot bool `json:"snapshot,omitempty"`
}

// SnapshotRequestInterval is the least time between two snapshots a
// sensor takes on request; a request sooner is refused
// (ErrSnapshotTooSoon): /proc reads of a big host are not free.
const SnapshotRequestInterval = time.Second

// ErrSnapshotTooSoon is the reply error text for a snapshot request within
// SnapshotRequestInterval of the last one.
const ErrSnapshotTooSoon = "snapshot_too_soon"

// SnapshotReply answers a snapshot request: what was queued for
// ringwise.snapshot.<node>.
type SnapshotReply struct {
	Processes int `json:"processes"`
	Parts     int `json:"parts"`
	// ID is the Nats-Msg-Id of its first part.
	ID string `json:"id"`
}

// CgroupInfo answers a cgroup request.
type CgroupInfo struct {
	ID          uint64 `json:"id"`
	Path        string `json:"path"`
	ContainerID string `json:"container_id,omitempty"`
}

// LookupReply answers a LookupRequest. Error is ErrLookupNotFound when /proc
// has no such process, another text on failure, empty on success.
type LookupReply struct {
	Proc   event.ProcInfo `json:"proc"`
	Cgroup *CgroupInfo    `json:"cgroup,omitempty"`
	// Snapshot answers a snapshot request.
	Snapshot *SnapshotReply `json:"snapshot,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// ErrLookupNotFound is the reply error text for a process /proc lacks.
const ErrLookupNotFound = "not_found"

// NATSLookup asks a node's sensor for processes over request/reply.
type NATSLookup struct {
	NC   *nats.Conn
	Node string
	// NotFound is wrapped into the error when the process is gone, so the
	// caller can use its own sentinel; default ErrNotFound.
	NotFound error
}

// Lookup asks for pid; the error wraps NotFound when the process is gone.
func (l NATSLookup) Lookup(ctx context.Context, pid uint32) (event.ProcInfo, error) {
	data, _ := json.Marshal(LookupRequest{Pid: pid})
	m, err := l.NC.RequestWithContext(ctx, bus.ProcSubject(l.Node), data)
	if err != nil {
		return event.ProcInfo{}, fmt.Errorf("lookup pid %d on %s: %w", pid, bus.ProcSubject(l.Node), err)
	}
	var rep LookupReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return event.ProcInfo{}, fmt.Errorf("lookup pid %d on %s: bad reply: %w", pid, bus.ProcSubject(l.Node), err)
	}
	if rep.Error == ErrLookupNotFound {
		nf := l.NotFound
		if nf == nil {
			nf = ErrNotFound
		}
		return event.ProcInfo{}, fmt.Errorf("lookup pid %d: %w", pid, nf)
	}
	if rep.Error != "" {
		return event.ProcInfo{}, fmt.Errorf("lookup pid %d: %s", pid, rep.Error)
	}
	return rep.Proc, nil
}

// RequestSnapshot asks the node's sensor for a fresh /proc snapshot (see
// LookupRequest.Snapshot); it returns once the sensor queued it.
func (l NATSLookup) RequestSnapshot(ctx context.Context) (SnapshotReply, error) {
	data, _ := json.Marshal(LookupRequest{Snapshot: true})
	m, err := l.NC.RequestWithContext(ctx, bus.ProcSubject(l.Node), data)
	if err != nil {
		return SnapshotReply{}, fmt.Errorf("snapshot request on %s: %w", bus.ProcSubject(l.Node), err)
	}
	var rep LookupReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return SnapshotReply{}, fmt.Errorf("snapshot request on %s: bad reply: %w", bus.ProcSubject(l.Node), err)
	}
	if rep.Error != "" || rep.Snapshot == nil {
		return SnapshotReply{}, fmt.Errorf("snapshot request on %s: %s", bus.ProcSubject(l.Node), rep.Error)
	}
	return *rep.Snapshot, nil
}

// ContainerID asks the node's sensor for the container of cgroup id (""
// for a host cgroup); the error wraps NotFound when the cgroup is gone.
func (l NATSLookup) ContainerID(ctx context.Context, id uint64) (string, error) {
	data, _ := json.Marshal(LookupRequest{CgroupID: id})
	m, err := l.NC.RequestWithContext(ctx, bus.ProcSubject(l.Node), data)
	if err != nil {
		return "", fmt.Errorf("lookup cgroup %d on %s: %w", id, bus.ProcSubject(l.Node), err)
	}
	var rep LookupReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return "", fmt.Errorf("lookup cgroup %d on %s: bad reply: %w", id, bus.ProcSubject(l.Node), err)
	}
	if rep.Error == ErrLookupNotFound {
		nf := l.NotFound
		if nf == nil {
			nf = ErrNotFound
		}
		return "", fmt.Errorf("lookup cgroup %d: %w", id, nf)
	}
	if rep.Error != "" || rep.Cgroup == nil {
		return "", fmt.Errorf("lookup cgroup %d: %q", id, rep.Error)
	}
	return rep.Cgroup.ContainerID, nil
}
