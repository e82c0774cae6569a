package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/telemetry"
)

// telemetryFlags are the logging, metrics and alert flags of the commands
// that run services.
type telemetryFlags struct {
	logFormat        string
	metricsAddr      string
	metricsTokenFile string
	metricsToken     string // from the file or $RINGWISE_METRICS_TOKEN (checkMetrics)
	alerts           bool

	dropThreshold float64
	dropRate      float64
	dropBurst     float64
	dropActions   string
	metaActions   string
}

const tracingHelp = "Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318; OTEL_EXPORTER_OTLP_PROTOCOL=grpc for :4317) to export one span per batch per hop over OTLP; OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG set sampling. Without an endpoint tracing is off."

func (f *telemetryFlags) register(fs *flag.FlagSet, metrics, alerts bool) {
	fs.StringVar(&f.logFormat, "log-format", telemetry.DefaultLogFormat, "log format: text (for a terminal) or json (one object per line)")
	if metrics {
		fs.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9464; empty = off); beyond loopback it needs a bearer token (--metrics-token-file or $"+telemetry.EnvMetricsToken+"). "+tracingHelp)
		fs.StringVar(&f.metricsTokenFile, "metrics-token-file", "", "file whose first line is the bearer token /metrics requests must send (Authorization: Bearer TOKEN); default $"+telemetry.EnvMetricsToken)
	}
	f.alerts = alerts
	if alerts {
		fs.Float64Var(&f.dropThreshold, "drop-alert-threshold", alert.DefaultDropThreshold, "drop alert (Falco's syscall_event_drops): fire above this fraction of records dropped in a ~1 s interval")
		fs.Float64Var(&f.dropRate, "drop-alert-rate", alert.DefaultRate, "drop and metadata alerts: token-bucket refill in alerts per second (0.03333 = one per 30 s)")
		fs.Float64Var(&f.dropBurst, "drop-alert-max-burst", alert.DefaultMaxBurst, "drop and metadata alerts: token-bucket size (alerts allowed at once)")
		fs.StringVar(&f.dropActions, "drop-alert-actions", alert.DefaultActionsText, "drop alert actions: log, alert (JSON on ringwise.alerts), or ignore")
		fs.StringVar(&f.metaActions, "metadata-alert-actions", alert.DefaultActionsText, "metadata-loss alert actions (fires when missing metadata passes --target): log, alert, or ignore")
	}
}

// logger returns the logger of the --log-format at level.
func (f *telemetryFlags) logger(w io.Writer, level slog.Level) (*slog.Logger, error) {
	return telemetry.NewLogger(w, f.logFormat, level)
}

// alertConfigs returns the drop and metadata alert configurations.
func (f *telemetryFlags) alertConfigs() (drop, meta alert.Config, err error) {
	if !f.alerts {
		return alert.DefaultDropConfig(), alert.DefaultMetadataConfig(), nil
	}
	da, err := alert.ParseActions(f.dropActions)
	if err != nil {
		return drop, meta, fmt.Errorf("--drop-alert-actions: %w", err)
	}
	ma, err := alert.ParseActions(f.metaActions)
	if err != nil {
		return drop, meta, fmt.Errorf("--metadata-alert-actions: %w", err)
	}
	drop = alert.Config{Threshold: f.dropThreshold, Rate: f.dropRate, MaxBurst: f.dropBurst, Actions: da}
	meta = alert.Config{Rate: f.dropRate, MaxBurst: f.dropBurst, Actions: ma}
	if err := drop.Validate(); err != nil {
		return drop, meta, fmt.Errorf("drop alert: %w", err)
	}
	return drop, meta, nil
}

// checkMetrics reads the /metrics token and applies the exposure rule
// (loopback, or a token), so that a refused --metrics stops the command
// before it does anything else.
func (f *telemetryFlags) checkMetrics() error {
	if f.metricsAddr == "" {
		if f.metricsTokenFile != "" {
			return fmt.Errorf("--metrics-token-file goes with --metrics")
		}
		return nil
	}
	f.metricsToken = os.Getenv(telemetry.EnvMetricsToken)
	if f.metricsTokenFile != "" {
		t, err := bus.ReadPasswordFile(f.metricsTokenFile)
		if err != nil {
			return fmt.Errorf("--metrics-token-file: %w", err)
		}
		f.metricsToken = t
	}
	if err := telemetry.CheckExposure(f.metricsAddr, f.metricsToken); err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	return nil
}

// serveMetrics serves m on --metrics until ctx is done (no-op when unset).
func (f *telemetryFlags) serveMetrics(ctx context.Context, m *telemetry.Metrics, stderr io.Writer) error {
	if f.metricsAddr == "" {
		return nil
	}
	if err := f.checkMetrics(); err != nil {
		return err
	}
	go func() {
		err := m.Serve(ctx, f.metricsAddr, f.metricsToken, func(addr string) {
			fmt.Fprintf(stderr, "ringwise: Prometheus metrics on http://%s/metrics\n", addr)
		})
		if err != nil {
			fmt.Fprintf(stderr, "ringwise: %v\n", err)
		}
	}()
	return nil
}

// newTracing returns service's tracing from the OTEL_* environment and a
// function that flushes it (bounded, so an unreachable collector cannot
// hold the exit).
func newTracing(ctx context.Context, service string, stderr io.Writer) (*telemetry.Tracing, func(), error) {
	t, err := telemetry.NewTracing(ctx, service)
	if err != nil {
		return nil, nil, err
	}
	if t.Enabled() {
		fmt.Fprintf(stderr, "ringwise: tracing %s via %s\n", service, t.Exporter())
	}
	return t, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			fmt.Fprintf(stderr, "ringwise: %s: %v\n", service, err)
		}
	}, nil
}
