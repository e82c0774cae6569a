package sensor_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
)

// A raw batch at the sensor's bounds (DefaultBatchMaxEvents events, as
// DefaultBatchMaxBytes admits them) enriches to a batch the enricher can
// encode and publish, even when every event's process has the longest
// strings the enricher's sources give: no enriched batch can be lost for
// its size. Twice the events would not fit: the cap is what makes it so.
func TestDefaultBatchEnrichesWithinLimit(t *testing.T) {
	enriched := func(n int, checkRaw bool) (int, error) {
		max32 := uint32(math.MaxUint32)
		b := event.EnrichedBatch{Node: strings.Repeat("n", 128), BootID: strings.Repeat("b", 256), RawSeq: math.MaxUint64}
		rawBytes := event.MaxBatchEnvelopeBytes
		for i := 0; i < n; i++ {
			ev := event.Event{Header: event.Header{TsNs: math.MaxUint64, StartNs: math.MaxUint64, Tid: max32, Pid: max32, ExecID: max32,
				Type: event.TypeSyscall, CPU: math.MaxUint16, VPid: max32}, Syscall: max32, Ret: math.MinInt64,
				SysArgs: [3]uint64{math.MaxUint64, math.MaxUint64, math.MaxUint64}}
			rawBytes += event.EventWireBound(&ev)
			if checkRaw && rawBytes > sensor.DefaultBatchMaxBytes {
				t.Fatalf("%d events of %d: the raw batch's bytes bound cuts first; the test needs smaller records", i, n)
			}
			b.Events = append(b.Events, event.Enriched{Event: ev, ProcPPid: max32, ProcUID: max32, ProcGID: max32,
				ProcName: strings.Repeat("c", event.CommLen), ProcExePath: strings.Repeat("/", event.MaxExeLen),
				ProcCmdline: strings.Repeat("a", event.MaxArgsLen), ContainerID: strings.Repeat("f", 64),
				Missing: ^event.Field(0), Reason: ^event.Reason(0), Source: ^event.Source(0)})
		}
		data, err := event.NewCodec().EncodeEnriched(&b)
		return len(data), err
	}
	n := sensor.DefaultBatchMaxEvents
	if size, err := enriched(n, true); err != nil {
		t.Fatalf("enriched batch of %d worst-case events: %v", n, err)
	} else {
		t.Logf("%d events: enriched batch of %d bytes, limit %d", n, size, event.MaxBatchBytes)
	}
	if _, err := enriched(2*n, false); !errors.Is(err, event.ErrOversized) {
		t.Errorf("enriched batch of %d worst-case events: err %v; want it oversized (else the cap is not what bounds it)", 2*n, err)
	}
}
