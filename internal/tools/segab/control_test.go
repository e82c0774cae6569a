package main

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestControl: set sends "on" or "off" and returns once the monitor
// answered ok; any other answer is an error that names the socket and
// the answer; a socket that never appears fails dialControl with a hint.
func TestControl(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 8)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			got <- sc.Text()
			reply := "ok\n"
			if len(got) == 3 { // the third command fails
				reply = "error: attach refused\n"
			}
			c.Write([]byte(reply))
		}
	}()
	c, err := dialControl(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.set(false); err != nil {
		t.Fatalf("set(false): %v", err)
	}
	if err := c.set(true); err != nil {
		t.Fatalf("set(true): %v", err)
	}
	if err := c.set(true); err == nil || !strings.Contains(err.Error(), "attach refused") || !strings.Contains(err.Error(), sock) {
		t.Errorf("set after an error answer: %v, want the answer and the socket named", err)
	}
	for _, want := range []string{"off", "on", "on"} {
		select {
		case g := <-got:
			if g != want {
				t.Errorf("monitor got %q, want %q", g, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("monitor did not get %q", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := dialControl(ctx, filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Error("dialControl of a socket that never appears: no error")
	}
}
