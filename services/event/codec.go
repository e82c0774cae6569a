package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"

	"github.com/ringwise/ringwise/services/syscalls"
)

// Limits that bound what a decoder accepts. A batch over them is rejected as
// a whole with an error wrapping ErrOversized; nothing is truncated silently.
const (
	MaxBatchBytes  = 16 << 20
	MaxBatchEvents = 1 << 16
	MaxExeLen      = 4096
	MaxArgsLen     = 4096
	maxStringLen   = 256 // node and boot id
)

// MaxEventFixedBytes bounds what an event's encoding takes besides its
// exe path and arguments: the array header and every integer field at
// their longest (9 bytes each), the comm and the byte-string headers.
const MaxEventFixedBytes = 256

// EventWireBound is an upper bound of ev's encoded size in a batch, for a
// producer that must keep batches under a message size limit without
// encoding twice (see sensor.Config.BatchMaxBytes). Every integer field
// counts at its exact msgpack size (a table lookup by bit length, as
// writer.uint and writer.int choose the encoding), the comm at its longest
// and the exe and args with their longest headers; so a syscall record
// counts 30 to 70 bytes, as encoded, rather than 138 at 9 bytes a field. A
// batch cut by this bound (sensor.DefaultBatchMaxBytes) therefore holds as
// many events as the message size really allows (a per-field worst case
// cut syscall records at some 1800); what caps a batch of syscall records
// is then sensor.DefaultBatchMaxEvents, the most whose enriched batch fits.
//
// For a syscall record without hints, the common case at full rate,
// SyscallWireBound is cheaper: its bound holds for every such record.
func EventWireBound(ev *Event) int {
	n := fieldsFor(ev.Type, ev.Flags)
	if n == 0 {
		return MaxEventFixedBytes + len(ev.Exe) + len(ev.Args)
	}
	b := 3 + // the array header (at most array16: n < 32 is one byte)
		uintWire(uint64(ev.Type)) + uintWire(uint64(ev.Flags)) + uintWire(ev.TsNs) + uintWire(ev.StartNs) +
		uintWire(uint64(ev.Tid)) + uintWire(uint64(ev.Pid)) + uintWire(uint64(ev.ExecID)) + uintWire(uint64(ev.CPU)) +
		uintWire(uint64(ev.VPid)) + uintWire(uint64(ev.ABI))
	meta := false
	switch ev.Type {
	case TypeFork:
		meta = true
		b += uintWire(uint64(ev.ForkerPid)) + uintWire(ev.ForkerStartNs)
	case TypeExec:
		meta = true
		b += 5 + len(ev.Exe) + 5 + len(ev.Args) + uintWire(uint64(ev.OldPid))
	case TypeExit:
		meta = true
		b += intWire(int64(ev.ExitCode))
	case TypeCgroup:
		meta = true
	case TypeSyscall:
		b += uintWire(uint64(ev.Syscall)) + intWire(ev.Ret) + uintWire(ev.SysArgs[0]) + uintWire(ev.SysArgs[1]) + uintWire(ev.SysArgs[2])
		meta = ev.Flags&FlagHints != 0
	}
	if meta {
		b += uintWire(uint64(ev.PPid)) + uintWire(uint64(ev.UID)) + uintWire(uint64(ev.GID)) + CommLen + 2 +
			uintWire(uint64(ev.VTid)) + uintWire(ev.CgroupID)
	}
	return b
}

// MaxSyscallWireBytes bounds the encoding of any syscall record without
// hints: the array header and each field at the widest its Go type allows
// (Type, Flags and ABI 2 bytes, CPU 3, the uint32 fields 5, the uint64 and
// int64 ones 9). 89 bytes, against the 30 to 70 EventWireBound counts.
const MaxSyscallWireBytes = 1 + // array header: 15 fields
	2 + 2 + 9 + 9 + 5 + 5 + 5 + 3 + 5 + 2 + // Type, Flags, TsNs, StartNs, Tid, Pid, ExecID, CPU, VPid, ABI
	5 + 9 + 3*9 // Syscall, Ret, SysArgs

// SyscallWireBound is a bound of ev's encoded size in a batch, as
// EventWireBound, but without looking at a syscall record's values: it is
// MaxSyscallWireBytes for a syscall record without hints, EventWireBound
// otherwise. The sensor cuts its batches by it: computing the exact sizes
// of 15 fields per record was a tenth of its drain (CPU profile of
// BenchmarkSensorDrain), while DefaultBatchMaxEvents records of this bound
// still fit its byte limit, so full-rate batches stay as large.
func SyscallWireBound(ev *Event) int {
	if ev.Type == TypeSyscall && ev.Flags&FlagHints == 0 {
		return MaxSyscallWireBytes
	}
	return EventWireBound(ev)
}

// uintBytes[bits.Len64(v)] is the size of v as writer.uint encodes it:
// positive fixint up to 127, then uint8, uint16, uint32, uint64.
var uintBytes = [65]uint8{
	1, 1, 1, 1, 1, 1, 1, 1, // 0..127
	2,                      // 128..255
	3, 3, 3, 3, 3, 3, 3, 3, // ..65535
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, // ..2^32-1
	9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
}

func uintWire(v uint64) int { return int(uintBytes[bits.Len64(v)]) }

// negIntBytes[bits.Len64(^v)] is the size of a negative v as writer.int
// encodes it: negative fixint down to -32, then int8, int16, int32, int64.
var negIntBytes = [65]uint8{
	1, 1, 1, 1, 1, 1, // -1..-32 (^v 0..31)
	2, 2, // ..-128
	3, 3, 3, 3, 3, 3, 3, 3, // ..-32768
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, // ..-2^31
	9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
}

func intWire(v int64) int {
	if v >= 0 {
		return uintWire(uint64(v))
	}
	return int(negIntBytes[bits.Len64(uint64(^v))])
}

// MaxBatchEnvelopeBytes bounds a batch's encoding besides its events:
// schema, node and boot id (at most maxStringLen each), numbers, counters.
const MaxBatchEnvelopeBytes = 2048

// Decode errors. Every decode error wraps exactly one of these, so services
// can count bad input by kind.
var (
	ErrMalformed     = errors.New("malformed msgpack")
	ErrSchemaVersion = errors.New("unsupported schema version")
	ErrOversized     = errors.New("oversized")
	ErrInvalidEvent  = errors.New("invalid event")
)

// ErrorKind names the kind of a decode error for bad-input counters:
// "schema_version", "oversized", "invalid_event" or "malformed".
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrSchemaVersion):
		return "schema_version"
	case errors.Is(err, ErrOversized):
		return "oversized"
	case errors.Is(err, ErrInvalidEvent):
		return "invalid_event"
	}
	return "malformed"
}

const batchFields = 10

// Codec encodes and decodes batches. It holds reusable buffers, so one Codec
// must not be used by two goroutines at once; the zero value is not ready,
// use NewCodec.
type Codec struct {
	out []byte
	z   []byte // Compress's output
	unz []byte // a compressed message's batch, being decoded
}

// NewCodec returns a Codec.
func NewCodec() *Codec {
	c := &Codec{}
	return c
}

// Encode encodes b and returns the bytes, valid until the next Encode call.
func (c *Codec) Encode(b *Batch) ([]byte, error) {
	w := writer{b: c.out[:0]}
	err := encodeBatch(&w, b)
	c.out = w.b
	if err != nil {
		return nil, err
	}
	if len(w.b) > MaxBatchBytes {
		return nil, fmt.Errorf("encode batch seq %d: %d bytes: %w (max %d)", b.Seq, len(w.b), ErrOversized, MaxBatchBytes)
	}
	return w.b, nil
}

// AppendEncode encodes b and appends the bytes to dst.
func (c *Codec) AppendEncode(dst []byte, b *Batch) ([]byte, error) {
	p, err := c.Encode(b)
	if err != nil {
		return dst, err
	}
	return append(dst, p...), nil
}

// Decode decodes data into b, reusing b.Events and their byte slices.
// On error b holds no events.
func (c *Codec) Decode(data []byte, b *Batch) error {
	data, err := c.inflate(data, "batch")
	if err != nil {
		b.Events = b.Events[:0]
		return err
	}
	if len(data) > MaxBatchBytes {
		b.Events = b.Events[:0]
		return fmt.Errorf("decode batch: %d bytes: %w (max %d)", len(data), ErrOversized, MaxBatchBytes)
	}
	r := reader{b: data}
	if err := decodeBatch(&r, b); err != nil {
		b.Events = b.Events[:0]
		return err
	}
	if r.rest() != 0 {
		b.Events = b.Events[:0]
		return fmt.Errorf("decode batch: %d trailing bytes: %w", r.rest(), ErrMalformed)
	}
	return nil
}

func encodeBatch(w *writer, b *Batch) error {
	if len(b.Events) > MaxBatchEvents {
		return fmt.Errorf("encode batch seq %d: %d events: %w (max %d)", b.Seq, len(b.Events), ErrOversized, MaxBatchEvents)
	}
	schema := b.Schema
	if schema == 0 {
		schema = SchemaVersion
	}
	w.arrayLen(batchFields)
	w.uint(uint64(schema))
	w.str(b.Node)
	w.str(b.BootID)
	w.uint(b.Seq)
	w.uint(b.SensorStartNs)
	w.int(b.WallOffsetNs)
	w.uint(b.FirstTsNs)
	w.uint(b.LastTsNs)
	w.counters(&b.Counters)
	w.arrayLen(len(b.Events))
	for i := range b.Events {
		encodeEvent(w, &b.Events[i])
	}
	return w.err
}

// fieldsFor returns the msgpack array length of an event of type t.
func fieldsFor(t Type, flags uint8) int {
	const hdr = 10
	const meta = 6
	switch t {
	case TypeFork:
		return hdr + meta + 2
	case TypeExec:
		return hdr + meta + 3
	case TypeExit:
		return hdr + meta + 1
	case TypeCgroup:
		return hdr + meta
	case TypeSyscall:
		if flags&FlagHints != 0 {
			return hdr + 5 + meta
		}
		return hdr + 5
	}
	return 0
}

func encodeEvent(w *writer, ev *Event) {
	n := fieldsFor(ev.Type, ev.Flags)
	if n == 0 {
		if w.err == nil {
			w.err = fmt.Errorf("encode event: type %d: %w", ev.Type, ErrInvalidEvent)
		}
		return
	}
	// The array header, the ten header fields and a syscall's five go
	// through putUint into room made once (CPU profile of
	// BenchmarkSensorDrain: writer.uint's append per value was most of
	// Codec.Encode, the largest share of the sensor's drain).
	b, i := w.room(3 + 15*9) // an array16 header and 15 values of at most 9 bytes
	b[i] = 0x90 | byte(n)    // a fixarray for a plain syscall record (15 fields); the other types take an array16
	if n >= 16 {
		b[i] = 0xdc
		b[i+1], b[i+2] = 0, byte(n)
		i += 2
	}
	i++
	i = putUint(b, i, uint64(ev.Type))
	i = putUint(b, i, uint64(ev.Flags))
	i = putUint(b, i, ev.TsNs)
	i = putUint(b, i, ev.StartNs)
	i = putUint(b, i, uint64(ev.Tid))
	i = putUint(b, i, uint64(ev.Pid))
	i = putUint(b, i, uint64(ev.ExecID))
	i = putUint(b, i, uint64(ev.CPU))
	i = putUint(b, i, uint64(ev.VPid))
	i = putUint(b, i, uint64(ev.ABI))
	if ev.Type == TypeSyscall {
		i = putUint(b, i, uint64(ev.Syscall))
		i = putInt(b, i, ev.Ret)
		i = putUint(b, i, ev.SysArgs[0])
		i = putUint(b, i, ev.SysArgs[1])
		i = putUint(b, i, ev.SysArgs[2])
		w.b = b[:i]
		if ev.Flags&FlagHints != 0 {
			w.meta(ev)
		}
		return
	}
	w.b = b[:i]
	switch ev.Type {
	case TypeFork:
		w.meta(ev)
		w.uint(uint64(ev.ForkerPid))
		w.uint(ev.ForkerStartNs)
	case TypeExec:
		w.meta(ev)
		w.bytes(ev.Exe)
		w.bytes(ev.Args)
		w.uint(uint64(ev.OldPid))
	case TypeExit:
		w.meta(ev)
		w.int(int64(ev.ExitCode))
	case TypeCgroup:
		w.meta(ev)
	}
}

func decodeBatch(r *reader, b *Batch) error {
	ne, err := decodeBatchEnvelope(r, b)
	if err != nil {
		return err
	}
	if cap(b.Events) >= ne {
		b.Events = b.Events[:ne]
	} else {
		old := b.Events[:cap(b.Events)]
		b.Events = make([]Event, ne)
		copy(b.Events, old) // keep the byte buffers already grown
	}
	for i := range b.Events {
		if err := decodeEvent(r, &b.Events[i]); err != nil {
			return fmt.Errorf("decode batch seq %d event %d: %w", b.Seq, i, err)
		}
	}
	return nil
}

// decodeBatchEnvelope decodes a batch's fields up to its event list into b
// and returns the number of events that follow.
func decodeBatchEnvelope(r *reader, b *Batch) (int, error) {
	schema, err := r.envelope("batch", batchFields)
	if err != nil {
		return 0, err
	}
	b.Schema = schema
	b.Node = r.str(b.Node)
	b.BootID = r.str(b.BootID)
	b.Seq = r.uint(^uint64(0))
	b.SensorStartNs = r.uint(^uint64(0))
	b.WallOffsetNs = r.int()
	b.FirstTsNs = r.uint(^uint64(0))
	b.LastTsNs = r.uint(^uint64(0))
	if err := r.counters(&b.Counters); err != nil {
		return 0, fmt.Errorf("decode batch seq %d: %w", b.Seq, err)
	}
	if r.err != nil {
		return 0, fmt.Errorf("decode batch envelope: %w", r.err)
	}
	ne := r.arrayLen()
	if r.err != nil {
		return 0, fmt.Errorf("decode batch seq %d events: %w", b.Seq, r.err)
	}
	if ne < 0 {
		return 0, fmt.Errorf("decode batch seq %d: nil event list: %w", b.Seq, ErrMalformed)
	}
	if ne > MaxBatchEvents {
		return 0, fmt.Errorf("decode batch seq %d: %d events: %w (max %d)", b.Seq, ne, ErrOversized, MaxBatchEvents)
	}
	return ne, nil
}

// DecodeEnrichable decodes a raw batch as Decode does, but its events into
// the Event parts of out (reused, grown as needed) with every enrichment
// field zero, ready for enrichment in place; b gets the envelope and no
// events. It returns out holding the batch's events. It spares the
// enricher a copy of each decoded event into its Enriched.
func (c *Codec) DecodeEnrichable(data []byte, b *Batch, out []Enriched) ([]Enriched, error) {
	b.Events = b.Events[:0]
	data, err := c.inflate(data, "batch")
	if err != nil {
		return out[:0], err
	}
	if len(data) > MaxBatchBytes {
		return out[:0], fmt.Errorf("decode batch: %d bytes: %w (max %d)", len(data), ErrOversized, MaxBatchBytes)
	}
	r := reader{b: data}
	var ne int
	ne, err = decodeBatchEnvelope(&r, b)
	if err != nil {
		return out[:0], err
	}
	if cap(out) >= ne {
		out = out[:ne]
	} else {
		old := out[:cap(out)]
		out = make([]Enriched, ne)
		copy(out, old) // keep the byte buffers already grown
	}
	for i := range out {
		o := &out[i]
		if err := decodeEvent(&r, &o.Event); err != nil {
			return out[:0], fmt.Errorf("decode batch seq %d event %d: %w", b.Seq, i, err)
		}
		o.resetEnrichment()
	}
	if r.rest() != 0 {
		return out[:0], fmt.Errorf("decode batch: %d trailing bytes: %w", r.rest(), ErrMalformed)
	}
	return out, nil
}

func decodeEvent(r *reader, ev *Event) error {
	n := r.arrayLen()
	if r.err != nil {
		return r.err
	}
	ev.Reset()
	if n < 8 {
		return fmt.Errorf("%d fields: %w", n, ErrMalformed)
	}
	ev.Type = Type(r.uint(0xff))
	ev.Flags = uint8(r.uint(0xff))
	if r.err != nil {
		return r.err
	}
	if !ev.Type.Valid() {
		return fmt.Errorf("type %d: %w", ev.Type, ErrInvalidEvent)
	}
	if want := fieldsFor(ev.Type, ev.Flags); n != want {
		return fmt.Errorf("%s event with %d fields, want %d: %w", ev.Type, n, want, ErrMalformed)
	}
	ev.TsNs = r.uint(^uint64(0))
	ev.StartNs = r.uint(^uint64(0))
	ev.Tid = uint32(r.uint(0xffffffff))
	ev.Pid = uint32(r.uint(0xffffffff))
	ev.ExecID = uint32(r.uint(0xffffffff))
	ev.CPU = uint16(r.uint(0xffff))
	ev.VPid = uint32(r.uint(0xffffffff))
	ev.ABI = syscalls.ABI(r.uint(0xff))
	switch ev.Type {
	case TypeFork:
		r.meta(ev)
		ev.ForkerPid = uint32(r.uint(0xffffffff))
		ev.ForkerStartNs = r.uint(^uint64(0))
	case TypeExec:
		r.meta(ev)
		ev.Exe = r.bytes(ev.Exe, MaxExeLen)
		ev.Args = r.bytes(ev.Args, MaxArgsLen)
		ev.OldPid = uint32(r.uint(0xffffffff))
	case TypeExit:
		r.meta(ev)
		ev.ExitCode = int32(r.intRange(-1<<31, 1<<31-1))
	case TypeCgroup:
		r.meta(ev)
	case TypeSyscall:
		ev.Syscall = uint32(r.uint(0xffffffff))
		ev.Ret = r.int()
		ev.SysArgs[0] = r.uint(^uint64(0))
		ev.SysArgs[1] = r.uint(^uint64(0))
		ev.SysArgs[2] = r.uint(^uint64(0))
		if ev.Flags&FlagHints != 0 {
			r.meta(ev)
		}
	}
	return r.err
}

// meta writes the process metadata of lifecycle records (and hints).
func (w *writer) meta(ev *Event) {
	w.uint(uint64(ev.PPid))
	w.uint(uint64(ev.UID))
	w.uint(uint64(ev.GID))
	w.comm(&ev.Comm)
	w.uint(uint64(ev.VTid))
	w.uint(ev.CgroupID)
}

func (r *reader) meta(ev *Event) {
	ev.PPid = uint32(r.uint(0xffffffff))
	ev.UID = uint32(r.uint(0xffffffff))
	ev.GID = uint32(r.uint(0xffffffff))
	r.comm(&ev.Comm)
	ev.VTid = uint32(r.uint(0xffffffff))
	ev.CgroupID = r.uint(^uint64(0))
}

// counterRows lists a Counters' rows in wire order.
func counterRows(c *Counters) [4]*[NumCategories]uint64 {
	return [4]*[NumCategories]uint64{&c.Attempted, &c.Dropped, &c.Shed, &c.Delivered}
}

func (w *writer) counters(c *Counters) {
	w.arrayLen(4 * NumCategories)
	for _, row := range counterRows(c) {
		for _, v := range row {
			w.uint(v)
		}
	}
}

func (r *reader) counters(c *Counters) error {
	if cn := r.arrayLen(); r.err == nil && cn != 4*NumCategories {
		return fmt.Errorf("%d counters, want %d: %w", cn, 4*NumCategories, ErrMalformed)
	}
	for _, row := range counterRows(c) {
		for i := range row {
			row[i] = r.uint(^uint64(0))
		}
	}
	return r.err
}

// envelope reads an envelope's array header and schema version.
func (r *reader) envelope(what string, fields int) (uint16, error) {
	n := r.arrayLen()
	if r.err != nil {
		return 0, fmt.Errorf("decode %s envelope: %w", what, r.err)
	}
	if n != fields {
		return 0, fmt.Errorf("decode %s envelope: %d fields, want %d: %w", what, n, fields, ErrMalformed)
	}
	schema := r.uint(0xffff)
	if r.err != nil {
		return 0, fmt.Errorf("decode %s schema: %w", what, r.err)
	}
	if schema != SchemaVersion {
		return 0, fmt.Errorf("decode %s: schema %d, this build reads %d: %w", what, schema, SchemaVersion, ErrSchemaVersion)
	}
	return uint16(schema), nil
}

// writer is a sticky-error msgpack writer.
type writer struct {
	b   []byte
	err error
}

// The encodings are msgpack's shortest, byte for byte what
// vmihailenco/msgpack's Encoder writes for the same calls.

func (w *writer) code1(c byte, v uint8) { w.b = append(w.b, c, v) }
func (w *writer) code2(c byte, v uint16) {
	w.b = append(w.b, c, byte(v>>8), byte(v))
}
func (w *writer) code4(c byte, v uint32) {
	w.b = append(w.b, c, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func (w *writer) code8(c byte, v uint64) {
	w.b = append(w.b, c, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// room makes room for n more bytes and returns the buffer at its full
// capacity with the write position: putUint and putInt write there, and the
// caller sets w.b = b[:i] after them.
func (w *writer) room(n int) (b []byte, i int) {
	i = len(w.b)
	if cap(w.b)-i < n {
		w.b = slices.Grow(w.b, n)
	}
	return w.b[:cap(w.b)], i
}

// uintCode[bits.Len64(v)] is the msgpack code writer.uint writes before v
// when v is not a positive fixint.
var uintCode = [65]byte{
	0, 0, 0, 0, 0, 0, 0, 0, // fixint: no code
	0xcc,
	0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd,
	0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce,
	0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf,
	0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf, 0xcf,
}

// putUint writes v at b[i:] exactly as writer.uint appends it and returns
// the position after it. b must hold 9 bytes from i: the value's bytes are
// written as one big-endian word shifted to the code's width, so the only
// branch is fixint or not.
func putUint(b []byte, i int, v uint64) int {
	l := bits.Len64(v)
	if l <= 7 {
		b[i] = byte(v)
		return i + 1
	}
	n := int(uintBytes[l]) - 1 // the value's bytes after the code
	b[i] = uintCode[l]
	binary.BigEndian.PutUint64(b[i+1:i+9], v<<(64-8*n))
	return i + 1 + n
}

// negIntCode[bits.Len64(^v)] is the msgpack code writer.int writes before
// a negative v that is not a negative fixint.
var negIntCode = [65]byte{
	0, 0, 0, 0, 0, 0, // negative fixint: no code
	0xd0, 0xd0,
	0xd1, 0xd1, 0xd1, 0xd1, 0xd1, 0xd1, 0xd1, 0xd1,
	0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2,
	0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3,
	0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3,
}

// putInt writes v at b[i:] exactly as writer.int appends it (see putUint).
func putInt(b []byte, i int, v int64) int {
	if v >= 0 {
		return putUint(b, i, uint64(v))
	}
	l := bits.Len64(uint64(^v))
	if l <= 5 {
		b[i] = byte(v)
		return i + 1
	}
	n := int(negIntBytes[l]) - 1
	b[i] = negIntCode[l]
	binary.BigEndian.PutUint64(b[i+1:i+9], uint64(v)<<(64-8*n))
	return i + 1 + n
}

func (w *writer) arrayLen(n int) {
	switch {
	case n < 16:
		w.b = append(w.b, 0x90|byte(n))
	case n <= math.MaxUint16:
		w.code2(0xdc, uint16(n))
	default:
		w.code4(0xdd, uint32(n))
	}
}
func (w *writer) uint(v uint64) {
	switch {
	case v <= math.MaxInt8:
		w.b = append(w.b, byte(v))
	case v <= math.MaxUint8:
		w.code1(0xcc, uint8(v))
	case v <= math.MaxUint16:
		w.code2(0xcd, uint16(v))
	case v <= math.MaxUint32:
		w.code4(0xce, uint32(v))
	default:
		w.code8(0xcf, v)
	}
}
func (w *writer) int(v int64) {
	switch {
	case v >= 0:
		w.uint(uint64(v))
	case v >= -32:
		w.b = append(w.b, byte(v))
	case v >= math.MinInt8:
		w.code1(0xd0, uint8(v))
	case v >= math.MinInt16:
		w.code2(0xd1, uint16(v))
	case v >= math.MinInt32:
		w.code4(0xd2, uint32(v))
	default:
		w.code8(0xd3, uint64(v))
	}
}
func (w *writer) str(s string) {
	switch n := len(s); {
	case n < 32:
		w.b = append(w.b, 0xa0|byte(n))
	case n < 256:
		w.code1(0xd9, uint8(n))
	case n <= math.MaxUint16:
		w.code2(0xda, uint16(n))
	default:
		w.code4(0xdb, uint32(n))
	}
	w.b = append(w.b, s...)
}

// bytes writes a bin; a nil slice as an empty bin, which is what an empty
// exe or args means (and what the decoder reads).
func (w *writer) bytes(b []byte) {
	switch n := len(b); {
	case n < 256:
		w.code1(0xc4, uint8(n))
	case n <= math.MaxUint16:
		w.code2(0xc5, uint16(n))
	default:
		w.code4(0xc6, uint32(n))
	}
	w.b = append(w.b, b...)
}
func (w *writer) comm(c *[CommLen]byte) {
	n := 0
	for n < CommLen && c[n] != 0 {
		n++
	}
	w.bytes(c[:n])
}

// reader is a sticky-error msgpack reader that checks every value's range.
// It parses the message in place (a byte slice and a position): no
// io.Reader, no per-byte interface calls, the hot loop of every decode.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}

// rest is how many bytes are left unread.
func (r *reader) rest() int { return len(r.b) - r.pos }

// peek returns the next type code without consuming it.
func (r *reader) peek() (byte, bool) {
	if r.pos >= len(r.b) {
		r.fail(io.ErrUnexpectedEOF)
		return 0, false
	}
	return r.b[r.pos], true
}

// take consumes n bytes and returns them (a view of the message).
func (r *reader) take(n int) []byte {
	if n < 0 || r.rest() < n {
		r.fail(io.ErrUnexpectedEOF)
		return nil
	}
	p := r.b[r.pos : r.pos+n]
	r.pos += n
	return p
}

// be reads an n-byte big-endian unsigned integer (n = 1, 2, 4, 8): one
// load each, not a byte loop (decode is the enricher's and the analyzer's
// hottest path).
func (r *reader) be(n int) uint64 {
	p := r.take(n)
	switch len(p) {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	case 8:
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) arrayLen() int {
	if r.err != nil {
		return 0
	}
	c, ok := r.peek()
	if !ok {
		return 0
	}
	r.pos++
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f)
	case c == 0xdc:
		return int(r.be(2))
	case c == 0xdd:
		return int(r.be(4))
	case c == 0xc0:
		return -1
	}
	r.fail(fmt.Errorf("want array, got code 0x%02x", c))
	return 0
}

// rawUint decodes an unsigned integer whose code c (isUintCode) is next.
func (r *reader) rawUint(c byte) uint64 {
	r.pos++
	switch c {
	case 0xcc:
		return r.be(1)
	case 0xcd:
		return r.be(2)
	case 0xce:
		return r.be(4)
	case 0xcf:
		return r.be(8)
	}
	return uint64(c) // positive fixint
}

func (r *reader) uint(max uint64) uint64 {
	// Fast path: a positive fixint (most of a record's fields) in range.
	if r.err == nil && r.pos < len(r.b) {
		if c := r.b[r.pos]; c <= 0x7f && uint64(c) <= max {
			r.pos++
			return uint64(c)
		}
	}
	if r.err != nil {
		return 0
	}
	c, ok := r.peek()
	if !ok {
		return 0
	}
	// Reject negative ints and non-integers rather than coerce them (-1
	// would become 2^64-1, a float an int).
	if !isUintCode(c) {
		r.fail(fmt.Errorf("want unsigned integer, got code 0x%02x", c))
		return 0
	}
	v := r.rawUint(c)
	if r.err != nil {
		return 0
	}
	if v > max {
		r.fail(fmt.Errorf("value %d out of range (max %d)", v, max))
		return 0
	}
	return v
}

func (r *reader) int() int64 {
	if r.err != nil {
		return 0
	}
	c, ok := r.peek()
	if !ok {
		return 0
	}
	switch {
	case isUintCode(c):
		v := r.rawUint(c)
		if r.err != nil {
			return 0
		}
		if v > 1<<63-1 { // uint64 above MaxInt64 would wrap
			r.fail(fmt.Errorf("value %d overflows int64", v))
			return 0
		}
		return int64(v)
	case c >= 0xe0: // negative fixint
		r.pos++
		return int64(int8(c))
	case c == 0xd0:
		r.pos++
		return int64(int8(r.be(1)))
	case c == 0xd1:
		r.pos++
		return int64(int16(r.be(2)))
	case c == 0xd2:
		r.pos++
		return int64(int32(r.be(4)))
	case c == 0xd3:
		r.pos++
		return int64(r.be(8))
	}
	r.fail(fmt.Errorf("want integer, got code 0x%02x", c))
	return 0
}

func (r *reader) intRange(min, max int64) int64 {
	v := r.int()
	if r.err == nil && (v < min || v > max) {
		r.fail(fmt.Errorf("value %d out of range [%d, %d]", v, min, max))
		return 0
	}
	return v
}

func (r *reader) strLen(max int) int {
	if r.err != nil {
		return 0
	}
	c, ok := r.peek()
	if !ok {
		return 0
	}
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		r.pos++
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		r.pos++
		n = int(r.be(1))
	case c == 0xda || c == 0xc5:
		r.pos++
		n = int(r.be(2))
	case c == 0xdb || c == 0xc6:
		r.pos++
		n = int(r.be(4))
	default:
		r.fail(fmt.Errorf("want string or bytes, got code 0x%02x", c))
		return 0
	}
	if r.err != nil {
		return 0
	}
	if n > max {
		if r.err == nil {
			r.err = fmt.Errorf("string of %d bytes: %w (max %d)", n, ErrOversized, max)
		}
		return 0
	}
	if n > r.rest() {
		r.fail(io.ErrUnexpectedEOF)
		return 0
	}
	return n
}

// bytes decodes a bin or str value into dst's storage.
func (r *reader) bytes(dst []byte, limit int) []byte {
	n := r.strLen(limit)
	if r.err != nil || n == 0 {
		return dst[:0]
	}
	if cap(dst) < n {
		dst = make([]byte, n, max(n, 64))
	}
	dst = dst[:n]
	copy(dst, r.take(n))
	return dst
}

func (r *reader) comm(c *[CommLen]byte) {
	n := r.strLen(CommLen)
	if r.err != nil || n == 0 {
		return
	}
	p := r.take(n)
	// A comm ends at its first NUL, as the kernel's does and as the
	// writer encodes it: bytes after one would not survive a round trip.
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	copy(c[:], p)
}

// str decodes a short string, reusing prev when equal (the node name and
// boot id repeat on every batch, so this avoids an allocation per batch).
func (r *reader) str(prev string) string {
	n := r.strLen(maxStringLen)
	if r.err != nil {
		return ""
	}
	p := r.take(n)
	if string(p) == prev {
		return prev
	}
	return string(p)
}

func isUintCode(c byte) bool {
	return c <= 0x7f || (c >= 0xcc && c <= 0xcf)
}
func isIntCode(c byte) bool {
	return c >= 0xe0 || (c >= 0xd0 && c <= 0xd3)
}
func isStrCode(c byte) bool {
	return (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)
}
func isBinCode(c byte) bool {
	return c >= 0xc4 && c <= 0xc6
}
