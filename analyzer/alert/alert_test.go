package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
)

var t0 = time.Unix(1_800_000_000, 0)

func counters(att, drop uint64) event.Counters {
	var c event.Counters
	c.Attempted[event.CategorySyscall] = att
	c.Dropped[event.CategorySyscall] = drop
	return c
}

func TestTokenBucketFalcoDefaults(t *testing.T) {
	b := NewTokenBucket(DefaultRate, DefaultMaxBurst, t0)
	if !b.Claim(t0) {
		t.Fatal("a full bucket refused the first claim")
	}
	if b.Claim(t0.Add(29 * time.Second)) {
		t.Fatal("claimed again after 29 s (rate 0.03333/s refills in 30 s)")
	}
	if !b.Claim(t0.Add(31 * time.Second)) {
		t.Fatal("refused after 31 s")
	}
	// The burst is capped at max: a long quiet time does not bank tokens.
	if !b.Claim(t0.Add(1000*time.Second)) || b.Claim(t0.Add(1000*time.Second)) {
		t.Fatal("max burst 1 not respected")
	}
}

func TestDropAlertThresholdAndRate(t *testing.T) {
	d := NewDrop(DefaultDropConfig(), t0)
	ring := event.RingConfig{SizeBytes: 65536, Layout: "shared"}
	// Second 1: 1000 attempted, 50 dropped: 5 % <= 10 %: silent.
	if _, ok := d.Observe(t0.Add(time.Second), "n1", "r1", counters(1000, 50), ring); ok {
		t.Fatal("fired at 5% drops (threshold 10%)")
	}
	// Second 2: +1000 attempted, +500 dropped: 50 %: fires.
	a, ok := d.Observe(t0.Add(2*time.Second), "n1", "r1", counters(2000, 550), ring)
	if !ok {
		t.Fatal("silent at 50% drops")
	}
	if a.Rule != RuleDrop || a.Hostname != "n1" || a.OutputFields["n_drops"] != uint64(500) || a.OutputFields["n_evts"] != uint64(1000) {
		t.Fatalf("alert %+v", a)
	}
	if !strings.Contains(a.Output, "500 system calls dropped in last second") {
		t.Fatalf("output %q", a.Output)
	}
	// Second 3: still dropping, but the bucket is empty for 30 s.
	if _, ok := d.Observe(t0.Add(3*time.Second), "n1", "r1", counters(3000, 1050), ring); ok {
		t.Fatal("fired twice within 30 s")
	}
	if d.Detected != 2 || d.Fired != 1 {
		t.Fatalf("detected %d fired %d", d.Detected, d.Fired)
	}
	// No new drops: silent whatever the bucket.
	if _, ok := d.Observe(t0.Add(40*time.Second), "n1", "r1", counters(4000, 1050), ring); ok {
		t.Fatal("fired without new drops")
	}
	// A new sensor run restarts the counters: the delta is from zero.
	a, ok = d.Observe(t0.Add(41*time.Second), "n1", "r2", counters(100, 90), ring)
	if !ok || a.OutputFields["n_drops"] != uint64(90) {
		t.Fatalf("new run: ok %v alert %+v", ok, a)
	}
}

func TestMetadataAlert(t *testing.T) {
	m := NewMetadata(DefaultMetadataConfig(), t0)
	if _, _, fire := m.Check(t0, 10000, 5, 0.1); fire {
		t.Fatal("fired at 0.05% (target 0.1%)")
	}
	we, wm, fire := m.Check(t0.Add(time.Second), 20000, 1005, 0.1)
	if !fire || we != 10000 || wm != 1000 {
		t.Fatalf("window %d/%d fire %v", wm, we, fire)
	}
	rec := &ringmodel.Recommendation{SizeBytes: 16 << 20, BufSizePreset: 5, Layout: "shared", Verdict: "set bufSizePreset 5 (16 MiB)"}
	a := BuildMetadata(t0, "n1", we, wm, 0.1, map[string]uint64{"proc.name": 1000}, rec, nil)
	if a.Recommendation == nil || a.Recommendation.SizeBytes != 16<<20 || a.OutputFields["recommended_size_bytes"] != 16<<20 {
		t.Fatalf("alert %+v", a)
	}
	if !strings.Contains(a.Output, "10.00%") || !strings.Contains(a.Output, "bufSizePreset 5") {
		t.Fatalf("output %q", a.Output)
	}
	if _, _, fire := m.Check(t0.Add(2*time.Second), 30000, 3005, 0.1); fire {
		t.Fatal("rate limit ignored")
	}
}

func TestParseActionsAndValidate(t *testing.T) {
	a, err := ParseActions("log, alert,log")
	if err != nil || len(a) != 2 {
		t.Fatalf("%v %v", a, err)
	}
	if a, _ := ParseActions("ignore"); len(a) != 0 {
		t.Fatalf("ignore gave %v", a)
	}
	if _, err := ParseActions("exit"); err == nil {
		t.Fatal("exit accepted")
	}
	for _, c := range []Config{{Threshold: 1.5, Rate: 1, MaxBurst: 1}, {Rate: 0, MaxBurst: 1}, {Rate: 1, MaxBurst: 0.5}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := DefaultDropConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
