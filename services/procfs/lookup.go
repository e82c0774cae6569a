package procfs

import (
	"context"
	"encoding/json"
	"fmt"

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
	Error  string         `json:"error,omitempty"`
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
