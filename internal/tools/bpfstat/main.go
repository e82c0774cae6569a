// Command bpfstat prints the run statistics of the BPF programs loaded on
// this machine whose names start with a prefix (default "rw_"), one line
// per program: id, name, run count and total run time in ns. The kernel
// counts them only while kernel.bpf_stats_enabled is 1 (bpfstat -enable
// sets it and keeps the setting until it is interrupted, through the
// BPF_ENABLE_STATS file descriptor; without a flag bpfstat reads once).
// bpfstat -hook-floor holds an empty tp_btf/sys_exit program instead. Used
// by scripts/bpf-cost.sh, scripts/kernel-cost.sh and
// scripts/measure-overhead.sh to split what a sensor or measure costs the
// node into its programs' own time and the rest; needs root.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

func main() {
	prefix := flag.String("prefix", "rw_", "only programs whose name starts with this")
	enable := flag.Bool("enable", false, "enable the kernel's BPF run statistics until interrupted (prints nothing)")
	floor := flag.Bool("hook-floor", false, "attach an empty program (return 0) to tp_btf/sys_exit until interrupted: what hooking sys_exit costs before any work of a program")
	flag.Parse()
	var err error
	switch {
	case *floor:
		err = hookFloor()
	case *enable:
		err = enableStats()
	default:
		err = list(*prefix)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bpfstat:", err)
		os.Exit(1)
	}
}

// untilInterrupt holds what the caller set up until SIGINT.
func untilInterrupt() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
}

// hookFloor attaches a two-instruction tp_btf/sys_exit program and waits
// for an interrupt. Any program there sets the syscall-tracepoint work flag
// on every task, so every syscall of the node takes the slow exit path and
// the tracepoint's dispatch: the floor under any sys_exit-hooked tracer.
func hookFloor() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "rw_hook_floor", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sys_exit", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("load the empty tp_btf/sys_exit program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return fmt.Errorf("attach the empty program to tp_btf/sys_exit: %w", err)
	}
	defer l.Close()
	fmt.Fprintln(os.Stderr, "bpfstat: empty program attached to tp_btf/sys_exit")
	untilInterrupt()
	return nil
}

// enableStats turns the kernel's BPF run statistics on until SIGINT
// (through the BPF_ENABLE_STATS file descriptor, so they go off with it).
func enableStats() error {
	closer, err := ebpf.EnableStats(uint32(0)) // BPF_STATS_RUN_TIME
	if err != nil {
		return fmt.Errorf("enable BPF run statistics: %w", err)
	}
	defer closer.Close()
	fmt.Fprintln(os.Stderr, "bpfstat: run statistics enabled")
	untilInterrupt()
	return nil
}

// list prints "id name runs run_time_ns" per loaded program named prefix*.
func list(prefix string) error {
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("next program after %d: %w", id, err)
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded in between
		}
		info, err := prog.Info()
		if err != nil || !strings.HasPrefix(info.Name, prefix) {
			prog.Close()
			continue
		}
		st, err := prog.Stats()
		prog.Close()
		if err != nil {
			return fmt.Errorf("program %d (%s) stats: %w", id, info.Name, err)
		}
		fmt.Printf("%d %s %d %d\n", id, info.Name, st.RunCount, st.Runtime.Nanoseconds())
	}
}
