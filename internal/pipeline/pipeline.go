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
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
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
}

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
}

// Run runs the pipeline until ctx is done, Duration passes, or (with
// StopAfterFlood) the flood ends; then it drains and reports.
func Run(ctx context.Context, o Options) (Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	url := o.NATSURL
	if url == "" {
		srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
		if err != nil {
			return Result{}, err
		}
		defer srv.Shutdown()
		url = srv.URL()
		log.Info("embedded NATS with JetStream", "url", url)
	}
	nc, err := bus.Connect(url, "ringwise-up")
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Result{}, fmt.Errorf("jetstream: %w", err)
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, 10*time.Second)
	defer cancelSetup()
	if err := bus.EnsureStreams(setupCtx, js, bus.StreamOptions{Memory: o.NATSURL == ""}); err != nil {
		return Result{}, err
	}

	// Unique consumer names per run, so that runs against a shared NATS do
	// not steal each other's messages.
	// This run's messages only: against a long-lived NATS, earlier runs'
	// batches are still stored.
	from := map[string]uint64{}
	for _, st := range []string{bus.StreamRaw, bus.StreamEnriched, bus.StreamStats} {
		seq, err := bus.NextSeq(setupCtx, js, st)
		if err != nil {
			return Result{}, err
		}
		from[st] = seq
	}
	runID := fmt.Sprintf("%d", time.Now().UnixNano())
	enrDurable := "ringwise-enricher-up-" + runID
	anaDurable := "ringwise-analyzer-up-" + runID

	floodCfg := o.Flood
	if floodCfg != nil {
		fc := *floodCfg
		if err := fc.Validate(); err != nil {
			return Result{}, err
		}
		floodCfg = &fc
	}

	var lineBuf []byte
	an := analyzer.New(analyzer.Config{
		JS: js, Durable: anaDurable, FromSeq: from, HTTPAddr: o.HTTPAddr, Recommend: o.Recommend, Logger: log,
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
	enr, err := enricher.New(enricher.Config{JS: js, NC: nc, Durable: enrDurable, Node: o.Sensor.Node, FromSeq: from[bus.StreamRaw], Logger: log})
	if err != nil {
		return Result{}, err
	}

	// The enricher and analyzer run until the drain is complete. If either
	// fails early, the drain stops waiting for it (failed) and the run
	// reports its error; every return path waits for both (stopServices).
	svcCtx, stopSvcs := context.WithCancel(context.WithoutCancel(ctx))
	failed, fail := context.WithCancelCause(context.WithoutCancel(ctx))
	defer fail(nil)
	var svcWG sync.WaitGroup
	for _, svc := range []struct {
		name string
		run  func(context.Context) error
	}{{"analyzer", an.Run}, {"enricher", enr.Run}} {
		svcWG.Add(1)
		go func() {
			defer svcWG.Done()
			if err := svc.run(svcCtx); err != nil {
				fail(fmt.Errorf("%s: %w", svc.name, err))
			} else if svcCtx.Err() == nil {
				fail(fmt.Errorf("%s stopped early", svc.name))
			}
		}()
	}
	stopServices := func() error {
		stopSvcs()
		svcWG.Wait()
		if failed.Err() != nil {
			return context.Cause(failed)
		}
		return nil
	}
	defer stopServices()

	pub := &bus.AsyncPublisher{JS: js}
	scfg := o.Sensor
	scfg.Publisher = pub
	scfg.NC = nc
	scfg.Logger = log
	ready := make(chan struct{})
	scfg.Ready = func() { close(ready) }

	sensorCtx, stopSensor := context.WithCancel(ctx)
	defer stopSensor()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		sensorCtx, cancel = context.WithTimeout(sensorCtx, o.Duration)
		defer cancel()
	}
	type sensorOut struct {
		res sensor.Result
		err error
	}
	sensorDone := make(chan sensorOut, 1)
	go func() {
		r, err := sensor.Run(sensorCtx, scfg)
		sensorDone <- sensorOut{r, err}
	}()

	var res Result
	select {
	case <-ready:
	case out := <-sensorDone:
		stopServices()
		return res, out.err
	case <-failed.Done():
		stopSensor()
		<-sensorDone
		return res, stopServices()
	}

	floodDone := make(chan struct{})
	if floodCfg != nil {
		go func() {
			defer close(floodDone)
			fr, err := flood.Run(sensorCtx, *floodCfg)
			res.Flood = fr
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("flood", "err", err)
			}
			if o.StopAfterFlood {
				tail := o.Tail
				if tail == 0 {
					tail = 300 * time.Millisecond
				}
				select {
				case <-time.After(tail):
				case <-sensorCtx.Done():
				}
				stopSensor()
			}
		}()
	} else {
		close(floodDone)
	}

	out := <-sensorDone
	<-floodDone
	res.Sensor = out.res
	sensorErr := out.err

	// Drain: every stored batch must be enriched, every enriched batch and
	// stats message analysed, before the summary is read.
	drainCtx, cancelDrain := context.WithTimeout(failed, 5*time.Minute)
	defer cancelDrain()
	if failed, err := pub.Flush(); failed > 0 {
		res.Sensor.PublishErrors += uint64(failed)
		log.Warn("sensor publishes failed", "count", failed, "err", err)
	}
	specs := append([]bus.ConsumerSpec{enr.Spec()}, an.Specs()...)
	for _, w := range specs {
		if err := bus.WaitConsumed(drainCtx, js, w.Stream, w.Durable); err != nil {
			if serr := stopServices(); serr != nil {
				return res, fmt.Errorf("drain: %w", serr)
			}
			return res, fmt.Errorf("drain: %w", err)
		}
	}
	if err := stopServices(); err != nil {
		return res, err
	}
	truthCtx, cancelTruth := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancelTruth()

	res.Enricher = enr.Stats()
	res.Analyzer = an.ConsumerStats()
	node := o.Sensor.Node
	res.Summary = an.Summary(node)
	if len(res.Flood.Procs) > 0 {
		truth, err := CheckTruth(truthCtx, js, node, from[bus.StreamEnriched], res.Enricher.Batches, res.Flood.Procs)
		if err != nil {
			return res, err
		}
		res.Summary.Truth = truth
	}
	fillSensor(&res.Summary, &res.Sensor)
	res.Load = an.Load(node)
	if rec, err := an.Recommendation(node); err == nil {
		res.Recommendation = &rec
	}
	_ = cleanupConsumers(js, specs)
	return res, sensorErr
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
