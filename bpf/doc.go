// Package bpf loads ringwise's eBPF sensor programs and reads their ring
// buffers.
//
// The kernel side (ringwise.bpf.c, compiled by bpf2go into the committed
// ringwise_*_bpfel.o) attaches to four BTF tracepoints: sched_process_fork,
// sched_process_exec, sched_process_exit and sys_exit. Each writes one
// fixed-size record (see RecordSize and README.md) into a BPF ring buffer:
// one shared ring (ringspec.LayoutShared, like Falco) or a lifecycle ring
// plus a syscall ring (ringspec.LayoutSplit, so a syscall flood cannot starve
// the events that build process state).
//
// Every reserve attempt and every failed reserve is counted in the kernel per
// category, so after Detach and a full drain of the rings
// attempted == delivered + dropped holds exactly (Counters, Ring.Delivered).
// Syscalls shed by policy (SetShedding) are counted as shed, never attempted.
//
// Loading needs root or CAP_BPF+CAP_PERFMON and kernel BTF at
// /sys/kernel/btf/vmlinux; building needs neither clang nor libbpf.
package bpf
