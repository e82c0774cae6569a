package sensor

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
)

// captureSetter is a Probe whose capture can be detached and attached
// again while its rings stay open (*bpf.Probe's SetCapture).
type captureSetter interface{ SetCapture(on bool) error }

// serveCaptureControl is Config.CaptureControl's lab knob: a unix socket
// at path on which each line "off" detaches the probe's programs and "on"
// attaches them again, answered "ok" once done (or "error: ..."). The
// reader, the NATS connection and everything else keep running, so a
// caller that alternates the two (internal/tools/segab -control) measures
// what capture itself costs the node, window by window, without a
// sensor's start-up in each. It is not for production: while detached the
// node's processes are not seen. The returned stop closes the socket,
// waits for its connections to end and removes the file.
func (s *sensor) serveCaptureControl(path string) (stop func(), err error) {
	cs, ok := s.probe.(captureSetter)
	if !ok {
		return nil, errors.New("sensor: capture control: this probe cannot detach and attach its capture")
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("sensor: capture control socket %s: %w (remove a stale file, or give another path)", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("sensor: capture control socket %s: %w", path, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				s.controlCapture(cs, c)
			}()
		}
	}()
	s.log.Warn("LAB KNOB: capture control listening; \"off\" on it detaches capture (the node's processes are then not seen)", "socket", path)
	return func() {
		ln.Close() // removes the socket file too
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}, nil
}

// controlCapture answers one connection's commands until it closes.
func (s *sensor) controlCapture(cs captureSetter, c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var err error
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "on", "off":
			err = cs.SetCapture(cmd == "on")
		default:
			err = fmt.Errorf("unknown command %q: want on or off", cmd)
		}
		reply := "ok\n"
		if err != nil {
			reply = "error: " + err.Error() + "\n"
			s.log.Warn("capture control", "err", err)
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}
