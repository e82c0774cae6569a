package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/telemetry"
)

// `ringwise enricher --metrics` (and the sensor's) beyond loopback is refused without a
// token, before anything else happens; a token from a file or the
// environment lets it through (then NATS, absent here, is what fails).
func TestMetricsBeyondLoopbackNeedsToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard only
	defer cancel()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Shutdown() // a URL nobody answers on
	run := func(args ...string) error {
		var out, errb bytes.Buffer
		return cmdEnricher(ctx, append([]string{"--nats", url}, args...), &out, &errb)
	}
	t.Setenv(telemetry.EnvMetricsToken, "")
	if err := run("--metrics", "0.0.0.0:0"); !errors.Is(err, telemetry.ErrMetricsExposed) {
		t.Errorf("--metrics 0.0.0.0:0 without a token: %v, want %v", err, telemetry.ErrMetricsExposed)
	}
	if err := run("--metrics", "127.0.0.1:0"); err == nil || errors.Is(err, telemetry.ErrMetricsExposed) {
		t.Errorf("--metrics on loopback: %v, want the NATS connection's error", err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run("--metrics", "0.0.0.0:0", "--metrics-token-file", tok); err == nil || errors.Is(err, telemetry.ErrMetricsExposed) {
		t.Errorf("--metrics beyond loopback with a token file: %v, want the NATS connection's error", err)
	}
	// The sensor takes the same flags and the same rule, checked before it
	// loads anything.
	var out, errb bytes.Buffer
	if err := cmdSensor(ctx, []string{"--nats", url, "--node", "n1", "--metrics", "0.0.0.0:0"}, &out, &errb); !errors.Is(err, telemetry.ErrMetricsExposed) {
		t.Errorf("sensor --metrics 0.0.0.0:0 without a token: %v, want %v", err, telemetry.ErrMetricsExposed)
	}
	t.Setenv(telemetry.EnvMetricsToken, "s3cret")
	if err := run("--metrics", "0.0.0.0:0"); err == nil || errors.Is(err, telemetry.ErrMetricsExposed) || !strings.Contains(err.Error(), "NATS") {
		t.Errorf("--metrics beyond loopback with $%s: %v, want the NATS connection's error", telemetry.EnvMetricsToken, err)
	}
}
