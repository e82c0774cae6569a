package state

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

var fuzzStarts = [4]uint64{bashStart, t1, t2, tickStart}

// fuzzLookup answers deterministically by pid: even pids are found (with a
// start chosen by pid), multiples of 3 fail, the rest are gone.
type fuzzLookup struct{}

func (fuzzLookup) Lookup(_ context.Context, pid uint32) (event.ProcInfo, error) {
	switch {
	case pid%2 == 0:
		return event.ProcInfo{Pid: pid, PPid: 1, StartNs: fuzzStarts[pid%4], Comm: "found", ExePath: "/found", Cmdline: "found -x"}, nil
	case pid%3 == 0:
		return event.ProcInfo{}, errors.New("boom")
	}
	return event.ProcInfo{}, ErrNotFound
}

// decodeFuzz turns bytes into batches of events over a few pids, start
// times and exec ids, so that collisions (reuse, lost records) are common.
func decodeFuzz(data []byte) (seed []event.ProcInfo, batches []*event.Batch) {
	if len(data) == 0 {
		return nil, nil
	}
	hdr := data[0]
	data = data[1:]
	if hdr&1 != 0 {
		seed = []event.ProcInfo{
			{Pid: 2, PPid: 1, StartNs: tickStart, Comm: "s2", ExePath: "/s2", Cmdline: "s2"},
			{Pid: 3, PPid: 2, StartNs: bashStart, Comm: "s3"},
		}
	}
	drops := uint64(hdr>>1) & 3
	var cur []event.Event
	for len(data) >= 8 {
		c := data[:8]
		data = data[8:]
		if c[0] == 0xff { // batch boundary
			batches = append(batches, batch(drops, cur...))
			cur = nil
			drops += uint64(c[1] & 1)
			continue
		}
		pid := uint32(1 + c[2]%6)
		ev := event.Event{Header: event.Header{
			TsNs:    uint64(len(cur)),
			StartNs: fuzzStarts[c[4]%4] + uint64(c[7]>>6)*1000,
			Tid:     pid + uint32(c[6]%2)*100,
			Pid:     pid,
			ExecID:  uint32(c[5] % 4),
			Type:    event.Type(c[0] % 5),
			Flags:   c[1] & 0x0f,
		}}
		ev.PPid = uint32(c[3] % 7)
		ev.UID, ev.GID = uint32(c[7]%3), uint32(c[7]%3)
		ev.SetComm([]string{"a", "bb", "", "ccc"}[c[7]%4])
		if ev.Type == event.TypeExec {
			ev.Exe = []byte([]string{"/a", "", "/c"}[c[6]%3])
			ev.Args = [][]byte{[]byte("a\x00b\x00"), nil, []byte("\x00\x00"), []byte("x")}[c[3]%4]
		}
		cur = append(cur, ev)
	}
	batches = append(batches, batch(drops, cur...))
	return seed, batches
}

func FuzzEnrich(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 2, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 4, 0, 1, 0, 0, 2, 0, 0})
	f.Add([]byte{1,
		1, 0, 2, 1, 1, 1, 0, 0, // fork 3 ← 2
		4, 4, 2, 0, 1, 2, 0, 0, // syscall with hints, newer exec
		0xff, 1, 0, 0, 0, 0, 0, 0,
		3, 2, 2, 0, 1, 1, 0, 0, // group-dead exit
		4, 0, 2, 0, 2, 1, 1, 0, // reuse
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		seed, batches := decodeFuzz(data)
		cfg := Config{MaxProcs: 3, MaxTombstones: 4, NegativeCacheSize: 4, ReorderWindow: 4, MaxLookupsPerBatch: 3}
		if len(data) > 0 && data[0]&8 != 0 {
			cfg.Lookup = fuzzLookup{}
		}
		e := NewEngine(cfg)
		// twin enriches the same stream in place (EnrichInPlace, as the
		// enricher does): it must agree with Enrich event for event.
		twin := NewEngine(cfg)
		if seed != nil {
			e.Seed(seed)
			twin.Seed(seed)
		}
		var inPlace []event.Enriched
		// Names each process (pid, start) ever had in the stream: a name
		// from state must be one of its own, never another process's.
		names := map[pidStart]map[string]bool{}
		for _, b := range batches {
			for _, ev := range b.Events {
				if ev.Type == event.TypeExec || ev.Type == event.TypeFork && ev.Flags&event.FlagThread == 0 {
					k := pidStart{ev.Pid, ev.StartNs}
					if names[k] == nil {
						names[k] = map[string]bool{}
					}
					names[k][ev.CommString()] = true
				}
			}
		}
		var out []event.Enriched
		for _, b := range batches {
			out = e.Enrich(context.Background(), b, out[:0])
			if len(out) != len(b.Events) {
				t.Fatalf("%d enriched for %d events", len(out), len(b.Events))
			}
			inPlace = inPlace[:0]
			for _, ev := range b.Events {
				inPlace = append(inPlace, event.Enriched{Event: ev})
			}
			twin.EnrichInPlace(context.Background(), b, inPlace)
			if !reflect.DeepEqual(out, inPlace) {
				t.Fatalf("EnrichInPlace differs from Enrich:\n%+v\n%+v", inPlace, out)
			}
			for i := range out {
				checkInvariants(t, out[i])
				if out[i].Header != b.Events[i].Header {
					t.Fatalf("event %d: header not carried", i)
				}
				if o := &out[i]; o.Source == event.SourceState && o.Missing&event.FieldName == 0 && !names[pidStart{o.Pid, o.StartNs}][o.ProcName] {
					t.Fatalf("event %d (pid %d start %d) named %q: not its own name", i, o.Pid, o.StartNs, o.ProcName)
				}
				if out[i].Reason > event.ReasonOutOfOrder {
					t.Fatalf("unknown reason %v", out[i].Reason)
				}
			}
			if n := e.Stats().Procs; n > cfg.MaxProcs {
				t.Fatalf("table holds %d > %d", n, cfg.MaxProcs)
			}
			checkTable(t, e)
		}
		e.Snapshot()
	})
}

// checkTable verifies the table's internal consistency: both LRU lists are
// well linked and together hold exactly the indexed entries.
func checkTable(t *testing.T, e *Engine) {
	t.Helper()
	tb := &e.t
	seen := map[int32]bool{}
	live := 0
	for _, l := range []*lru{&tb.live, &tb.exited} {
		prev := nilIdx
		for i := l.head; i != nilIdx; i = tb.slab[i].next {
			en := &tb.slab[i]
			if seen[i] || !en.inUse || en.prev != prev || (l == &tb.exited) != en.exited {
				t.Fatalf("bad list at %d: %+v", i, *en)
			}
			if j, ok := tb.byPid.get(en.pid); !ok || j != i {
				t.Fatalf("entry %d pid %d not indexed", i, en.pid)
			}
			seen[i] = true
			if !en.exited {
				live++
			}
			prev = i
		}
		if l.tail != prev {
			t.Fatalf("tail %d, last %d", l.tail, prev)
		}
	}
	if len(seen) != tb.byPid.len() || live != tb.nLive {
		t.Fatalf("lists hold %d (live %d), index %d (live %d)", len(seen), live, tb.byPid.len(), tb.nLive)
	}
}
