package telemetry

import (
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts a nats.Header to propagation.TextMapCarrier.
//
// nats.Header is a map[string][]string like http.Header, but NATS header
// names are case-sensitive and nats.Header's own Set/Get do not
// canonicalise; propagation.HeaderCarrier would go through http.Header's
// methods and store "Traceparent". HeaderCarrier stores and reads keys
// exactly as the propagator names them ("traceparent", "tracestate").
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, or "".
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set stores value under key exactly as given, replacing earlier values.
func (c HeaderCarrier) Set(key, value string) {
	c[key] = []string{value}
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
