package report

import "github.com/ringwise/ringwise/services/event"

// ev builds an enriched event for tests.
func ev(typ event.Type, pid, execID uint32, missing event.Field, reason event.Reason) event.Enriched {
	var e event.Enriched
	e.Type = typ
	e.Pid, e.Tid = pid, pid
	e.ExecID = execID
	e.Missing = missing
	e.Reason = reason
	return e
}

// known returns an event whose metadata is all known.
func known(typ event.Type, pid, execID, ppid uint32, name, exe string) event.Enriched {
	e := ev(typ, pid, execID, 0, event.ReasonNone)
	e.ProcPPid, e.ProcName, e.ProcExePath, e.ProcCmdline = ppid, name, exe, name
	e.Source = event.SourceState
	return e
}

func batch(node string, seq uint64, evs ...event.Enriched) *event.EnrichedBatch {
	return &event.EnrichedBatch{
		Schema: event.SchemaVersion, Node: node, BootID: "boot-1", RawSeq: seq,
		SensorStartNs: 1000, WallOffsetNs: 1_700_000_000_000_000_000, Events: evs,
	}
}
