package event

import "github.com/ringwise/ringwise/services/ringspec"

// Stats is what the sensor publishes on ringwise.stats.<node> about once a
// second (JSON). It carries the kernel's counters and, finely sampled, the
// arrival series: the analyzer's ring model replays it to predict what other
// ring sizes would have dropped, because attempts are counted in the kernel
// even when the record itself was dropped.
type Stats struct {
	Node          string `json:"node"`
	BootID        string `json:"boot_id"`
	SensorStartNs uint64 `json:"sensor_start_ns"`
	TimeUnixNs    int64  `json:"time_unix_ns"`
	// Seq of the last raw batch published before these stats.
	LastBatchSeq uint64 `json:"last_batch_seq"`

	Ring RingConfig `json:"ring"`
	// ConsumerCostNs is the emulated per-event cost in the reader (lab knob).
	ConsumerCostNs int64 `json:"consumer_cost_ns"`

	Counters      Counters `json:"counters"`
	Batches       uint64   `json:"batches"`
	PublishErrors uint64   `json:"publish_errors"`
	// RecordBytes is the mean ring footprint of one record per category
	// (payload + 8-byte ring header, 8-aligned), as measured by the reader.
	RecordBytes [NumCategories]float64 `json:"record_bytes"`
	// DrainRate is the reader's in-burst drain in records per second: what
	// it read between samples that both found a backlog while arrivals kept
	// up with the reads (so under a burst's CPU contention), else an
	// estimate from its busy time. The ring model measures the quiet rate
	// between bursts from Series' fill (ringmodel.BacklogFromSamples).
	DrainRate float64 `json:"drain_rate"`
	// Series holds the samples taken since the previous Stats message.
	Series []Sample `json:"series"`
	// Final is set on the last message of a sensor run, after a full drain.
	Final bool `json:"final"`
	// SpoolOverflow counts, per category, delivered events whose batch the
	// sensor's spool dropped during a NATS outage (full): never published.
	// attempted == (delivered - spool_overflow) + dropped + spool_overflow.
	SpoolOverflow [NumCategories]uint64 `json:"spool_overflow"`
	// Spool is the publisher's spool now (queued, publish errors,
	// overflow), when the sensor has one.
	Spool *SpoolState `json:"spool,omitempty"`
}

// SpoolState mirrors bus.SpoolStats (event cannot import bus).
type SpoolState struct {
	Queued        int    `json:"queued"`
	QueuedBytes   int64  `json:"queued_bytes"`
	MaxBytes      int64  `json:"max_bytes"`
	Sent          uint64 `json:"sent"`
	PublishErrors uint64 `json:"publish_errors"`
	LastError     string `json:"last_error,omitempty"`
	// Refused counts batches the stream refused for good (too large):
	// dropped, their events counted as overflow.
	Refused   uint64 `json:"refused"`
	Overflow  uint64 `json:"overflow"`
	Abandoned uint64 `json:"abandoned"`
}

// RingConfig describes the sensor's rings.
type RingConfig struct {
	SizeBytes          int             `json:"size_bytes"`
	LifecycleSizeBytes int             `json:"lifecycle_size_bytes,omitempty"`
	Layout             ringspec.Layout `json:"layout"`
	// Rings is how many rings of SizeBytes the node has: 1, or one per
	// group of CPUsPerRing CPUs in LayoutFalco.
	Rings       int  `json:"rings,omitempty"`
	CPUsPerRing int  `json:"cpus_per_ring,omitempty"`
	Hints       bool `json:"hints"`
	Shedding    bool `json:"shedding"`
}

// Sample is one reading of the kernel's cumulative counters.
type Sample struct {
	TsNs      uint64                `json:"ts_ns"` // ktime of the reading
	Attempted [NumCategories]uint64 `json:"attempted"`
	Dropped   [NumCategories]uint64 `json:"dropped"`
	Shed      [NumCategories]uint64 `json:"shed"`
	Delivered [NumCategories]uint64 `json:"delivered"`
	FillBytes int                   `json:"fill_bytes"` // bytes waiting in the ring(s)
	// AttemptedCPU is Attempted per CPU (index = the kernel's CPU number,
	// over its possible CPUs), from the same reading: the arrival curve per
	// CPU that Falco's per-CPU-group rings need in the ring model. Empty
	// from a probe that cannot read it. 16 bytes per CPU per sample.
	AttemptedCPU [][NumCategories]uint64 `json:"attempted_cpu,omitempty"`
}

// ProcInfo is one process as read from /proc, for the snapshot and lookups.
type ProcInfo struct {
	Pid     uint32 `json:"pid" msgpack:"pid"`
	PPid    uint32 `json:"ppid" msgpack:"ppid"`
	UID     uint32 `json:"uid" msgpack:"uid"`
	GID     uint32 `json:"gid" msgpack:"gid"`
	StartNs uint64 `json:"start_ns" msgpack:"start_ns"` // since boot, clock-tick granularity
	Comm    string `json:"comm" msgpack:"comm"`
	ExePath string `json:"exepath" msgpack:"exepath"`
	Cmdline string `json:"cmdline" msgpack:"cmdline"`
	// ContainerID is Falco's container.id from the process's cgroup
	// (procfs.ContainerID); "" for a host process.
	ContainerID string `json:"container_id,omitempty" msgpack:"container_id,omitempty"`
}

// StartTolerance is how far apart two start times may be and still name the
// same process: /proc reports start time in clock ticks (10 ms at USER_HZ
// 100), the kernel records in ns.
const StartToleranceNs = 20_000_000

// SameStart reports whether two start times name the same process.
func SameStart(a, b uint64) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= StartToleranceNs
}

// Snapshot is the sensor's /proc snapshot on ringwise.snapshot.<node>
// (msgpack), published once capture is attached and before any batch.
//
// A large process table is split into parts (Part 1..Parts, in order), each
// small enough for a stock NATS server's 1 MiB payload limit; a reader seeds
// its table once the last part arrives. Parts 0 means a single part.
type Snapshot struct {
	Schema        uint16     `msgpack:"schema"`
	Node          string     `msgpack:"node"`
	BootID        string     `msgpack:"boot_id"`
	SensorStartNs uint64     `msgpack:"sensor_start_ns"`
	Part          uint32     `msgpack:"part"`
	Parts         uint32     `msgpack:"parts"`
	Procs         []ProcInfo `msgpack:"procs"`
}

// SnapshotPartBytes is the target encoded size of one snapshot part: a
// part is at most this plus one entry, well under the raw stream's message
// size (bus.DefaultRawMaxMsgSize), which every node's share of the stream
// is counted in.
const SnapshotPartBytes = 128 << 10

// SplitSnapshot cuts procs into parts of about SnapshotPartBytes each.
func SplitSnapshot(procs []ProcInfo) [][]ProcInfo {
	var parts [][]ProcInfo
	start, size := 0, 0
	for i := range procs {
		p := &procs[i]
		n := 48 + len(p.Comm) + len(p.ExePath) + len(p.Cmdline) // msgpack overhead per entry is < 48
		if size+n > SnapshotPartBytes && i > start {
			parts = append(parts, procs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(parts, procs[start:])
}
