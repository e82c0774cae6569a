//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * ringwise sensor: process lifecycle (fork, exec, exit) and raw syscall exit
 * records, written to BPF ring buffers with exact per-category accounting.
 *
 * Record layouts are fixed-size and mirrored by the Go decoder in record.go
 * (DecodeRecord) and by services/event.Event. Keep the three in sync; the Go
 * test TestRecordSizesMatchGenerated compares them against bpf2go's output.
 *
 * Accounting invariant: every bpf_ringbuf_reserve() is preceded by exactly one
 * "attempted" increment and every NULL reserve by exactly one "dropped"
 * increment; reserved records are always submitted (never discarded). Hence
 * after a full drain: attempted == delivered + dropped, per category.
 */
#include "ringwise_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "ringwise_wake.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* event.Type */
#define TYPE_FORK 1
#define TYPE_EXEC 2
#define TYPE_EXIT 3
#define TYPE_SYSCALL 4

/* event.Flag* */
#define FLAG_THREAD (1 << 0)
#define FLAG_GROUP_DEAD (1 << 1)
#define FLAG_HINTS (1 << 2)
#define FLAG_TRUNCATED (1 << 3)

#define COMM_LEN 16
#define EXE_MAX 160
#define ARGS_MAX 192

/* counters index = category*3 + kind */
#define CAT_LIFECYCLE 0
#define CAT_SYSCALL 1
#define KIND_ATTEMPTED 0
#define KIND_DROPPED 1
#define KIND_SHED 2
#define NUM_COUNTERS 6

/* ---- records (little endian, naturally aligned, sizes multiple of 8) ---- */

struct rec_hdr {
	u64 ts_ns;    /* 0  bpf_ktime_get_boot_ns */
	u64 start_ns; /* 8  group_leader->start_boottime (the clock of /proc start times) */
	u32 tid;      /* 16 task->pid */
	u32 pid;      /* 20 task->tgid */
	u32 exec_id;  /* 24 (u32)task->self_exec_id */
	u16 cpu;      /* 28 */
	u8 type;      /* 30 */
	u8 flags;     /* 31 */
}; /* 32 */

struct proc_meta {
	u32 ppid;           /* +0  real_parent->tgid */
	u32 uid;            /* +4  cred->euid (init userns) */
	u32 gid;            /* +8  cred->egid (init userns) */
	char comm[COMM_LEN]; /* +12 */
}; /* 28 */

struct fork_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 32 */
	u32 forker_tgid;    /* 60 the forking process (== ppid but for CLONE_PARENT) */
	u64 forker_start;   /* 64 its group_leader->start_boottime: the child's image is
			     *    the forker's, and this tells a reused pid apart */
}; /* 72 */

struct exec_rec {
	struct rec_hdr h;    /* 0 */
	struct proc_meta m;  /* 32 */
	u16 exe_len;         /* 60 bytes of exe used, no NUL */
	u16 args_len;        /* 62 bytes of args used */
	char exe[EXE_MAX];   /* 64 */
	char args[ARGS_MAX]; /* 224 */
}; /* 416 */

struct exit_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 32 */
	s32 exit_code;      /* 60 */
}; /* 64 */

struct syscall_rec {
	struct rec_hdr h; /* 0 */
	u32 nr;           /* 32 */
	u32 _pad;         /* 36 */
	s64 ret;          /* 40 */
	u64 args[3];      /* 48 */
}; /* 72 */

struct syscall_hints_rec {
	struct syscall_rec s; /* 0 */
	struct proc_meta m;   /* 72 */
	u32 _pad;             /* 100 */
}; /* 104 */

/* Referenced so that bpf2go emits Go types for them (size cross-check). */
const struct fork_rec *unused_fork __attribute__((unused));
const struct exec_rec *unused_exec __attribute__((unused));
const struct exit_rec *unused_exit __attribute__((unused));
const struct syscall_rec *unused_syscall __attribute__((unused));
const struct syscall_hints_rec *unused_syscall_hints __attribute__((unused));

/* ---- load-time constants (rewritten from Go before loading) ---- */

/* 0: lifecycle records go to rb_syscall too ("shared"); 1: to rb_lifecycle ("split"). */
volatile const u32 split_layout = 0;
/* nonzero: syscall records carry ppid/uid/gid/comm (FlagHints). */
volatile const u32 hints = 0;
/* wake the reader when the syscall (or shared) ring's unread bytes cross this. */
volatile const u64 wakeup_bytes = 4096;
/* the same for the split layout's lifecycle ring. */
volatile const u64 lc_wakeup_bytes = 4096;

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* overridden from Go */
} rb_syscall SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* overridden from Go */
} rb_lifecycle SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_COUNTERS);
	__type(key, u32);
	__type(value, u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} excluded_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} shed_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} shed_syscalls SEC(".maps");

/* ---- helpers ---- */

static __always_inline void count(u32 cat, u32 kind)
{
	u32 idx = cat * 3 + kind;
	u64 *v = bpf_map_lookup_elem(&counters, &idx);
	/* atomic: with preemptible BPF (PREEMPT_RT/dynamic) two tasks can run
	 * this on one CPU; a lost increment would break the exact invariant. */
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline bool excluded(u32 tgid)
{
	return bpf_map_lookup_elem(&excluded_tgids, &tgid) != NULL;
}

/* Wake the reader only when this record carries the unread data across the
 * ring's threshold (rw_crossed, ringwise_wake.h: the window is the record's
 * whole footprint in the ring, header and padding included). Forcing a
 * wakeup for every record above it would cost an irq_work per record in
 * exactly the bursts that must stay cheap; the reader keeps reading while
 * there is a backlog and polls with a short deadline, so nothing waits long
 * if a crossing is missed in a race with another CPU. */
static __always_inline u64 wake_flags(void *rb, u64 thr, u64 sz)
{
	u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	return rw_crossed(avail, thr, sz) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Lifecycle reserve/submit: pick the ring by the (load-time constant) layout.
 * Written as two literal calls so the verifier sees a constant map pointer. */
#define LC_RESERVE(sz)                                                                             \
	(split_layout ? bpf_ringbuf_reserve(&rb_lifecycle, (sz), 0)                                \
		      : bpf_ringbuf_reserve(&rb_syscall, (sz), 0))

static __always_inline void lc_submit(void *r, u64 sz)
{
	if (split_layout)
		bpf_ringbuf_submit(r, wake_flags(&rb_lifecycle, lc_wakeup_bytes, sz));
	else
		bpf_ringbuf_submit(r, wake_flags(&rb_syscall, wakeup_bytes, sz));
}

static __always_inline void fill_hdr(struct rec_hdr *h, struct task_struct *t, u8 type)
{
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	h->tid = BPF_CORE_READ(t, pid);
	h->pid = BPF_CORE_READ(t, tgid);
	h->exec_id = (u32)BPF_CORE_READ(t, self_exec_id);
	h->cpu = (u16)bpf_get_smp_processor_id();
	h->type = type;
	h->flags = 0;
}

static __always_inline void fill_meta(struct proc_meta *m, struct task_struct *t)
{
	m->ppid = BPF_CORE_READ(t, real_parent, tgid);
	/* Effective ids, as Falco's user.uid: what the kernel checks access with. */
	m->uid = BPF_CORE_READ(t, cred, euid.val);
	m->gid = BPF_CORE_READ(t, cred, egid.val);
	if (BPF_CORE_READ_INTO(&m->comm, t, comm))
		__builtin_memset(m->comm, 0, COMM_LEN);
}

/* ---- programs ---- */

SEC("tp_btf/sched_process_fork")
int BPF_PROG(rw_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Subject is the child: a fork by an excluded process (the sensor
	 * launching a workload) is still captured; its own threads are not. */
	u32 tgid = BPF_CORE_READ(child, tgid);
	if (excluded(tgid))
		return 0;

	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct fork_rec *r = LC_RESERVE(sizeof(struct fork_rec));
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&r->h, child, TYPE_FORK);
	if (tgid == (u32)BPF_CORE_READ(parent, tgid))
		r->h.flags |= FLAG_THREAD;
	fill_meta(&r->m, child);
	r->forker_tgid = BPF_CORE_READ(parent, tgid);
	r->forker_start = BPF_CORE_READ(parent, group_leader, start_boottime);
	lc_submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(rw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 tgid = BPF_CORE_READ(p, tgid);
	if (excluded(tgid))
		return 0;

	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct exec_rec *r = LC_RESERVE(sizeof(struct exec_rec));
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&r->h, p, TYPE_EXEC);
	fill_meta(&r->m, p);

	/* exe: bprm->filename, NUL-terminated, bounded. */
	const char *fn = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(r->exe, EXE_MAX, fn);
	if (n <= 0) {
		r->exe_len = 0;
	} else {
		r->exe_len = (u16)(n - 1);
		if (n == EXE_MAX) {
			/* Filled the buffer: cut unless the kernel string ended exactly here. */
			char c = 0;
			bpf_probe_read_kernel(&c, 1, fn + EXE_MAX - 1);
			if (c)
				r->h.flags |= FLAG_TRUNCATED;
		}
	}

	/* args: the new image's argv block, NUL separated, bounded. */
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	u64 start = BPF_CORE_READ(mm, arg_start);
	u64 end = BPF_CORE_READ(mm, arg_end);
	u64 len = end > start ? end - start : 0;
	if (len > ARGS_MAX) {
		len = ARGS_MAX;
		r->h.flags |= FLAG_TRUNCATED;
	}
	barrier_var(len);
	if (len > ARGS_MAX)
		len = 0; /* never: keeps the verifier's bound on len */
	r->args_len = 0;
	if (len > 0 && bpf_probe_read_user(r->args, len, (const void *)start) == 0)
		r->args_len = (u16)len;

	lc_submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(rw_exit, struct task_struct *p)
{
	u32 tgid = BPF_CORE_READ(p, tgid);
	if (excluded(tgid))
		return 0;

	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct exit_rec *r = LC_RESERVE(sizeof(struct exit_rec));
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&r->h, p, TYPE_EXIT);
	/* do_exit() decrements signal->live before this tracepoint fires. */
	if (BPF_CORE_READ(p, signal, live.counter) == 0)
		r->h.flags |= FLAG_GROUP_DEAD;
	fill_meta(&r->m, p);
	r->exit_code = BPF_CORE_READ(p, exit_code);
	lc_submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(rw_sys_exit, struct pt_regs *regs, long ret)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (excluded((u32)(pid_tgid >> 32)))
		return 0;

#if defined(__TARGET_ARCH_x86)
	u32 nr = (u32)BPF_CORE_READ(regs, orig_ax);
	u64 a0 = BPF_CORE_READ(regs, di);
	u64 a1 = BPF_CORE_READ(regs, si);
	u64 a2 = BPF_CORE_READ(regs, dx);
#elif defined(__TARGET_ARCH_arm64)
	u32 nr = (u32)BPF_CORE_READ(regs, syscallno);
	u64 a0 = BPF_CORE_READ(regs, orig_x0); /* x0 now holds the return value */
	u64 a1 = BPF_CORE_READ(regs, regs[1]);
	u64 a2 = BPF_CORE_READ(regs, regs[2]);
#endif

	u32 zero = 0;
	u32 *shedding = bpf_map_lookup_elem(&shed_state, &zero);
	if (shedding && *shedding && bpf_map_lookup_elem(&shed_syscalls, &nr)) {
		count(CAT_SYSCALL, KIND_SHED);
		return 0;
	}

	/* bpf_get_current_task (not _btf, which needs 5.11): every read of t
	 * goes through BPF_CORE_READ anyway. */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct syscall_rec *s;
	struct syscall_hints_rec *hr = NULL;

	count(CAT_SYSCALL, KIND_ATTEMPTED);
	if (hints) {
		hr = bpf_ringbuf_reserve(&rb_syscall, sizeof(struct syscall_hints_rec), 0);
		s = (struct syscall_rec *)hr;
	} else {
		s = bpf_ringbuf_reserve(&rb_syscall, sizeof(struct syscall_rec), 0);
	}
	if (!s) {
		count(CAT_SYSCALL, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&s->h, t, TYPE_SYSCALL);
	s->nr = nr;
	s->_pad = 0;
	s->ret = ret;
	s->args[0] = a0;
	s->args[1] = a1;
	s->args[2] = a2;
	if (hr) {
		s->h.flags |= FLAG_HINTS;
		fill_meta(&hr->m, t);
		hr->_pad = 0;
	}
	bpf_ringbuf_submit(s, wake_flags(&rb_syscall, wakeup_bytes, hr ? sizeof(*hr) : sizeof(*s)));
	return 0;
}

/* whoami: run once by the loader (BPF_PROG_RUN) from the sensor's own
 * thread, it returns the caller's thread-group id as the kernel sees it, in
 * the initial pid namespace: the id the programs above compare with
 * excluded_tgids, whatever pid namespace the sensor runs in. */
SEC("syscall")
int rw_whoami(void *ctx)
{
	return (int)(bpf_get_current_pid_tgid() >> 32);
}
