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
 * increment; reserved records are always submitted (never discarded). A
 * replay (hints, replay_lost) takes its attempt back instead of counting a
 * drop: its loss was counted once already. Hence after a full drain:
 * attempted == delivered + dropped, per category.
 */
#include "ringwise_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "ringwise_wake.h"

#ifndef offsetof
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif

char __license[] SEC("license") = "Dual MIT/GPL";

/* event.Type */
#define TYPE_FORK 1
#define TYPE_EXEC 2
#define TYPE_EXIT 3
#define TYPE_SYSCALL 4
#define TYPE_CGROUP 5

/* event.Flag* */
#define FLAG_THREAD (1 << 0)
#define FLAG_GROUP_DEAD (1 << 1)
#define FLAG_HINTS (1 << 2)
#define FLAG_TRUNCATED (1 << 3)

/* syscalls.ABI: the numbering of a syscall record's nr and the registers its
 * args came from; ABI_OTHER (event.ABIOther) for an AArch32 task on arm64,
 * whose numbers no table here knows. */
#define ABI_OTHER 0xff
#define ABI_X86_64 1
#define ABI_IA32 2
#define ABI_ARM64 3
#if defined(__TARGET_ARCH_x86)
#define ABI_NATIVE ABI_X86_64
#define TS_COMPAT 0x0002 /* thread_info.status: in an ia32 syscall (arch/x86/include/asm/thread_info.h) */
#elif defined(__TARGET_ARCH_arm64)
#define ABI_NATIVE ABI_ARM64
#define TIF_32BIT 22 /* thread_info.flags: AArch32 task */
#endif

/* ringspec.Layout */
#define LAYOUT_SHARED 0
#define LAYOUT_SPLIT 1
#define LAYOUT_FALCO 2

#define COMM_LEN 16
/* exe path bound (a power of two: the path is built backwards in a buffer
 * indexed with a mask) and argv bound; exec records are variable-size, so
 * a record costs its actual lengths, the bounds only cap outliers. */
#define EXE_MAX 1024
#define ARGS_MAX 4096
#define NAME_MAX 255
#define PATH_DEPTH 48 /* path components walked up from the exe's dentry */

/* counters index = category*3 + kind */
#define CAT_LIFECYCLE 0
#define CAT_SYSCALL 1
#define KIND_ATTEMPTED 0
#define KIND_DROPPED 1
#define KIND_SHED 2
#define NUM_COUNTERS 6

/* ---- records (little endian, naturally aligned) ---- */

struct rec_hdr {
	u64 ts_ns;    /* 0  bpf_ktime_get_boot_ns */
	u64 start_ns; /* 8  group_leader->start_boottime (the clock of /proc start times) */
	u32 tid;      /* 16 task->pid (initial pid namespace) */
	u32 pid;      /* 20 task->tgid (initial pid namespace) */
	u32 exec_id;  /* 24 (u32)task->self_exec_id */
	u16 cpu;      /* 28 */
	u8 type;      /* 30 */
	u8 flags;     /* 31 */
	u32 vpid;     /* 32 the tgid in the task's own pid namespace (Falco's proc.vpid) */
	u8 abi;       /* 36 ABI_*: syscall numbering and argument registers */
	u8 _pad[3];   /* 37 */
}; /* 40 */

struct proc_meta {
	u64 cgroup_id;       /* +0  cgroup v2 id (kernfs id of cgroups->dfl_cgrp) */
	u32 ppid;            /* +8  real_parent->tgid */
	u32 uid;             /* +12 cred->euid (init userns) */
	u32 gid;             /* +16 cred->egid (init userns) */
	u32 vtid;            /* +20 the tid in the task's own pid namespace */
	char comm[COMM_LEN]; /* +24 */
}; /* 40 */

struct fork_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 40 */
	u32 forker_tgid;    /* 80 the forking process (== ppid but for CLONE_PARENT) */
	u32 _pad;           /* 84 */
	u64 forker_start;   /* 88 its group_leader->start_boottime: the child's image is
			     *    the forker's, and this tells a reused pid apart */
}; /* 96 */

struct exec_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 40 */
	u32 old_pid;        /* 80 the exec'ing thread's tid before exec (!= pid: a
			     *    non-leader thread exec'ed and took the leader's id) */
	u16 exe_len;        /* 84 bytes of exe at data[0] (no NUL) */
	u16 args_len;       /* 86 bytes of args at data[exe_len] */
	char data[EXE_MAX + ARGS_MAX]; /* 88: only exe_len + args_len are in the ring */
}; /* variable: 88 + exe_len + args_len */

struct exit_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 40 */
	s32 exit_code;      /* 80 */
	u32 _pad;           /* 84 */
}; /* 88 */

struct cgroup_rec {
	struct rec_hdr h;   /* 0 */
	struct proc_meta m; /* 40 m.cgroup_id is the cgroup moved to */
}; /* 80 */

struct syscall_rec {
	struct rec_hdr h; /* 0 */
	u32 nr;           /* 40 in the numbering of h.abi */
	u32 _pad;         /* 44 */
	s64 ret;          /* 48 */
	u64 args[3];      /* 56 */
}; /* 80 */

/* Referenced so that bpf2go emits Go types for them (size cross-check). */
const struct fork_rec *unused_fork __attribute__((unused));
const struct exec_rec *unused_exec __attribute__((unused));
const struct exit_rec *unused_exit __attribute__((unused));
const struct cgroup_rec *unused_cgroup __attribute__((unused));
const struct syscall_rec *unused_syscall __attribute__((unused));

/* ---- load-time constants (rewritten from Go before loading) ---- */

/* LAYOUT_SHARED: every record goes to rb_syscall; LAYOUT_SPLIT: fork/exec/
 * exit go to rb_lifecycle; LAYOUT_FALCO: every record goes to the ring of its
 * CPU's group in rb_cpus (ring cpu / cpus_per_ring), as Falco's modern probe. */
volatile const u32 layout = LAYOUT_SHARED;
volatile const u32 cpus_per_ring = 2;
/* nonzero: a fork or exec record the ring dropped is written again, with
 * FLAG_HINTS, at the process's next captured syscall exit that finds room
 * (replay_lost): only the bytes a loss takes away, only after a loss. */
volatile const u32 hints = 0;
/* wake the reader when a ring's unread bytes cross this (every ring but the
 * split layout's lifecycle ring). */
volatile const u64 wakeup_bytes = 4096;
/* the same for the split layout's lifecycle ring. */
volatile const u64 lc_wakeup_bytes = 4096;
/* nonzero: only syscalls marked in capture_syscalls are captured; the others
 * are neither written nor counted (like Falco's interesting syscalls). */
volatile const u32 capture_filter = 0;

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* overridden from Go */
} rb_syscall SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* overridden from Go */
} rb_lifecycle SEC(".maps");

/* LAYOUT_FALCO: one ring per group of cpus_per_ring CPUs, each of the
 * configured size, created and inserted from Go. */
struct rb_inner {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* overridden from Go */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* overridden from Go: the number of rings */
	__type(key, u32);
	__array(values, struct rb_inner);
} rb_cpus SEC(".maps");

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

/* An exec record is built here (too big for the stack), then copied into
 * the ring with its actual length (bpf_ringbuf_output). */
struct exec_scratch {
	struct exec_rec r;
	char path[EXE_MAX + NAME_MAX + 1]; /* the exe path, built backwards to path[EXE_MAX] */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_scratch);
} exec_scratch SEC(".maps");

/* Kernels before 6.16 do not pass group_dead to sched_process_exit: there,
 * signal->live is 0 for every thread that exits after the last decrement,
 * so several threads of one exit_group can see it. The first of them to
 * mark the group leader (alive until every thread of the group is
 * released) reports the group's death; the mark goes with the leader. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, u32);
} group_dead_seen SEC(".maps");

/* hints: the lifecycle record a task lost, kept with the task until a
 * syscall exit of it writes the record again (replay_lost). */
#define LOST_FORK 1 /* its fork record (the task is the child) */
#define LOST_EXEC 2 /* its exec record: replaying it also stands for the fork */
struct lost_lc {
	u32 what;         /* LOST_* */
	u32 forker_tgid;  /* LOST_FORK: fork_rec.forker_tgid */
	u64 forker_start; /* LOST_FORK: fork_rec.forker_start */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lost_lc);
} lost_lc SEC(".maps");

#define CAPTURE_MAX_NR 1024
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CAPTURE_MAX_NR);
	__type(key, u32);
	__type(value, u8);
} capture_syscalls SEC(".maps");

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

/* Takes back an attempted count: a replay (replay_lost) counts as attempted
 * only if it is written, since its loss was counted once already. */
static __always_inline void uncount(u32 cat, u32 kind)
{
	u32 idx = cat * 3 + kind;
	u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, -1);
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

/* The ring a record goes to, and that ring's wake-up threshold. NULL only if
 * the Falco layout's ring of this CPU is missing (never, after Load). */
static __always_inline void *ring_for(bool lifecycle, u64 *thr)
{
	*thr = wakeup_bytes;
	if (layout == LAYOUT_FALCO) {
		u32 idx = bpf_get_smp_processor_id() / cpus_per_ring;
		return bpf_map_lookup_elem(&rb_cpus, &idx);
	}
	if (lifecycle && layout == LAYOUT_SPLIT) {
		*thr = lc_wakeup_bytes;
		return &rb_lifecycle;
	}
	return &rb_syscall;
}

/* The number of pid p in the pid namespace of level (the task's own): a
 * probe read, since BTF loads need a constant offset. */
static __always_inline u32 pid_nr_at(struct pid *p, u32 level)
{
	return (u32)BPF_CORE_READ(p, numbers[level].nr);
}

/* The header of every record. Every program here is tp_btf, whose task
 * arguments and bpf_get_current_task_btf() are BTF pointers: fields are read
 * with direct, CO-RE relocated loads (a load with an exception-table entry
 * when the verifier cannot prove the pointer valid), not bpf_probe_read
 * helper calls. On the per-syscall path that was the biggest cost: perf
 * showed copy_from_kernel_nofault + bpf_probe_read_kernel at 35 % of a
 * syscall-bound workload's time with the sensor attached. */
static __always_inline void fill_hdr(struct rec_hdr *h, struct task_struct *t, u8 type)
{
	struct task_struct *leader = t->group_leader;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->start_ns = leader->start_boottime;
	h->tid = t->pid;
	h->pid = t->tgid;
	h->exec_id = (u32)t->self_exec_id;
	h->cpu = (u16)bpf_get_smp_processor_id();
	h->type = type;
	h->flags = 0;
	/* As Falco's proc.vpid: the leader's pid at the level of the task's
	 * own pid namespace (thread_pid->level). At level 0 (the initial
	 * namespace, most tasks of a node) that is the tgid itself. */
	u32 level = t->thread_pid->level;
	h->vpid = level == 0 ? (u32)t->tgid : pid_nr_at(leader->thread_pid, level);
	h->abi = ABI_NATIVE;
	h->_pad[0] = h->_pad[1] = h->_pad[2] = 0;
}

static __always_inline void fill_meta(struct proc_meta *m, struct task_struct *t)
{
	/* direct BTF loads, as in fill_hdr */
	m->cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	m->ppid = t->real_parent->tgid;
	/* Effective ids, as Falco's user.uid: what the kernel checks access with. */
	const struct cred *cred = t->cred;
	m->uid = cred->euid.val;
	m->gid = cred->egid.val;
	struct pid *tp = t->thread_pid;
	u32 level = tp->level;
	m->vtid = level == 0 ? (u32)t->pid : pid_nr_at(tp, level);
	__builtin_memcpy(m->comm, t->comm, COMM_LEN);
}

/* The syscall ABI of the current task: ia32 when an x86_64 task is in a
 * 32-bit syscall (int 0x80, sysenter from compat mode: TS_COMPAT, as Falco's
 * bpf_in_ia32_syscall), ABI_OTHER for an AArch32 task on arm64. */
static __always_inline u8 current_abi(struct task_struct *t)
{
#if defined(__TARGET_ARCH_x86)
	return (t->thread_info.status & TS_COMPAT) ? ABI_IA32 : ABI_X86_64;
#elif defined(__TARGET_ARCH_arm64)
	return (t->thread_info.flags & (1UL << TIF_32BIT)) ? ABI_OTHER : ABI_ARM64;
#endif
}

/* The state of a walk from a file's dentry up to the task's root. */
struct path_walk {
	struct dentry *d;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_d;
	struct vfsmount *root_mnt;
	u32 pos;  /* the path so far is exec_scratch.path[pos..EXE_MAX) */
	u8 done;  /* reached the root */
	u8 cut;   /* out of room */
};

/* One step of the walk (a bpf_loop callback, so the verifier checks it once
 * rather than once per component): prepend "/" + the dentry's name, or
 * cross a mount point. Returns 1 to stop. */
static long path_step(u64 i, void *ctx)
{
	struct path_walk *w = ctx;
	u32 zero = 0;
	struct exec_scratch *sc = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!sc) {
		w->cut = 1;
		return 1;
	}
	/* plain locals: BPF_CORE_READ(w->x, f) would relocate path_walk too */
	struct dentry *d = w->d;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	if (d == w->root_d && vfsmnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == BPF_CORE_READ(vfsmnt, mnt_root)) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);
		if (mp == mnt) {
			/* the top of a tree outside the task's root */
			w->done = 1;
			return 1;
		}
		/* to the mount point, in the parent mount */
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mp;
		w->vfsmnt = (struct vfsmount *)((char *)mp + bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (len > NAME_MAX)
		len = NAME_MAX;
	u32 pos = w->pos;
	if (pos > EXE_MAX || len + 1 > pos) {
		w->cut = 1;
		return 1;
	}
	pos -= len;
	barrier_var(pos);
	if (pos > EXE_MAX) {
		w->cut = 1;
		return 1;
	}
	if (len > 0)
		bpf_probe_read_kernel(&sc->path[pos], len & NAME_MAX, name);
	pos--;
	barrier_var(pos);
	if (pos >= EXE_MAX) {
		w->cut = 1;
		return 1;
	}
	sc->path[pos] = '/';
	w->pos = pos;
	if (d == parent) {
		/* a dentry without a parent: a pseudo file (memfd) */
		w->done = 1;
		return 1;
	}
	w->d = parent;
	return 0;
}

/* Builds the path of file f as the task t sees it into exec_scratch.path,
 * backwards to path[EXE_MAX), and returns its start offset. Like d_path it
 * stops at the task's root (t->fs->root) and crosses mount points; a file
 * on a mount attached nowhere (memfd) is "/" + its dentry's name, d_path's
 * result without " (deleted)". *cut is set when the path did not fit in
 * EXE_MAX bytes or had more than PATH_DEPTH components (the path then holds
 * its tail). */
static __always_inline u32 build_path(char *path, struct file *f, struct task_struct *t, bool *cut)
{
	struct path_walk w = {};
	w.d = BPF_CORE_READ(f, f_path.dentry);
	w.vfsmnt = BPF_CORE_READ(f, f_path.mnt);
	w.mnt = container_of(w.vfsmnt, struct mount, mnt);
	w.root_d = BPF_CORE_READ(t, fs, root.dentry);
	w.root_mnt = BPF_CORE_READ(t, fs, root.mnt);
	w.pos = EXE_MAX;
	bpf_loop(PATH_DEPTH, path_step, &w, 0);
	if (!w.done)
		*cut = true;
	u32 pos = w.pos;
	if (pos == EXE_MAX && !*cut) {
		pos = EXE_MAX - 1;
		path[EXE_MAX - 1] = '/';
	}
	return pos;
}

/* ---- programs ---- */

SEC("tp_btf/sched_process_fork")
int BPF_PROG(rw_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Subject is the child: a fork by an excluded process (the sensor
	 * launching a workload) is still captured; its own threads are not. */
	u32 tgid = child->tgid;
	if (excluded(tgid))
		return 0;

	u64 thr;
	void *rb = ring_for(true, &thr);
	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct fork_rec *r = rb ? bpf_ringbuf_reserve(rb, sizeof(struct fork_rec), 0) : NULL;
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		if (hints && tgid != (u32)parent->tgid) {
			struct lost_lc *l = bpf_task_storage_get(&lost_lc, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (l) {
				l->what |= LOST_FORK;
				l->forker_tgid = parent->tgid;
				l->forker_start = parent->group_leader->start_boottime;
			}
		}
		return 0;
	}
	fill_hdr(&r->h, child, TYPE_FORK);
	if (tgid == (u32)parent->tgid)
		r->h.flags |= FLAG_THREAD;
	fill_meta(&r->m, child);
	r->forker_tgid = parent->tgid;
	r->_pad = 0;
	r->forker_start = parent->group_leader->start_boottime;
	bpf_ringbuf_submit(r, wake_flags(rb, thr, sizeof(*r)));
	return 0;
}

/* load-time: an exec record keeps at most this many bytes of argv
 * (<= ARGS_MAX, the record's room); bigger records cost ring space, so the
 * lab measures the trade-off (ringwise lab --args-max). */
volatile const u32 args_max = ARGS_MAX;

/* Builds p's exec record in sc (p is current: its argv is read from user
 * memory) and returns the record's length. */
static __always_inline u64 build_exec(struct exec_scratch *sc, struct task_struct *p, u32 old_pid)
{
	struct exec_rec *r = &sc->r;
	fill_hdr(&r->h, p, TYPE_EXEC);
	fill_meta(&r->m, p);
	r->old_pid = old_pid;

	/* exe: the path of the new image's file (mm->exe_file), as Falco's
	 * proc.exepath and Tetragon read it; bprm->filename can be relative or
	 * /dev/fd/N. */
	bool cut = false;
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	u32 exe_len = 0;
	if (exe) {
		u32 pos = build_path(sc->path, exe, p, &cut);
		if (pos < EXE_MAX) {
			exe_len = EXE_MAX - pos;
			barrier_var(exe_len);
			if (exe_len > EXE_MAX)
				exe_len = 0;
			if (exe_len > 0 && bpf_probe_read_kernel(r->data, exe_len, &sc->path[pos]))
				exe_len = 0;
		}
	}
	if (cut)
		r->h.flags |= FLAG_TRUNCATED;

	/* args: the new image's argv block, NUL separated, bounded. */
	u64 start = BPF_CORE_READ(mm, arg_start);
	u64 end = BPF_CORE_READ(mm, arg_end);
	u64 len = end > start ? end - start : 0;
	u64 bound = args_max;
	if (bound > ARGS_MAX)
		bound = ARGS_MAX;
	if (len > bound) {
		len = bound;
		r->h.flags |= FLAG_TRUNCATED;
	}
	barrier_var(len);
	if (len > ARGS_MAX)
		len = 0; /* never: keeps the verifier's bound on len */
	barrier_var(exe_len);
	if (exe_len > EXE_MAX)
		exe_len = EXE_MAX;
	u32 args_len = 0;
	if (len > 0 && bpf_probe_read_user(&r->data[exe_len], len, (const void *)start) == 0)
		args_len = (u32)len;
	r->exe_len = (u16)exe_len;
	r->args_len = (u16)args_len;

	u64 sz = offsetof(struct exec_rec, data) + exe_len + args_len;
	barrier_var(sz);
	if (sz > sizeof(struct exec_rec))
		sz = sizeof(struct exec_rec);
	return sz;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(rw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 tgid = BPF_CORE_READ(p, tgid);
	if (excluded(tgid))
		return 0;

	u64 thr;
	void *rb = ring_for(true, &thr);
	u32 zero = 0;
	struct exec_scratch *sc = bpf_map_lookup_elem(&exec_scratch, &zero);
	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	if (!rb || !sc) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return 0;
	}
	u64 sz = build_exec(sc, p, (u32)old_pid);
	u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	u64 wake = rw_crossed(avail + rw_footprint(sz), thr, sz) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(rb, &sc->r, sz, wake)) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		if (hints) {
			/* the exec record stands for a lost fork too */
			struct lost_lc *l = bpf_task_storage_get(&lost_lc, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (l)
				l->what = LOST_EXEC;
		}
	} else if (hints) {
		/* the exec record rebuilds the process's whole entry */
		struct lost_lc *l = bpf_task_storage_get(&lost_lc, p, 0, 0);
		if (l)
			l->what = 0;
	}
	return 0;
}

static __always_inline void exit_rec(struct task_struct *p, bool group_dead)
{
	u64 thr;
	void *rb = ring_for(true, &thr);
	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct exit_rec *r = rb ? bpf_ringbuf_reserve(rb, sizeof(struct exit_rec), 0) : NULL;
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return;
	}
	fill_hdr(&r->h, p, TYPE_EXIT);
	if (group_dead)
		r->h.flags |= FLAG_GROUP_DEAD;
	fill_meta(&r->m, p);
	r->exit_code = p->exit_code;
	r->_pad = 0;
	bpf_ringbuf_submit(r, wake_flags(rb, thr, sizeof(*r)));
}

/* Kernels >= 6.16 pass do_exit()'s own group_dead (the thread whose
 * decrement of signal->live reached 0): exact. The loader picks this program
 * when the kernel's BTF shows the argument, rw_exit_legacy otherwise. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(rw_exit, struct task_struct *p, bool group_dead)
{
	if (excluded(p->tgid))
		return 0;
	exit_rec(p, group_dead);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(rw_exit_legacy, struct task_struct *p)
{
	if (excluded(p->tgid))
		return 0;
	/* do_exit() decrements signal->live before this tracepoint, so every
	 * thread exiting after the last decrement reads 0: only the first of
	 * them to mark the group leader reports the group's death. */
	bool dead = false;
	if (BPF_CORE_READ(p, signal, live.counter) == 0) {
		struct task_struct *leader = p->group_leader;
		u32 *seen = bpf_task_storage_get(&group_dead_seen, leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		dead = seen && __sync_val_compare_and_swap(seen, 0, 1) == 0;
	}
	exit_rec(p, dead);
	return 0;
}

/* A running task moved to another cgroup (cgroup_attach_task fires after
 * the migration, once per attach, for the task written to cgroup.procs or
 * cgroup.threads): a lifecycle record with the task's new cgroup v2 id.
 * Fork and exec records carry the cgroup id, and container runtimes and
 * systemd move a process before its exec, so this record is what keeps the
 * id exact for a process moved later, without a cgroup id in every syscall
 * record. Moves in v1-only hierarchies leave the v2 id unchanged: the record
 * says so by repeating it (harmless). */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(rw_cgroup_attach, struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool threadgroup)
{
	if (excluded(task->tgid))
		return 0;
	u64 thr;
	void *rb = ring_for(true, &thr);
	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct cgroup_rec *r = rb ? bpf_ringbuf_reserve(rb, sizeof(struct cgroup_rec), 0) : NULL;
	if (!r) {
		count(CAT_LIFECYCLE, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&r->h, task, TYPE_CGROUP);
	if (!threadgroup)
		r->h.flags |= FLAG_THREAD;
	fill_meta(&r->m, task);
	bpf_ringbuf_submit(r, wake_flags(rb, thr, sizeof(*r)));
	return 0;
}

/* hints: writes again the fork or exec record t lost, before the record of
 * this syscall, so the consumer rebuilds t's entry before it meets t's
 * syscalls. A replay carries FLAG_HINTS and counts as an attempted
 * lifecycle record only when written (its loss was counted as dropped
 * already): attempted == delivered + dropped still holds. While the ring
 * has no room the mark stays and the next syscall exit tries again; an
 * exec record is only built when REPLAY_ROOM bytes are free (a short one
 * fits), so a full ring costs no path walk. */
#define REPLAY_ROOM 512 /* ring bytes free before an exec replay is built */
static __always_inline bool replay_lost(struct task_struct *t)
{
	struct lost_lc *l = bpf_task_storage_get(&lost_lc, t, 0, 0);
	if (!l || !l->what)
		return false;
	u64 thr;
	void *rb = ring_for(true, &thr);
	if (!rb)
		return true;
	if (l->what & LOST_EXEC) {
		/* Not even a short exec record fits: skip the path walk. */
		u64 size = bpf_ringbuf_query(rb, BPF_RB_RING_SIZE);
		u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
		if (avail + REPLAY_ROOM > size)
			return true;
		u32 zero = 0;
		struct exec_scratch *sc = bpf_map_lookup_elem(&exec_scratch, &zero);
		if (!sc)
			return true;
		u64 sz = build_exec(sc, t, t->pid);
		sc->r.h.flags |= FLAG_HINTS;
		count(CAT_LIFECYCLE, KIND_ATTEMPTED);
		u64 wake = rw_crossed(avail + rw_footprint(sz), thr, sz) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
		if (bpf_ringbuf_output(rb, &sc->r, sz, wake)) {
			uncount(CAT_LIFECYCLE, KIND_ATTEMPTED);
			return true;
		}
		l->what = 0;
		return false;
	}
	count(CAT_LIFECYCLE, KIND_ATTEMPTED);
	struct fork_rec *r = bpf_ringbuf_reserve(rb, sizeof(struct fork_rec), 0);
	if (!r) {
		uncount(CAT_LIFECYCLE, KIND_ATTEMPTED);
		return true;
	}
	fill_hdr(&r->h, t, TYPE_FORK);
	r->h.flags |= FLAG_HINTS;
	fill_meta(&r->m, t);
	r->forker_tgid = l->forker_tgid;
	r->_pad = 0;
	r->forker_start = l->forker_start;
	l->what = 0;
	bpf_ringbuf_submit(r, wake_flags(rb, thr, sizeof(*r)));
	return false;
}


/* The syscall record of the current task's syscall with registers regs
 * and return value ret, shared by both hooks so that their records are the
 * same: rw_sys_exit (every syscall pays its hook; filtered says whether the
 * capture set applies) and rw_sys_fexit (only the syscalls of the capture
 * set are hooked: no filter). */
static __always_inline int syscall_rec(struct pt_regs *regs, long ret, bool filtered)
{
	/* The capture filter comes first: with a capture set, most syscalls of
	 * a node are outside it, and on the sys_exit hook each of them runs
	 * this program. Such a syscall pays one task load, the number and one
	 * inlined array lookup, and nothing else: no hash lookup of the
	 * excluded tgids, no task-storage lookup of a pending replay (measured
	 * with kernel.bpf_stats_enabled on dd bs=500: 133 ns per run with the
	 * filter after those, against 254 ns for a captured syscall). */
	struct task_struct *t = bpf_get_current_task_btf();
	u8 abi = current_abi(t);
	u32 nr;
#if defined(__TARGET_ARCH_x86)
	nr = (u32)regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
	nr = (u32)regs->syscallno;
#endif
	/* The capture set holds native numbers: compat calls are always
	 * captured (they are rare, and an evasion worth seeing). */
	if (filtered && capture_filter && abi == ABI_NATIVE) {
		u8 *on = bpf_map_lookup_elem(&capture_syscalls, &nr); /* NULL past the end */
		if (!on || !*on)
			return 0;
	}

	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (excluded((u32)(pid_tgid >> 32)))
		return 0;

	/* A replay of a lost fork or exec is written at the task's next
	 * captured syscall: a syscall outside the set writes no record that
	 * could reach the consumer before it. */
	bool replay_pending = hints && replay_lost(t);
	u64 a0, a1, a2;
#if defined(__TARGET_ARCH_x86)
	if (abi == ABI_IA32) {
		/* i386 calling convention: ebx, ecx, edx */
		a0 = (u32)regs->bx;
		a1 = (u32)regs->cx;
		a2 = (u32)regs->dx;
	} else {
		a0 = regs->di;
		a1 = regs->si;
		a2 = regs->dx;
	}
#elif defined(__TARGET_ARCH_arm64)
	a0 = regs->orig_x0; /* x0 now holds the return value */
	a1 = regs->regs[1];
	a2 = regs->regs[2];
#endif

	/* The shed set holds native numbers: a compat call is never shed. */
	u32 zero = 0;
	u32 *shedding = bpf_map_lookup_elem(&shed_state, &zero);
	if (abi == ABI_NATIVE && shedding && *shedding && bpf_map_lookup_elem(&shed_syscalls, &nr)) {
		count(CAT_SYSCALL, KIND_SHED);
		return 0;
	}

	u64 thr;
	void *rb = ring_for(false, &thr);
	count(CAT_SYSCALL, KIND_ATTEMPTED);
	/* A replay still pending (no room for it): this record would reach the
	 * consumer before the record that makes its process known. */
	struct syscall_rec *s = rb && !replay_pending ? bpf_ringbuf_reserve(rb, sizeof(struct syscall_rec), 0) : NULL;
	if (!s) {
		count(CAT_SYSCALL, KIND_DROPPED);
		return 0;
	}
	fill_hdr(&s->h, t, TYPE_SYSCALL);
	s->h.abi = abi;
	s->nr = nr;
	s->_pad = 0;
	s->ret = ret;
	s->args[0] = a0;
	s->args[1] = a1;
	s->args[2] = a2;
	bpf_ringbuf_submit(s, wake_flags(rb, thr, sizeof(*s)));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(rw_sys_exit, struct pt_regs *regs, long ret)
{
	return syscall_rec(regs, ret, true);
}

/* The per-syscall hook of a capture set: the loader copies this program
 * once per kernel syscall function of the set (__x64_sys_openat,
 * __ia32_compat_sys_openat, __arm64_sys_openat, ...) and attaches each copy
 * as fexit there. Unlike tp_btf/sys_exit, which sets the syscall-tracepoint
 * work flag on every task and so sends every syscall of the node through
 * the slow exit path, a syscall outside the set costs nothing. Every
 * wrapper takes the task's pt_regs (the same registers sys_exit sees) and
 * returns the syscall's result. */
SEC("fexit")
int BPF_PROG(rw_sys_fexit, struct pt_regs *regs, long ret)
{
	return syscall_rec(regs, ret, false);
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
