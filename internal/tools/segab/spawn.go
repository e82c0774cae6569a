package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// The spawn workload: the densest stream of processes this node makes,
// for costing what a lifecycle hook costs per process. Each of -procs
// spawner processes (segab itself, re-executed with spawnLoopArg) starts a
// minimal static ELF that only exits, waits for it, and starts it again:
// one fork (a vfork-style clone), one exec and one exit per process, and
// next to nothing else. Where the flood spends ~700 µs of the node's CPU
// per process on this kind of VM (a Go binary starting), a spawn costs some
// tens of µs, so a hook's per-process cost is that many times larger a
// share of it and an A/B resolves it that much more finely; the cost per
// process it gives, divided by the flood's CPU per process, is the hook's
// share of the flood.
const spawnLoopArg = "-segab-spawn-loop"

// spawnLoop is the spawner process's body: start tiny, wait, again, until
// killed.
func spawnLoop(tiny string) error {
	argv := []string{tiny}
	attr := &syscall.ProcAttr{Files: []uintptr{}}
	for {
		pid, err := syscall.ForkExec(tiny, argv, attr)
		if err != nil {
			return fmt.Errorf("spawn %s: %w", tiny, err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return fmt.Errorf("wait %d: %w", pid, err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return fmt.Errorf("%s ended with %v", tiny, ws)
		}
	}
}

// spawnWorkload is the running spawner processes.
type spawnWorkload struct {
	dir    string
	procs  []*exec.Cmd
	exited []chan struct{} // one per spawner, closed once it was waited for
	// done is closed when the first spawner ends
	done     chan struct{}
	doneOnce sync.Once
}

// startSpawners writes the minimal ELF into a temporary directory and
// starts n spawner processes (this binary, re-executed).
func startSpawners(n int) (*spawnWorkload, error) {
	elf, err := exitELF(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "segab-spawn-")
	if err != nil {
		return nil, err
	}
	tiny := filepath.Join(dir, "exit0")
	if err := os.WriteFile(tiny, elf, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	w := &spawnWorkload{dir: dir, done: make(chan struct{})}
	for i := 0; i < n; i++ {
		c := exec.Command(self, spawnLoopArg, tiny, strconv.Itoa(i))
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			w.stop()
			return nil, fmt.Errorf("start spawner: %w", err)
		}
		exited := make(chan struct{})
		w.procs, w.exited = append(w.procs, c), append(w.exited, exited)
		go func() {
			_ = c.Wait() // the only Wait on c
			close(exited)
			w.doneOnce.Do(func() { close(w.done) })
		}()
	}
	return w, nil
}

// stop kills the spawners, waits for them and removes the ELF.
func (w *spawnWorkload) stop() {
	for i, c := range w.procs {
		_ = c.Process.Kill()
		<-w.exited[i]
	}
	os.RemoveAll(w.dir)
}

// exitELF is a complete static executable for arch that calls exit(0) and
// nothing else: one ELF header, one loadable segment, three instructions.
func exitELF(arch string) ([]byte, error) {
	var machine uint16
	var code []byte
	switch arch {
	case "amd64":
		machine = 62 // EM_X86_64
		code = []byte{
			0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
			0x31, 0xff, // xor edi, edi
			0x0f, 0x05, // syscall
		}
	case "arm64":
		machine = 183                                             // EM_AARCH64
		code = binary.LittleEndian.AppendUint32(nil, 0xd2800000)  // mov x0, #0
		code = binary.LittleEndian.AppendUint32(code, 0xd2800ba8) // mov x8, #93 (exit)
		code = binary.LittleEndian.AppendUint32(code, 0xd4000001) // svc #0
	default:
		return nil, fmt.Errorf("-workload spawn: no minimal executable for %s (amd64 and arm64 only)", arch)
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	size := uint64(ehsize + phsize + len(code))
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // 64-bit, LE, version 1, SysV
	for _, v := range []any{
		uint16(2), machine, uint32(1), // ET_EXEC, machine, EV_CURRENT
		uint64(base + ehsize + phsize), uint64(ehsize), uint64(0), // entry, phoff, shoff
		uint32(0), uint16(ehsize), uint16(phsize), uint16(1), // flags, ehsize, phentsize, phnum
		uint16(0), uint16(0), uint16(0), // shentsize, shnum, shstrndx
		uint32(1), uint32(5), uint64(0), // PT_LOAD, PF_R|PF_X, offset
		uint64(base), uint64(base), size, size, uint64(0x1000), // vaddr, paddr, filesz, memsz, align
	} {
		if err := binary.Write(&b, le, v); err != nil {
			return nil, err
		}
	}
	b.Write(code)
	return b.Bytes(), nil
}
