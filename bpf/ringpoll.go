package bpf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ringPoll waits for a ring's wake-ups in the Go runtime's netpoller rather
// than in a blocking epoll_wait of its own.
//
// Why: ringbuf.Reader waits in a blocking epoll_wait syscall. A goroutine
// in a blocking syscall keeps its P, so the runtime never counts every P as
// idle, and sysmon, which sleeps deeply only then, kept waking every 20 µs
// to 10 ms to watch that syscall: an idle `ringwise sensor
// --lifecycle-only` used 83 ms of CPU per second (perf: two thirds of it
// context switches of sysmon's usleep, 2100 a second). Parked in the
// netpoller the reader holds no P, and a wait costs one timer.
//
// The map's file descriptor is duplicated, made non-blocking and handed to
// the netpoller (os.NewFile registers it, edge-triggered, for EPOLLIN); a
// ringbuf map signals readability on the same wait queue the kernel wakes
// on a submit without BPF_RB_NO_WAKEUP, so the netpoller sees exactly the
// wake-ups ringbuf's own epoll would.
type ringPoll struct {
	f  *os.File
	rc syscall.RawConn
}

// newRingPoll registers a duplicate of the ring map's fd with the netpoller.
func newRingPoll(mapFD int) (*ringPoll, error) {
	fd, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup ring fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringbuf")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring fd raw conn: %w", err)
	}
	// A file the netpoller could not take has no deadlines: say so, and
	// the ring keeps ringbuf's own wait.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring fd not pollable by the runtime: %w", err)
	}
	return &ringPoll{f: f, rc: rc}, nil
}

// wait returns once ready reports true (checked first, then after each
// wake-up of the ring) or at deadline, with os.ErrDeadlineExceeded.
func (p *ringPoll) wait(deadline time.Time, ready func() bool) error {
	if err := p.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	err := p.rc.Read(func(uintptr) bool { return ready() })
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (p *ringPoll) close() error { return p.f.Close() }
