/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Wake-up arithmetic of ringwise's ring buffers, kept apart from the BPF
 * program so that it compiles as plain C too: bpf/wake_test.go builds it with
 * the host's C compiler and checks every decision against the Go mirror
 * (bpf/wake.go) over an enumeration of threshold crossings.
 */
#ifndef __RINGWISE_WAKE_H__
#define __RINGWISE_WAKE_H__

#ifndef RW_INLINE
#define RW_INLINE static __always_inline
#endif

/* The kernel's struct bpf_ringbuf_hdr, in front of every record. */
#define RW_RINGBUF_HDR_SZ 8

/* The bytes a record of sz payload bytes occupies in a ring: the 8-byte
 * header plus the payload rounded up to 8 (bpf_ringbuf_reserve). */
RW_INLINE unsigned long long rw_footprint(unsigned long long sz)
{
	return RW_RINGBUF_HDR_SZ + ((sz + 7) & ~7ULL);
}

/* rw_crossed: did the record of sz payload bytes just submitted carry the
 * ring's unread bytes across thr? avail is bpf_ringbuf_query(AVAIL_DATA)
 * after the reserve, so it already counts this record's whole footprint:
 * the record crossed iff avail - footprint < thr <= avail. */
RW_INLINE int rw_crossed(unsigned long long avail, unsigned long long thr, unsigned long long sz)
{
	return avail >= thr && avail < thr + rw_footprint(sz);
}

#endif /* __RINGWISE_WAKE_H__ */
