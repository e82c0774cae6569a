package telemetry

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Metrics is a meter provider read by the OpenTelemetry Prometheus
// exporter into a registry of its own (never the global one), served by
// Handler. Several services in one process (ringwise up) share one.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// NewMetrics returns service's metrics.
func NewMetrics(service string) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	return &Metrics{provider: mp, registry: reg}, nil
}

// Meter returns the meter services register their instruments on; a no-op
// meter when m is nil.
func (m *Metrics) Meter() metric.Meter {
	if m == nil {
		return noop.NewMeterProvider().Meter(InstrumentationName)
	}
	return m.provider.Meter(InstrumentationName)
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gather returns the current metric families (tests).
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.registry.Gather() }

// Shutdown stops the provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}

// EnvMetricsToken is the environment variable that may carry the bearer
// token of a service's /metrics (never a flag: `ps` shows command lines).
const EnvMetricsToken = "RINGWISE_METRICS_TOKEN"

// ErrMetricsExposed is returned for /metrics that would listen beyond
// loopback without a bearer token: the counters name nodes, streams and
// the pipeline's weak spots, which is for the operator's eyes.
var ErrMetricsExposed = errors.New("refusing to serve /metrics beyond loopback without a bearer token")

// CheckExposure applies the rule of every ringwise HTTP endpoint to addr:
// on loopback it may be open; beyond it (an empty host is every
// interface) it needs a token.
func CheckExposure(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("telemetry: /metrics address %q: %w", addr, err)
	}
	if token == "" && !isLoopback(host) {
		return fmt.Errorf("telemetry: /metrics on %s: %w (set a token file or $%s)", addr, ErrMetricsExposed, EnvMetricsToken)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireBearer wraps h so that only requests with "Authorization: Bearer
// token" reach it (compared in constant time); others get 401. An empty
// token returns h.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringwise"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Serve serves /metrics on addr until ctx is done. It blocks; ready, when
// not nil, is called with the address once listening (addr may be ":0").
// With token, every request must carry it (RequireBearer); without, addr
// must be loopback (CheckExposure).
func (m *Metrics) Serve(ctx context.Context, addr, token string, ready func(addr string)) error {
	if err := CheckExposure(addr, token); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen for /metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: RequireBearer(token, mux), ReadHeaderTimeout: 5 * time.Second}
	if ready != nil {
		ready(ln.Addr().String())
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: /metrics on %s: %w", addr, err)
	}
	return nil
}
