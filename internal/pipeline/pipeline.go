// Package pipeline runs the whole ringwise pipeline in one process: an
// embedded (or external) NATS with JetStream, the sensor, the enricher and
// the analyzer, optionally with a process flood, and drains it fully at the
// end so that every delivered event is enriched and analysed.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/telemetry"
)

// Options configures one run.
type Options struct {
	// NATSURL connects to an external NATS; "" starts an embedded one.
	NATSURL string
	Sensor  sensor.Config
	// Duration bounds the run; 0 runs until ctx is done (or, with a flood,
	// until the flood ends plus Tail).
	Duration time.Duration
	// Flood, when set, runs inside once capture is attached.
	Flood *flood.Config
	// Tail is how long capture continues after the flood ends (default 300ms).
	Tail time.Duration
	// StopAfterFlood ends the run when the flood is done (the lab's mode).
	StopAfterFlood bool
	// Events, when set, receives every enriched event as a Falco-like JSON line.
	Events    io.Writer
	HTTPAddr  string
	Recommend ringmodel.Options
	Logger    *slog.Logger
	// Progress, when set, is told the flood's progress (done, total).
	Progress func(done, total int)

	// Tracing of each hop (nil: none); see telemetry.NewTracing.
	SensorTracing, EnricherTracing, AnalyzerTracing *telemetry.Tracing
	// Meter, when set, gets the sensor's, enricher's and analyzer's
	// instruments (served as /metrics by the caller).
	Meter metric.Meter
	// Metrics, when set, is served as /metrics on HTTPAddr.
	Metrics http.Handler
	// DropAlert and MetadataAlert configure the analyzer's alerts (zero:
	// defaults); alerts go to the log and to ringwise.alerts.
	DropAlert, MetadataAlert alert.Config
	// SpoolBytes, when > 0, makes the sensor publish through a bus.Spool of
	// that many bytes, as `ringwise sensor` does (its overflow is counted in
	// the sensor's Result); 0 publishes with a bus.AsyncPublisher.
	SpoolBytes int64
	// PlainBatches makes the sensor and the enricher publish plain msgpack
	// batches instead of S2-compressed ones (see event.CompressedMark).
	PlainBatches bool
}

// HopLabel is the pprof label key under which the sensor, the enricher and
// the analyzer run ("sensor", "enricher", "analyzer"), so that one CPU
// profile of the run splits its CPU per hop; goroutines they start inherit
// it. The NATS client's own goroutines (one shared connection) and the
// runtime's are unlabelled.
const HopLabel = "hop"

// Result is a run's outcome.
type Result struct {
	Summary  report.Summary `json:"summary"`
	Sensor   sensor.Result  `json:"-"`
	Flood    flood.Result   `json:"-"`
	Enricher enricher.Stats `json:"enricher"`
	// Analyzer holds the analyzer's consume loops' counters, by stream.
	Analyzer       map[string]bus.ConsumerStats `json:"analyzer_consumers"`
	Recommendation *ringmodel.Recommendation    `json:"recommendation,omitempty"`
	Load           ringmodel.Load               `json:"-"`
	// Alerts are the alerts the analyzer raised during the run.
	Alerts []alert.Alert `json:"alerts,omitempty"`
	// Spool is the sensor's spool account with Options.SpoolBytes (zero
	// otherwise), after the drain.
	Spool bus.SpoolStats `json:"spool"`
}

// Run runs the pipeline in five phases: start (NATS, streams, services),
// ready (the sensor attached), run (capture, with the flood if any, until
// ctx is done, Duration passes or, with StopAfterFlood, the flood ends),
// drain (every delivered event enriched and analysed) and report.
//
// The enricher and the analyzer run in an errgroup from start until the
// drain is complete, independent of ctx, so that Ctrl-C still drains. If
// either fails, the run stops waiting for it and returns its error.
func Run(ctx context.Context, o Options) (Result, error) {
	r := &run{o: o, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	defer r.close()
	if err := r.start(ctx); err != nil {
		return Result{}, err
	}
	if err := r.ready(ctx); err != nil {
		return r.res, err
	}
	sensorErr := r.capture()
	if err := r.drain(); err != nil {
		return r.res, fmt.Errorf("drain: %w", err)
	}
	if err := r.report(ctx); err != nil {
		return r.res, err
	}
	return r.res, sensorErr
}

// drainTimeout bounds the drain and the truth check.
const drainTimeout = 5 * time.Minute

// run is one pipeline run's state, phase by phase.
type run struct {
	o   Options
	log *slog.Logger
	res Result

	// start
	closers []func()
	nc      *nats.Conn
	js      jetstream.JetStream
	from    map[string]uint64 // first sequence of this run, per stream
	enr     *enricher.Enricher
	an      *analyzer.Analyzer
	specs   []bus.ConsumerSpec // every consumer of the services
	// services runs the enricher and the analyzer; svcCtx is done when
	// either fails or stopServices is called.
	services     *errgroup.Group
	svcCtx       context.Context
	stopServices context.CancelFunc
	servicesErr  error
	servicesDone bool

	// ready, run
	pub        *bus.AsyncPublisher // without SpoolBytes
	spool      *bus.Spool          // with SpoolBytes
	sensorCtx  context.Context
	stopSensor context.CancelFunc
	capturing  errgroup.Group // the sensor and the flood
	sensorDone chan struct{}
	sensorErr  error
}

func (r *run) close() {
	if r.stopSensor != nil {
		r.stopSensor()
		_ = r.capturing.Wait()
	}
	_ = r.waitServices()
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// start connects to NATS (an embedded server without NATSURL), makes sure
// the streams exist, and starts the enricher and the analyzer on this run's
// messages only.
func (r *run) start(ctx context.Context) error {
	o := r.o
	if o.Flood != nil {
		fc := *o.Flood
		if err := fc.Validate(); err != nil {
			return err
		}
		r.o.Flood = &fc
	}
	url := o.NATSURL
	if url == "" {
		srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
		if err != nil {
			return err
		}
		r.closers = append(r.closers, srv.Shutdown)
		url = srv.URL()
		r.log.Info("embedded NATS with JetStream", "url", url)
	}
	nc, err := bus.Connect(url, "ringwise-up")
	if err != nil {
		return err
	}
	r.closers = append(r.closers, nc.Close)
	r.nc = nc
	if r.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setupCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(setupCtx, r.js, bus.StreamOptions{Memory: o.NATSURL == ""}); err != nil {
		return err
	}
	// This run's messages only: against a long-lived NATS, earlier runs'
	// batches are still stored. Unique consumer names per run, so that runs
	// against a shared NATS do not steal each other's messages.
	r.from = map[string]uint64{}
	for _, st := range []string{bus.StreamRaw, bus.StreamEnriched, bus.StreamStats} {
		seq, err := bus.NextSeq(setupCtx, r.js, st)
		if err != nil {
			return err
		}
		r.from[st] = seq
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 10)
	var lineBuf []byte
	r.an = analyzer.New(analyzer.Config{
		JS: r.js, Durable: "ringwise-analyzer-up-" + runID, FromSeq: r.from, HTTPAddr: o.HTTPAddr, Recommend: o.Recommend, Logger: r.log,
		Tracing: o.AnalyzerTracing, NC: nc, Metrics: o.Metrics, DropAlert: o.DropAlert, MetadataAlert: o.MetadataAlert,
		OnBatch: func(b *event.EnrichedBatch) {
			if o.Events == nil {
				return
			}
			for i := range b.Events {
				// AppendFalcoJSON ends the line itself.
				lineBuf = report.AppendFalcoJSON(lineBuf[:0], &b.Events[i], b.WallOffsetNs, b.Node)
				_, _ = o.Events.Write(lineBuf)
			}
		},
	})
	r.enr, err = enricher.New(enricher.Config{JS: r.js, NC: nc, Durable: "ringwise-enricher-up-" + runID,
		Node: o.Sensor.Node, FromSeq: r.from[bus.StreamRaw], Logger: r.log, Tracing: o.EnricherTracing, PlainBatches: o.PlainBatches})
	if err != nil {
		return err
	}
	if o.Meter != nil {
		if _, err := r.enr.RegisterMetrics(o.Meter); err != nil {
			return err
		}
		if _, err := r.an.RegisterMetrics(o.Meter); err != nil {
			return err
		}
	}
	r.specs = append([]bus.ConsumerSpec{r.enr.Spec()}, r.an.Specs()...)
	r.closers = append(r.closers, func() { _ = cleanupConsumers(r.js, r.specs) })

	svcParent, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stopServices = stop
	r.services, r.svcCtx = errgroup.WithContext(svcParent)
	for _, svc := range []struct {
		name string
		run  func(context.Context) error
	}{{"analyzer", r.an.Run}, {"enricher", r.enr.Run}} {
		r.services.Go(func() error {
			var err error
			pprof.Do(r.svcCtx, pprof.Labels(HopLabel, svc.name), func(ctx context.Context) { err = svc.run(ctx) })
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", svc.name, err)
			case svcParent.Err() == nil:
				return fmt.Errorf("%s stopped early", svc.name)
			}
			return nil
		})
	}
	return nil
}

// waitServices stops the enricher and the analyzer (they drain what they
// hold) and returns the first error either had.
func (r *run) waitServices() error {
	if r.services == nil || r.servicesDone {
		return r.servicesErr
	}
	r.stopServices()
	r.servicesErr, r.servicesDone = r.services.Wait(), true
	return r.servicesErr
}

// ready starts the sensor and waits until it has attached and published
// its snapshot.
func (r *run) ready(ctx context.Context) error {
	scfg := r.o.Sensor
	scfg.PlainBatches = scfg.PlainBatches || r.o.PlainBatches
	if r.o.SpoolBytes > 0 {
		// Started under the sensor's label: its sending goroutine is the
		// sensor's publish path.
		pprof.Do(context.Background(), pprof.Labels(HopLabel, "sensor"), func(context.Context) {
			r.spool = bus.NewSpool(r.js, r.o.SpoolBytes, r.log)
		})
		scfg.Publisher = r.spool
		scfg.Spool = func() event.SpoolState { return event.SpoolState(r.spool.Stats()) }
	} else {
		r.pub = &bus.AsyncPublisher{JS: r.js}
		scfg.Publisher = r.pub
	}
	scfg.NC, scfg.Logger = r.nc, r.log
	scfg.Tracing, scfg.Meter = r.o.SensorTracing, r.o.Meter
	attached := make(chan struct{})
	scfg.Ready = func() { close(attached) }

	r.sensorCtx, r.stopSensor = context.WithCancel(ctx)
	if r.o.Duration > 0 {
		var cancel context.CancelFunc
		r.sensorCtx, cancel = context.WithTimeout(r.sensorCtx, r.o.Duration)
		r.closers = append(r.closers, cancel)
	}
	r.sensorDone = make(chan struct{})
	r.capturing.Go(func() error {
		defer close(r.sensorDone)
		pprof.Do(r.sensorCtx, pprof.Labels(HopLabel, "sensor"), func(ctx context.Context) {
			r.res.Sensor, r.sensorErr = sensor.Run(ctx, scfg)
		})
		return nil
	})
	select {
	case <-attached:
		return nil
	case <-r.sensorDone:
		_ = r.waitServices()
		return r.sensorErr
	case <-r.svcCtx.Done():
		r.stopSensor()
		_ = r.capturing.Wait()
		return r.waitServices()
	}
}

// capture runs the flood, if any, and waits for the sensor to end: at the
// end of Duration, when ctx is done, or after the flood and Tail with
// StopAfterFlood. It returns the sensor's error.
func (r *run) capture() error {
	if fc := r.o.Flood; fc != nil {
		r.capturing.Go(func() error {
			fr, err := flood.Run(r.sensorCtx, *fc)
			r.res.Flood = fr
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				r.log.Warn("flood", "err", err)
			}
			if r.o.StopAfterFlood {
				tail := r.o.Tail
				if tail == 0 {
					tail = 300 * time.Millisecond
				}
				select {
				case <-time.After(tail):
				case <-r.sensorCtx.Done():
				}
				r.stopSensor()
			}
			return nil
		})
	}
	// A service that fails ends the capture: nothing would be enriched.
	go func() {
		select {
		case <-r.svcCtx.Done():
			r.stopSensor()
		case <-r.sensorDone:
		}
	}()
	_ = r.capturing.Wait()
	return r.sensorErr
}

// drain waits until every published batch is stored, every stored batch
// enriched and every enriched batch and stats message analysed, then stops
// the services. A service that fails meanwhile ends the wait.
func (r *run) drain() error {
	if r.spool != nil {
		// As `ringwise sensor` does at exit: a bounded time to store what
		// the spool holds; what is left is abandoned and counted.
		sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		abandoned := r.spool.Close(sctx)
		cancel()
		r.res.Spool = r.spool.Stats()
		if abandoned > 0 {
			r.log.Warn("sensor spool abandoned batches", "count", abandoned)
		}
	} else if failed, err := r.pub.Flush(); failed > 0 {
		r.res.Sensor.PublishErrors += uint64(failed)
		r.log.Warn("sensor publishes failed", "count", failed, "err", err)
	}
	drainCtx, cancel := context.WithTimeout(r.svcCtx, drainTimeout)
	defer cancel()
	for _, sp := range r.specs {
		if err := bus.WaitConsumed(drainCtx, r.js, sp.Stream, sp.Durable); err != nil {
			if serr := r.waitServices(); serr != nil {
				return serr
			}
			return err
		}
	}
	// A last alert check over everything analysed, while NATS is up.
	r.an.CheckAlerts()
	r.res.Alerts = r.an.Alerts()
	return r.waitServices()
}

// report fills the result: the services' counters, the summary with the
// sensor's own exact account, the ground truth and the recommendation.
func (r *run) report(ctx context.Context) error {
	res := &r.res
	res.Enricher = r.enr.Stats()
	res.Analyzer = r.an.ConsumerStats()
	node := r.o.Sensor.Node
	res.Summary = r.an.Summary(node)
	if len(res.Flood.Procs) > 0 {
		truthCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
		defer cancel()
		truth, err := CheckTruth(truthCtx, r.js, node, r.from[bus.StreamEnriched], res.Enricher.Batches, res.Flood.Procs)
		if err != nil {
			return err
		}
		res.Summary.Truth = truth
	}
	fillSensor(&res.Summary, &res.Sensor)
	res.Load = r.an.Load(node)
	if rec, err := r.an.Recommendation(node); err == nil {
		res.Recommendation = &rec
	}
	return nil
}

// fillSensor takes the sensor's own final account, exact after the drain.
func fillSensor(s *report.Summary, r *sensor.Result) {
	c := r.Counters
	s.Ring = r.Ring
	s.Sensor.Attempted = event.Sum(c.Attempted)
	s.Sensor.Delivered = event.Sum(c.Delivered)
	s.Sensor.Dropped = event.Sum(c.Dropped)
	s.Sensor.DroppedLifecycle = c.Dropped[event.CategoryLifecycle]
	s.Sensor.DroppedSyscall = c.Dropped[event.CategorySyscall]
	s.Sensor.Shed = event.Sum(c.Shed)
	s.Sensor.Batches = r.Batches
	s.Sensor.PublishErrors = r.PublishErrors
}

func cleanupConsumers(js jetstream.JetStream, specs []bus.ConsumerSpec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, sp := range specs {
		if err := js.DeleteConsumer(ctx, sp.Stream, sp.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("delete consumer %s on stream %s: %w", sp.Durable, sp.Stream, err))
		}
	}
	return errors.Join(errs...)
}

// CheckTruth replays node's enriched stream from sequence fromSeq (want
// batches of it) through a truth checker.
func CheckTruth(ctx context.Context, js jetstream.JetStream, node string, fromSeq, want uint64, procs []flood.Proc) (report.TruthResult, error) {
	tp := make([]report.TruthProc, len(procs))
	for i, p := range procs {
		tp[i] = report.TruthProc{Pid: p.Pid, PPid: p.PPid, Comm: p.Comm, Exe: p.Exe, ParentComm: p.ParentComm, ParentExe: p.ParentExe, BornAfterNs: p.BornAfterNs, ReapedNs: p.ReapedNs}
	}
	tc := report.NewTruthChecker(tp)
	stream, err := js.Stream(ctx, bus.StreamEnriched)
	if err != nil {
		return report.TruthResult{}, fmt.Errorf("truth: stream %s: %w", bus.StreamEnriched, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EnrichedSubject(node)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: fromSeq,
	})
	if err != nil {
		return report.TruthResult{}, fmt.Errorf("truth: ordered consumer on %s: %w", bus.EnrichedSubject(node), err)
	}
	it, err := cons.Messages()
	if err != nil {
		return report.TruthResult{}, fmt.Errorf("truth: read %s: %w", bus.EnrichedSubject(node), err)
	}
	defer it.Stop()
	codec := event.NewCodec()
	var b event.EnrichedBatch
	for got := uint64(0); got < want; got++ {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			return report.TruthResult{}, fmt.Errorf("truth: %s: read %d of %d messages: %w", bus.EnrichedSubject(node), got, want, err)
		}
		if err := codec.DecodeEnriched(m.Data(), &b); err == nil {
			tc.AddBatch(&b)
		}
	}
	return tc.Result(), nil
}
