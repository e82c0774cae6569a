package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/ringwise/ringwise/services/bus"
)

// cmdNATS runs the embedded NATS server on its own, so that the services
// can run as separate processes without installing nats-server.
func cmdNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("nats", "nats [--listen 127.0.0.1:4222] [--store DIR]", stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "client address")
	store := fs.String("store", "", "JetStream store directory (default: a temporary one, removed at exit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", *listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--listen %q: bad port", *listen)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Host: host, Port: port, StoreDir: *store})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	fmt.Fprintf(stderr, "ringwise nats: NATS with JetStream on %s (Ctrl-C to stop)\n", srv.URL())
	<-ctx.Done()
	return nil
}
