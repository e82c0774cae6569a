//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * ringwise measure: counting only. No records, no ring: per-CPU counters of
 * syscall exits (total and per syscall number) and of lifecycle events
 * (fork, exec, exit), read by user space every few milliseconds. This is the
 * arrival curve a ring model needs, at the cost of one per-CPU increment or
 * two per event.
 */
#include "ringwise_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define MAX_NR 512 /* syscall numbers counted one by one; others in nr_other */

/* kinds[] index */
#define K_SYSCALL 0
#define K_FORK 1    /* new processes and threads */
#define K_EXEC 2
#define K_EXIT 3    /* every exiting thread */
#define K_NR_OTHER 4 /* syscalls with nr >= MAX_NR (also in K_SYSCALL) */
/* watch[] index: lifecycle of the children of watch_tgid (verification) */
#define W_FORK 5
#define W_EXEC 6
#define W_EXIT 7
#define NUM_KINDS 8

struct measure_counts {
	u64 kinds[NUM_KINDS];
	u64 nr[MAX_NR];
};

const struct measure_counts *unused_measure_counts __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct measure_counts);
} counts_map SEC(".maps");

/* the measuring process: its own syscalls are not counted. */
volatile const u32 self_tgid = 0;
/* nonzero: also count processes forked by this tgid, their execs and their
 * exits (W_*), so that a test can check counts against a known flood. */
volatile const u32 watch_tgid = 0;

static __always_inline struct measure_counts *counts(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&counts_map, &zero);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(m_fork, struct task_struct *parent, struct task_struct *child)
{
	struct measure_counts *c = counts();
	if (!c)
		return 0;
	c->kinds[K_FORK]++;
	if (watch_tgid) {
		u32 ptgid = BPF_CORE_READ(parent, tgid);
		u32 ctgid = BPF_CORE_READ(child, tgid);
		if (ptgid == watch_tgid && ctgid != ptgid)
			c->kinds[W_FORK]++;
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(m_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct measure_counts *c = counts();
	if (!c)
		return 0;
	c->kinds[K_EXEC]++;
	if (watch_tgid && (u32)BPF_CORE_READ(p, real_parent, tgid) == watch_tgid)
		c->kinds[W_EXEC]++;
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(m_exit, struct task_struct *p)
{
	struct measure_counts *c = counts();
	if (!c)
		return 0;
	c->kinds[K_EXIT]++;
	/* the group leader's exit of a child of watch_tgid: one per process */
	if (watch_tgid && BPF_CORE_READ(p, pid) == BPF_CORE_READ(p, tgid) &&
	    (u32)BPF_CORE_READ(p, real_parent, tgid) == watch_tgid)
		c->kinds[W_EXIT]++;
	return 0;
}

/* The hot path: every syscall. regs is a trusted BTF pointer in tp_btf, so
 * it is read directly (a CO-RE relocated load, no helper call). */
SEC("tp_btf/sys_exit")
int BPF_PROG(m_sys_exit, struct pt_regs *regs, long ret)
{
	if (self_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	struct measure_counts *c = counts();
	if (!c)
		return 0;
#if defined(__TARGET_ARCH_x86)
	u32 nr = (u32)regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
	u32 nr = (u32)regs->syscallno;
#endif
	c->kinds[K_SYSCALL]++;
	if (nr < MAX_NR)
		c->nr[nr & (MAX_NR - 1)]++;
	else
		c->kinds[K_NR_OTHER]++;
	return 0;
}
