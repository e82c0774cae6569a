package bpf

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ringwise/ringwise/services/syscalls"
)

// SyscallHook is how syscall records are hooked (Config.SyscallHook).
type SyscallHook string

const (
	// HookAuto (the zero value) picks HookFexit for a capture set whose
	// every syscall has a kernel function to attach to, HookSysExit
	// otherwise (and always without a capture set).
	HookAuto SyscallHook = ""
	// HookSysExit is one program on the raw sys_exit tracepoint
	// (tp_btf/sys_exit) that filters the capture set itself. Attaching any
	// program there sets the syscall-tracepoint work flag on every task, so
	// every syscall of the node takes the slow exit path, captured or not.
	HookSysExit SyscallHook = "sys_exit"
	// HookFexit is one fexit program per kernel syscall function of the
	// capture set (x86_64: __x64_sys_NAME, and __ia32_sys_NAME /
	// __ia32_compat_sys_NAME where they exist; arm64: __arm64_sys_NAME):
	// only the captured syscalls pay for a hook. It needs a capture set.
	HookFexit SyscallHook = "fexit"
)

// SyscallHooks are the values Config.SyscallHook takes, for flag help.
func SyscallHooks() []SyscallHook { return []SyscallHook{"auto", HookSysExit, HookFexit} }

// ParseSyscallHook parses a hook name ("auto" or "" is HookAuto).
func ParseSyscallHook(s string) (SyscallHook, error) {
	switch h := SyscallHook(strings.TrimSpace(s)); h {
	case "", "auto":
		return HookAuto, nil
	case HookSysExit, HookFexit:
		return h, nil
	}
	return "", fmt.Errorf("syscall hook %q: want auto, sys_exit or fexit", s)
}

// syscallFuncAliases are the syscalls whose kernel entry point is not
// sys_NAME (arch/*/entry/syscalls/*.tbl, include/uapi/asm-generic/unistd.h).
var syscallFuncAliases = map[string]string{
	"umount2":  "umount",
	"uname":    "newuname",
	"stat":     "newstat",
	"lstat":    "newlstat",
	"fstat":    "newfstat",
	"sendfile": "sendfile64",
}

// syscallFuncs returns the kernel functions a syscall of the given name
// enters through on goarch, in the order tried: native first (the one that
// must exist), then the compat wrappers worth attaching if present. The
// caller keeps those the kernel has.
func syscallFuncs(goarch, name string) (native []string, compat []string) {
	fns := []string{name}
	if a, ok := syscallFuncAliases[name]; ok {
		fns = []string{a, name}
	}
	for _, fn := range fns {
		switch goarch {
		case "amd64":
			native = append(native, "__x64_sys_"+fn)
			compat = append(compat, "__ia32_compat_sys_"+fn, "__ia32_sys_"+fn)
		case "arm64":
			native = append(native, "__arm64_sys_"+fn)
		}
	}
	// A syscall without arguments (SYSCALL_DEFINE0: getpid, fork) has its
	// wrappers as aliases of __do_sys_NAME, which alone is in the BTF;
	// attached there, it catches every ABI's call.
	for _, fn := range fns {
		native = append(native, "__do_sys_"+fn)
	}
	return native, compat
}

// HookPlan is what Load attaches for syscall records: the hook and, for
// HookFexit, the kernel functions to attach a copy of rw_sys_fexit to.
type HookPlan struct {
	Hook SyscallHook
	// Funcs are the kernel functions of the capture set (HookFexit), sorted.
	Funcs []string
	// Missing are the capture set's syscalls with no kernel function to
	// attach to (names, or numbers no table names): with HookAuto they are
	// why the plan fell back to HookSysExit.
	Missing []string
	// Reason says why HookAuto chose the hook it did.
	Reason string
}

// planHook decides the syscall hook for want (Config.SyscallHook) and the
// capture set nrs (nil: every syscall) of ABI abi on goarch; has reports
// whether the kernel has a function (its BTF). Pure: Load gives it the
// kernel's BTF.
func planHook(want SyscallHook, nrs []uint32, abi syscalls.ABI, goarch string, has func(string) bool) (HookPlan, error) {
	if nrs == nil {
		if want == HookFexit {
			return HookPlan{}, fmt.Errorf("ringwise bpf: the fexit syscall hook needs a capture set (--syscalls): every syscall is hooked on sys_exit")
		}
		return HookPlan{Hook: HookSysExit, Reason: "no capture set: every syscall"}, nil
	}
	if want == HookSysExit {
		return HookPlan{Hook: HookSysExit, Reason: "asked for"}, nil
	}
	var plan HookPlan
	seen := map[string]bool{}
	for _, nr := range nrs {
		name := syscalls.Name(abi, nr)
		if name == "" {
			plan.Missing = append(plan.Missing, fmt.Sprintf("syscall %d (no name in the %s table)", nr, abi))
			continue
		}
		native, compat := syscallFuncs(goarch, name)
		found := false
		for _, fn := range native {
			if has(fn) {
				found = true
				if !seen[fn] {
					seen[fn] = true
					plan.Funcs = append(plan.Funcs, fn)
				}
				break
			}
		}
		if !found {
			plan.Missing = append(plan.Missing, fmt.Sprintf("%s (no %s)", name, strings.Join(native, " or ")))
			continue
		}
		for _, fn := range compat {
			if has(fn) && !seen[fn] {
				seen[fn] = true
				plan.Funcs = append(plan.Funcs, fn)
			}
		}
	}
	sort.Strings(plan.Funcs)
	switch {
	case len(plan.Missing) == 0:
		plan.Hook, plan.Reason = HookFexit, fmt.Sprintf("capture set of %d syscalls: %d kernel functions", len(nrs), len(plan.Funcs))
	case want == HookFexit:
		return HookPlan{}, fmt.Errorf("ringwise bpf: fexit syscall hook: no kernel function for %s; drop them from the capture set or use the sys_exit hook",
			strings.Join(plan.Missing, ", "))
	default:
		plan.Hook, plan.Funcs = HookSysExit, nil
		plan.Reason = "no kernel function for " + strings.Join(plan.Missing, ", ")
	}
	return plan, nil
}

// kernelFuncs returns a lookup of the kernel's functions by name (vmlinux
// BTF), for planHook.
func kernelFuncs() (func(string) bool, error) {
	k, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("ringwise bpf: kernel BTF for the fexit syscall hook: %w", err)
	}
	return func(name string) bool {
		var fn *btf.Func
		if k.TypeByName(name, &fn) != nil {
			return false
		}
		return takesPtRegs(fn)
	}, nil
}

// takesPtRegs reports whether fn is a syscall wrapper as rw_sys_fexit
// reads it: one argument, a pointer to struct pt_regs. (__do_sys_NAME of a
// syscall with arguments takes them unpacked: not a target.)
func takesPtRegs(fn *btf.Func) bool {
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) != 1 {
		return false
	}
	ptr, ok := btf.UnderlyingType(proto.Params[0].Type).(*btf.Pointer)
	if !ok {
		return false
	}
	st, ok := btf.UnderlyingType(ptr.Target).(*btf.Struct)
	return ok && st.Name == "pt_regs"
}

// nativeGOARCH is the architecture the probe runs on.
func nativeGOARCH() string { return runtime.GOARCH }

// fexitLoadable loads (and closes) a do-nothing fexit program on kernel
// function fn: whether this kernel takes fexit programs at all. Some do not
// (no direct-call ftrace, or a BPF LSM policy that refuses trampolines, as
// on the machine this was written on: EPERM for every fentry, fexit and lsm
// program while tp_btf loads), and HookAuto then keeps sys_exit.
func fexitLoadable(fn string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "rw_fexit_probe", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFExit, AttachTo: fn, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("fexit/%s: %w", fn, err)
	}
	return prog.Close()
}
