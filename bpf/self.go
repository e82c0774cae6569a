package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// GlobalTGID returns this process's thread-group id as the kernel's programs
// see it: in the initial pid namespace, whatever namespace the process runs
// in (os.Getpid is the namespace's id, pid 1 in a container). It runs the
// probe's rw_whoami program once (BPF_PROG_RUN of a BPF_PROG_TYPE_SYSCALL
// program, which runs in the caller's context; needs a kernel that gives
// such programs bpf_get_current_pid_tgid, 6.10 and later) and falls back to
// the first NSpid of procRoot/self/status (procRoot as HostProc returns it),
// which is the global id when procRoot is the host's /proc.
func GlobalTGID(procRoot string) (uint32, error) {
	spec, err := loadRingwise()
	if err != nil {
		return 0, fmt.Errorf("ringwise bpf: %w", err)
	}
	var objs struct {
		Whoami *ebpf.Program `ebpf:"rw_whoami"`
	}
	bpfErr := spec.LoadAndAssign(&objs, nil)
	if bpfErr == nil {
		defer objs.Whoami.Close()
		var tgid uint32
		if tgid, bpfErr = whoami(objs.Whoami); bpfErr == nil {
			return tgid, nil
		}
	}
	tgid, err := nsPidOuter(procRoot)
	if err != nil {
		return 0, fmt.Errorf("ringwise bpf: own global tgid: BPF whoami: %v; %w", bpfErr, err)
	}
	return tgid, nil
}

func whoami(prog *ebpf.Program) (uint32, error) {
	ret, err := prog.Run(&ebpf.RunOptions{})
	if err != nil {
		return 0, fmt.Errorf("run rw_whoami: %w", err)
	}
	if ret == 0 {
		return 0, errors.New("rw_whoami returned tgid 0")
	}
	return ret, nil
}

// nsPidOuter reads the first NSpid of procRoot/self/status: the process's
// id in the pid namespace of that proc mount.
func nsPidOuter(procRoot string) (uint32, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	b, err := os.ReadFile(procRoot + "/self/status")
	if err != nil {
		return 0, err
	}
	return parseNSpid(b)
}

// parseNSpid returns the outermost pid of a status file's NSpid line (or of
// its Tgid line on kernels without NSpid).
func parseNSpid(status []byte) (uint32, error) {
	var tgid string
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, err := strconv.ParseUint(f[0], 10, 32)
				if err != nil {
					return 0, fmt.Errorf("malformed NSpid %q: %w", v, err)
				}
				return uint32(n), nil
			}
		}
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid = strings.TrimSpace(v)
		}
	}
	if tgid == "" {
		return 0, errors.New("status has neither NSpid nor Tgid")
	}
	n, err := strconv.ParseUint(tgid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("malformed Tgid %q: %w", tgid, err)
	}
	return uint32(n), nil
}
