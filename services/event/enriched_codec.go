package event

import (
	"fmt"
)

const (
	enrichedBatchFields = 8
	enrichedEventFields = 11
	maxProcStringLen    = 8192
)

// MaxEnrichedExtraBytes bounds what enrichment adds to one event's
// encoding: the enriched event's array header, its three ids and three
// codes at their longest, and its process strings at the longest the
// enricher's sources give them: the comm, an exe path and a command line of
// at most MaxExeLen and MaxArgsLen (exec records are bounded so; /proc reads
// by procfs.MaxString, the same 4096) and a container id (12 characters, as
// Falco shows it; 64 allowed). So an enriched batch of a raw batch of n
// events and b bytes is at most b + n·MaxEnrichedExtraBytes: the sensor
// bounds n by it (sensor.MaxBatchEventsForEnriched) so that no enriched
// batch can exceed MaxBatchBytes, which the enricher could not publish.
const MaxEnrichedExtraBytes = 1 + 6*9 + (3 + CommLen) + (3 + MaxExeLen) + (3 + MaxArgsLen) + (3 + 64)

// EncodeEnriched encodes b; the bytes are valid until the next Encode call.
func (c *Codec) EncodeEnriched(b *EnrichedBatch) ([]byte, error) {
	if len(b.Events) > MaxBatchEvents {
		return nil, fmt.Errorf("encode enriched batch seq %d: %d events: %w (max %d)", b.RawSeq, len(b.Events), ErrOversized, MaxBatchEvents)
	}
	w := writer{b: c.out[:0]}
	defer func() { c.out = w.b }()
	w.arrayLen(enrichedBatchFields)
	w.uint(SchemaVersion)
	w.str(b.Node)
	w.str(b.BootID)
	w.uint(b.RawSeq)
	w.uint(b.SensorStartNs)
	w.int(b.WallOffsetNs)
	w.counters(&b.Counters)
	w.arrayLen(len(b.Events))
	for i := range b.Events {
		e := &b.Events[i]
		w.arrayLen(enrichedEventFields)
		encodeEvent(&w, &e.Event)
		w.uint(uint64(e.ProcPPid))
		w.uint(uint64(e.ProcUID))
		w.uint(uint64(e.ProcGID))
		w.str2(e.ProcName)
		w.str2(e.ProcExePath)
		w.str2(e.ProcCmdline)
		w.str2(e.ContainerID)
		w.uint(uint64(e.Missing))
		w.uint(uint64(e.Reason))
		w.uint(uint64(e.Source))
	}
	if w.err != nil {
		return nil, w.err
	}
	if len(w.b) > MaxBatchBytes {
		return nil, fmt.Errorf("encode enriched batch seq %d: %d bytes: %w (max %d)", b.RawSeq, len(w.b), ErrOversized, MaxBatchBytes)
	}
	return w.b, nil
}

// DecodeEnriched decodes data into b, reusing b.Events.
func (c *Codec) DecodeEnriched(data []byte, b *EnrichedBatch) error {
	data, err := c.inflate(data, "enriched batch")
	if err != nil {
		b.Events = b.Events[:0]
		return err
	}
	if len(data) > MaxBatchBytes {
		b.Events = b.Events[:0]
		return fmt.Errorf("decode enriched batch: %d bytes: %w (max %d)", len(data), ErrOversized, MaxBatchBytes)
	}
	r := reader{b: data}
	if err := decodeEnrichedBatch(&r, b); err != nil {
		b.Events = b.Events[:0]
		return err
	}
	if r.rest() != 0 {
		b.Events = b.Events[:0]
		return fmt.Errorf("decode enriched batch: %d trailing bytes: %w", r.rest(), ErrMalformed)
	}
	return nil
}

func decodeEnrichedBatch(r *reader, b *EnrichedBatch) error {
	schema, err := r.envelope("enriched batch", enrichedBatchFields)
	if err != nil {
		return err
	}
	b.Schema = schema
	b.Node = r.str(b.Node)
	b.BootID = r.str(b.BootID)
	b.RawSeq = r.uint(^uint64(0))
	b.SensorStartNs = r.uint(^uint64(0))
	b.WallOffsetNs = r.int()
	if err := r.counters(&b.Counters); err != nil {
		return fmt.Errorf("decode enriched batch seq %d: %w", b.RawSeq, err)
	}
	ne := r.arrayLen()
	if r.err != nil {
		return fmt.Errorf("decode enriched envelope: %w", r.err)
	}
	if ne < 0 || ne > MaxBatchEvents {
		return fmt.Errorf("decode enriched batch seq %d: %d events: %w (max %d)", b.RawSeq, ne, ErrOversized, MaxBatchEvents)
	}
	if cap(b.Events) >= ne {
		b.Events = b.Events[:ne]
	} else {
		old := b.Events[:cap(b.Events)]
		b.Events = make([]Enriched, ne)
		copy(b.Events, old)
	}
	for i := range b.Events {
		e := &b.Events[i]
		if fn := r.arrayLen(); r.err == nil && fn != enrichedEventFields {
			return fmt.Errorf("decode enriched batch seq %d event %d: %d fields: %w", b.RawSeq, i, fn, ErrMalformed)
		}
		if r.err != nil {
			return fmt.Errorf("decode enriched batch seq %d event %d: %w", b.RawSeq, i, r.err)
		}
		if err := decodeEvent(r, &e.Event); err != nil {
			return fmt.Errorf("decode enriched batch seq %d event %d: %w", b.RawSeq, i, err)
		}
		e.ProcPPid = uint32(r.uint(0xffffffff))
		e.ProcUID = uint32(r.uint(0xffffffff))
		e.ProcGID = uint32(r.uint(0xffffffff))
		e.ProcName = r.str2(e.ProcName)
		e.ProcExePath = r.str2(e.ProcExePath)
		e.ProcCmdline = r.str2(e.ProcCmdline)
		e.ContainerID = r.str2(e.ContainerID)
		e.Missing = Field(r.uint(uint64(AllFields)))
		e.Reason = Reason(r.uint(uint64(numReasons - 1)))
		e.Source = Source(r.uint(uint64(SourceHints)))
		if r.err != nil {
			return fmt.Errorf("decode enriched batch seq %d event %d: %w", b.RawSeq, i, r.err)
		}
	}
	return nil
}

// str2 writes a process string, refusing what the decoder would refuse.
func (w *writer) str2(s string) {
	if len(s) > maxProcStringLen && w.err == nil {
		w.err = fmt.Errorf("process string of %d bytes: %w (max %d)", len(s), ErrOversized, maxProcStringLen)
		return
	}
	w.str(s)
}

// str2 decodes a process string of up to maxProcStringLen bytes, reusing
// prev when equal: consecutive events of one process share their strings.
func (r *reader) str2(prev string) string {
	n := r.strLen(maxProcStringLen)
	if r.err != nil || n == 0 {
		return ""
	}
	var tmp [512]byte
	var buf []byte
	if n <= len(tmp) {
		buf = tmp[:n]
	} else {
		buf = make([]byte, n)
	}
	copy(buf, r.take(n))
	if string(buf) == prev {
		return prev
	}
	return string(buf)
}
