package event

import (
	"bytes"
	"math"
	"math/rand/v2"
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

// TestPutUintIntMatchWriter checks the fixed-room writes of encodeEvent
// against writer.uint and writer.int at every width's edges and on random
// values: the two must write the same bytes.
func TestPutUintIntMatchWriter(t *testing.T) {
	var us []uint64
	var is []int64
	for sh := 0; sh < 64; sh++ {
		v := uint64(1) << sh
		us = append(us, v-1, v, v+1)
		is = append(is, int64(v-1), int64(v), -int64(v), -int64(v)-1, -int64(v)+1)
	}
	us = append(us, ^uint64(0))
	is = append(is, math.MinInt64, math.MaxInt64, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32-1)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := rng.Uint64() >> rng.IntN(64)
		us = append(us, v)
		is = append(is, int64(v), -int64(v))
	}
	buf := make([]byte, 16)
	for _, v := range us {
		var w writer
		w.uint(v)
		n := putUint(buf, 0, v)
		if !bytes.Equal(buf[:n], w.b) {
			t.Fatalf("putUint(%d) = % x; writer.uint wrote % x", v, buf[:n], w.b)
		}
	}
	for _, v := range is {
		var w writer
		w.int(v)
		n := putInt(buf, 0, v)
		if !bytes.Equal(buf[:n], w.b) {
			t.Fatalf("putInt(%d) = % x; writer.int wrote % x", v, buf[:n], w.b)
		}
	}
}
