// Package alert decides when the analyzer raises ringwise's two alerts:
//
//   - the drop alert, ringwise's equivalent of Falco's syscall_event_drops:
//     at every reading of a node's kernel counters (about once a second, as
//     Falco checks), if records were dropped since the previous reading and
//     dropped/attempted over that interval exceeds Threshold (a fraction,
//     default 0.1), and a token bucket (Rate tokens per second, MaxBurst
//     tokens, full at start: one alert per 30 s by default) allows it, the
//     configured actions run (log, alert);
//   - the metadata-loss alert: when the share of a node's events missing
//     metadata since the previous check passes the recommendation target,
//     rate-limited the same way; it carries the current ring recommendation.
//
// The package is pure logic: the caller feeds readings with their time and
// publishes what comes out (see analyzer.Analyzer).
package alert

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
)

// Falco's syscall_event_drops defaults.
const (
	DefaultDropThreshold = 0.1
	DefaultRate          = 0.03333
	DefaultMaxBurst      = 1.0
)

// Rule names, as Falco names its internal drop rule.
const (
	RuleDrop     = "ringwise internal: syscall event drop"
	RuleMetadata = "ringwise internal: missing metadata above target"
)

// Action is what happens when an alert fires.
type Action string

// Actions, as in Falco's syscall_event_drops.actions (exit makes no sense
// in an analyzer that watches many nodes).
const (
	ActionIgnore Action = "ignore"
	ActionLog    Action = "log"
	ActionAlert  Action = "alert"
)

// DefaultActions are Falco's default actions.
var DefaultActions = []Action{ActionLog, ActionAlert}

// DefaultActionsText is DefaultActions as a flag value.
const DefaultActionsText = "log,alert"

// ParseActions parses a comma-separated action list; empty means ignore.
func ParseActions(s string) ([]Action, error) {
	var out []Action
	for _, f := range strings.Split(s, ",") {
		a := Action(strings.TrimSpace(f))
		switch a {
		case "", ActionIgnore:
		case ActionLog, ActionAlert:
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		default:
			return nil, fmt.Errorf("alert action %q: want log, alert or ignore", a)
		}
	}
	return out, nil
}

// Config configures one alert.
type Config struct {
	// Threshold: the drop alert fires above this fraction of attempted
	// records dropped (0..1); the metadata alert above the analyzer's
	// target percent (the caller passes it to Metadata.Check).
	Threshold float64
	Rate      float64 // tokens per second
	MaxBurst  float64 // bucket size
	Actions   []Action
}

// DefaultDropConfig is Falco's syscall_event_drops default.
func DefaultDropConfig() Config {
	return Config{Threshold: DefaultDropThreshold, Rate: DefaultRate, MaxBurst: DefaultMaxBurst, Actions: DefaultActions}
}

// DefaultMetadataConfig rate-limits like the drop alert.
func DefaultMetadataConfig() Config {
	return Config{Rate: DefaultRate, MaxBurst: DefaultMaxBurst, Actions: DefaultActions}
}

// Validate checks the knobs.
func (c Config) Validate() error {
	if c.Threshold < 0 || c.Threshold > 1 {
		return fmt.Errorf("alert threshold %v: want a fraction in [0, 1]", c.Threshold)
	}
	if !(c.Rate > 0) {
		return fmt.Errorf("alert rate %v: want > 0 (tokens per second)", c.Rate)
	}
	if !(c.MaxBurst >= 1) {
		return fmt.Errorf("alert max burst %v: want >= 1", c.MaxBurst)
	}
	return nil
}

// Has reports whether a is among the actions.
func (c Config) Has(a Action) bool { return slices.Contains(c.Actions, a) }

// TokenBucket is Falco's token bucket: it holds at most max tokens, gains
// rate per second, starts full; Claim takes one when there is one.
type TokenBucket struct {
	rate, max, tokens float64
	last              time.Time
}

// NewTokenBucket returns a full bucket.
func NewTokenBucket(rate, max float64, now time.Time) *TokenBucket {
	return &TokenBucket{rate: rate, max: max, tokens: max, last: now}
}

// Claim takes one token at now, if there is one.
func (b *TokenBucket) Claim(now time.Time) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.max, b.tokens+dt*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Alert is one alert as published on ringwise.alerts (JSON), shaped like a
// Falco alert.
type Alert struct {
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Priority string    `json:"priority"`
	Source   string    `json:"source"`
	Hostname string    `json:"hostname"`
	Output   string    `json:"output"`
	// OutputFields carries the numbers, named as Falco's drop alert names
	// them where there is a counterpart (n_evts, n_drops,
	// n_drops_buffer_total).
	OutputFields map[string]any `json:"output_fields"`
	// Recommendation is the current ring recommendation (metadata alert).
	Recommendation *ringmodel.Recommendation `json:"recommendation,omitempty"`
}

// Drop watches one node's kernel counters for drops.
type Drop struct {
	cfg      Config
	bucket   *TokenBucket
	run      string
	last     event.Counters
	lastTime time.Time
	// Detected counts readings above the threshold; Fired those that ran
	// the actions (the rest were rate-limited).
	Detected, Fired uint64
}

// NewDrop returns a drop watcher.
func NewDrop(cfg Config, now time.Time) *Drop {
	return &Drop{cfg: cfg, bucket: NewTokenBucket(cfg.Rate, cfg.MaxBurst, now)}
}

// Observe takes one cumulative reading of node's sensor run (run
// identifies the sensor run: counters restart with it). It returns an alert
// when the actions are to run.
func (d *Drop) Observe(now time.Time, node, run string, c event.Counters, ring event.RingConfig) (Alert, bool) {
	if run != d.run {
		d.run, d.last, d.lastTime = run, event.Counters{}, time.Time{}
	}
	var dAtt, dDrop [event.NumCategories]uint64
	for i := range dAtt {
		if c.Attempted[i] >= d.last.Attempted[i] {
			dAtt[i] = c.Attempted[i] - d.last.Attempted[i]
		}
		if c.Dropped[i] >= d.last.Dropped[i] {
			dDrop[i] = c.Dropped[i] - d.last.Dropped[i]
		}
	}
	interval := now.Sub(d.lastTime)
	first := d.lastTime.IsZero()
	d.last, d.lastTime = c, now
	nEvts, nDrops := event.Sum(dAtt), event.Sum(dDrop)
	if nDrops == 0 || nEvts == 0 {
		return Alert{}, false
	}
	ratio := float64(nDrops) / float64(nEvts)
	if !(ratio > d.cfg.Threshold) {
		return Alert{}, false
	}
	d.Detected++
	if !d.bucket.Claim(now) {
		return Alert{}, false
	}
	d.Fired++
	span := "in last second"
	if !first && interval > 1500*time.Millisecond {
		span = fmt.Sprintf("in last %.1f s", interval.Seconds())
	} else if first {
		span = "since the sensor started"
	}
	fields := map[string]any{
		"n_evts":                    nEvts,
		"n_drops":                   nDrops,
		"n_drops_buffer_total":      nDrops,
		"n_drops_buffer_lifecycle":  dDrop[event.CategoryLifecycle],
		"n_drops_buffer_syscall":    dDrop[event.CategorySyscall],
		"drop_ratio":                ratio,
		"threshold":                 d.cfg.Threshold,
		"ring.size_bytes":           ring.SizeBytes,
		"ring.layout":               ring.Layout,
		"ring.lifecycle_size_bytes": ring.LifecycleSizeBytes,
	}
	if !first {
		fields["interval_s"] = interval.Seconds()
	}
	return Alert{
		Time: now.UTC(), Rule: RuleDrop, Priority: "Critical", Source: "internal", Hostname: node,
		Output: fmt.Sprintf("%s. %d system calls dropped %s (%.1f%% of %d, %d lifecycle records).",
			RuleDrop, nDrops, span, 100*ratio, nEvts, dDrop[event.CategoryLifecycle]),
		OutputFields: fields,
	}, true
}

// Metadata watches one node's share of events missing metadata.
type Metadata struct {
	cfg      Config
	bucket   *TokenBucket
	events   uint64
	missing  uint64
	Detected uint64
	Fired    uint64
}

// NewMetadata returns a metadata-loss watcher.
func NewMetadata(cfg Config, now time.Time) *Metadata {
	return &Metadata{cfg: cfg, bucket: NewTokenBucket(cfg.Rate, cfg.MaxBurst, now)}
}

// Check takes the node's cumulative event and missing counts (and missing
// per field). If the share missing since the previous check passes
// targetPct and the bucket allows, it returns true: the caller then builds
// the alert with Build, adding the current recommendation.
func (m *Metadata) Check(now time.Time, events, missing uint64, targetPct float64) (windowEvents, windowMissing uint64, fire bool) {
	if events < m.events || missing < m.missing {
		m.events, m.missing = 0, 0 // counters restarted
	}
	windowEvents, windowMissing = events-m.events, missing-m.missing
	if windowEvents == 0 {
		return 0, 0, false
	}
	m.events, m.missing = events, missing
	if !(100*float64(windowMissing)/float64(windowEvents) > targetPct) {
		return windowEvents, windowMissing, false
	}
	m.Detected++
	if !m.bucket.Claim(now) {
		return windowEvents, windowMissing, false
	}
	m.Fired++
	return windowEvents, windowMissing, true
}

// BuildMetadata builds the metadata-loss alert.
func BuildMetadata(now time.Time, node string, windowEvents, windowMissing uint64, targetPct float64, byField map[string]uint64,
	rec *ringmodel.Recommendation, recErr error) Alert {
	pct := 100 * float64(windowMissing) / float64(windowEvents)
	fields := map[string]any{
		"events":      windowEvents,
		"missing":     windowMissing,
		"missing_pct": pct,
		"target_pct":  targetPct,
		"by_field":    byField,
	}
	out := fmt.Sprintf("%s. %d of %d events (%.2f%%) missing metadata, target %.2f%%.", RuleMetadata, windowMissing, windowEvents, pct, targetPct)
	if rec != nil {
		out += " Recommendation: " + rec.Verdict
		fields["recommended_size_bytes"] = rec.SizeBytes
		fields["recommended_buf_size_preset"] = rec.BufSizePreset
		fields["recommended_layout"] = rec.Layout
	} else if recErr != nil {
		out += " No recommendation yet: " + recErr.Error()
		fields["recommendation_error"] = recErr.Error()
	}
	return Alert{Time: now.UTC(), Rule: RuleMetadata, Priority: "Warning", Source: "internal", Hostname: node,
		Output: out, OutputFields: fields, Recommendation: rec}
}
