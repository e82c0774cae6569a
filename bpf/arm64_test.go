package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestArm64Object: no arm64 kernel here to verify the arm64 object, but it
// must parse, hold every program and map the loader asks for, and lay out
// the records as the decoder reads them (its own BTF).
func TestArm64Object(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec("ringwise_arm64_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ringwiseProgRwFork, ringwiseProgRwExec, ringwiseProgRwExit, ringwiseProgRwExitLegacy, ringwiseProgRwSysExit, ringwiseProgRwWhoami} {
		if spec.Programs[p] == nil {
			t.Errorf("arm64 object has no program %s", p)
		}
	}
	for _, m := range []string{ringwiseMapRbSyscall, ringwiseMapRbLifecycle, ringwiseMapRbCpus, ringwiseMapCounters, ringwiseMapExecScratch, ringwiseMapGroupDeadSeen} {
		if spec.Maps[m] == nil {
			t.Errorf("arm64 object has no map %s", m)
		}
	}
	for name, want := range map[string]uint32{
		"fork_rec": ForkRecordSize, "exit_rec": ExitRecordSize, "syscall_rec": SyscallRecordSize,
		"exec_rec": ExecRecordSize + ExeMax + ArgsMax, "rec_hdr": HeaderSize, "proc_meta": metaSize,
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Errorf("arm64 object: %s: %v", name, err)
			continue
		}
		if s.Size != want {
			t.Errorf("arm64 %s is %d bytes, the decoder reads %d", name, s.Size, want)
		}
	}
}
