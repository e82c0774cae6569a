package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/telemetry"
)

// serve starts m.Serve and returns its address and a stop function.
func serve(t *testing.T, m *telemetry.Metrics, addr, token string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, addr, token, func(a string) { ready <- a }) }()
	var got string
	select {
	case got = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Serve(%s): %v", addr, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return got
}

func scrape(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// /metrics follows the analyzer's rule: open on loopback, refused beyond
// it without a token, and with a token only requests that carry it get in.
func TestMetricsServeLoopbackOrToken(t *testing.T) {
	m, err := telemetry.NewMetrics(telemetry.ServiceEnricher)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		if err := m.Serve(context.Background(), addr, "", nil); !errors.Is(err, telemetry.ErrMetricsExposed) {
			t.Errorf("Serve(%s) without a token: %v, want %v", addr, err, telemetry.ErrMetricsExposed)
		}
	}
	open := serve(t, m, "127.0.0.1:0", "")
	if code, body := scrape(t, "http://"+open+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "target_info") {
		t.Errorf("loopback without a token: %d %q", code, body)
	}
	addr := serve(t, m, "0.0.0.0:0", "s3cret")
	port := addr[strings.LastIndex(addr, ":"):]
	url := "http://127.0.0.1" + port + "/metrics"
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer wrong": http.StatusUnauthorized,
		"s3cret": http.StatusUnauthorized, "Bearer s3cret": http.StatusOK} {
		if code, _ := scrape(t, url, auth); code != want {
			t.Errorf("beyond loopback, Authorization %q: %d, want %d", auth, code, want)
		}
	}
}
