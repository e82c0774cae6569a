package bus

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server with JetStream running inside this process, for
// `ringwise up`, the lab and tests.
type Embedded struct {
	srv     *server.Server
	dir     string
	ownsDir bool
}

// EmbeddedOptions configures an embedded server.
type EmbeddedOptions struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 = pick a free port
	StoreDir string // JetStream store; default a temporary dir removed on Shutdown
	// MaxMemory caps JetStream memory storage (default 2 GiB).
	MaxMemory int64
}

// StartEmbedded starts the server and waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	e := &Embedded{dir: o.StoreDir}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "ringwise-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: store dir: %w", err)
		}
		e.dir, e.ownsDir = d, true
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 2 << 30
	}
	opts := &server.Options{
		ServerName:         "ringwise-embedded",
		Host:               o.Host,
		Port:               o.Port,
		JetStream:          true,
		StoreDir:           e.dir,
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  8 << 30,
		MaxPayload:         32 << 20,
		NoSigs:             true,
		NoLog:              true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		e.cleanup()
		return nil, fmt.Errorf("embedded NATS on %s:%d: not ready after 10s", o.Host, o.Port)
	}
	e.srv = srv
	return e, nil
}

// URL returns the client URL.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and removes its temporary store.
func (e *Embedded) Shutdown() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	e.cleanup()
}

func (e *Embedded) cleanup() {
	if e.ownsDir {
		os.RemoveAll(e.dir)
	}
}
