package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// streamCheckInterval is how often `ringwise nats` checks that its streams
// still exist, recreating (and reporting) any that vanished.
const streamCheckInterval = 2 * time.Second

// cmdNATS runs the embedded NATS server on its own, so that the services
// can run as separate processes without installing nats-server.
func cmdNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("nats", "nats [--listen 127.0.0.1:4222] [--store DIR] [--config FILE] | --init-auth DIR --nodes a,b,...", stderr)
	listen := fs.String("listen", "", "client address (default 127.0.0.1:4222, or the config file's listen)")
	store := fs.String("store", "", "JetStream store directory (default: the config's store_dir, else a temporary one, removed at exit)")
	config := fs.String("config", "", "NATS server config file: users, permissions and TLS (see --init-auth)")
	adminCreds := fs.String("admin-creds", "", "nkey seed of the admin identity with which this server creates, and recreates, the streams (default: admin.nk next to --config, if there)")
	initAuth := fs.String("init-auth", "", "write a config and one nkey identity per service (admin, enricher, analyzer, a sensor per --nodes) into DIR, then exit")
	nodes := fs.String("nodes", "", "with --init-auth: comma-separated node names, one sensor identity each")
	anonymous := fs.Bool("allow-anonymous", false, "let a server that listens beyond loopback admit clients without credentials (refused otherwise)")
	name := fs.String("name", "", "server name, unique in a cluster (default ringwise-embedded)")
	cluster := fs.String("cluster", "", "join a JetStream cluster: this server's cluster (route) address, e.g. 127.0.0.1:6222")
	clusterName := fs.String("cluster-name", "ringwise", "the cluster's name (with --cluster)")
	streamBytes := fs.Int64("stream-max-bytes", 0, "bytes of each of RINGWISE_RAW, _ENRICHED and _STATS (default 1 GiB); with identities, each node's message limits are sized so that all nodes' worst cases fit (README \"Security\")")
	routes := fs.String("routes", "", "with --cluster: comma-separated route URLs of all servers of the cluster, e.g. nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *initAuth != "" {
		var list []string
		for _, n := range strings.Split(*nodes, ",") {
			if n = strings.TrimSpace(n); n != "" {
				list = append(list, n)
			}
		}
		files, err := bus.WriteAuthConfig(*initAuth, list)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %d identities:\n", files.Config, len(files.Seeds))
		for _, id := range sortedIdentities(files.Seeds) {
			fmt.Fprintf(stdout, "  %-20s %s\n", id, files.Seeds[id])
		}
		fmt.Fprintf(stdout, "run:   ringwise nats --config %s [--listen ADDR]\n", files.Config)
		fmt.Fprintf(stdout, "then:  ringwise sensor --nats URL --node NODE --nats-creds %s\n", bus.SeedFile(*initAuth, "sensor-NODE"))
		fmt.Fprintf(stdout, "       ringwise enricher --nats URL --nats-creds %s\n", files.Seeds["enricher"])
		fmt.Fprintf(stdout, "       ringwise analyzer --nats URL --nats-creds %s\n", files.Seeds["analyzer"])
		return nil
	}
	if *nodes != "" {
		return fmt.Errorf("--nodes goes with --init-auth")
	}
	if *streamBytes < 0 {
		return fmt.Errorf("--stream-max-bytes %d: want > 0", *streamBytes)
	}
	o := bus.EmbeddedOptions{StoreDir: *store, ConfigFile: *config, AllowAnonymous: *anonymous}
	if *listen == "" && *config == "" {
		*listen = "127.0.0.1:4222"
	}
	if *listen != "" {
		host, portStr, err := net.SplitHostPort(*listen)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", *listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("--listen %q: bad port", *listen)
		}
		o.Host, o.Port = host, port
	}
	o.Name, o.ClusterListen, o.ClusterName = *name, *cluster, *clusterName
	if *routes != "" {
		if *cluster == "" {
			return fmt.Errorf("--routes needs --cluster")
		}
		o.Routes = strings.Split(*routes, ",")
	}
	srv, err := bus.StartEmbedded(o)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	host := srv.Server().Addr().(*net.TCPAddr).IP.String()
	if srv.Anonymous() && !bus.IsLoopback(host) {
		fmt.Fprintf(stderr, "ringwise nats: WARNING: listening on %s WITHOUT AUTHENTICATION: anyone who reaches this port can forge, read and delete every node's data (use --config from 'ringwise nats --init-auth DIR')\n", host)
	}
	creds := *adminCreds
	if creds == "" && *config != "" {
		if p := bus.SeedFile(filepath.Dir(*config), "admin"); fileExists(p) {
			creds = p
		}
	}
	nc, err := adminConn(srv, creds)
	if err != nil {
		return err
	}
	if nc == nil {
		fmt.Fprintf(stderr, "ringwise nats: the config requires authentication and no admin identity was given (--admin-creds): streams are neither created nor repaired by this server\n")
	} else {
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		if !srv.Anonymous() {
			// The services' identities cannot create streams: the admin does.
			// (Anonymous services create them, as ever, in memory or on file.)
			so := bus.StreamOptions{Replicas: bus.AutoReplicas(nc), MaxBytes: *streamBytes}
			if nodes, bounded := srv.PublishingNodes(); bounded {
				so.Nodes = max(len(nodes), 1)
			} else {
				fmt.Fprintf(stderr, "ringwise nats: an identity of the config may publish as any node (a wildcard on ringwise.raw, .snapshot or .stats): the per-node bound is NOT strict, one node may push out another's oldest messages\n")
			}
			if err := ensureStreamsRetry(ctx, js, nc, so, stderr); err != nil {
				return err
			}
			reportStreamLimits(stderr, so)
		}
		go watchStreams(ctx, bus.NewStreamWatcher(js), stderr)
	}
	fmt.Fprintf(stderr, "ringwise nats: NATS with JetStream on %s (Ctrl-C to stop)\n", srv.URL())
	<-ctx.Done()
	return nil
}

// reportStreamLimits says what each node may hold in the streams the
// sensors write, and whether that bound is strict.
func reportStreamLimits(w io.Writer, so bus.StreamOptions) {
	cfgs, err := bus.StreamConfigs(so)
	if err != nil {
		return
	}
	for _, c := range cfgs {
		if c.Name != bus.StreamRaw && c.Name != bus.StreamStats {
			continue
		}
		strict := "NOT strict (nodes unknown)"
		if so.Nodes > 0 {
			strict = fmt.Sprintf("strict: %d nodes' worst cases fit the stream's bytes", so.Nodes)
		}
		fmt.Fprintf(w, "ringwise nats: stream %s: %d bytes, per node subject at most %d messages of %d bytes (%s)\n", c.Name, c.MaxBytes, c.MaxMsgsPerSubject, c.MaxMsgSize, strict)
	}
}

// Stream creation at start: attempts of streamAttempt each, for up to
// streamStartTimeout in all.
const (
	streamAttempt      = 2 * time.Second
	streamStartTimeout = 90 * time.Second
)

// ensureStreamsRetry creates the streams as the admin, retrying: a server
// of a cluster that starts with its peers answers JetStream API requests
// only once a meta leader is elected, and a request sent before that gets
// no answer at all (a single 10 s attempt timed out on every server of a
// 3-server cluster started together with authentication). The replica
// count is read again before each attempt, as the cluster's other servers
// become known.
func ensureStreamsRetry(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, so bus.StreamOptions, stderr io.Writer) error {
	// A configuration error is not a cluster starting up: report it now.
	if _, err := bus.StreamConfigs(so); err != nil {
		return err
	}
	deadline := time.Now().Add(streamStartTimeout)
	for attempt := 1; ; attempt++ {
		started := time.Now()
		sctx, cancel := context.WithTimeout(ctx, streamAttempt)
		so.Replicas = bus.AutoReplicas(nc)
		err := bus.EnsureStreams(sctx, js, so)
		cancel()
		if err == nil {
			if attempt > 1 {
				fmt.Fprintf(stderr, "ringwise nats: streams ready after %d attempts\n", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("creating the streams for %s: %w", streamStartTimeout, err)
		}
		if attempt == 1 {
			fmt.Fprintf(stderr, "ringwise nats: creating the streams: %v (JetStream not ready yet? retrying every %s for %s)\n", err, streamAttempt, streamStartTimeout)
		}
		// An attempt refused at once waits out its slot: no busy loop.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(started.Add(streamAttempt))):
		}
	}
}

// adminConn connects in-process as the admin identity; nil without one on
// a server that requires authentication.
func adminConn(srv *bus.Embedded, creds string) (*nats.Conn, error) {
	opts := []nats.Option{nats.InProcessServer(srv.Server()), nats.Name("ringwise-nats-admin"), nats.MaxReconnects(-1)}
	switch {
	case creds != "":
		opt, err := nats.NkeyOptionFromSeed(creds)
		if err != nil {
			return nil, fmt.Errorf("--admin-creds %s: %w", creds, err)
		}
		opts = append(opts, opt)
	case !srv.Anonymous():
		return nil, nil
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("admin connection to the embedded server: %w", err)
	}
	return nc, nil
}

// watchStreams recreates streams that vanish (deleted by a client, or lost)
// and reports each on stderr, until ctx is done.
func watchStreams(ctx context.Context, w *bus.StreamWatcher, stderr io.Writer) {
	t := time.NewTicker(streamCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		made, err := w.Check(cctx)
		cancel()
		for _, name := range made {
			fmt.Fprintf(stderr, "ringwise nats: stream %s had vanished (deleted, or lost with the store); recreated with its last configuration, empty: what it held is lost\n", name)
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "ringwise nats: checking streams: %v\n", err)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func sortedIdentities(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	// admin, enricher, analyzer first as written, then sensors by name.
	rank := func(s string) string {
		switch s {
		case "admin":
			return "0"
		case "enricher":
			return "1"
		case "analyzer":
			return "2"
		}
		return "3" + s
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank(out[j]) < rank(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
