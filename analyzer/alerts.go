package analyzer

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
)

// maxAlertsKept bounds the alerts kept for Alerts().
const maxAlertsKept = 256

// MetadataCheckInterval is how often the analyzer checks the share of
// events missing metadata (over the events analysed since the previous
// check) against the target. Drops are checked at every stats message,
// about once a second, as Falco does; metadata loss over longer windows,
// so that the recommendation it carries rests on a measured load of that
// length rather than on the first second of a burst. Pipelines call
// CheckAlerts once more after their drain.
const MetadataCheckInterval = 10 * time.Second

// recommendEvery bounds how often the recommendation behind the
// ringwise_analyzer_recommended_ring_size_bytes gauge is recomputed.
const recommendEvery = 5 * time.Second

// observeDrops runs the drop alert on one stats message. Caller holds mu.
func (a *Analyzer) observeDrops(st *event.Stats) (alert.Alert, bool) {
	d := a.dropAlerts[st.Node]
	now := time.Unix(0, st.TimeUnixNs)
	if st.TimeUnixNs == 0 {
		now = time.Now()
	}
	if d == nil {
		d = alert.NewDrop(a.cfg.DropAlert, now)
		a.dropAlerts[st.Node] = d
	}
	run := st.BootID + "/" + itoa(st.SensorStartNs)
	return d.Observe(now, st.Node, run, st.Counters, st.Ring)
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// CheckAlerts checks every node's missing metadata against the target now
// (Run does so every MetadataCheckInterval; call it once more after a drain).
func (a *Analyzer) CheckAlerts() {
	now := time.Now()
	type due struct {
		node            string
		events, missing uint64
		byField         map[string]uint64
	}
	var fire []due
	a.mu.Lock()
	target := a.targetPct()
	for _, node := range a.agg.Nodes() {
		if len(a.stats[node]) == 0 {
			// No load measured yet, so no recommendation to carry: wait
			// (the window keeps growing until the first stats arrive).
			continue
		}
		s := a.agg.Summary(node)
		m := a.metaAlerts[node]
		if m == nil {
			m = alert.NewMetadata(a.cfg.MetadataAlert, now)
			a.metaAlerts[node] = m
		}
		if we, wm, ok := m.Check(now, s.Analyzer.Events, s.Analyzer.Missing, target); ok {
			fire = append(fire, due{node, we, wm, s.Analyzer.ByField})
		}
	}
	a.mu.Unlock()
	for _, f := range fire {
		rec, err := a.Recommendation(f.node)
		var rp *ringmodel.Recommendation
		if err == nil {
			rp = &rec
			a.setRecommended(f.node, rec)
		}
		a.emit(alert.BuildMetadata(now, f.node, f.events, f.missing, target, f.byField, rp, err), a.cfg.MetadataAlert)
	}
}

// refreshRecommendations recomputes each node's recommendation for the
// gauge, at most every recommendEvery.
func (a *Analyzer) refreshRecommendations(now time.Time) {
	a.mu.Lock()
	if !a.metricsOn || now.Sub(a.recAt) < recommendEvery {
		// Nobody reads the gauge (no meter), or it is fresh enough.
		a.mu.Unlock()
		return
	}
	a.recAt = now
	nodes := a.agg.Nodes()
	a.mu.Unlock()
	for _, n := range nodes {
		// The gauge needs the preset, not the what-ifs (3× the replays).
		if rec, err := a.recommendation(n, false); err == nil {
			a.setRecommended(n, rec)
		}
	}
}

func (a *Analyzer) setRecommended(node string, rec ringmodel.Recommendation) {
	a.mu.Lock()
	a.recommended[node] = rec
	a.mu.Unlock()
}

func (a *Analyzer) targetPct() float64 {
	if t := a.cfg.Recommend.TargetPct; t > 0 {
		return t
	}
	return ringspec.DefaultTargetPct
}

// emit runs an alert's actions: log, and publish to ringwise.alerts.
func (a *Analyzer) emit(al alert.Alert, cfg alert.Config) {
	data, err := json.Marshal(al)
	if err != nil {
		a.log.Error("alert: encode", "rule", al.Rule, "err", err)
		return
	}
	if cfg.Has(alert.ActionLog) {
		level := slog.LevelWarn
		if al.Priority == "Critical" {
			level = slog.LevelError
		}
		attrs := []any{"rule", al.Rule, "node", al.Hostname}
		if al.Recommendation != nil {
			attrs = append(attrs, "recommended_size_bytes", al.Recommendation.SizeBytes)
		}
		a.log.Log(context.Background(), level, al.Output, attrs...)
	}
	a.mu.Lock()
	a.alertCounts[alertKey{al.Rule, al.Hostname}]++
	if len(a.alerts) >= maxAlertsKept {
		a.alerts = a.alerts[1:]
	}
	a.alerts = append(a.alerts, al)
	a.mu.Unlock()
	if cfg.Has(alert.ActionAlert) && a.cfg.NC != nil {
		if err := a.cfg.NC.Publish(bus.SubjectAlerts, data); err != nil {
			a.log.Warn("alert: publish", "subject", bus.SubjectAlerts, "rule", al.Rule, "err", err)
		}
	}
}

type alertKey struct{ rule, node string }

// Alerts returns the alerts raised so far (at most the last 256).
func (a *Analyzer) Alerts() []alert.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]alert.Alert(nil), a.alerts...)
}
