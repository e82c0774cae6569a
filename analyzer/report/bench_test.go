package report

import (
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

func benchBatch(n int) *event.EnrichedBatch {
	evs := make([]event.Enriched, n)
	for i := range evs {
		switch i % 10 {
		case 0:
			evs[i] = ev(event.TypeSyscall, uint32(i), 1, event.AllFields, event.ReasonForkDropped)
		case 1:
			evs[i] = ev(event.TypeSyscall, uint32(i), 2, event.FieldName|event.FieldExePath|event.FieldCmdline, event.ReasonExecDropped)
		default:
			evs[i] = known(event.TypeSyscall, uint32(i), 1, 1, "bash", "/bin/bash")
		}
	}
	return batch("n1", 1, evs...)
}

func BenchmarkAggregatorAddBatch(b *testing.B) {
	const n = 4096
	bt := benchBatch(n)
	a := NewAggregator()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		bt.RawSeq = uint64(i + 1)
		a.AddBatch(bt)
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendFalcoJSON(b *testing.B) {
	e := known(event.TypeSyscall, 4321, 1, 4000, "bash", "/usr/bin/bash")
	e.ProcCmdline = "bash -c while true; do ./rwflood; done"
	e.Syscall = 257
	e.TsNs = 432_123_456_789
	m := ev(event.TypeSyscall, 4322, 1, event.AllFields, event.ReasonForkDropped)
	m.Syscall = 0
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	var bytes int
	for i := 0; b.Loop(); i++ {
		p := &e
		if i%2 == 1 {
			p = &m
		}
		buf = AppendFalcoJSON(buf[:0], p, wallOffset, "node-a")
		bytes += len(buf)
	}
	b.SetBytes(int64(bytes / max(b.N, 1)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
