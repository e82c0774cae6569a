package analyzer

import (
	"encoding/json"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// FuzzHandleStats feeds arbitrary stats messages: the analyzer must never
// panic, must count what it rejects, and must keep serving summaries and
// recommendations afterwards.
func FuzzHandleStats(f *testing.F) {
	good, _ := json.Marshal(event.Stats{Node: "n", BootID: "b", Series: []event.Sample{{TsNs: 1}, {TsNs: 20e6, Attempted: [2]uint64{3, 40}}}})
	f.Add(good)
	f.Add([]byte(`{"node":"a.b"}`))
	f.Add([]byte(`{"node":"n","series":[{"ts_ns":5,"attempted":[1e30,2]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(Config{})
		err := a.HandleStats(data)
		bad := 0
		for _, v := range a.BadInput() {
			bad += int(v)
		}
		if (err != nil) != (bad == 1) {
			t.Fatalf("err %v but %d bad inputs counted", err, bad)
		}
		_ = a.Summary("")
		_, _ = a.Recommendation("")
	})
}

// FuzzHandleEnriched feeds arbitrary enriched-batch payloads.
func FuzzHandleEnriched(f *testing.F) {
	c := event.NewCodec()
	good, _ := c.EncodeEnriched(&event.EnrichedBatch{Node: "n", RawSeq: 1, Events: []event.Enriched{{Event: event.Event{Header: event.Header{Type: event.TypeSyscall, Pid: 1}}, Missing: event.FieldName, Reason: event.ReasonForkDropped}}})
	f.Add(append([]byte(nil), good...))
	f.Add([]byte{0x98, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(Config{})
		err := a.HandleEnriched("ringwise.enriched.n", data)
		s := a.Summary("n")
		if err != nil && s.Analyzer.Events != 0 {
			t.Fatalf("rejected batch was counted: %+v", s.Analyzer)
		}
	})
}
