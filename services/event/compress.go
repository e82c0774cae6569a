package event

import (
	"fmt"

	"github.com/klauspost/compress/s2"
)

// CompressedMark starts a batch message that is the S2 block encoding of a
// batch (raw or enriched). 0xc1 is the one code msgpack never uses, so a
// plain batch (an array) can never be taken for a compressed one: Decode
// and DecodeEnriched read both, and every reader of the streams goes
// through them.
//
// Why: JetStream's CPU per event is mostly per byte stored and delivered
// (scripts/e2e-bench.sh: some 1 µs per event for ~115 bytes across the raw
// and enriched streams, the largest hop); S2 shrinks raw batches ~3.5x
// and enriched ones ~6x for some 50 ns per event to encode and 25 to
// decode, measured on the stored batches in the same run.
const CompressedMark = 0xc1

// Compress returns data's S2 block encoding after CompressedMark, valid
// until the next Compress call; data itself when that is not smaller (a
// message never grows, so it still fits the stream's MaxMsgSize).
func (c *Codec) Compress(data []byte) []byte {
	need := 1 + s2.MaxEncodedLen(len(data))
	if need <= 1 {
		return data // too large to encode; leave it to the size checks
	}
	if cap(c.z) < need {
		c.z = make([]byte, need)
	}
	c.z = c.z[:need]
	c.z[0] = CompressedMark
	enc := s2.Encode(c.z[1:], data)
	if 1+len(enc) >= len(data) {
		return data
	}
	return c.z[:1+len(enc)]
}

// inflate returns data decompressed if it starts with CompressedMark
// (into the codec's buffer, valid until the next decode), else data. The
// decoded length is checked against MaxBatchBytes before anything is
// allocated, so a small message cannot claim gigabytes.
func (c *Codec) inflate(data []byte, what string) ([]byte, error) {
	if len(data) == 0 || data[0] != CompressedMark {
		return data, nil
	}
	n, err := s2.DecodedLen(data[1:])
	if err != nil {
		return nil, fmt.Errorf("decode %s: s2 header: %v: %w", what, err, ErrMalformed)
	}
	if n > MaxBatchBytes {
		return nil, fmt.Errorf("decode %s: %d bytes decompressed: %w (max %d)", what, n, ErrOversized, MaxBatchBytes)
	}
	if cap(c.unz) < n {
		c.unz = make([]byte, n)
	}
	out, err := s2.Decode(c.unz[:n], data[1:])
	if err != nil {
		return nil, fmt.Errorf("decode %s: s2: %v: %w", what, err, ErrMalformed)
	}
	return out, nil
}
