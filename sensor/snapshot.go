package sensor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// publishSnapshot publishes the start snapshot (gen 0) or one taken on
// request (gen 1, 2, …: its own message ids, so that JetStream's duplicate
// window does not drop it as a repeat of the start snapshot).
func (s *sensor) publishSnapshot(ctx context.Context, gen uint64) (procfs.SnapshotReply, error) {
	var rep procfs.SnapshotReply
	procs, err := s.cfg.Procfs.Snapshot()
	if err != nil {
		return rep, fmt.Errorf("sensor: %w", err)
	}
	parts := event.SplitSnapshot(procs)
	for i, part := range parts {
		snap := event.Snapshot{Schema: event.SchemaVersion, Node: s.cfg.Node, BootID: s.cfg.BootID, SensorStartNs: s.startNs,
			Part: uint32(i + 1), Parts: uint32(len(parts)), Procs: part}
		data, err := event.EncodeSnapshot(&snap)
		if err != nil {
			return rep, fmt.Errorf("sensor: encode snapshot: %w", err)
		}
		id := fmt.Sprintf("%s.%s.%d.snapshot.%d", s.cfg.Node, s.cfg.BootID, s.startNs, i+1)
		if gen > 0 {
			id = fmt.Sprintf("%s.%s.%d.snapshot-r%d.%d", s.cfg.Node, s.cfg.BootID, s.startNs, gen, i+1)
		}
		if i == 0 {
			rep.ID = id
		}
		if err := s.publish(ctx, bus.Msg{Subject: bus.SnapshotSubject(s.cfg.Node), ID: id, Data: data, Schema: event.SchemaVersion}); err != nil {
			return rep, fmt.Errorf("sensor: publish snapshot part %d of %d (%d processes, %d bytes): %w", i+1, len(parts), len(part), len(data), err)
		}
	}
	rep.Processes, rep.Parts = len(procs), len(parts)
	s.log.Info("published /proc snapshot", "processes", len(procs), "parts", len(parts), "requested", gen > 0)
	return rep, nil
}

// answerSnapshot takes and publishes a snapshot on an enricher's request
// and replies once it is queued, or refuses one within
// procfs.SnapshotRequestInterval of the last (counted).
func (s *sensor) answerSnapshot(ctx context.Context, m *nats.Msg) {
	var rep procfs.LookupReply
	s.snapMu.Lock()
	if !s.lastSnapReq.IsZero() && time.Since(s.lastSnapReq) < procfs.SnapshotRequestInterval {
		s.snapMu.Unlock()
		s.snapRefused.Add(1)
		rep.Error = procfs.ErrSnapshotTooSoon
		s.log.Warn("snapshot request refused: too soon after the last", "interval", procfs.SnapshotRequestInterval)
	} else {
		s.lastSnapReq = time.Now()
		s.snapGen++
		gen := s.snapGen
		s.snapMu.Unlock()
		sr, err := s.publishSnapshot(ctx, gen)
		if err != nil {
			rep.Error = err.Error()
		} else {
			s.snapRequested.Add(1)
			rep.Snapshot = &sr
		}
	}
	data, _ := json.Marshal(&rep)
	_ = m.Respond(data)
}

func (s *sensor) serveLookups(ctx context.Context) (*nats.Subscription, error) {
	sub, err := s.cfg.NC.Subscribe(bus.ProcSubject(s.cfg.Node), func(m *nats.Msg) {
		var req procfs.LookupRequest
		var rep procfs.LookupReply
		if err := json.Unmarshal(m.Data, &req); err == nil && req.Snapshot {
			// Not in the subscription's goroutine: lookups go on meanwhile.
			go s.answerSnapshot(ctx, m)
			return
		} else if err != nil {
			// Accept a bare decimal pid too, for `nats req` by hand.
			pid, perr := strconv.ParseUint(string(m.Data), 10, 32)
			if perr != nil {
				rep.Error = "bad request: want {\"pid\":N} or a decimal pid"
				// Counted and answered; a hostile or broken client
				// never stops the lookups of the others.
				if s.badLookups.Add(1) == 1 {
					s.log.Warn("bad lookup request (counted; later ones are not logged)", "subject", m.Subject, "bytes", len(m.Data))
				}
			}
			req.Pid = uint32(pid)
		}
		if rep.Error == "" && req.CgroupID != 0 {
			path, err := s.cgroups.Path(req.CgroupID)
			switch {
			case errors.Is(err, procfs.ErrNoCgroup):
				rep.Error = procfs.ErrLookupNotFound
			case err != nil:
				rep.Error = err.Error()
			default:
				rep.Cgroup = &procfs.CgroupInfo{ID: req.CgroupID, Path: path, ContainerID: procfs.ContainerID(path)}
			}
		} else if rep.Error == "" {
			p, err := s.cfg.Procfs.Lookup(req.Pid)
			switch {
			case errors.Is(err, procfs.ErrNotFound):
				rep.Error = procfs.ErrLookupNotFound
			case err != nil:
				rep.Error = err.Error()
			default:
				rep.Proc = p
			}
		}
		data, _ := json.Marshal(&rep)
		_ = m.Respond(data)
	})
	if err != nil {
		return nil, fmt.Errorf("sensor: serve lookups on %s: %w", bus.ProcSubject(s.cfg.Node), err)
	}
	return sub, nil
}
