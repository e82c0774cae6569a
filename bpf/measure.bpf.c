//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * ringwise measure: counting only. No records, no ring: per-CPU counters of
 * syscall exits (per bin and per syscall number) and of lifecycle events
 * (fork, exec, exit), binned in the kernel so that user space reads about
 * once a second. This is the arrival curve a ring model needs, at the cost
 * of a few per-CPU increments per event.
 *
 * Bins. Time is cut into bins of bin_ns (10 ms by default) by the clock of
 * bpf_ktime_get_ns (CLOCK_MONOTONIC); bin e is [e·bin_ns, (e+1)·bin_ns).
 * Bin e is counted in slot e mod NUM_SLOTS of a per-CPU array, whose epoch
 * field says which bin the slot holds. Per syscall number the counts are
 * kept per span of nr_span bins (a second by default), in NUM_NR_SLOTS slots.
 *
 * Why no increment is lost at a slot boundary: a program reads the clock
 * once and both picks the slot and stamps it with that bin, so an event is
 * counted in exactly one bin. The program never clears a slot: user space
 * reads a bin only once it is over (two bins later), then clears its slot,
 * long before the slot is reused NUM_SLOTS bins later; a slot whose stamp
 * is older than the bin being read was not touched during that bin (and was
 * cleared when its own bin was read), so it counts zero; a stamp newer than
 * the bin means the reader fell NUM_SLOTS bins behind, which it reports.
 * Increments are atomic, so that two programs on one CPU (a preempted one
 * and the one that preempted it) cannot lose one another's.
 */
#include "ringwise_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define MAX_NR 512 /* syscall numbers counted one by one; others in nr[MAX_NR] */
#define NUM_SLOTS 512    /* bins kept: 5.12 s of 10 ms bins */
#define NUM_NR_SLOTS 8   /* spans kept: 8 s of 1 s spans */

/* bin_counts.kinds[] index */
#define K_SYSCALL 0
#define K_FORK 1    /* new processes and threads */
#define K_EXEC 2
#define K_EXIT 3    /* every exiting thread */
#define NUM_BIN_KINDS 4

/* watch_counts.kinds[] index: cumulative, the lifecycle of the children of
 * watch_tgid (verification) */
#define W_FORK 0
#define W_EXEC 1
#define W_EXIT 2
#define NUM_WATCH 3

struct bin_counts {
	u64 epoch; /* the bin counted here: ktime / bin_ns */
	u64 kinds[NUM_BIN_KINDS];
};

struct nr_counts {
	u64 epoch; /* the span counted here: ktime / bin_ns / nr_span */
	u64 nr[MAX_NR + 1];
};

struct watch_counts {
	u64 kinds[NUM_WATCH];
};

const struct bin_counts *unused_bin_counts __attribute__((unused));
const struct nr_counts *unused_nr_counts __attribute__((unused));
const struct watch_counts *unused_watch_counts __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_SLOTS);
	__type(key, u32);
	__type(value, struct bin_counts);
} bins_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_NR_SLOTS);
	__type(key, u32);
	__type(value, struct nr_counts);
} nr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct watch_counts);
} watch_map SEC(".maps");

/* the measuring process: its own syscalls are not counted. */
volatile const u32 self_tgid = 0;
/* nonzero: also count processes forked by this tgid, their execs and their
 * exits (W_*), so that a test can check counts against a known flood. */
volatile const u32 watch_tgid = 0;
/* the bin width, and the bins per span of the per-syscall counts */
volatile const u64 bin_ns = 10000000;
volatile const u64 nr_span = 100;

static __always_inline u64 epoch_now(void)
{
	return bpf_ktime_get_ns() / bin_ns;
}

/* count adds one event of kind k to the current bin. */
static __always_inline void count(u64 epoch, int k)
{
	u32 slot = epoch & (NUM_SLOTS - 1);
	struct bin_counts *b = bpf_map_lookup_elem(&bins_map, &slot);
	if (!b)
		return;
	/* Every writer of this slot during this bin stores the same value. */
	b->epoch = epoch;
	__sync_fetch_and_add(&b->kinds[k & (NUM_BIN_KINDS - 1)], 1);
}

static __always_inline void watch(int k)
{
	u32 zero = 0;
	struct watch_counts *w = bpf_map_lookup_elem(&watch_map, &zero);
	if (w && k < NUM_WATCH)
		__sync_fetch_and_add(&w->kinds[k], 1);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(m_fork, struct task_struct *parent, struct task_struct *child)
{
	count(epoch_now(), K_FORK);
	if (watch_tgid) {
		u32 ptgid = BPF_CORE_READ(parent, tgid);
		u32 ctgid = BPF_CORE_READ(child, tgid);
		if (ptgid == watch_tgid && ctgid != ptgid)
			watch(W_FORK);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(m_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	count(epoch_now(), K_EXEC);
	if (watch_tgid && (u32)BPF_CORE_READ(p, real_parent, tgid) == watch_tgid)
		watch(W_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(m_exit, struct task_struct *p)
{
	count(epoch_now(), K_EXIT);
	/* the group leader's exit of a child of watch_tgid: one per process */
	if (watch_tgid && BPF_CORE_READ(p, pid) == BPF_CORE_READ(p, tgid) &&
	    (u32)BPF_CORE_READ(p, real_parent, tgid) == watch_tgid)
		watch(W_EXIT);
	return 0;
}

/* The hot path: every syscall. regs is a trusted BTF pointer in tp_btf, so
 * it is read directly (a CO-RE relocated load, no helper call). */
SEC("tp_btf/sys_exit")
int BPF_PROG(m_sys_exit, struct pt_regs *regs, long ret)
{
	if (self_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
#if defined(__TARGET_ARCH_x86)
	u32 nr = (u32)regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
	u32 nr = (u32)regs->syscallno;
#endif
	u64 epoch = epoch_now();
	count(epoch, K_SYSCALL);
	u64 span = epoch / nr_span;
	u32 slot = span & (NUM_NR_SLOTS - 1);
	struct nr_counts *c = bpf_map_lookup_elem(&nr_map, &slot);
	if (!c)
		return 0;
	c->epoch = span;
	if (nr < MAX_NR)
		__sync_fetch_and_add(&c->nr[nr & (MAX_NR - 1)], 1);
	else
		__sync_fetch_and_add(&c->nr[MAX_NR], 1);
	return 0;
}
