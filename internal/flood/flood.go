// Package flood generates the seed's workload: a process flood, bursts of
// short-lived children created by fork+exec of a helper with a recognisable
// name, and records the ground truth of each child so that enrichment can be
// checked for missing and for wrong metadata.
package flood

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// HelperName is the comm of every flood child.
const HelperName = "rwflood"

// Defaults of the standalone flood command (the lab has its own, tuned to
// its regime).
const (
	DefaultProcs    = 1000
	DefaultParallel = 4
)

// Config describes a flood.
type Config struct {
	Procs    int           // children in all
	Parallel int           // concurrent spawners
	Burst    int           // children per burst; 0 = one burst of Procs
	Pause    time.Duration // pause between bursts
	// Helper is the program each child execs; default: a copy of /bin/true
	// named rwflood in a temporary directory.
	Helper string
	// Truth, when set, receives one JSON line per child.
	Truth io.Writer
	// ArgvBytes, when set, gives child i an argv block (arguments with
	// their NULs, the program path included) of about ArgvBytes[i mod len]
	// bytes: the lab's args-bound trade-off needs command lines of real
	// lengths (CmdlineLengths). Empty: the helper's path alone.
	ArgvBytes []int
}

// Argv returns arguments (after argv[0] = exe) that make an argv block of
// about n bytes: words of up to 64 characters, each with its NUL.
func Argv(exe string, n int) []string {
	var out []string
	rest := n - (len(exe) + 1)
	for i := 0; rest > 1; i++ {
		w := min(rest-1, 64)
		out = append(out, strings.Repeat(string(rune('a'+i%26)), w))
		rest -= w + 1
	}
	return out
}

// CmdlineLengths returns the argv block length of every process under
// proc (/proc/*/cmdline) that has one (kernel threads have none), sorted:
// a node's real distribution of command-line lengths.
func CmdlineLengths(proc string) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("flood: %w", err)
	}
	var out []int
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread
		}
		out = append(out, len(b))
	}
	slices.Sort(out)
	return out, nil
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	if c.Procs <= 0 {
		return fmt.Errorf("flood: --procs %d: want > 0", c.Procs)
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.Parallel > 256 {
		return fmt.Errorf("flood: --parallel %d: want <= 256", c.Parallel)
	}
	if c.Burst <= 0 || c.Burst > c.Procs {
		c.Burst = c.Procs
	}
	if c.Pause < 0 {
		return fmt.Errorf("flood: --pause %v: want >= 0", c.Pause)
	}
	for _, n := range c.ArgvBytes {
		if n < 0 || n > 128<<10 {
			return fmt.Errorf("flood: argv of %d bytes: want 0..128 KiB", n)
		}
	}
	return nil
}

// Proc is the ground truth of one child.
type Proc struct {
	Pid  uint32 `json:"pid"`
	PPid uint32 `json:"ppid"`
	Comm string `json:"comm"`
	Exe  string `json:"exe"`
	// ParentComm and ParentExe are what the child runs as between its fork
	// and its exec: this process's comm and executable.
	ParentComm string `json:"parent_comm"`
	ParentExe  string `json:"parent_exe"`
	// BornAfterNs and ReapedNs bound the child's life in CLOCK_BOOTTIME
	// (the kernel's task start time clock): read just before the fork and
	// just after the wait. Another process that later gets the same pid
	// starts after ReapedNs, so its events are not this child's.
	BornAfterNs uint64 `json:"born_after_ns,omitempty"`
	ReapedNs    uint64 `json:"reaped_ns,omitempty"`
}

// Result summarises a flood.
type Result struct {
	Spawned  int
	Failed   int
	Duration time.Duration
	Procs    []Proc
	FirstErr error
}

// PrepareHelper copies /bin/true to dir/rwflood and returns its path.
func PrepareHelper(dir string) (string, error) {
	src, err := exec.LookPath("true")
	if err != nil {
		return "", fmt.Errorf("flood: need /bin/true as the helper: %w", err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("flood: read helper %s: %w", src, err)
	}
	dst := filepath.Join(dir, HelperName)
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return "", fmt.Errorf("flood: write helper: %w", err)
	}
	return dst, nil
}

// selfImage returns this process's comm and executable path, as the kernel
// reports them (empty when unreadable: then pre-exec images go unchecked).
func selfImage() (comm, exe string) {
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		comm = strings.TrimSuffix(string(b), "\n")
	}
	if p, err := os.Readlink("/proc/self/exe"); err == nil {
		exe = strings.TrimSuffix(p, " (deleted)")
	}
	return comm, exe
}

// Run spawns the flood and waits for every child.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Helper == "" {
		dir, err := os.MkdirTemp("", "ringwise-flood-*")
		if err != nil {
			return Result{}, fmt.Errorf("flood: %w", err)
		}
		defer os.RemoveAll(dir)
		if cfg.Helper, err = PrepareHelper(dir); err != nil {
			return Result{}, err
		}
	}
	exe, err := filepath.Abs(cfg.Helper)
	if err != nil {
		return Result{}, fmt.Errorf("flood: %w", err)
	}
	comm := filepath.Base(exe)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	ppid := uint32(os.Getpid())
	parentComm, parentExe := selfImage()

	var (
		mu  sync.Mutex
		res Result
		enc *json.Encoder
	)
	if cfg.Truth != nil {
		enc = json.NewEncoder(cfg.Truth)
	}
	var argvs [][]string
	for _, n := range cfg.ArgvBytes {
		argvs = append(argvs, Argv(exe, n))
	}
	var next atomic.Int64
	start := time.Now()
	spawnOne := func() {
		var args []string
		if len(argvs) > 0 {
			args = argvs[int(next.Add(1)-1)%len(argvs)]
		}
		cmd := exec.Command(exe, args...)
		born := bootTimeNs()
		err := cmd.Start()
		var p Proc
		if err == nil {
			p = Proc{Pid: uint32(cmd.Process.Pid), PPid: ppid, Comm: comm, Exe: exe, ParentComm: parentComm, ParentExe: parentExe, BornAfterNs: born}
			err = cmd.Wait()
			p.ReapedNs = bootTimeNs()
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failed++
			if res.FirstErr == nil {
				res.FirstErr = err
			}
			if p.Pid == 0 {
				return
			}
		}
		res.Spawned++
		res.Procs = append(res.Procs, p)
		if enc != nil {
			_ = enc.Encode(&p)
		}
	}
	for done := 0; done < cfg.Procs; {
		if ctx.Err() != nil {
			break
		}
		n := min(cfg.Burst, cfg.Procs-done)
		work := make(chan struct{}, n)
		for i := 0; i < n; i++ {
			work <- struct{}{}
		}
		close(work)
		var wg sync.WaitGroup
		for w := 0; w < min(cfg.Parallel, n); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					if ctx.Err() != nil {
						return
					}
					spawnOne()
				}
			}()
		}
		wg.Wait()
		done += n
		if done < cfg.Procs && cfg.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.Pause):
			}
		}
	}
	res.Duration = time.Since(start)
	if res.Spawned == 0 && res.FirstErr != nil {
		return res, fmt.Errorf("flood: no child started: %w", res.FirstErr)
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return res, ctx.Err()
	}
	return res, nil
}

// bootTimeNs reads CLOCK_BOOTTIME, the clock of the kernel's task start
// times (0 if it cannot be read: then the lifetime goes unchecked).
func bootTimeNs() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}
