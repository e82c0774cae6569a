package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// The scale-out tests run the services as separate processes of one
// ringwise binary, built once per test binary.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func ringwiseBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringwise-bin-*")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ringwise")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuf is a goroutine-safe output buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is one ringwise process.
type service struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuf
	done   chan struct{}
	err    error
	killed bool
}

// startService starts `ringwise args...`; the test's cleanup kills it.
func startService(t testing.TB, name string, args ...string) *service {
	t.Helper()
	s := &service{name: name, out: &syncBuf{}, done: make(chan struct{})}
	s.cmd = exec.Command(ringwiseBinary(t), args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() || testing.Verbose() {
			t.Logf("--- %s output (last 4 KiB):\n%s", name, tail(s.out.String(), 4096))
		}
	})
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL and waits.
func (s *service) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.killed = true
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *service) stop(t testing.TB, within time.Duration) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("%s exited with %v", s.name, s.err)
		}
	case <-time.After(within):
		t.Errorf("%s did not stop within %v", s.name, within)
		s.kill()
	}
}

// waitOutput waits until the output contains substr.
func (s *service) waitOutput(t testing.TB, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(s.out.String(), substr) {
		select {
		case <-s.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", s.name, s.err, substr, tail(s.out.String(), 4096))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v:\n%s", s.name, substr, within, tail(s.out.String(), 4096))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// givenPorts are the ports freePort handed out in this test binary.
var givenPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freePort returns a free loopback port below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range, 32768-60999 by default). A port
// from bind(0) lies inside that range, and any outgoing connection of the
// test's services may take it as its source port while a server that is
// to listen there is not running yet, or killed and about to restart: seen
// as "embedded NATS ... not ready after 10s" for one of three cluster
// servers.
func freePort(t testing.TB) int {
	t.Helper()
	givenPorts.Lock()
	defer givenPorts.Unlock()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		if givenPorts.m[port] {
			continue // handed out already, perhaps not yet listened on
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		givenPorts.m[port] = true
		return port
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

var deliveredRE = regexp.MustCompile(`drained; attempted \[(\d+) (\d+)\] delivered \[(\d+) (\d+)\]`)

// sensorDelivered parses the sensor's last line: delivered records in all.
func sensorDelivered(t testing.TB, s *service) uint64 {
	t.Helper()
	m := deliveredRE.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("%s printed no drained line:\n%s", s.name, tail(s.out.String(), 2048))
	}
	a, _ := strconv.ParseUint(m[3], 10, 64)
	b, _ := strconv.ParseUint(m[4], 10, 64)
	return a + b
}

var overflowRE = regexp.MustCompile(`spool: \d+ stored, \d+ publish errors \(retried\), (\d+) batches overflowed \(events \[(\d+) (\d+)\]; \d+ messages in all with stats\), (\d+) abandoned`)

// sensorOverflow parses the sensor's spool line: events and batches the
// spool dropped.
func sensorOverflow(t testing.TB, s *service) (events, batches uint64) {
	t.Helper()
	m := overflowRE.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("%s printed no spool line:\n%s", s.name, tail(s.out.String(), 2048))
	}
	a, _ := strconv.ParseUint(m[2], 10, 64)
	b, _ := strconv.ParseUint(m[3], 10, 64)
	batches, _ = strconv.ParseUint(m[1], 10, 64)
	if m[4] != "0" {
		t.Errorf("%s abandoned %s spooled messages at exit", s.name, m[4])
	}
	return a + b, batches
}

func summary(t testing.TB, httpAddr, node string) report.Summary {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/summary?node=" + node)
	if err != nil {
		t.Fatalf("GET /api/summary: %v", err)
	}
	defer resp.Body.Close()
	var s report.Summary
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return s
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("summary: %v: %s", err, body)
	}
	return s
}

// scaleRun is the outcome of one multi-process run.
type scaleRun struct {
	delivered, events map[string]uint64
	missingPct        map[string]float64
	wrong             map[string]int
	dups, ooo, gaps   map[string]uint64
	// redelivered counts enriched batches the analyzer got again or late
	// from JetStream (duplicate_batches + late_batches): a delivery or an
	// ack lost with a killed server, counted once. Expected only where a
	// NATS server was killed or stopped (natsKilled).
	redelivered        map[string]uint64
	natsKilled         bool
	takeover           time.Duration
	replicas           int
	deadLetters        map[string]int    // by reason
	overflow           map[string]uint64 // events the spool dropped
	overflowBatches    map[string]uint64
	killedOwnerOf      string
	newOwner           string
	newOwnerLog        string
	replayed           uint64
	floodProcs         int
	enricherLastLines  []string
	totalEvents        uint64
	totalDelivered     uint64
	missingPctAllNodes float64
}

type scaleSetup struct {
	nodes     []string
	enrichers int
	procs     int
	kill      bool // kill -9 the owner of nodes[0] mid-flood
	// outage stops the NATS server this long mid-flood, then restarts it
	// on its store; spool is the sensors' --spool-size ("" = default).
	outage time.Duration
	spool  string
	// cluster runs three NATS servers (R3 streams and buckets) and kills
	// -9 one of them mid-flood, restarting it after the flood.
	cluster bool
	// badInput publishes garbage, truncated msgpack, a wrong schema version
	// and a node mismatch into nodes[0]'s raw subject mid-flood; each must
	// be dead-lettered with its reason. A 5 MB message must be refused by
	// the stream.
	badInput bool
}

// runScale runs NATS, an analyzer, enrichers and one sensor per node as
// processes, floods, optionally kills node[0]'s owner mid-flood, drains
// and collects the counts.
func runScale(t *testing.T, cfg scaleSetup) scaleRun {
	t.Helper()
	natsPort, httpPort := freePort(t), freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	natsArgs := []string{"nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", t.TempDir()}
	var ns *service
	var clusterArgs [][]string
	var clusterSvcs []*service
	if cfg.cluster {
		ports := []int{natsPort, freePort(t), freePort(t)}
		cports := []int{freePort(t), freePort(t), freePort(t)}
		var routes, urls []string
		for i := range ports {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cports[i]))
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
		}
		url = strings.Join(urls, ",")
		for i := range ports {
			args := []string{"nats", "--listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--store", t.TempDir(),
				"--name", fmt.Sprintf("n%d", i+1), "--cluster", fmt.Sprintf("127.0.0.1:%d", cports[i]), "--routes", strings.Join(routes, ",")}
			clusterArgs = append(clusterArgs, args)
			clusterSvcs = append(clusterSvcs, startService(t, fmt.Sprintf("nats n%d", i+1), args...))
		}
		for _, c := range clusterSvcs {
			c.waitOutput(t, "NATS with JetStream on", 30*time.Second)
		}
		ns = clusterSvcs[0]
		waitJetStream(t, url)
	} else {
		ns = startService(t, "nats", natsArgs...)
		ns.waitOutput(t, "NATS with JetStream on", 20*time.Second)
	}
	an := startService(t, "analyzer", "analyzer", "--nats", url, "--http", httpAddr)
	an.waitOutput(t, "consuming", 20*time.Second)
	var enrichers []*service
	for i := 0; i < cfg.enrichers; i++ {
		id := fmt.Sprintf("e%d", i+1)
		e := startService(t, "enricher "+id, "enricher", "--nats", url, "--id", id, "--member-ttl", "2s", "--lease-ttl", "2s", "--checkpoint-interval", "1s")
		enrichers = append(enrichers, e)
	}
	for _, e := range enrichers {
		e.waitOutput(t, "scaled mode", 20*time.Second)
	}
	var sensors []*service
	for _, n := range cfg.nodes {
		args := []string{"sensor", "--nats", url, "--node", n}
		if cfg.spool != "" {
			args = append(args, "--spool-size", cfg.spool)
		}
		s := startService(t, "sensor "+n, args...)
		sensors = append(sensors, s)
	}
	for _, s := range sensors {
		s.waitOutput(t, "published /proc snapshot", 60*time.Second)
	}
	nc, err := bus.Connect(url, "scale-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	leases, err := waitKV(ctx, js, bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	// Every node owned before the flood.
	for _, n := range cfg.nodes {
		waitUntil(t, 30*time.Second, "node "+n+" owned", func() bool {
			_, err := kvGet(ctx, leases, bus.NodeKey(n))
			return err == nil
		})
	}

	var res scaleRun
	// clusterQuiet is closed when every writer has stopped.
	clusterQuiet := make(chan struct{})
	quiet := sync.OnceFunc(func() { close(clusterQuiet) })
	defer quiet()
	type fr struct {
		r   flood.Result
		err error
	}
	floodDone := make(chan fr, 1)
	go func() {
		r, err := flood.Run(ctx, flood.Config{Procs: cfg.procs, Parallel: 4, Burst: 500, Pause: 300 * time.Millisecond})
		floodDone <- fr{r, err}
	}()
	if cfg.kill {
		// Late enough for the owner to have checkpointed (interval 1 s).
		time.Sleep(3 * time.Second)
		node := cfg.nodes[0]
		ent, err := kvGet(ctx, leases, bus.NodeKey(node))
		if err != nil {
			t.Fatalf("lease of %s: %v", node, err)
		}
		owner := string(ent.Value())
		var victim *service
		for _, e := range enrichers {
			if e.name == "enricher "+owner {
				victim = e
			}
		}
		if victim == nil {
			t.Fatalf("owner %q of %s is not one of the enrichers", owner, node)
		}
		killedAt := time.Now()
		victim.kill()
		res.killedOwnerOf = node
		// Take-over: a live enricher holds the lease.
		for {
			ent, err := kvGet(ctx, leases, bus.NodeKey(node))
			if err == nil && string(ent.Value()) != owner {
				res.takeover = time.Since(killedAt)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("node %s not taken over: %v", node, ctx.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("kill -9 of %s (owner of node %s) mid-flood: taken over after %v (member and lease TTL 2s)", owner, node, res.takeover.Round(time.Millisecond))
		res.newOwner = "enricher " + string(must(kvGet(ctx, leases, bus.NodeKey(node))).Value())
	}
	if cfg.badInput {
		time.Sleep(time.Second)
		injectBadInput(t, ctx, js, cfg.nodes[0])
	}
	if cfg.cluster {
		time.Sleep(3 * time.Second)
		clusterSvcs[1].kill()
		t.Logf("kill -9 of NATS server n2 mid-flood")
	}
	if cfg.outage > 0 {
		time.Sleep(2 * time.Second)
		ns.stop(t, 30*time.Second)
		stoppedAt := time.Now()
		time.Sleep(cfg.outage)
		ns = startService(t, "nats (restarted)", natsArgs...)
		ns.waitOutput(t, "NATS with JetStream on", 20*time.Second)
		t.Logf("NATS stopped mid-flood for %v, restarted on its store", time.Since(stoppedAt).Round(time.Millisecond))
	}
	f := <-floodDone
	if f.err != nil {
		t.Fatalf("flood: %v", f.err)
	}
	res.floodProcs = f.r.Spawned
	if cfg.cluster {
		// n2 rejoins on its store and catches up.
		clusterSvcs[1] = startService(t, "nats n2 (restarted)", clusterArgs[1]...)
		clusterSvcs[1].waitOutput(t, "NATS with JetStream on", 30*time.Second)
		// While the sensor still writes, "current" is the leader's view at
		// one instant (its commit index == the follower's last stored
		// entry): a follower catching up, or one ack behind a steady write
		// rate, reads as not current. Sample it, for the log only; the
		// catch-up is checked once writes have stopped (checkRejoined).
		sampleDone := make(chan struct{})
		var samples, currentSamples, maxLag uint64
		go func() {
			defer close(sampleDone)
			for ctx.Err() == nil && samples < 600 {
				select {
				case <-clusterQuiet:
					return
				case <-time.After(500 * time.Millisecond):
				}
				info, err := streamInfo(ctx, js, bus.StreamRaw)
				if err != nil || info.Cluster == nil {
					continue
				}
				for _, p := range info.Cluster.Replicas {
					if p.Name == "n2" {
						samples++
						if p.Current && !p.Offline {
							currentSamples++
						}
						maxLag = max(maxLag, p.Lag)
					}
				}
			}
		}()
		defer func() {
			quiet()
			<-sampleDone
			t.Logf("while writes went on after n2's restart: n2 current in %d of %d samples of RINGWISE_RAW, largest lag %d entries", currentSamples, samples, maxLag)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range sensors {
		s.stop(t, 60*time.Second)
	}
	res.delivered, res.events, res.missingPct = map[string]uint64{}, map[string]uint64{}, map[string]float64{}
	res.wrong, res.dups, res.ooo, res.gaps = map[string]int{}, map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	res.redelivered, res.natsKilled = map[string]uint64{}, cfg.cluster || cfg.outage > 0
	var missing uint64
	res.overflow, res.overflowBatches = map[string]uint64{}, map[string]uint64{}
	for i, n := range cfg.nodes {
		res.delivered[n] = sensorDelivered(t, sensors[i])
		res.overflow[n], res.overflowBatches[n] = sensorOverflow(t, sensors[i])
		var s report.Summary
		caughtUp := func() bool {
			s = summary(t, httpAddr, n)
			return s.Sensor.Final && s.Analyzer.Events >= res.delivered[n]-res.overflow[n]
		}
		if !waitFor(90*time.Second, caughtUp) {
			t.Logf("analyzer for node %s: final=%v events %d of %d delivered; %s", n, s.Sensor.Final, s.Analyzer.Events,
				res.delivered[n]-res.overflow[n], pipelineState(ctx, js, n))
			t.Fatalf("analyzer caught up with node %s: not within %v", n, 90*time.Second)
		}
		if s.Analyzer.LateBatches > 0 {
			t.Logf("node %s: %d enriched batches redelivered late (lost in flight, back after the analyzer's ack wait)", n, s.Analyzer.LateBatches)
		}
		if s.Sensor.SpoolOverflow != res.overflow[n] {
			t.Errorf("node %s: /api/summary spool_overflow %d, the sensor's own count %d", n, s.Sensor.SpoolOverflow, res.overflow[n])
		}
		res.events[n] = s.Analyzer.Events
		res.missingPct[n] = s.Analyzer.MissingPct
		// A raw batch enriched twice into the output is a duplicate; the
		// same enriched message delivered twice is the transport's.
		res.dups[n] = s.Analyzer.DuplicatePositions
		res.redelivered[n] = s.Analyzer.DuplicateBatches + s.Analyzer.LateBatches
		res.ooo[n] = s.Analyzer.OutOfOrderBatches
		res.gaps[n] = s.Analyzer.BatchGaps
		missing += s.Analyzer.Missing
		res.totalEvents += s.Analyzer.Events
		res.totalDelivered += res.delivered[n] - res.overflow[n]
		// Wrong metadata: the node's enriched stream against the flood's truth.
		var info *jetstream.StreamInfo
		waitUntil(t, 30*time.Second, "info of "+bus.StreamEnriched, func() bool {
			cctx, cancel := context.WithTimeout(ctx, apiTimeout)
			defer cancel()
			st, err := js.Stream(cctx, bus.StreamEnriched)
			if err == nil {
				info, err = st.Info(cctx, jetstream.WithSubjectFilter(bus.EnrichedSubject(n)))
			}
			return err == nil
		})
		// In a cluster the reader's consumer may sit on the restarted
		// server's replica, which serves only what it has caught up: a read
		// that stalls is started again (all of it: the check is over every
		// message), a few times.
		var truth report.TruthResult
		for attempt := 1; ; attempt++ {
			truth, err = pipeline.CheckTruth(ctx, js, n, 1, info.State.Subjects[bus.EnrichedSubject(n)], f.r.Procs)
			if err == nil {
				break
			}
			if !cfg.cluster || attempt == 4 {
				t.Fatal(err)
			}
			t.Logf("attempt %d: %v; reading again", attempt, err)
		}
		res.wrong[n] = truth.Wrong
	}
	if cfg.badInput {
		var dls []bus.DeadLetter
		waitUntil(t, 30*time.Second, "4 dead letters", func() bool {
			dls, err = bus.ListDeadLetters(ctx, js, 0)
			return err == nil && len(dls) >= 4
		})
		res.deadLetters = map[string]int{}
		for _, d := range dls {
			res.deadLetters[d.Reason]++
			if d.OriginalSubject != bus.RawSubject(cfg.nodes[0]) || d.OriginalSeq == 0 {
				t.Errorf("dead letter %+v: original subject or sequence missing", d)
			}
		}
	}
	if res.totalEvents > 0 {
		res.missingPctAllNodes = 100 * float64(missing) / float64(res.totalEvents)
	}
	for _, e := range enrichers {
		if e.name == res.newOwner {
			res.newOwnerLog = e.out.String()
		}
		if !e.killed {
			e.stop(t, 30*time.Second)
			lines := strings.Split(strings.TrimSpace(e.out.String()), "\n")
			res.enricherLastLines = append(res.enricherLastLines, e.name+": "+strings.Join(lines[max(0, len(lines)-3):], " | "))
		}
	}
	an.stop(t, 30*time.Second)
	if cfg.cluster {
		quiet()
		// Its own context: the run's (4 min from the start) can be spent
		// by the flood and the kill on a slow CI host, and every stream
		// info then failed with "context deadline exceeded" until the
		// check's own 90 s ran out (CI, 3 Dec 2026).
		rctx, rcancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer rcancel()
		res.replicas = checkRejoined(t, rctx, js, "n2")
		for _, c := range clusterSvcs {
			c.stop(t, 30*time.Second)
		}
	} else {
		ns.stop(t, 30*time.Second)
	}
	return res
}

// checkRejoined checks, once nothing writes any more, that server (killed
// and restarted) is back in every stream and KV bucket as a current
// replica with no lag, then moves RINGWISE_RAW's leadership to it and
// checks that it serves the same messages: it caught up, not only
// reconnected. It returns RINGWISE_RAW's replica count.
func checkRejoined(t *testing.T, ctx context.Context, js jetstream.JetStream, server string) int {
	t.Helper()
	names := []string{bus.StreamRaw, bus.StreamEnriched, bus.StreamStats}
	for _, b := range bus.EnricherBuckets() {
		if _, err := js.Stream(ctx, "KV_"+b); err == nil {
			names = append(names, "KV_"+b)
		}
	}
	replicas := 0
	for _, name := range names {
		var last string
		deadline := time.Now().Add(90 * time.Second)
		for {
			ok, state, n := replicaState(ctx, js, name, server)
			last = state
			if ok {
				if name == bus.StreamRaw {
					replicas = n
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s: %s not a current replica with lag 0 within 90s of the writers stopping; last: %s", name, server, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("stream %s: %s", name, last)
	}
	before, err := streamInfo(ctx, js, bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if before.Cluster.Leader != server {
		req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": server}})
		var resp struct {
			Success bool `json:"success"`
			Error   *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		waitUntil(t, 30*time.Second, "leadership of "+bus.StreamRaw+" moved to "+server, func() bool {
			nc := js.Conn()
			m, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+bus.StreamRaw, req, apiTimeout)
			if err == nil && json.Unmarshal(m.Data, &resp) == nil && resp.Error != nil {
				t.Logf("step-down: %s", resp.Error.Description)
			}
			for i := 0; i < 20; i++ {
				time.Sleep(100 * time.Millisecond)
				if info, err := streamInfo(ctx, js, bus.StreamRaw); err == nil && info.Cluster != nil && info.Cluster.Leader == server {
					return true
				}
			}
			return false
		})
	}
	after, err := streamInfo(ctx, js, bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	b, a := before.State, after.State
	if a.Msgs != b.Msgs || a.FirstSeq != b.FirstSeq || a.LastSeq != b.LastSeq || a.Bytes != b.Bytes {
		t.Errorf("%s led by %s: %d msgs, seq %d..%d, %d bytes; led by %s before: %d msgs, seq %d..%d, %d bytes",
			bus.StreamRaw, after.Cluster.Leader, a.Msgs, a.FirstSeq, a.LastSeq, a.Bytes, before.Cluster.Leader, b.Msgs, b.FirstSeq, b.LastSeq, b.Bytes)
	} else {
		t.Logf("%s now led by %s (was %s): the same %d messages, seq %d..%d, %d bytes", bus.StreamRaw, after.Cluster.Leader, before.Cluster.Leader, a.Msgs, a.FirstSeq, a.LastSeq, a.Bytes)
	}
	return replicas
}

// apiTimeout bounds one JetStream API call of the tests' polls. In a
// cluster, a stream's replicas stay silent on a request while they elect
// a leader (nats-server answers only from the leader), so a request that
// arrives then gets no reply at all: with the test's whole context as its
// deadline, one such call stalled a poll for minutes. That, not a slow
// catch-up, made the kill -9 test miss its 1-minute wait in CI.
const apiTimeout = 3 * time.Second

// streamInfo asks for a stream's info within apiTimeout.
func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	st, err := js.Stream(cctx, name)
	if err != nil {
		return nil, err
	}
	return st.Info(cctx)
}

// replicaState reports whether every replica of stream is current, online
// and without lag, with server among them, and describes the state.
func replicaState(ctx context.Context, js jetstream.JetStream, stream, server string) (bool, string, int) {
	info, err := streamInfo(ctx, js, stream)
	if err != nil || info.Cluster == nil {
		return false, fmt.Sprintf("info: %v", err), 0
	}
	desc := fmt.Sprintf("leader %s, %d msgs, last seq %d", info.Cluster.Leader, info.State.Msgs, info.State.LastSeq)
	ok, seen := true, info.Cluster.Leader == server
	for _, p := range info.Cluster.Replicas {
		desc += fmt.Sprintf("; %s current=%v offline=%v lag=%d", p.Name, p.Current, p.Offline, p.Lag)
		ok = ok && p.Current && !p.Offline && p.Lag == 0
		seen = seen || p.Name == server
	}
	return ok && seen && len(info.Cluster.Replicas) == 2, desc, 1 + len(info.Cluster.Replicas)
}

// injectBadInput publishes five kinds of bad input on node's raw subject.
func injectBadInput(t *testing.T, ctx context.Context, js jetstream.JetStream, node string) {
	t.Helper()
	codec := event.NewCodec()
	batch := func(claim string) []byte {
		data, err := codec.Encode(&event.Batch{Node: claim, BootID: "bad-input", SensorStartNs: 1, Seq: 1,
			Events: []event.Event{{Header: event.Header{Type: event.TypeSyscall, Pid: 1, Tid: 1, TsNs: 2}}}})
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), data...)
	}
	pub := bus.JetStreamPublisher{JS: js}
	// A 5 MB message is refused by the stream itself (its MaxMsgSize,
	// bus.DefaultRawMaxMsgSize): it never reaches a consumer.
	var apiErr *jetstream.APIError
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.RawSubject(node), ID: "bad-input-big", Data: make([]byte, 5<<20)}); !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamMessageExceedsMaximum {
		t.Errorf("a 5 MB raw message: %v, want refused by the stream (message size exceeds maximum)", err)
	}
	for i, m := range []bus.Msg{
		{Data: []byte("garbage, not msgpack")},
		{Data: batch(node)[:12]},
		{Data: batch(node), Schema: event.SchemaVersion + 7},
		{Data: batch("someone-else")},
	} {
		m.Subject = bus.RawSubject(node)
		m.ID = fmt.Sprintf("bad-input-%d", i)
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("bad input %d: %v", i, err)
		}
	}
}

// waitJetStream waits until the cluster's JetStream answers.
func waitJetStream(t *testing.T, url string) {
	t.Helper()
	nc, err := bus.Connect(url, "scale-test-wait")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "JetStream cluster ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}

// kvGet reads key within apiTimeout (see apiTimeout).
func kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return kv.Get(cctx, key)
}

func waitKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		kv, err := js.KeyValue(cctx, bucket)
		cancel()
		if err == nil {
			return kv, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bucket %s: %w (%v)", bucket, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor polls ok until it holds or within has passed, and says which.
func waitFor(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// pipelineState describes, for a failed wait, where node's messages are:
// each stream's last sequence and node subject count, and every consumer's
// delivered position, ack floor and pending count. A stall then names its
// hop (a consumer with pending messages that does not move, or a stream
// that stopped growing).
func pipelineState(ctx context.Context, js jetstream.JetStream, node string) string {
	var b strings.Builder
	for _, name := range []string{bus.StreamRaw, bus.StreamEnriched, bus.StreamStats} {
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		st, err := js.Stream(cctx, name)
		if err != nil {
			fmt.Fprintf(&b, "\n  stream %s: %v", name, err)
			cancel()
			continue
		}
		info, err := st.Info(cctx, jetstream.WithSubjectFilter("ringwise.>"))
		if err != nil {
			fmt.Fprintf(&b, "\n  stream %s info: %v", name, err)
			cancel()
			continue
		}
		leader := ""
		if info.Cluster != nil {
			leader = info.Cluster.Leader
		}
		fmt.Fprintf(&b, "\n  stream %s: leader %q, %d msgs, seq %d..%d, subjects of %s: raw %d enriched %d stats %d snapshot %d",
			name, leader, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, node,
			info.State.Subjects[bus.RawSubject(node)], info.State.Subjects[bus.EnrichedSubject(node)],
			info.State.Subjects[bus.StatsSubject(node)], info.State.Subjects[bus.SnapshotSubject(node)])
		lister := st.ListConsumers(cctx)
		for ci := range lister.Info() {
			cl := ""
			if ci.Cluster != nil {
				cl = ci.Cluster.Leader
			}
			fmt.Fprintf(&b, "\n    consumer %s (leader %q): delivered stream seq %d, ack floor %d, pending %d, ack pending %d, waiting pulls %d, redelivered %d",
				ci.Name, cl, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.NumRedelivered)
		}
		if err := lister.Err(); err != nil {
			fmt.Fprintf(&b, "\n    consumers: %v", err)
		}
		cancel()
	}
	return b.String()
}

func waitUntil(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkScaleRun(t *testing.T, label string, r scaleRun) {
	t.Helper()
	t.Logf("%s: spool overflow events %v (batches %v)", label, r.overflow, r.overflowBatches)
	t.Logf("%s: flood %d procs; delivered %v, analyzer events %v, missing %% %v (all nodes %.3f), duplicates %v, redelivered (counted once) %v, out of order %v, batch gaps %v, wrong %v",
		label, r.floodProcs, r.delivered, r.events, r.missingPct, r.missingPctAllNodes, r.dups, r.redelivered, r.ooo, r.gaps, r.wrong)
	for _, l := range r.enricherLastLines {
		t.Logf("%s: %s", label, l)
	}
	if r.totalEvents != r.totalDelivered {
		t.Errorf("%s: analyzer events %d != sensors' delivered %d", label, r.totalEvents, r.totalDelivered)
	}
	for n := range r.delivered {
		if r.events[n] != r.delivered[n]-r.overflow[n] {
			t.Errorf("%s: node %s: analyzer events %d != sensor delivered %d - spool overflow %d", label, n, r.events[n], r.delivered[n], r.overflow[n])
		}
		if r.dups[n] != 0 || r.ooo[n] != 0 || r.gaps[n] != r.overflowBatches[n] {
			t.Errorf("%s: node %s: duplicates %d, out of order %d, gaps %d: want 0, 0 and the %d overflowed batches", label, n, r.dups[n], r.ooo[n], r.gaps[n], r.overflowBatches[n])
		}
		if r.redelivered[n] != 0 && !r.natsKilled {
			t.Errorf("%s: node %s: %d enriched batches redelivered to the analyzer though no NATS server was killed", label, n, r.redelivered[n])
		}
		if r.wrong[n] != 0 {
			t.Errorf("%s: node %s: %d processes with wrong metadata", label, n, r.wrong[n])
		}
	}
}

// TestFailOver: 3 enrichers, 2 nodes (two sensors with different --node),
// a 5000-process flood; kill -9 of node a's owner mid-flood. Nothing lost,
// nothing duplicated, order and metadata as without the kill.
func TestFailOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	// The run without the kill also takes bad input on node a mid-flood.
	setup := scaleSetup{nodes: []string{"a", "b"}, enrichers: 3, procs: 5000, badInput: true}
	base := runScale(t, setup)
	checkScaleRun(t, "no kill, with bad input", base)
	t.Logf("dead letters by reason: %v", base.deadLetters)
	for _, r := range []string{"malformed", bus.ReasonSchemaVersion, "node_mismatch"} {
		if base.deadLetters[r] == 0 {
			t.Errorf("no dead letter with reason %s: %v", r, base.deadLetters)
		}
	}
	if n := base.deadLetters["malformed"]; n != 2 {
		t.Errorf("%d malformed dead letters, want 2 (garbage and truncated msgpack)", n)
	}
	setup.badInput = false
	setup.kill = true
	killed := runScale(t, setup)
	checkScaleRun(t, "kill -9", killed)
	fmt.Printf("fail-over: kill -9 of node %s's owner mid-flood; take-over time %v; missing %.3f%% vs %.3f%% without the kill\n",
		killed.killedOwnerOf, killed.takeover.Round(time.Millisecond), killed.missingPctAllNodes, base.missingPctAllNodes)
	// The new owner started from the dead owner's checkpoint, not from the
	// beginning of the node's stream.
	m := regexp.MustCompile(`msg="loaded checkpoint" node=a seq=(\d+) processes=(\d+)`).FindStringSubmatch(killed.newOwnerLog)
	if m == nil || m[1] == "0" {
		t.Errorf("the new owner of node a did not load a checkpoint with a sequence: %v\n%s", m, tail(killed.newOwnerLog, 2048))
	} else {
		t.Logf("new owner %s loaded the checkpoint at raw seq %s with %s processes", killed.newOwner, m[1], m[2])
	}
	if killed.missingPctAllNodes > base.missingPctAllNodes+0.1 {
		t.Errorf("missing %.3f%% with the kill, %.3f%% without: more than +0.1 points", killed.missingPctAllNodes, base.missingPctAllNodes)
	}
}

var _ = nats.Connect

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOutage: the single NATS server is stopped for 5 s mid-flood and
// restarted on its store. With the default spool nothing is lost; with a
// spool too small the overflow is counted exactly (analyzer events ==
// delivered - overflow, the overflowed batches are the only gaps).
func TestOutage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	setup := scaleSetup{nodes: []string{"a"}, enrichers: 2, procs: 5000, outage: 5 * time.Second}
	r := runScale(t, setup)
	checkScaleRun(t, "outage, default spool", r)
	if r.overflow["a"] != 0 {
		t.Errorf("default spool overflowed: %d events", r.overflow["a"])
	}
	setup.spool = "262144"
	small := runScale(t, setup)
	checkScaleRun(t, "outage, 256 KiB spool", small)
	if small.overflow["a"] == 0 {
		t.Errorf("a 256 KiB spool did not overflow in a 5 s outage mid-flood: the test proves nothing")
	}
	fmt.Printf("outage: 5 s mid-flood; default spool: %d events lost; 256 KiB spool: %d events in %d batches overflowed, counted exactly\n",
		r.overflow["a"], small.overflow["a"], small.overflowBatches["a"])
}

// TestCluster: three NATS servers (ringwise nats with cluster flags, R3
// streams and buckets), kill -9 of one mid-flood: nothing lost, nothing
// duplicated; the server rejoins on its store and catches up: once the
// writers stopped it is a current replica with lag 0 of every stream and
// KV bucket, and as RINGWISE_RAW's leader it serves the same messages
// (checkRejoined).
func TestCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	r := runScale(t, scaleSetup{nodes: []string{"a"}, enrichers: 2, procs: 5000, cluster: true})
	checkScaleRun(t, "cluster, kill -9 of n2", r)
	if r.replicas != 3 {
		t.Errorf("RINGWISE_RAW has %d replicas, want 3 (following the cluster size)", r.replicas)
	}
	fmt.Printf("cluster: kill -9 of 1 of 3 servers mid-flood: analyzer events %d == delivered %d; n2 rejoined\n", r.totalEvents, r.totalDelivered)
}

// TestScaleUp: 3 enrichers serve a real node and 8 virtual nodes
// (`ringwise replay` of the real node's raw stream); a 4th enricher starts
// mid-replay. Ownership rebalances to the rendezvous owners over 4 members
// without waiting for a TTL, and every node's events arrive once, in
// order.
func TestScaleUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	natsPort, httpPort := freePort(t), freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	ns := startService(t, "nats", "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", t.TempDir())
	ns.waitOutput(t, "NATS with JetStream on", 20*time.Second)
	an := startService(t, "analyzer", "analyzer", "--nats", url, "--http", httpAddr)
	an.waitOutput(t, "consuming", 20*time.Second)
	startEnricher := func(id string) *service {
		e := startService(t, "enricher "+id, "enricher", "--nats", url, "--id", id, "--member-ttl", "2s", "--lease-ttl", "2s", "--checkpoint-interval", "1s")
		e.waitOutput(t, "scaled mode", 20*time.Second)
		return e
	}
	var enrichers []*service
	for _, id := range []string{"e1", "e2", "e3"} {
		enrichers = append(enrichers, startEnricher(id))
	}
	src := startService(t, "sensor src", "sensor", "--nats", url, "--node", "src")
	src.waitOutput(t, "published /proc snapshot", 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	fr, err := flood.Run(ctx, flood.Config{Procs: 1000, Parallel: 4, Burst: 250, Pause: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	src.stop(t, 60*time.Second)
	file := filepath.Join(t.TempDir(), "src.replay")
	rec := startService(t, "replay record", "replay", "record", "--nats", url, "--node", "src", "--out", file)
	<-rec.done
	if rec.err != nil {
		t.Fatalf("replay record: %v\n%s", rec.err, rec.out.String())
	}
	t.Logf("%s (flood of %d processes in %v)", strings.TrimSpace(rec.out.String()), fr.Spawned, fr.Duration.Round(time.Millisecond))
	play := startService(t, "replay play", "replay", "play", "--nats", url, "--in", file, "--nodes", "8", "--rate", "40")
	time.Sleep(2 * time.Second)
	joined := time.Now()
	enrichers = append(enrichers, startEnricher("e4"))

	nc, err := bus.Connect(url, "scale-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := waitKV(ctx, js, bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"src"}
	for i := 0; i < 8; i++ {
		nodes = append(nodes, fmt.Sprintf("vnode-%d", i))
	}
	members := []string{"e1", "e2", "e3", "e4"}
	var toE4 []string
	for _, n := range nodes {
		if enricher.Owner(n, members) == "e4" {
			toE4 = append(toE4, n)
		}
	}
	if len(toE4) == 0 {
		t.Fatal("the test's names give e4 no node: choose other names")
	}
	var rebalance time.Duration
	waitUntil(t, 60*time.Second, "leases held by the rendezvous owners over 4 members", func() bool {
		for _, n := range nodes {
			ent, err := kvGet(ctx, leases, bus.NodeKey(n))
			if err != nil || string(ent.Value()) != enricher.Owner(n, members) {
				return false
			}
		}
		rebalance = time.Since(joined)
		return true
	})
	t.Logf("e4 joined mid-replay: nodes %v moved to it; every lease with its rendezvous owner after %v", toE4, rebalance.Round(time.Millisecond))
	<-play.done
	if play.err != nil {
		t.Fatalf("replay play: %v\n%s", play.err, play.out.String())
	}
	t.Log(strings.TrimSpace(play.out.String()))
	var total uint64
	for _, n := range nodes {
		var s report.Summary
		waitUntil(t, 120*time.Second, "analyzer caught up with node "+n, func() bool {
			s = summary(t, httpAddr, n)
			return s.Sensor.Final && s.Analyzer.Events >= s.Sensor.Delivered && s.Sensor.Delivered > 0
		})
		an := s.Analyzer
		if an.Events != s.Sensor.Delivered || an.DuplicateBatches+an.DuplicatePositions != 0 || an.OutOfOrderBatches != 0 || an.BatchGaps != 0 {
			t.Errorf("node %s: events %d of %d delivered, duplicates %d/%d, out of order %d, gaps %d", n, an.Events, s.Sensor.Delivered,
				an.DuplicateBatches, an.DuplicatePositions, an.OutOfOrderBatches, an.BatchGaps)
		}
		total += an.Events
	}
	for _, e := range enrichers {
		e.stop(t, 30*time.Second)
		lines := strings.Split(strings.TrimSpace(e.out.String()), "\n")
		t.Logf("%s: %s", e.name, strings.Join(lines[max(0, len(lines)-3):], " | "))
	}
	fmt.Printf("scale-up: 4th enricher joined mid-replay of 8 virtual nodes + 1 real; %d events in all, 0 duplicates/out-of-order; rebalanced in %v\n", total, rebalance.Round(time.Millisecond))
	an.stop(t, 30*time.Second)
	ns.stop(t, 30*time.Second)
}

// TestNoCheckpointAsksSensor: the owner of a node is killed mid-flood and
// its checkpoint is gone (purged, as with a lost bucket). The new owner
// finds the node's enriched output but no checkpoint: it asks the node's
// (real) sensor for a fresh /proc snapshot and reads on from the first
// unpublished position, replaying nothing; every event still arrives
// once, in order, with no wrong metadata. Then, with the sensor stopped,
// the same again: no answer, so the next owner replays (counted), and
// still nothing is duplicated.
func TestNoCheckpointAsksSensor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	natsPort, httpPort := freePort(t), freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	ns := startService(t, "nats", "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", t.TempDir())
	ns.waitOutput(t, "NATS with JetStream on", 20*time.Second)
	an := startService(t, "analyzer", "analyzer", "--nats", url, "--http", httpAddr)
	an.waitOutput(t, "consuming", 20*time.Second)
	enricherArgs := func(id string) []string {
		return []string{"enricher", "--nats", url, "--id", id, "--member-ttl", "2s", "--lease-ttl", "2s", "--checkpoint-interval", "1s"}
	}
	e1 := startService(t, "enricher e1", enricherArgs("e1")...)
	e1.waitOutput(t, "scaled mode", 20*time.Second)
	sensor := startService(t, "sensor a", "sensor", "--nats", url, "--node", "a")
	sensor.waitOutput(t, "published /proc snapshot", 60*time.Second)
	e1.waitOutput(t, "took node", 20*time.Second)
	nc, err := bus.Connect(url, "scale-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ckpts, err := waitKV(ctx, js, bus.BucketCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	type fr struct {
		r   flood.Result
		err error
	}
	floodDone := make(chan fr, 1)
	go func() {
		r, err := flood.Run(ctx, flood.Config{Procs: 2000, Parallel: 4, Burst: 500, Pause: 300 * time.Millisecond})
		floodDone <- fr{r, err}
	}()
	time.Sleep(2 * time.Second)
	e1.kill()
	if err := ckpts.Purge(ctx, bus.NodeKey("a")); err != nil {
		t.Fatalf("purge the checkpoint: %v", err)
	}
	e2 := startService(t, "enricher e2", enricherArgs("e2")...)
	e2.waitOutput(t, "asked the sensor for a fresh /proc snapshot", 30*time.Second)
	f := <-floodDone
	if f.err != nil {
		t.Fatalf("flood: %v", f.err)
	}
	time.Sleep(500 * time.Millisecond)
	sensor.stop(t, 60*time.Second)
	delivered := sensorDelivered(t, sensor)
	var s report.Summary
	waitUntil(t, 90*time.Second, "analyzer caught up", func() bool {
		s = summary(t, httpAddr, "a")
		return s.Sensor.Final && s.Analyzer.Events >= delivered
	})
	var info *jetstream.StreamInfo
	waitUntil(t, 30*time.Second, "info of "+bus.StreamEnriched, func() bool {
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		st, err := js.Stream(cctx, bus.StreamEnriched)
		if err == nil {
			info, err = st.Info(cctx, jetstream.WithSubjectFilter(bus.EnrichedSubject("a")))
		}
		return err == nil
	})
	truth, err := pipeline.CheckTruth(ctx, js, "a", 1, info.State.Subjects[bus.EnrichedSubject("a")], f.r.Procs)
	if err != nil {
		t.Fatal(err)
	}
	// The fallback: the sensor is gone, the owner stops (it prints its
	// counts) and the checkpoint is purged again. The next owner gets no
	// answer and replays the node's stream instead (counted); it publishes
	// nothing twice.
	e2.stop(t, 30*time.Second)
	if err := ckpts.Purge(ctx, bus.NodeKey("a")); err != nil {
		t.Fatalf("purge the checkpoint: %v", err)
	}
	e3 := startService(t, "enricher e3", enricherArgs("e3")...)
	e3.waitOutput(t, "no fresh snapshot from the sensor: replaying", 30*time.Second)
	e3.waitOutput(t, "consuming node", 10*time.Second)
	time.Sleep(3 * time.Second)
	e3.stop(t, 30*time.Second)
	after := summary(t, httpAddr, "a").Analyzer
	an.stop(t, 30*time.Second)
	ns.stop(t, 30*time.Second)
	out3 := e3.out.String()
	if !strings.Contains(out3, "0 fresh snapshots asked of sensors, 1 replays where none answered") || strings.Contains(out3, " 0 replayed,") {
		t.Errorf("with no sensor the new owner did not fall back to a replay:\n%s", tail(out3, 2048))
	}
	if after.Events != delivered || after.DuplicateBatches+after.DuplicatePositions != 0 || after.OutOfOrderBatches != 0 {
		t.Errorf("after the fallback replay: events %d of %d, duplicates %d/%d, out of order %d", after.Events, delivered,
			after.DuplicateBatches, after.DuplicatePositions, after.OutOfOrderBatches)
	}
	t.Log("fallback: " + regexp.MustCompile(`ringwise enricher: \d+ batches, \d+ events, \d+ replayed`).FindString(out3))
	a := s.Analyzer
	t.Logf("flood %d procs: delivered %d, analyzer events %d, missing %.3f%%, duplicates %d/%d, out of order %d, gaps %d, wrong %d",
		f.r.Spawned, delivered, a.Events, a.MissingPct, a.DuplicateBatches, a.DuplicatePositions, a.OutOfOrderBatches, a.BatchGaps, truth.Wrong)
	if a.Events != delivered || a.DuplicateBatches+a.DuplicatePositions != 0 || a.OutOfOrderBatches != 0 || a.BatchGaps != 0 || truth.Wrong != 0 {
		t.Errorf("events %d of %d delivered, duplicates %d/%d, out of order %d, gaps %d, wrong %d: want all, 0, 0, 0, 0",
			a.Events, delivered, a.DuplicateBatches, a.DuplicatePositions, a.OutOfOrderBatches, a.BatchGaps, truth.Wrong)
	}
	out := e2.out.String()
	t.Log(regexp.MustCompile(`msg="no checkpoint[^\n]*`).FindString(out))
	for _, want := range []string{" 0 replayed,", "1 fresh snapshots asked of sensors, 0 replays"} {
		if !strings.Contains(out, want) {
			t.Errorf("the new owner's output lacks %q:\n%s", want, tail(out, 2048))
		}
	}
	if !strings.Contains(sensor.out.String(), "1 snapshots taken on request") {
		t.Errorf("the sensor took no snapshot on request:\n%s", tail(sensor.out.String(), 2048))
	}
	fmt.Printf("no checkpoint: the new owner asked the sensor for a fresh snapshot and replayed nothing; %d events == delivered, missing %.3f%%\n", a.Events, a.MissingPct)
}
