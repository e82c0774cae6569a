package procfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := []byte("1234 (my (odd) proc) S 42 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5678 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	p, err := ParseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != 1234 || p.PPid != 42 || p.Comm != "my (odd) proc" || p.StartNs != 5678*10_000_000 {
		t.Fatalf("got %+v", p)
	}
	for _, bad := range []string{"", "12 no parens", "x (a) S 1", "12 (a) S notanumber 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): want error", bad)
		}
	}
}

func TestJoinArgs(t *testing.T) {
	if got := JoinArgs([]byte("ls\x00-l\x00/tmp\x00")); got != "ls -l /tmp" {
		t.Fatalf("got %q", got)
	}
	if got := JoinArgs(nil); got != "" {
		t.Fatalf("got %q", got)
	}
}

func TestLookupSelfAndMissing(t *testing.T) {
	var fs FS
	p, err := fs.Lookup(uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if p.ExePath != exe || p.PPid != uint32(os.Getppid()) || p.StartNs == 0 {
		t.Fatalf("got %+v, exe %s", p, exe)
	}
	if _, err := fs.Lookup(0x7ffffff0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing pid: err %v, want ErrNotFound", err)
	}
	snap, err := fs.Snapshot()
	if err != nil || len(snap) < 2 {
		t.Fatalf("snapshot: %d procs, %v", len(snap), err)
	}
}

func TestHostProc(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == HostRootEnv {
				return v
			}
			return ""
		}
	}
	for in, want := range map[string]string{"": "/proc", "/host": "/host/proc", "/host/": "/host/proc", "/": "/proc"} {
		if got := HostProc(env(in)); got != want {
			t.Errorf("HOST_ROOT=%q: HostProc = %q, want %q", in, got, want)
		}
	}
}

func TestContainerID(t *testing.T) {
	id := "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	for path, want := range map[string]string{
		"/system.slice/docker-" + id + ".scope": id[:12],
		"/docker/" + id:                         id[:12],
		"/kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope": id[:12],
		"/machine.slice/libpod-" + id + ".scope":                                   id[:12],
		"/kubepods/besteffort/pod1234/" + id:                                       id[:12],
		"/system.slice/crio-" + id + ".scope":                                      id[:12],
		"/user.slice/user-0.slice/session-3.scope":                                 "",
		"/": "",
		"/system.slice/docker-" + id[:63] + ".scope":             "",
		"/system.slice/docker-" + strings.ToUpper(id) + ".scope": "",
	} {
		if got := ContainerID(path); got != want {
			t.Errorf("ContainerID(%q) = %q, want %q", path, got, want)
		}
	}
	if got := ParseCgroup([]byte("1:name=systemd:/x\n0::/system.slice/foo.service\n")); got != "/system.slice/foo.service" {
		t.Errorf("ParseCgroup = %q", got)
	}
}

func TestCgroupsPath(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "system.slice", "docker-abc.scope"), 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := CgroupID(root, "system.slice/docker-abc.scope")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cgroups{Root: root}
	if p, err := c.Path(id); err != nil || p != "/system.slice/docker-abc.scope" {
		t.Errorf("Path(%d) = %q, %v", id, p, err)
	}
	if _, err := c.Path(1<<62 + 5); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("unknown id: %v", err)
	}
}
