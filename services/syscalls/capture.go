package syscalls

import "strings"

// AllSyscalls is the capture-set value that means every syscall of the
// node (`ringwise sensor --syscalls all`), as Falco's `-A`.
const AllSyscalls = "all"

// defaultCapture is the capture set `ringwise sensor` and `ringwise up` use
// when --syscalls is not given. Falco does not capture every syscall by
// default either: since 0.35 it collects only what its loaded rules and its
// state engine need (adaptive syscalls, base_syscalls), and without -A it
// ignores the I/O family. This set follows the same idea for what ringwise
// and a security team read from it:
//   - process state: the setuid family (the enricher's user.uid follows
//     them), session, namespaces, root and working directory, capabilities,
//     prctl and ptrace;
//   - files: open and create, remove, rename, link, permissions and owner,
//     mount, memfd;
//   - network: socket, connect, accept, bind, listen;
//   - the kernel itself: modules and bpf.
//
// Left out are the syscalls that dominate a busy node and carry no state
// ringwise keeps: the read/write and send/recv family, mmap and friends,
// signals' set-up, clocks and sleeps, polls and futexes, and the fd-table
// calls (close, dup, fcntl), since ringwise keeps no fd table. Fork, exec and
// exit records are always captured, whatever the set. The kernel cost of the
// choice is measured in BENCHMARKS.md (*Kernel cost*: the default set against
// every syscall); `--syscalls all` captures everything.
//
// Names a given ABI lacks (open, creat, fork, vfork, rename, unlink, link,
// symlink, mkdir, rmdir, chmod, chown, lchown on arm64, which has only the
// *at forms) are skipped there (ParseList's absent).
var defaultCapture = []string{
	// process and credentials
	"execve", "execveat", "clone", "clone3", "fork", "vfork",
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
	"setsid", "setpgid", "capset", "prctl", "ptrace",
	"chdir", "fchdir", "chroot", "pivot_root", "unshare", "setns",
	// files
	"open", "openat", "openat2", "creat", "memfd_create",
	"unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2",
	"link", "linkat", "symlink", "symlinkat", "mkdir", "mkdirat",
	"chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
	"mount", "umount2",
	// network
	"socket", "connect", "accept", "accept4", "bind", "listen",
	// kernel
	"init_module", "finit_module", "delete_module", "bpf",
}

// DefaultCapture returns the default capture set as a comma-separated list
// of names, the form --syscalls takes.
func DefaultCapture() string { return strings.Join(defaultCapture, ",") }
