// Package state is ringwise's per-node process state engine.
//
// It rebuilds the node's process table from the lifecycle records (fork, exec,
// exit) in the raw stream, seeds it from the sensor's /proc snapshot, asks the
// sensor for single processes on demand, and enriches every raw event with its
// process metadata. Where metadata cannot be known it says which fields are
// missing and why (see event.Reason), and it never attaches metadata it cannot
// vouch for: a stale entry left by a lost exit, or the pre-exec name of a
// process whose exec was lost, is refused rather than shown.
//
// The package is pure logic: no I/O (lookups go through the caller's Lookup),
// no goroutines, no package-level state.
package state

import (
	"context"
	"errors"
	"time"

	"github.com/ringwise/ringwise/services/event"
)

// Lookup asks the node's sensor for one process (by thread-group id) from
// /proc. The I/O is done by the caller's implementation, which must honour
// ctx's deadline: the engine calls it synchronously from Enrich.
type Lookup interface {
	Lookup(ctx context.Context, pid uint32) (event.ProcInfo, error)
}

// LookupFunc adapts a function to Lookup.
type LookupFunc func(ctx context.Context, pid uint32) (event.ProcInfo, error)

// Lookup calls f.
func (f LookupFunc) Lookup(ctx context.Context, pid uint32) (event.ProcInfo, error) {
	return f(ctx, pid)
}

// ErrNotFound is what Lookup implementations return (wrapped) when /proc has
// no such process. Any other error counts as a failed lookup.
var ErrNotFound = errors.New("process not found")

// Defaults for zero Config fields.
const (
	DefaultMaxProcs           = 65536
	DefaultMaxTombstones      = 16384
	DefaultLookupTimeout      = 50 * time.Millisecond
	DefaultNegativeCacheSize  = 16384
	DefaultMaxLookupsPerBatch = 256
	DefaultReorderWindow      = 256
)

// Config configures an Engine. Zero values select the defaults; for the
// bounded caches and the reorder window a negative value disables them.
// Containers resolves cgroup ids to container ids ("" for a host cgroup):
// procfs.NATSLookup asks the node's sensor, which reads the host's cgroup
// hierarchy.
type Containers interface {
	ContainerID(ctx context.Context, cgroupID uint64) (string, error)
}

type Config struct {
	// MaxProcs bounds the table's entries (live + exited). Default 65536.
	MaxProcs int
	// MaxTombstones bounds the remembered evictions (pid, start), so that a
	// later event of an evicted process says ReasonEvicted. Default 16384.
	MaxTombstones int
	// Lookup is asked for processes the table does not know; nil disables
	// lookups.
	Lookup Lookup
	// Containers resolves a cgroup id (of fork and exec records) to
	// Falco's container.id; nil leaves container ids to the snapshot and
	// lookups (ProcInfo.ContainerID).
	Containers Containers
	// LookupTimeout bounds each lookup. Default 50ms.
	LookupTimeout time.Duration
	// NegativeCacheSize bounds the (pid, start) pairs whose enrichment failed,
	// remembered with their reason so that they are not looked up again.
	// Default 16384.
	NegativeCacheSize int
	// MaxLookupsPerBatch bounds the lookups one Enrich call makes, so that a
	// flood of unknown processes with a slow sensor cannot stall the stream
	// (each lookup may take LookupTimeout). Processes over the budget get
	// their reason without a lookup and are not negatively cached, so a later
	// batch tries again. After a lookup times out, the rest of the batch
	// makes none. Default 256.
	MaxLookupsPerBatch int
	// ReorderWindow is how many following events of the same batch are
	// searched for a process's own fork or exec record when an event finds no
	// (or outdated) state: with several rings a process's first syscalls can
	// be read just before its exec. Default 256.
	ReorderWindow int
}

func (c Config) withDefaults() Config {
	if c.MaxProcs <= 0 {
		c.MaxProcs = DefaultMaxProcs
	}
	if c.MaxTombstones == 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.NegativeCacheSize == 0 {
		c.NegativeCacheSize = DefaultNegativeCacheSize
	}
	if c.MaxLookupsPerBatch == 0 {
		c.MaxLookupsPerBatch = DefaultMaxLookupsPerBatch
	}
	if c.ReorderWindow == 0 {
		c.ReorderWindow = DefaultReorderWindow
	}
	return c
}

// Table is the per-node process state. It is an interface so that a later
// scale-out can hand a node to another enricher and rebuild it from a
// snapshot.
type Table interface {
	// Seed resets the table and seeds it from a /proc snapshot
	// (Source=snapshot). Counters in Stats are cumulative and kept.
	Seed(procs []event.ProcInfo)
	// Merge applies a /proc snapshot to a table that events already
	// update, without letting it replace newer state: an entry whose pid
	// is held by a later-started process, or whose exit was seen, is
	// stale; an entry for a known process whose image (name, exe, command
	// line, or container id when the state knows it from the cgroup) differs contradicts what the events established (a snapshot
	// carries no exec counter, so it cannot be newer than an applied exec)
	// and is dropped. Only unknown pids, newer holders of a pid and fields
	// the state lacks are applied.
	Merge(procs []event.ProcInfo) MergeResult
	// Enrich appends one Enriched per raw event of b to out, in order,
	// applying lifecycle events to the table, and returns out. The strings of
	// the results are shared and immutable; Event.Exe and Event.Args alias
	// b's buffers, like the raw events themselves.
	Enrich(ctx context.Context, b *event.Batch, out []event.Enriched) []event.Enriched
	// EnrichInPlace is Enrich on events already in their Enriched: b is the
	// batch's envelope (its Events are ignored), evs holds its raw events in
	// order (their Event parts, the rest zero, as event.Codec's
	// DecodeEnrichable leaves them), each enriched where it is.
	EnrichInPlace(ctx context.Context, b *event.Batch, evs []event.Enriched)
	// Snapshot returns the current live processes, for hand-over.
	Snapshot() []event.ProcInfo
	// Stats returns the engine's counters.
	Stats() Stats
}

// MergeResult counts what Merge did with a snapshot's entries.
type MergeResult struct {
	Applied       int // inserted or replaced
	Agreed        int // already known, the same
	Stale         int // older than the state (earlier holder of the pid, or exited)
	Contradicting int // a known live process with another image: dropped
	// ContradictingContainer is the part of Contradicting whose container
	// id differs from the one the state knows (from the cgroup).
	ContradictingContainer int
}

// New returns an Engine configured by cfg.
func New(cfg Config) Table { return NewEngine(cfg) }

var _ Table = (*Engine)(nil)

// Stats are the engine's cumulative counters (and current table sizes).
type Stats struct {
	Batches uint64
	// Events is the number of events enriched; Missing how many of them had
	// at least one field missing (and Reason != ReasonNone).
	Events  uint64
	Missing uint64
	// MissingByReason counts missing events per event.Reason (index).
	MissingByReason [NumReasonSlots]uint64
	// MissingByField counts missing events per field, in event.Field bit
	// order (proc.ppid, proc.name, proc.exepath, proc.cmdline, user.uid).
	MissingByField [NumFields]uint64
	// BySource counts events per event.Source of their metadata.
	BySource [NumSourceSlots]uint64

	// Lifecycle records applied.
	Forks, ThreadForks, Execs, Exits, ThreadExits uint64

	Lookups        uint64 // lookups made
	LookupHits     uint64 // found, same start: entry inserted
	LookupMisses   uint64 // not found, or another process under the pid
	LookupErrors   uint64 // failed or timed out
	LookupTimeouts uint64 // of LookupErrors, deadline exceeded
	LookupsSkipped uint64 // not made: per-batch budget spent or ctx done
	NegativeHits   uint64 // answered from the negative cache
	// ForkerLookups counts lookups (of Lookups) of a process that forked
	// a child while absent from the table, so that the child inherits its
	// image instead of missing it (parent_unknown).
	ForkerLookups uint64

	// NonLeaderExecs counts execs by a thread other than the leader
	// (event.Event.OldPid): each also ends thread OldPid, counted in
	// ThreadExits.
	NonLeaderExecs uint64
	// ContainerLookups counts cgroup ids resolved through
	// Config.Containers (each once while cached); ContainerLookupErrors
	// those that failed (the container id is then left empty).
	ContainerLookups, ContainerLookupErrors uint64
	// CompatSyscalls counts syscall events of a non-native ABI (ia32 on
	// x86_64); UnnamedSyscalls those whose number names no syscall of
	// their ABI's table, or has no 64-bit equivalent (socketcall, ipc),
	// or whose ABI no table covers (AArch32): counted apart, never named
	// as another call.
	CompatSyscalls, UnnamedSyscalls uint64
	// Reordered counts events enriched from their own process's fork or exec
	// record found later in the same batch.
	Reordered uint64
	// Evictions counts entries evicted from the full table; EvictionsLive
	// those of them that had not exited.
	Evictions, EvictionsLive uint64
	// PidReuseDetected counts entries of processes whose exit was lost that
	// were found under a pid now used by another process (replaced by a fork
	// or exec, or refused on an event).
	PidReuseDetected uint64
	// CredChanges counts successful setuid/setgid-family syscalls applied.
	CredChanges uint64
	// CgroupMoves counts cgroup_attach_task records of a known process
	// applied (its container.id follows the new cgroup).
	CgroupMoves uint64

	// Procs is the current number of entries, Live those not exited.
	Procs, Live int
	// Tombstones and NegativeEntries are the current sizes of those caches.
	Tombstones, NegativeEntries int
}

// NumReasonSlots sizes Stats.MissingByReason: any event.Reason indexes it.
const NumReasonSlots = 16

// NumFields is the number of event.Field bits.
const NumFields = 5

// NumSourceSlots sizes Stats.BySource.
const NumSourceSlots = 8

// Reason returns the count of missing events with reason r.
func (s *Stats) Reason(r event.Reason) uint64 {
	if int(r) >= NumReasonSlots {
		return 0
	}
	return s.MissingByReason[r]
}

// ReasonCounts returns the non-zero missing counts by reason name.
func (s *Stats) ReasonCounts() map[string]uint64 {
	m := make(map[string]uint64)
	for i, n := range s.MissingByReason {
		if n > 0 && i > 0 {
			m[event.Reason(i).String()] = n
		}
	}
	return m
}

// FieldCounts returns the non-zero missing counts by Falco field name.
func (s *Stats) FieldCounts() map[string]uint64 {
	m := make(map[string]uint64)
	for i, n := range s.MissingByField {
		if n > 0 {
			event.Field(1 << i).Each(func(name string) { m[name] = n })
		}
	}
	return m
}
