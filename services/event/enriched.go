package event

import (
	"fmt"
	"strings"
)

// Field is a bit set of Falco metadata fields that come from process state.
// proc.pid and proc.tid come from the record header and are never missing.
type Field uint8

const (
	FieldPPid Field = 1 << iota
	FieldName
	FieldExePath
	FieldCmdline
	FieldUID
	numFields = 5
)

// AllFields is every state-derived field.
const AllFields Field = 1<<numFields - 1

// fieldNames are the Falco field names, in bit order.
var fieldNames = [numFields]string{"proc.ppid", "proc.name", "proc.exepath", "proc.cmdline", "user.uid"}

// FieldNames returns Falco's names of the fields in f, in a fixed order.
func (f Field) FieldNames() []string {
	var out []string
	for i := 0; i < numFields; i++ {
		if f&(1<<i) != 0 {
			out = append(out, fieldNames[i])
		}
	}
	return out
}

// Each calls fn with the Falco name of every field in f.
func (f Field) Each(fn func(name string)) {
	for i := 0; i < numFields; i++ {
		if f&(1<<i) != 0 {
			fn(fieldNames[i])
		}
	}
}

// FieldByName maps a Falco field name to its bit; ok is false if unknown.
func FieldByName(name string) (Field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

func (f Field) String() string { return strings.Join(f.FieldNames(), ",") }

// Reason says why metadata is missing. It is the enricher's diagnosis of the
// first thing that went wrong for the event's process.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonForkDropped: no state for a process that started after the
	// sensor attached, while the ring dropped lifecycle events; its fork
	// (and exec) record was lost to a full ring.
	ReasonForkDropped
	// ReasonExecDropped: the process is known, but the event carries a newer
	// exec counter than the table; the exec record was lost, so name,
	// exepath and cmdline are unknown (the old ones would be wrong).
	ReasonExecDropped
	// ReasonProcGone: no state, and the /proc lookup found the process
	// already gone (or a different process under that pid).
	ReasonProcGone
	// ReasonEvicted: the process had been evicted from the bounded table.
	ReasonEvicted
	// ReasonPidReused: the table held another process under this pid (its
	// exit was lost); that stale entry was refused.
	ReasonPidReused
	// ReasonLookupFailed: the /proc lookup timed out or errored.
	ReasonLookupFailed
	// ReasonParentUnknown: the fork was seen but the parent was unknown, so
	// the inherited exepath and cmdline are unknown.
	ReasonParentUnknown
	// ReasonNoState: no state and no lifecycle drops to blame; the process
	// predates the snapshot or lookups are disabled.
	ReasonNoState
	// ReasonOutOfOrder: the record arrived after a later exec of its
	// process (or after a newer process under its pid) had been applied;
	// the table holds only the newer image, which would be wrong for it.
	ReasonOutOfOrder
	numReasons
)

var reasonNames = [numReasons]string{
	"", "fork_dropped", "exec_dropped", "process_gone_before_lookup", "table_evicted",
	"pid_reused", "lookup_failed", "parent_unknown", "no_state", "out_of_order",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// LifecycleLoss reports whether r blames a lifecycle event dropped by the ring.
func (r Reason) LifecycleLoss() bool {
	return r == ReasonForkDropped || r == ReasonExecDropped || r == ReasonPidReused
}

// ReasonByName parses a reason name.
func ReasonByName(s string) (Reason, bool) {
	for i, n := range reasonNames {
		if n == s && i > 0 {
			return Reason(i), true
		}
	}
	return 0, false
}

// Source says where an event's metadata came from.
type Source uint8

const (
	SourceNone     Source = iota
	SourceState           // lifecycle events seen in the stream
	SourceSnapshot        // the sensor's /proc snapshot at start
	SourceLookup          // a /proc lookup on demand
	SourceHints           // a fork or exec the ring dropped, replayed by the kernel (FlagHints); or an older sensor's hinted syscall
)

func (s Source) String() string {
	return [...]string{"none", "state", "snapshot", "lookup", "hints"}[min(int(s), 4)]
}

// Enriched is a raw event with its process metadata. Fields listed in
// Missing hold zero values and must be rendered as unknown (null in JSON,
// <NA>/-1/4294967295 in Falco text).
type Enriched struct {
	Event
	ProcPPid    uint32
	ProcUID     uint32
	ProcGID     uint32
	ProcName    string
	ProcExePath string
	ProcCmdline string
	// ContainerID is Falco's container.id, derived from the process's
	// cgroup (procfs.ContainerID); "" for a host process or when unknown.
	// proc.vpid is the embedded Event's VPid.
	ContainerID string
	Missing     Field
	Reason      Reason
	Source      Source
}

// resetEnrichment zeroes every field of o but its Event.
func (o *Enriched) resetEnrichment() {
	o.ProcPPid, o.ProcUID, o.ProcGID = 0, 0, 0
	o.ProcName, o.ProcExePath, o.ProcCmdline, o.ContainerID = "", "", "", ""
	o.Missing, o.Reason, o.Source = 0, 0, 0
}

// EnrichedBatch is the envelope on ringwise.enriched.<node>. It carries the
// raw batch's identity and counters so the analyzer can tie missing metadata
// to the ring's drops without another subscription.
type EnrichedBatch struct {
	Schema        uint16
	Node          string
	BootID        string
	RawSeq        uint64
	SensorStartNs uint64
	WallOffsetNs  int64
	Counters      Counters
	Events        []Enriched
}

// MsgID is the JetStream de-duplication id of the enriched batch.
func (b *EnrichedBatch) MsgID() string {
	return fmt.Sprintf("%s.%s.%d.%d.e", b.Node, b.BootID, b.SensorStartNs, b.RawSeq)
}
