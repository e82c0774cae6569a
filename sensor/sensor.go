// Package sensor is ringwise's node agent. It loads the BPF programs with a
// ring of the configured size, reads the ring without allocating per
// record, batches records and publishes them to NATS, answers /proc lookups,
// and publishes finely sampled kernel counters so the analyzer knows the
// node's true load even when records were dropped.
package sensor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/telemetry"
)

// Ring is one kernel ring as the reader sees it (*bpf.Ring).
type Ring interface {
	Name() string
	Size() int
	// Read decodes the next record into ev; os.ErrDeadlineExceeded when no
	// record arrived before deadline (a past deadline means non-blocking, a
	// zero one blocks); bpf.ErrFlushed once the records that were in the
	// ring at the last Flush have been read.
	Read(ev *event.Event, deadline time.Time) error
	// Flush makes Read return what the ring holds now, then bpf.ErrFlushed.
	Flush() error
	// Pending is the number of bytes waiting in the ring.
	Pending() int
}

// Probe is the loaded BPF side. *bpf.Probe satisfies it through ProbeAdapter;
// tests use a fake.
type Probe interface {
	// Rings returns the lifecycle ring (nil in the shared layout) and the
	// ring that holds syscall records (in the shared layout, every record).
	Rings() (lifecycle, syscalls Ring)
	Counters() (event.Counters, error)
	SetShedding(on bool) error
	// Detach stops capture but keeps the rings, so they can be drained; it
	// returns once programs that were running have finished (the counters
	// are final).
	Detach() error
	Close() error
}

// cpuCounters is a Probe that also reads Attempted per CPU in the same
// reading (*bpf.Probe does): the samples then carry the per-CPU arrival
// curve (event.Sample.AttemptedCPU) that the ring model needs for Falco's
// per-CPU-group rings. A Probe without it gives samples without.
type cpuCounters interface {
	CountersByCPU() (event.Counters, [][event.NumCategories]uint64, error)
}

// hookedProbe is a Probe that says how it hooks syscalls (*bpf.Probe does).
type hookedProbe interface{ Hook() bpf.HookPlan }

// LoadProbe loads the real BPF programs.
func LoadProbe(cfg bpf.Config) (Probe, error) {
	p, err := bpf.Load(cfg)
	if err != nil {
		return nil, err
	}
	return probeAdapter{p}, nil
}

type probeAdapter struct{ *bpf.Probe }

func (p probeAdapter) Rings() (lifecycle, syscalls Ring) {
	if cpus := p.Probe.CPURings(); cpus != nil {
		// The falco layout: one ring per CPU group, read as one.
		if len(cpus) == 1 {
			return nil, cpus[0]
		}
		rs := make([]Ring, len(cpus))
		for i, r := range cpus {
			rs[i] = r
		}
		return nil, MergeRings(rs...)
	}
	if lc := p.Probe.LifecycleRing(); lc != nil { // no typed nil in the interface
		lifecycle = lc
	}
	return lifecycle, p.Probe.SyscallRing()
}

// DefaultShedSyscalls are the low-value, high-volume syscalls shed under
// pressure, by name so that one list serves every architecture (see
// syscalls.ParseList; access does not exist on arm64 and is skipped there).
const DefaultShedSyscalls = "read,write,close,fstat,lseek,mmap,mprotect,munmap,brk,rt_sigaction,rt_sigprocmask,access,newfstatat,pread64"

// Defaults of Config.
const (
	// DefaultBatchMaxEvents is MaxBatchEventsForEnriched (some 1980): the
	// most events whose enriched batch is sure to stay within
	// event.MaxBatchBytes, whatever processes they come from. Batches are
	// cut by this count before DefaultBatchMaxBytes at full rate (syscall
	// records are at most event.MaxSyscallWireBytes each, and this many fit
	// the byte limit: TestFullRateBatchesCutByCount), so they are as large
	// as that allows:
	// each message costs JetStream about 200 µs of CPU besides its bytes
	// (scripts/e2e-bench.sh: 256-event batches took 2.7 µs of server CPU per
	// event, 1024-event ones 1.5; 4096-event ones, which the enricher could
	// not always publish enriched, 0.23 against 0.31 for 1800 at 1.2M
	// events/s).
	DefaultBatchMaxEvents = MaxBatchEventsForEnriched
	// MaxBatchEventsForEnriched bounds Config.BatchMaxEvents: a raw batch of
	// at most DefaultBatchMaxBytes and this many events enriches to at most
	// event.MaxBatchBytes (event.MaxEnrichedExtraBytes per event).
	MaxBatchEventsForEnriched = (event.MaxBatchBytes - event.MaxBatchEnvelopeBytes - DefaultBatchMaxBytes) / event.MaxEnrichedExtraBytes
	// DefaultBatchMaxBytes bounds a raw batch's encoding: the raw stream's
	// message size less room for the NATS headers (message id, schema,
	// trace context), so that no batch is refused for its size. It cuts
	// batches by event.SyscallWireBound, not their real size.
	DefaultBatchMaxBytes  = bus.DefaultRawMaxMsgSize - 4096
	DefaultBatchMaxDelay  = 20 * time.Millisecond
	DefaultSampleInterval = 10 * time.Millisecond
	DefaultSampleIdleMax  = 100 * time.Millisecond
	DefaultStatsInterval  = time.Second
	DefaultPollInterval   = 5 * time.Millisecond
	DefaultIdlePollMax    = 20 * time.Millisecond
)

// maxEventWireBytes is event.EventWireBound of the largest event.
const maxEventWireBytes = event.MaxEventFixedBytes + event.MaxExeLen + event.MaxArgsLen

// Config configures a sensor run.
type Config struct {
	Node   string
	BootID string // default: /proc/sys/kernel/random/boot_id
	// Probe is the BPF configuration (ring size, layout, hints, shedding).
	Probe bpf.Config
	// ExcludeSelf leaves this process's own threads out of capture, in the
	// kernel, so that publishing (and an embedded NATS) never traces itself.
	// The process is identified by its global tgid (bpf.Config.ExcludeSelf),
	// so this holds in a container too.
	ExcludeSelf bool

	BatchMaxEvents int // default DefaultBatchMaxEvents
	// BatchMaxBytes bounds a batch's encoded size (default
	// DefaultBatchMaxBytes), by event.SyscallWireBound: a batch is published
	// once the next event might not fit.
	BatchMaxBytes int
	BatchMaxDelay time.Duration // default DefaultBatchMaxDelay
	// PlainBatches publishes raw batches as plain msgpack; by default they
	// are S2-compressed (event.CompressedMark), which every reader decodes.
	PlainBatches   bool
	SampleInterval time.Duration // default DefaultSampleInterval
	// SampleIdleMax bounds the sampler's period while nothing arrives: it
	// doubles from SampleInterval up to this (default DefaultSampleIdleMax)
	// and is back at SampleInterval as soon as the reader reads a record.
	SampleIdleMax time.Duration
	StatsInterval time.Duration // default DefaultStatsInterval
	PollInterval  time.Duration // reader's wait deadline; default DefaultPollInterval
	// IdlePollMax bounds the reader's wait while the rings stay empty: it
	// doubles from PollInterval up to this (default DefaultIdlePollMax).
	IdlePollMax time.Duration

	// ConsumerCost is a lab knob: busy work added per record in the reader,
	// to emulate a loaded monitor. Zero in production.
	ConsumerCost time.Duration
	// CaptureControl is a lab knob: the path of a unix socket on which
	// "off" and "on" detach and attach the probe's programs while the
	// sensor keeps running (serveCaptureControl), for an in-run A/B of
	// what capture costs. Empty in production.
	CaptureControl string

	// ShedHighWater and ShedLowWater are ring-fill fractions; above high the
	// BPF side sheds Probe.ShedSyscalls, below low it stops. Zero disables.
	ShedHighWater, ShedLowWater float64

	// Publisher receives raw batches, the snapshot and stats.
	Publisher bus.Publisher
	// Spool, when set, reads the publisher's spool counters for the live
	// stats (see bus.Spool).
	Spool func() event.SpoolState
	// NC, when set, serves /proc lookups on ringwise.proc.<node>.
	NC *nats.Conn
	// LoadProbe loads the BPF side; default LoadProbe (real BPF).
	LoadProbe func(bpf.Config) (Probe, error)
	// Ready, when set, is called once capture is attached.
	Ready  func()
	Logger *slog.Logger
	// Tracing traces each raw batch's publish (nil: no tracing).
	Tracing *telemetry.Tracing
	// Meter, when set, gets the sensor's instruments (see docs/metrics.md);
	// they stay registered after Run returns, reading the final counters.
	Meter metric.Meter
	// CgroupRoot is the host's cgroup v2 mount, for cgroup lookups (the
	// container id of a cgroup id); default procfs.CgroupRoot(os.Getenv):
	// $HOST_ROOT/sys/fs/cgroup.
	CgroupRoot string
	// Procfs reads the host's /proc for the snapshot and lookups; default
	// procfs.HostProc(os.Getenv): $HOST_ROOT/proc in a container, as
	// Falco reads it.
	Procfs procfs.FS
}

func (c *Config) defaults() error {
	if err := bus.ValidNode(c.Node); err != nil {
		return fmt.Errorf("sensor: %w", err)
	}
	if c.Publisher == nil {
		return errors.New("sensor: no publisher configured")
	}
	if c.BatchMaxEvents <= 0 {
		c.BatchMaxEvents = DefaultBatchMaxEvents
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	// The enriched batch of a raw one adds at most MaxEnrichedExtraBytes per
	// event: past this, the enricher could not encode it.
	if worst := event.MaxBatchEnvelopeBytes + c.BatchMaxBytes + c.BatchMaxEvents*event.MaxEnrichedExtraBytes; worst > event.MaxBatchBytes {
		return fmt.Errorf("sensor: batch of %d events and %d bytes: its enriched batch could reach %d bytes, above the %d-byte batch limit (%d bytes of process strings per event at most); at %d bytes, at most %d events",
			c.BatchMaxEvents, c.BatchMaxBytes, worst, event.MaxBatchBytes, event.MaxEnrichedExtraBytes, c.BatchMaxBytes,
			max(0, (event.MaxBatchBytes-event.MaxBatchEnvelopeBytes-c.BatchMaxBytes)/event.MaxEnrichedExtraBytes))
	}
	if min := event.MaxBatchEnvelopeBytes + 2*maxEventWireBytes; c.BatchMaxBytes < min {
		return fmt.Errorf("sensor: batch bytes %d: below %d (two events of the largest size)", c.BatchMaxBytes, min)
	}
	if c.BatchMaxDelay <= 0 {
		c.BatchMaxDelay = DefaultBatchMaxDelay
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.SampleIdleMax < c.SampleInterval {
		c.SampleIdleMax = max(c.SampleInterval, DefaultSampleIdleMax)
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.IdlePollMax <= 0 {
		c.IdlePollMax = DefaultIdlePollMax
	}
	if c.ShedHighWater < 0 || c.ShedHighWater > 1 || c.ShedLowWater < 0 || c.ShedLowWater > c.ShedHighWater {
		return fmt.Errorf("sensor: shed water marks high=%v low=%v: want 0 <= low <= high <= 1", c.ShedHighWater, c.ShedLowWater)
	}
	if c.Procfs.Root == "" {
		c.Procfs.Root = procfs.HostProc(os.Getenv)
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = procfs.CgroupRoot(os.Getenv)
	}
	if c.BootID == "" {
		b, err := os.ReadFile(filepath.Join(c.Procfs.Root, "sys/kernel/random/boot_id"))
		if err != nil {
			return fmt.Errorf("sensor: read boot id: %w", err)
		}
		c.BootID = strings.TrimSpace(string(b))
	}
	if c.LoadProbe == nil {
		c.LoadProbe = LoadProbe
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tracing == nil {
		c.Tracing = telemetry.Disabled()
	}
	if c.ExcludeSelf {
		// By the global tgid the kernel compares, found by the probe at
		// load: os.Getpid is a namespace's id in a container.
		c.Probe.ExcludeSelf = true
		if c.Probe.ProcRoot == "" {
			c.Probe.ProcRoot = c.Procfs.Root
		}
	}
	return nil
}

// Result is the sensor's final account, after a full drain.
type Result struct {
	Ring          event.RingConfig
	Counters      event.Counters
	Batches       uint64
	PublishErrors uint64
	SensorStartNs uint64
	DrainRate     float64
	RecordBytes   [event.NumCategories]float64
	// Series is every counter sample of the run (for the lab's model).
	Series []event.Sample
	// Consistent reports attempted == delivered + dropped in every category.
	Consistent bool
	// Execs is what the exec records read cost and kept (for the lab's
	// args-bound trade-off).
	Execs ExecStats
	// SpoolOverflow counts, per category, delivered events whose batch the
	// publisher's spool dropped (see bus.Spool) up to the final stats: they
	// never reached NATS, so attempted == (delivered - overflow) + dropped
	// + overflow, and the stream holds delivered - overflow events.
	SpoolOverflow [event.NumCategories]uint64
	// SpoolOverflowBatches counts those batches (each a gap downstream).
	SpoolOverflowBatches uint64
	// SnapshotsRequested counts the snapshots taken on an enricher's
	// request; SnapshotsRefused those refused as too soon after the last.
	SnapshotsRequested, SnapshotsRefused uint64
	// BadLookupRequests counts malformed requests on the lookup subject
	// (neither {"pid":N} nor a decimal pid), each answered with an error.
	BadLookupRequests uint64
}

// ExecStats counts the exec records read: Bytes is their ring footprint
// (header, record, exe and args as written), Truncated those whose exe or
// argv hit its bound (event.FlagTruncated).
type ExecStats struct {
	Records, Bytes, Truncated uint64
}

// MonotonicNs reads CLOCK_BOOTTIME, the clock of the records' timestamps
// (bpf_ktime_get_boot_ns) and of task start times: ns since boot, counting
// suspend, as /proc's start times do.
func MonotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

// Run captures until ctx is done, then detaches, drains every ring, and
// publishes the last batch and final stats before returning.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	probe, err := cfg.LoadProbe(cfg.Probe)
	if err != nil {
		return Result{}, fmt.Errorf("sensor: %w", err)
	}
	defer probe.Close()
	s := newSensor(cfg, probe)
	if cfg.Meter != nil {
		if _, err := s.registerMetrics(cfg.Meter); err != nil {
			return Result{}, err
		}
	}
	return s.run(ctx)
}

type sensor struct {
	cfg   Config
	probe Probe
	// lifecycle is the split layout's lifecycle ring (nil for shared);
	// syscalls holds syscall records (for shared, every record).
	lifecycle, syscalls Ring
	log                 *slog.Logger
	codec               *event.Codec
	batch               event.Batch
	// cgroups answers cgroup lookups (cgroup id → path → container id).
	cgroups *procfs.Cgroups

	startNs    uint64
	wallOffset int64
	ringCfg    event.RingConfig

	delivered   [event.NumCategories]atomic.Uint64
	recordBytes [event.NumCategories]atomic.Uint64 // sum of ring footprints
	// exec records read: count, ring footprint, and those cut (FlagTruncated)
	execs, execBytes, execCut atomic.Uint64
	batches                   atomic.Uint64
	pubErrors                 atomic.Uint64
	// overflow counts the events, per category, of batches the spool
	// dropped (full, or closed before they were stored).
	overflow        [event.NumCategories]atomic.Uint64
	overflowBatches atomic.Uint64
	// unsentBatches and unsentEvents count this run's batches (and their
	// events) never stored: overflowed, or failed to encode or publish.
	// Each raw batch carries them (bus.HeaderSensorUnsent), so that a gap
	// downstream can be told apart from retention.
	unsentBatches, unsentEvents atomic.Uint64
	// Snapshots taken on request (answerSnapshot), and those refused as
	// too soon after the last.
	snapMu                     sync.Mutex
	lastSnapReq                time.Time
	snapGen                    uint64
	snapRequested, snapRefused atomic.Uint64
	// badLookups counts lookup requests that were neither a JSON request
	// nor a decimal pid (answered with an error).
	badLookups atomic.Uint64
	lastSeq    atomic.Uint64
	busyNs     atomic.Int64 // reader time not spent waiting

	// samplerIdle is set while the sampler has backed off (nothing came);
	// the reader then sends on activity once it reads records, so that the
	// sampler is back at SampleInterval within a read, not an idle period.
	samplerIdle atomic.Bool
	activity    chan struct{}

	// pubMu serializes publishes: the reader and the sampler both
	// publish, and a bus.Publisher need only be safe for one goroutine.
	pubMu sync.Mutex

	mu          sync.Mutex
	backlogNs   uint64         // time spent with a backlog in the ring(s)
	backlogRecs uint64         // records read meanwhile
	loadedNs    uint64         // backlogged time while records kept arriving
	loadedRecs  uint64         // records read meanwhile
	kernel      event.Counters // latest kernel reading
	series      []event.Sample // all samples (bounded)
	unpublished int            // index into series of the first unpublished sample
	shedding    bool
	fillNow     int // ring fill at the latest sample, bytes
	fillHigh    int // highest fill of any sample
}

// maxSeries bounds the samples kept for the run's result (about 30 min at 10ms).
const maxSeries = 180_000

// trimSeries makes room in a full series by dropping its oldest samples
// that the stats have already carried to the analyzer (a quarter of max,
// or all published ones if fewer), so that a sensor running for longer than
// max samples keeps publishing them; before, it stopped appending and the
// analyzer's load, and with it its recommendation, froze after 30 minutes.
// The run's own result (the lab's, minutes long) then holds the newest
// samples. published is the index of the first unpublished sample: the
// count of those at the front that may go. Unpublished samples are never dropped: while the stats cannot
// be published (NATS down) a full series takes no more, as before.
func trimSeries(series []event.Sample, published, max int) ([]event.Sample, int) {
	if len(series) < max || published == 0 {
		return series, published
	}
	drop := min(published, max/4+len(series)-max)
	n := copy(series, series[drop:])
	return series[:n], published - drop
}

func newSensor(cfg Config, probe Probe) *sensor {
	s := &sensor{cfg: cfg, probe: probe, log: cfg.Logger, codec: event.NewCodec(),
		cgroups: &procfs.Cgroups{Root: cfg.CgroupRoot}}
	s.lifecycle, s.syscalls = probe.Rings()
	layout := cfg.Probe.Layout
	if layout == "" {
		layout = ringspec.DefaultLayout
	}
	s.ringCfg = event.RingConfig{Layout: layout, Hints: cfg.Probe.Hints, Shedding: cfg.ShedHighWater > 0}
	s.ringCfg.SizeBytes = s.syscalls.Size()
	s.ringCfg.Rings = 1
	if m, ok := s.syscalls.(*mergedRing); ok {
		s.ringCfg.Rings = len(m.rings)
		s.ringCfg.SizeBytes = m.rings[0].Size() // each ring is the preset size
	}
	if layout == ringspec.LayoutFalco {
		s.ringCfg.CPUsPerRing = cfg.Probe.CPUsPerRing
		if s.ringCfg.CPUsPerRing == 0 {
			s.ringCfg.CPUsPerRing = ringspec.DefaultCPUsPerRing
		}
	}
	if s.lifecycle != nil {
		s.ringCfg.LifecycleSizeBytes = s.lifecycle.Size()
	}
	s.batch.Events = make([]event.Event, cfg.BatchMaxEvents)
	s.activity = make(chan struct{}, 1)
	return s
}

func (s *sensor) run(ctx context.Context) (Result, error) {
	s.startNs = MonotonicNs()
	s.wallOffset = time.Now().UnixNano() - int64(MonotonicNs())
	s.log.Info("sensor attached", "node", s.cfg.Node, "ring_bytes", s.ringCfg.SizeBytes, "layout", s.ringCfg.Layout,
		"lifecycle_ring_bytes", s.ringCfg.LifecycleSizeBytes, "hints", s.ringCfg.Hints, "consumer_cost", s.cfg.ConsumerCost)
	// Which hook carries syscall records, and why: with a capture set the
	// fexit hook spares the node's other syscalls, and a fallback to
	// sys_exit (a kernel without fexit) costs every syscall.
	if hp, ok := s.probe.(hookedProbe); ok {
		if h := hp.Hook(); h.Hook != "" {
			s.log.Info("syscall hook", "hook", string(h.Hook), "kernel_functions", len(h.Funcs), "reason", h.Reason)
		}
	}
	// A ring the Go runtime's netpoller could not take is still read, but
	// waited on in a blocking epoll_wait, which costs an idle sensor some
	// 50 ms of CPU a second more (bpf/ringpoll.go): say so.
	if ap, ok := s.probe.(probeAdapter); ok {
		for _, r := range ap.Probe.Rings() {
			if err := r.WaitsInNetpoller(); err != nil {
				s.log.Warn("ring waits in a blocking epoll_wait, not the netpoller", "ring", r.Name(), "err", err)
			}
		}
	}

	// Snapshot after attaching: every process that started before the
	// probes were live and is still alive is in it; later ones are in the
	// stream.
	if _, err := s.publishSnapshot(ctx, 0); err != nil {
		return Result{}, err
	}
	var sub *nats.Subscription
	if s.cfg.NC != nil {
		var err error
		sub, err = s.serveLookups(ctx)
		if err != nil {
			return Result{}, err
		}
		defer sub.Unsubscribe()
	}
	if s.cfg.CaptureControl != "" {
		stop, err := s.serveCaptureControl(s.cfg.CaptureControl)
		if err != nil {
			return Result{}, err
		}
		defer stop()
	}
	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}

	samplerCtx, stopSampler := context.WithCancel(context.Background())
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); s.sample(samplerCtx) }()

	readErr := newReader(s).run(ctx)

	stopSampler()
	<-samplerDone
	res, err := s.finish()
	if readErr != nil {
		return res, readErr
	}
	return res, err
}

func (s *sensor) consistent(c event.Counters) bool {
	for i := 0; i < event.NumCategories; i++ {
		if c.Attempted[i] != s.delivered[i].Load()+c.Dropped[i] {
			return false
		}
	}
	return true
}

// sortByTime is an insertion sort: batches are nearly sorted already.
func sortByTime(evs []event.Event) {
	for i := 1; i < len(evs); i++ {
		if evs[i].TsNs >= evs[i-1].TsNs {
			continue
		}
		j := i
		for j > 0 && evs[j].TsNs < evs[j-1].TsNs {
			evs[j], evs[j-1] = evs[j-1], evs[j]
			j--
		}
	}
}

// spin burns d of CPU, like a monitor's per-event rule evaluation would.
func spin(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}

func (s *sensor) counters() event.Counters {
	s.mu.Lock()
	c := s.kernel
	s.mu.Unlock()
	for i := range c.Delivered {
		c.Delivered[i] = s.delivered[i].Load()
	}
	return c
}

func (s *sensor) publishBatch(ctx context.Context, n int) error {
	b := &s.batch
	b.Schema = event.SchemaVersion
	b.Node, b.BootID = s.cfg.Node, s.cfg.BootID
	b.SensorStartNs = s.startNs
	b.WallOffsetNs = s.wallOffset
	// Every attempt consumes a sequence number, published or not: a batch
	// that could not be published is then a gap downstream (counted as
	// lost), and its Nats-Msg-Id is never reused for different events.
	b.Seq = s.lastSeq.Add(1)
	full := b.Events
	b.Events = full[:n]
	if _, merged := s.syscalls.(*mergedRing); s.lifecycle != nil || merged {
		// The reader merges the rings by time, but records of different
		// CPUs take their timestamps just before reserving, so neighbours
		// can be a little out of order; tidy that (nearly sorted: cheap).
		sortByTime(b.Events)
	}
	b.FirstTsNs, b.LastTsNs = b.Events[0].TsNs, b.Events[n-1].TsNs
	b.Counters = s.counters()
	// The sampler's reading can be a SampleInterval old (or absent before
	// the first sample): the enricher blames fork drops on these counters,
	// so read the kernel's now. Delivered was read first, so attempted >=
	// delivered + dropped still holds.
	if c, err := s.probe.Counters(); err == nil {
		b.Counters.Attempted, b.Counters.Dropped, b.Counters.Shed = c.Attempted, c.Dropped, c.Shed
	}
	data, err := s.codec.Encode(b)
	b.Events = full
	if err != nil {
		s.pubErrors.Add(1)
		s.unsentBatches.Add(1)
		s.unsentEvents.Add(uint64(n))
		return err
	}
	if !s.cfg.PlainBatches {
		data = s.codec.Compress(data)
	}
	hdr := nats.Header{}
	hdr.Set(bus.HeaderSensorUnsent, bus.FormatCount2(s.unsentBatches.Load(), s.unsentEvents.Load()))
	msg := bus.Msg{Subject: bus.RawSubject(s.cfg.Node), ID: b.MsgID(), Header: hdr, Data: data, Schema: event.SchemaVersion}
	var per [event.NumCategories]uint64
	for i := range b.Events[:n] {
		if c := int(b.Events[i].Type.Category()); c < event.NumCategories {
			per[c]++
		}
	}
	msg.OnDrop = func() {
		s.unsentBatches.Add(1)
		s.unsentEvents.Add(uint64(n))
		s.overflowBatches.Add(1)
		for c, k := range per {
			s.overflow[c].Add(k)
		}
	}
	_, span := s.cfg.Tracing.StartPublish(ctx, telemetry.Batch{Subject: msg.Subject, MsgID: msg.ID, Events: n, Node: s.cfg.Node}, hdr)
	err = s.publish(ctx, msg)
	telemetry.EndSpan(span, err)
	if err != nil {
		s.pubErrors.Add(1)
		s.unsentBatches.Add(1)
		s.unsentEvents.Add(uint64(n))
		return err
	}
	s.batches.Add(1)
	return nil
}

func (s *sensor) publish(ctx context.Context, m bus.Msg) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.cfg.Publisher.Publish(ctx, m)
}

// sample reads the kernel counters every SampleInterval (the arrival
// series), steers shedding, and publishes stats every StatsInterval.
//
// While nothing arrives (no attempt since the last reading, rings empty)
// the period doubles, up to SampleIdleMax, and the reader's first record
// brings it back at once (activity). Why: every wake-up of a Go program
// costs tens of microseconds of scheduler work on this kind of VM, and at
// 10 ms the sampler was the largest part of an idle sensor's CPU. Nothing
// is lost by it: a reading holds cumulative counters and its own time, and
// the series' bins take their length from it, so a quiet bin of 100 ms
// says zero arrivals as ten of 10 ms would.
func (s *sensor) sample(ctx context.Context) {
	period := s.cfg.SampleInterval
	timer := time.NewTimer(period)
	defer timer.Stop()
	lastStats := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.activity:
		}
		if s.takeSample() {
			period = s.cfg.SampleInterval
		} else {
			period = min(2*period, s.cfg.SampleIdleMax)
		}
		s.samplerIdle.Store(period > s.cfg.SampleInterval)
		timer.Reset(period)
		if now := time.Now(); now.Sub(lastStats) >= s.cfg.StatsInterval {
			lastStats = now
			if err := s.publishStats(ctx, false); err != nil {
				s.log.Warn("publish stats", "err", err)
			}
		}
	}
}

// wakeSampler brings a backed-off sampler back to SampleInterval.
func (s *sensor) wakeSampler() {
	if s.samplerIdle.Load() {
		select {
		case s.activity <- struct{}{}:
		default:
		}
	}
}

// takeSample reads the counters into the series; it reports whether
// anything happened: an attempt since the previous reading, records in the
// rings, or a reading that failed.
func (s *sensor) takeSample() (active bool) {
	// The reading is stamped with the middle of the counter read; a reading
	// that took long (the sampler was preempted) has no precise time and is
	// left out of the series, whose bins would otherwise show absurd rates.
	t0 := MonotonicNs()
	var c event.Counters
	var perCPU [][event.NumCategories]uint64
	var err error
	if pc, ok := s.probe.(cpuCounters); ok {
		c, perCPU, err = pc.CountersByCPU()
	} else {
		c, err = s.probe.Counters()
	}
	t1 := MonotonicNs()
	ts := t0 + (t1-t0)/2
	reliable := t1-t0 < 1_000_000
	if err != nil {
		s.log.Warn("read counters", "err", err)
		return true
	}
	fill := s.syscalls.Pending()
	if s.lifecycle != nil {
		fill += s.lifecycle.Pending()
	}
	smp := event.Sample{TsNs: ts, Attempted: c.Attempted, Dropped: c.Dropped, Shed: c.Shed, FillBytes: fill, AttemptedCPU: perCPU}
	for i := range smp.Delivered {
		smp.Delivered[i] = s.delivered[i].Load()
	}
	s.mu.Lock()
	active = fill > 0 || event.Sum(c.Attempted) != event.Sum(s.kernel.Attempted)
	s.kernel = c
	s.fillNow, s.fillHigh = fill, max(s.fillHigh, fill)
	if n := len(s.series); n > 0 {
		// Between two readings that both found a backlog the reader never
		// waited for data: what it read then is its true drain rate, under
		// whatever CPU contention the burst brought.
		// Inside a burst (records still arriving at least as fast as they
		// are read) the reader also competes with the burst's processes for
		// the CPU, so that rate, not the one in the quiet after it, is what
		// decides whether a ring overflows.
		prev := s.series[n-1]
		if thr := s.backlogThreshold(); prev.FillBytes >= thr && smp.FillBytes >= thr && smp.TsNs > prev.TsNs {
			dt := smp.TsNs - prev.TsNs
			read := event.Sum(smp.Delivered) - event.Sum(prev.Delivered)
			s.backlogNs += dt
			s.backlogRecs += read
			if event.Sum(smp.Attempted)-event.Sum(prev.Attempted) >= read {
				s.loadedNs += dt
				s.loadedRecs += read
			}
		}
	}
	if reliable {
		s.series, s.unpublished = trimSeries(s.series, s.unpublished, maxSeries)
		if len(s.series) < maxSeries {
			s.series = append(s.series, smp)
		}
	}
	shedding := s.shedding
	s.mu.Unlock()

	if s.cfg.ShedHighWater > 0 {
		frac := float64(s.syscalls.Pending()) / float64(s.syscalls.Size())
		want := shedding
		if !shedding && frac >= s.cfg.ShedHighWater {
			want = true
		} else if shedding && frac <= s.cfg.ShedLowWater {
			want = false
		}
		if want != shedding {
			if err := s.probe.SetShedding(want); err != nil {
				s.log.Warn("set shedding", "on", want, "err", err)
			} else {
				s.mu.Lock()
				s.shedding = want
				s.mu.Unlock()
			}
		}
	}
	return active
}

func (s *sensor) stats(final bool) event.Stats {
	st := event.Stats{
		Node: s.cfg.Node, BootID: s.cfg.BootID, SensorStartNs: s.startNs, TimeUnixNs: time.Now().UnixNano(),
		LastBatchSeq: s.lastSeq.Load(), Ring: s.ringCfg, ConsumerCostNs: int64(s.cfg.ConsumerCost),
		Counters: s.counters(), Batches: s.batches.Load(), PublishErrors: s.pubErrors.Load(),
		DrainRate: s.drainRate(), Final: final, SpoolOverflow: s.spoolOverflow(),
	}
	if s.cfg.Spool != nil {
		sp := s.cfg.Spool()
		st.Spool = &sp
	}
	st.RecordBytes = s.meanRecordBytes()
	s.mu.Lock()
	st.Series = append([]event.Sample(nil), s.series[s.unpublished:]...)
	s.unpublished = len(s.series)
	s.mu.Unlock()
	return st
}

func (s *sensor) meanRecordBytes() [event.NumCategories]float64 {
	var out [event.NumCategories]float64
	for i := range out {
		if d := s.delivered[i].Load(); d > 0 {
			out[i] = float64(s.recordBytes[i].Load()) / float64(d)
		} else {
			out[i] = float64(bpf.RecordSize(event.TypeSyscall))
			if i == int(event.CategoryLifecycle) {
				out[i] = float64(bpf.RecordSize(event.TypeExec))
			}
		}
	}
	return out
}

// backlogThreshold is the ring fill above which the reader counts as
// backlogged: well above what accumulates between two polls.
func (s *sensor) backlogThreshold() int {
	return ringmodel.BacklogThreshold(s.ringCfg.SizeBytes)
}

// drainRate is the reader's capacity in records per second. Preferably it is
// measured over the intervals in which the ring held a backlog while records
// kept arriving (at least 100 ms of them), else over any backlog, else it is
// estimated from the reader's busy time.
func (s *sensor) drainRate() float64 {
	s.mu.Lock()
	bn, br := s.backlogNs, s.backlogRecs
	ln, lr := s.loadedNs, s.loadedRecs
	s.mu.Unlock()
	if ln >= 100e6 && lr > 0 {
		return float64(lr) / (float64(ln) / 1e9)
	}
	if bn >= 100e6 && br > 0 {
		return float64(br) / (float64(bn) / 1e9)
	}
	busy := s.busyNs.Load()
	if busy <= 0 {
		return 0
	}
	d := s.delivered[0].Load() + s.delivered[1].Load()
	return float64(d) / (float64(busy) / 1e9)
}

func (s *sensor) publishStats(ctx context.Context, final bool) error {
	st := s.stats(final)
	data, err := json.Marshal(&st)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s.%s.%d.stats.%d", s.cfg.Node, s.cfg.BootID, s.startNs, st.TimeUnixNs)
	return s.publish(ctx, bus.Msg{Subject: bus.StatsSubject(s.cfg.Node), ID: id, Data: data})
}

// spoolOverflow reads the overflow counters.
func (s *sensor) spoolOverflow() [event.NumCategories]uint64 {
	var out [event.NumCategories]uint64
	for i := range out {
		out[i] = s.overflow[i].Load()
	}
	return out
}

func (s *sensor) finish() (Result, error) {
	s.takeSample()
	ctx := context.Background()
	final := s.counters()
	res := Result{
		Ring: s.ringCfg, Counters: final, Batches: s.batches.Load(), SensorStartNs: s.startNs,
		DrainRate: s.drainRate(), RecordBytes: s.meanRecordBytes(), Consistent: s.consistent(final),
	}
	if err := s.publishStats(ctx, true); err != nil {
		s.pubErrors.Add(1)
		s.log.Warn("publish final stats", "err", err)
	}
	res.Execs = ExecStats{Records: s.execs.Load(), Bytes: s.execBytes.Load(), Truncated: s.execCut.Load()}
	res.PublishErrors = s.pubErrors.Load()
	res.SpoolOverflow = s.spoolOverflow()
	res.SpoolOverflowBatches = s.overflowBatches.Load()
	res.SnapshotsRequested, res.SnapshotsRefused = s.snapRequested.Load(), s.snapRefused.Load()
	res.BadLookupRequests = s.badLookups.Load()
	s.mu.Lock()
	res.Series = append([]event.Sample(nil), s.series...)
	s.mu.Unlock()
	if !res.Consistent {
		return res, fmt.Errorf("sensor: counters inconsistent after drain: attempted %v != delivered %v + dropped %v",
			final.Attempted, final.Delivered, final.Dropped)
	}
	return res, nil
}
