package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server with JetStream running inside this process, for
// `ringwise up`, the lab and tests.
type Embedded struct {
	srv     *server.Server
	dir     string
	ownsDir bool
	auth    bool
	tls     bool
	opts    *server.Options
}

// EmbeddedOptions configures an embedded server.
type EmbeddedOptions struct {
	Host     string // default 127.0.0.1 (or the config file's)
	Port     int    // 0 = pick a free port (or the config file's)
	StoreDir string // JetStream store; default a temporary dir removed on Shutdown
	// MaxMemory caps JetStream memory storage (default 2 GiB).
	MaxMemory int64
	// Name is the server's name (default "ringwise-embedded"); each server
	// of a cluster needs its own.
	Name string
	// ClusterListen, when set (host:port), joins a JetStream cluster named
	// ClusterName (default "ringwise") through the Routes
	// (nats://host:port of every server, this one may be among them).
	ClusterListen string
	ClusterName   string
	Routes        []string
	// ConfigFile, when set, is a NATS server config file: its accounts,
	// users, permissions and TLS apply (see WriteAuthConfig). Host, Port
	// and StoreDir, when set, override its values.
	ConfigFile string
	// AllowAnonymous lets a server that listens beyond loopback run
	// without authentication. Without it, StartEmbedded refuses.
	AllowAnonymous bool
}

// DefaultMaxPayload is the embedded server's max_payload when the config
// file sets none: the largest message a client may send (enriched batches
// carry command lines and may exceed NATS's 1 MiB default; each stream
// still has its own, smaller MaxMsgSize).
const DefaultMaxPayload = 32 << 20

// ErrAnonymousExposed is returned by StartEmbedded for a server that would
// listen beyond loopback without authentication.
var ErrAnonymousExposed = errors.New("refusing anonymous NATS access beyond loopback")

// IsLoopback reports whether host (an IP or a name) is loopback only.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HasAuth reports whether server options require clients to authenticate.
func HasAuth(o *server.Options) bool {
	if len(o.Users) > 0 || len(o.Nkeys) > 0 || o.Username != "" || o.Authorization != "" ||
		o.TrustedOperators != nil || len(o.TrustedKeys) > 0 || o.AuthCallout != nil {
		return true
	}
	return false
}

// StartEmbedded starts the server and waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: config %s: %w", o.ConfigFile, err)
		}
		opts = fo
	}
	if o.StoreDir == "" {
		o.StoreDir = opts.StoreDir
	}
	e := &Embedded{dir: o.StoreDir}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "ringwise-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: store dir: %w", err)
		}
		e.dir, e.ownsDir = d, true
	}
	switch {
	case o.Host != "":
		opts.Host = o.Host
	case opts.Host == "" || o.ConfigFile == "":
		opts.Host = "127.0.0.1" // never all interfaces by default
	}
	switch {
	case o.Port != 0:
		opts.Port = o.Port
	case o.ConfigFile == "":
		opts.Port = server.RANDOM_PORT
	case opts.Port == 0:
		opts.Port = server.DEFAULT_PORT
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 2 << 30
	}
	if !IsLoopback(opts.Host) && !HasAuth(opts) && !o.AllowAnonymous {
		e.cleanup()
		return nil, fmt.Errorf("embedded NATS on %s: %w: give a config with users (ringwise nats --init-auth DIR writes one), or allow anonymous access explicitly (ringwise nats --allow-anonymous)", opts.Host, ErrAnonymousExposed)
	}
	if opts.ServerName == "" {
		opts.ServerName = "ringwise-embedded"
	}
	opts.JetStream = true
	opts.StoreDir = e.dir
	if opts.JetStreamMaxMemory == 0 {
		opts.JetStreamMaxMemory = o.MaxMemory
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = 8 << 30
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.JetStreamLimits.DefaultMaxConsumers == 0 {
		// Scaled enrichers read each node with a consumer of its own on
		// RINGWISE_RAW; nats-server caps a stream that sets no limit at
		// 1,000 consumers (default_max_consumers), so node 1,001 could not
		// be read (BenchmarkFleetControl: "maximum consumers limit
		// reached"). -1 lifts the default; a config file's
		// jetstream { limits { default_max_consumers: N } } still wins.
		// (Setting MaxConsumers on the stream instead stalled the ordered
		// consumers of TestCluster after a kill -9, 4 runs of 4.)
		opts.JetStreamLimits.DefaultMaxConsumers = -1
	}
	opts.NoSigs = true
	opts.NoLog = true
	if o.Name != "" {
		opts.ServerName = o.Name
	}
	if o.ClusterListen != "" {
		host, port, err := splitHostPort(o.ClusterListen)
		if err != nil {
			e.cleanup()
			return nil, fmt.Errorf("embedded NATS: cluster address %q: %w", o.ClusterListen, err)
		}
		name := o.ClusterName
		if name == "" {
			name = "ringwise"
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: port}
		for _, r := range o.Routes {
			u, err := url.Parse(r)
			if err != nil {
				e.cleanup()
				return nil, fmt.Errorf("embedded NATS: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
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
		return nil, fmt.Errorf("embedded NATS on %s:%d: not ready after 10s", opts.Host, opts.Port)
	}
	e.srv = srv
	e.auth, e.tls, e.opts = HasAuth(opts), opts.TLSConfig != nil, opts
	return e, nil
}

// URL returns the client URL (tls:// when the config enables TLS).
func (e *Embedded) URL() string {
	u := e.srv.ClientURL()
	if e.tls {
		u = strings.Replace(u, "nats://", "tls://", 1)
	}
	return u
}

// Server is the running server (for in-process connections).
func (e *Embedded) Server() *server.Server { return e.srv }

// PublishingNodes is PublishingNodes of the server's options.
func (e *Embedded) PublishingNodes() (nodes []string, bounded bool) {
	return PublishingNodes(e.opts)
}

// PublishingNodes returns the nodes whose sensor subjects (raw, snapshot,
// stats) the identities of a server config may publish on, sorted: what
// the strict per-node bound of the streams is sized for
// (StreamOptions.Nodes). bounded is false when that number is not known:
// the server admits anonymous clients, its identities come from operator
// JWTs (not in the config), or an identity with permissions may publish on
// those subjects of any node (a wildcard). An identity whose publish
// permissions are unrestricted (no allow list) is an admin, trusted as
// `ringwise nats` itself is, and does not count.
func PublishingNodes(o *server.Options) (nodes []string, bounded bool) {
	if o == nil || !HasAuth(o) || o.TrustedOperators != nil || len(o.TrustedKeys) > 0 || o.AuthCallout != nil {
		return nil, false
	}
	var perms []*server.Permissions
	for _, u := range o.Users {
		perms = append(perms, u.Permissions)
	}
	for _, u := range o.Nkeys {
		perms = append(perms, u.Permissions)
	}
	seen := map[string]bool{}
	for _, p := range perms {
		if p == nil || p.Publish == nil || len(p.Publish.Allow) == 0 {
			continue // unrestricted: an admin
		}
		for _, allow := range p.Publish.Allow {
			for _, k := range []Kind{KindRaw, KindSnapshot, KindStats} {
				node, any := sensorSubjectNode(allow, k)
				if any {
					return nil, false
				}
				if node != "" && !seen[node] {
					seen[node] = true
					nodes = append(nodes, node)
				}
			}
		}
	}
	slices.Sort(nodes)
	return nodes, true
}

// sensorSubjectNode tells what a publish permission pattern allows on the
// subjects ringwise.<kind>.<node>: one node (its literal name), every
// node (any: a wildcard matches them), or none.
func sensorSubjectNode(pattern string, k Kind) (node string, any bool) {
	want := []string{"ringwise", string(k)}
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		if t == ">" {
			return "", true // matches every longer subject
		}
		if i == len(want) {
			if i != len(toks)-1 {
				return "", false // longer than a node subject
			}
			if t == "*" {
				return "", true
			}
			return t, false
		}
		if t != "*" && t != want[i] {
			return "", false
		}
	}
	return "", false // shorter than a node subject
}

// Anonymous reports whether clients may connect without credentials.
func (e *Embedded) Anonymous() bool { return !e.auth }

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

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}
