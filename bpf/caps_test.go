package bpf

import (
	"strings"
	"testing"
)

// Root in a container has only the capabilities the engine granted: the
// check goes by the effective set, and names what is missing.
func TestMissingCaps(t *testing.T) {
	const bpf, perfmon, sysAdmin = uint64(1) << capBPF, uint64(1) << capPerfmon, uint64(1) << capSysAdmin
	for _, c := range []struct {
		eff     uint64
		missing string // "" = allowed
	}{
		{bpf | perfmon, ""},
		{sysAdmin, ""},
		{bpf | perfmon | 1<<19, ""}, // + SYS_PTRACE
		{0, "missing CAP_BPF and CAP_PERFMON"},
		{bpf, "missing CAP_PERFMON "},
		{perfmon, "missing CAP_BPF "},
		{1 << 24, "missing CAP_BPF and CAP_PERFMON"}, // SYS_RESOURCE alone
	} {
		err := missingCaps(c.eff)
		switch {
		case c.missing == "" && err != nil:
			t.Errorf("caps %#x: %v, want allowed", c.eff, err)
		case c.missing != "" && (err == nil || !strings.Contains(err.Error(), c.missing)):
			t.Errorf("caps %#x: %v, want an error containing %q", c.eff, err, c.missing)
		}
	}
}
