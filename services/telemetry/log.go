package telemetry

import (
	"fmt"
	"io"
	"log/slog"
)

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// DefaultLogFormat is the --log-format default: text, for a terminal.
const DefaultLogFormat = LogText

// NewLogger returns a slog logger writing to w: human-readable text, or one
// JSON object per line for log collectors (--log-format json).
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want %s or %s", format, LogText, LogJSON)
}
