package bpf

// Go mirror of headers/ringwise_wake.h: the BPF side submits records without
// waking the reader unless the record carried the ring's unread bytes across
// the wake-up threshold. TestWakeArithmeticC compiles the C header with the
// host's C compiler and checks it against these functions decision by
// decision, so the two cannot drift apart.

// ringFootprint is the bytes a record of sz payload bytes occupies in a ring:
// the kernel's 8-byte bpf_ringbuf_hdr plus the payload rounded up to 8
// (rw_footprint).
func ringFootprint(sz uint64) uint64 { return ringbufHeaderSize + (sz+7)&^7 }

// wakeCrossed reports whether a record of sz payload bytes, whose submit
// found avail unread bytes in the ring (this record's footprint included,
// since it was reserved), carried the unread bytes across thr: avail -
// footprint < thr <= avail (rw_crossed).
func wakeCrossed(avail, thr, sz uint64) bool {
	return avail >= thr && avail < thr+ringFootprint(sz)
}
