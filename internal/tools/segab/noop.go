package main

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// lifecycleHooks are the tracepoints `ringwise measure` counts processes
// on, in the order bpf.Meter attaches them.
var lifecycleHooks = [...]string{"sched_process_fork", "sched_process_exec", "sched_process_exit"}

// noopLifecycle is a do-nothing tp_btf program on each lifecycle
// tracepoint (return 0, nothing read, nothing counted). Why: toggled
// against nothing (-toggle noop) its A/B is what attaching a program to
// those tracepoints costs by itself, the dispatch and the attach and detach
// at each window's edge (the tracepoint's static key is patched into the
// kernel's text on the first attach and out on the last detach, with IPIs
// to every CPU), none of which is in the programs' run time. As the base
// of -toggle lifecycle (-base noop) it keeps each tracepoint enabled in the
// "without" windows, so that the A/B is measure's counting alone, with no
// text patching at the window edges.
type noopLifecycle struct {
	progs []*ebpf.Program
	links []link.Link
}

func loadNoopLifecycle() (*noopLifecycle, error) {
	n := &noopLifecycle{}
	for _, tp := range lifecycleHooks {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "segab_noop", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: tp, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			n.close()
			return nil, fmt.Errorf("segab: load a no-op tp_btf/%s: %w", tp, err)
		}
		n.progs = append(n.progs, p)
	}
	return n, nil
}

// set attaches (on) or detaches the no-op programs.
func (n *noopLifecycle) set(on bool) error {
	if !on {
		n.detach()
		return nil
	}
	if len(n.links) > 0 {
		return nil
	}
	for i, p := range n.progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			n.detach()
			return fmt.Errorf("segab: attach the no-op tp_btf/%s: %w", lifecycleHooks[i], err)
		}
		n.links = append(n.links, l)
	}
	return nil
}

func (n *noopLifecycle) detach() {
	for _, l := range n.links {
		l.Close()
	}
	n.links = nil
}

func (n *noopLifecycle) close() {
	n.detach()
	for _, p := range n.progs {
		p.Close()
	}
	n.progs = nil
}
