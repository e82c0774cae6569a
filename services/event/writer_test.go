package event

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestWriterMatchesMsgpack: the in-place writer encodes every boundary value
// byte for byte as vmihailenco/msgpack's Encoder does, and the in-place
// reader reads it back.
func TestWriterMatchesMsgpack(t *testing.T) {
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	lens := []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	var w writer
	check := func(what string, lib func() error, ours func()) {
		t.Helper()
		buf.Reset()
		if err := lib(); err != nil {
			t.Fatal(err)
		}
		w.b = w.b[:0]
		ours()
		if !bytes.Equal(buf.Bytes(), w.b) {
			t.Fatalf("%s: msgpack % x, ours % x", what, buf.Bytes(), w.b)
		}
	}
	for _, v := range ints {
		check("int", func() error { return enc.EncodeInt(v) }, func() { w.int(v) })
		r := reader{b: w.b}
		if got := r.int(); got != v || r.err != nil || r.rest() != 0 {
			t.Fatalf("int %d read back as %d (%v)", v, got, r.err)
		}
		if v >= 0 {
			check("uint", func() error { return enc.EncodeUint(uint64(v)) }, func() { w.uint(uint64(v)) })
			r := reader{b: w.b}
			if got := r.uint(math.MaxUint64); got != uint64(v) || r.err != nil {
				t.Fatalf("uint %d read back as %d (%v)", v, got, r.err)
			}
		}
	}
	check("uint max", func() error { return enc.EncodeUint(math.MaxUint64) }, func() { w.uint(math.MaxUint64) })
	for _, n := range lens {
		s := strings.Repeat("x", n)
		check("str", func() error { return enc.EncodeString(s) }, func() { w.str(s) })
		r := reader{b: w.b}
		if got := r.strLen(1 << 20); got != n || r.err != nil {
			t.Fatalf("str of %d read back as %d (%v)", n, got, r.err)
		}
		check("bytes", func() error { return enc.EncodeBytes([]byte(s)) }, func() { w.bytes([]byte(s)) })
		check("array", func() error { return enc.EncodeArrayLen(n) }, func() { w.arrayLen(n) })
		r = reader{b: w.b}
		if got := r.arrayLen(); got != n || r.err != nil {
			t.Fatalf("array of %d read back as %d (%v)", n, got, r.err)
		}
	}
	// A nil exe or args is an empty bin, not msgpack nil.
	check("nil bytes", func() error { return enc.EncodeBytesLen(0) }, func() { w.bytes(nil) })
	// Truncated input is an error, never a panic or a short value.
	w.b = w.b[:0]
	w.uint(math.MaxUint64)
	r := reader{b: w.b[:5]}
	if r.uint(math.MaxUint64); r.err == nil {
		t.Fatal("truncated uint64 read without error")
	}
}
