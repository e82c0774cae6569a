package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// control switches a running monitor's capture through its unix socket
// (`ringwise sensor --lab-capture-control`): a line "on" or "off", and
// the answer "ok" once the programs are attached or detached, so that a
// segment starts only after its side is in place.
type control struct {
	path string
	conn net.Conn
	rd   *bufio.Reader
}

// dialControl connects to the monitor's socket, waiting up to 30 s for it
// to appear (the monitor creates it as it starts).
func dialControl(ctx context.Context, path string) (*control, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return &control{path: path, conn: c, rd: bufio.NewReader(c)}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("-control %s: %w (does the monitor serve it? ringwise sensor --lab-capture-control %s)", path, err, path)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (c *control) set(on bool) error {
	cmd := "off"
	if on {
		cmd = "on"
	}
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := c.conn.Write([]byte(cmd + "\n")); err != nil {
		return fmt.Errorf("-control %s: send %q: %w", c.path, cmd, err)
	}
	reply, err := c.rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("-control %s: answer to %q: %w", c.path, cmd, err)
	}
	if r := strings.TrimSpace(reply); r != "ok" {
		return fmt.Errorf("-control %s: %q answered %q", c.path, cmd, r)
	}
	return nil
}

func (c *control) close() { c.conn.Close() }
