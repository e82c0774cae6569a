// Command bpfstat prints the run statistics of the BPF programs loaded on
// this machine whose names start with a prefix (default "rw_"), one line
// per program: id, name, run count and total run time in ns. The kernel
// counts them only while kernel.bpf_stats_enabled is 1 (bpfstat -enable
// sets it and keeps the setting until it exits, through the
// BPF_ENABLE_STATS file descriptor; bpfstat -once reads once). Used by
// scripts/bpf-cost.sh to split what a sensor costs the node into its
// programs' own time and the rest; needs root.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/cilium/ebpf"
)

func main() {
	prefix := flag.String("prefix", "rw_", "only programs whose name starts with this")
	enable := flag.Bool("enable", false, "enable the kernel's BPF run statistics until interrupted (prints nothing)")
	flag.Parse()
	if err := run(*prefix, *enable); err != nil {
		fmt.Fprintln(os.Stderr, "bpfstat:", err)
		os.Exit(1)
	}
}

func run(prefix string, enable bool) error {
	if enable {
		closer, err := ebpf.EnableStats(uint32(0)) // BPF_STATS_RUN_TIME
		if err != nil {
			return fmt.Errorf("enable BPF run statistics: %w", err)
		}
		defer closer.Close()
		fmt.Fprintln(os.Stderr, "bpfstat: run statistics enabled")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, os.Kill)
		<-sig
		return nil
	}
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
