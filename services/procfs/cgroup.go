package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// ContainerIDLen is how much of a container runtime's 64-hex id Falco shows
// as container.id.
const ContainerIDLen = 12

// ContainerID derives Falco's container.id from a cgroup path, as libsinsp's
// container engines match it: the last path component that carries a 64-hex
// container id, bare (cgroupfs driver: /docker/<id>, /kubepods/.../<id>) or
// in a systemd scope (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope), cut to ContainerIDLen. A host
// process's cgroup carries none: "".
func ContainerID(cgroupPath string) string {
	parts := strings.Split(cgroupPath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSuffix(parts[i], ".scope")
		if j := strings.LastIndexAny(p, "-:"); j >= 0 {
			p = p[j+1:]
		}
		if len(p) == 64 && isHex(p) {
			return p[:ContainerIDLen]
		}
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseCgroup returns the cgroup v2 path of a /proc/<pid>/cgroup file (its
// "0::" line), or "" when it has none.
func ParseCgroup(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p
		}
	}
	return ""
}

// CgroupRoot is the host's cgroup v2 mount: $HOST_ROOT/sys/fs/cgroup, or
// its "unified" directory on a hybrid (v1 + v2) host.
func CgroupRoot(getenv func(string) string) string {
	return CgroupV2Root(filepath.Join(HostRoot(getenv), "sys/fs/cgroup"))
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC.
const cgroup2Magic = 0x63677270

// CgroupV2Root is root when a cgroup2 file system is mounted there, else
// root/unified when one is mounted there (systemd's hybrid layout), else
// root.
func CgroupV2Root(root string) string {
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		var st syscall.Statfs_t
		if syscall.Statfs(dir, &st) == nil && st.Type == cgroup2Magic {
			return dir
		}
	}
	return root
}

// ErrNoCgroup means no cgroup directory has the id (it was removed).
var ErrNoCgroup = errors.New("no such cgroup")

// Cgroups resolves cgroup v2 ids, as BPF reads them (the kernfs id of the
// cgroup's directory, which is its inode number), to paths under Root
// (CgroupRoot). A miss walks the hierarchy once and remembers every
// directory; it is safe for concurrent use.
type Cgroups struct {
	Root string

	mu   sync.Mutex
	byID map[uint64]string
}

// Path returns the cgroup path ("/system.slice/docker-….scope") of id.
func (c *Cgroups) Path(id uint64) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.byID[id]; ok {
		return p, nil
	}
	c.byID = map[uint64]string{} // rebuilt: drops removed cgroups
	var rootDev uint64
	if st, err := os.Stat(c.Root); err == nil {
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			rootDev = uint64(s.Dev)
		}
	}
	err := filepath.WalkDir(c.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == c.Root {
				return err
			}
			return nil // a cgroup removed during the walk
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if uint64(st.Dev) != rootDev {
			return fs.SkipDir // another file system (a v1 hierarchy): its inodes are not cgroup v2 ids
		}
		rel, _ := filepath.Rel(c.Root, path)
		c.byID[st.Ino] = "/" + strings.TrimPrefix(filepath.ToSlash(rel), ".")
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("cgroup %d: walk %s: %w", id, c.Root, err)
	}
	if p, ok := c.byID[id]; ok {
		return p, nil
	}
	return "", fmt.Errorf("cgroup %d under %s: %w", id, c.Root, ErrNoCgroup)
}

// CgroupID is the id of the cgroup directory at path (relative to root),
// as BPF reads it: the directory's inode number.
func CgroupID(root, path string) (uint64, error) {
	st, err := os.Stat(filepath.Join(root, path))
	if err != nil {
		return 0, err
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat %s: no inode", path)
	}
	return s.Ino, nil
}
