package deployments

// The compose end-to-end test: the repository's docker-compose.yml on a
// real Docker engine, with 3 enrichers, a real flood on the host, an
// enricher killed mid-flood, and the analyzer's summary and Jaeger's query
// API as the judges. NATS requires TLS (and every service's identity), as
// the stack is deployed; the test checks that it does.
//
// It runs when RINGWISE_COMPOSE_E2E=1 (make test sets it) and as root. It
// installs what it lacks (Debian's docker.io, the compose plugin built by
// scripts/tools.sh, the offline builder image and binaries of
// deployments/offline/prepare.sh), starts dockerd only if none runs, and
// leaves the host as it found it (deployments/offline/dockerd.sh stop:
// iptables and docker0 restored, dockerd stopped).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvComposeE2E enables the compose end-to-end test.
const EnvComposeE2E = "RINGWISE_COMPOSE_E2E"

const (
	e2eProject  = "ringwise-e2e"
	e2eNode     = "compose-e2e"
	e2eHTTPPort = "18080" // not the defaults: other tests on this machine use 8080 and 16686
	e2eJaeger   = "26686"
	// defaultTargetPct is the analyzer's default recommendation target
	// (services/ringspec.DefaultTargetPct): metadata counts as complete
	// at the default ring when missing stays at or below it.
	defaultTargetPct = 0.1
)

// repoRoot is the repository root (this package lives in deployments/).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

type stack struct {
	t    *testing.T
	root string
	env  []string
	// files are the compose files (-f), the engine override included.
	files []string
	// metricsToken is the bearer token of the sensor's and enrichers' /metrics.
	metricsToken string
}

// run runs name args in the repository root with the stack's environment,
// returns stdout, and fails the test on error.
func (s *stack) run(name string, args ...string) string {
	s.t.Helper()
	out, err := s.try(name, args...)
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (s *stack) try(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), s.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func (s *stack) compose(args ...string) string {
	s.t.Helper()
	full := []string{"compose", "-p", e2eProject}
	for _, f := range s.files {
		full = append(full, "-f", f)
	}
	return s.run("docker", append(full, args...)...)
}

func (s *stack) composeTry(args ...string) (string, error) {
	full := []string{"compose", "-p", e2eProject}
	for _, f := range s.files {
		full = append(full, "-f", f)
	}
	return s.try("docker", append(full, args...)...)
}

// summary is the part of the analyzer's /api/summary the test judges.
type summary struct {
	Sensor struct {
		Delivered     uint64 `json:"delivered"`
		Dropped       uint64 `json:"dropped"`
		Attempted     uint64 `json:"attempted"`
		PublishErrors uint64 `json:"publish_errors"`
		Final         bool   `json:"final"`
	} `json:"sensor"`
	Enricher struct {
		Events uint64 `json:"events"`
	} `json:"enricher"`
	Analyzer struct {
		Events           uint64            `json:"events"`
		Missing          uint64            `json:"missing"`
		MissingPct       float64           `json:"missing_pct"`
		ByReason         map[string]uint64 `json:"by_reason"`
		BatchGaps        uint64            `json:"batch_gaps"`
		Batches          uint64            `json:"batches"`
		DuplicateBatches uint64            `json:"duplicate_batches"`
		// Issue 8's per-node raw positions (absent, so 0, before it).
		DuplicatePositions uint64 `json:"duplicate_positions"`
		OutOfOrderBatches  uint64 `json:"out_of_order_batches"`
	} `json:"analyzer"`
	Ring struct {
		SizeBytes int `json:"size_bytes"`
	} `json:"ring"`
}

// getJSON GETs url (with token as a bearer token when set) into v.
func getJSON(url, token string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// lockBPF takes the machine's shared BPF lock (tests that load BPF or
// flood must not overlap) until the test ends.
func lockBPF(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/tmp/ringwise-bpf.lock", os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() })
}

func TestComposeE2E(t *testing.T) {
	if os.Getenv(EnvComposeE2E) != "1" {
		t.Skipf("the compose end-to-end test runs with %s=1 (make test sets it): it installs Docker and builds images", EnvComposeE2E)
	}
	if os.Geteuid() != 0 {
		t.Skip("the compose end-to-end test needs root (dockerd, BPF)")
	}
	start := time.Now()
	root := repoRoot(t)
	s := &stack{t: t, root: root, env: []string{
		"DOCKER_BUILDKIT=0", // the legacy builder uses the local builder image, no registry
		"RINGWISE_HTTP_PORT=" + e2eHTTPPort,
		"RINGWISE_JAEGER_PORT=" + e2eJaeger,
		"RINGWISE_NODE=" + e2eNode,
	}, files: []string{"docker-compose.yml"}}
	phase := func(name string, since time.Time) { t.Logf("%-28s %6.1fs", name, time.Since(since).Seconds()) }

	// The engine: started (and later stopped, iptables restored) only if
	// none runs.
	t0 := time.Now()
	state := filepath.Join(root, ".cache", "deploy", "e2e-dockerd")
	s.run("bash", "deployments/offline/dockerd.sh", "start", state)
	t.Cleanup(func() {
		if out, err := s.try("bash", "deployments/offline/dockerd.sh", "stop", state); err != nil {
			t.Errorf("dockerd.sh stop: %v\n%s", err, out)
		}
	})
	phase("engine", t0)

	t0 = time.Now()
	s.run("bash", "scripts/tools.sh", "compose")
	s.run("docker", "compose", "version")
	phase("compose plugin", t0)

	t0 = time.Now()
	s.run("bash", "deployments/offline/prepare.sh")
	phase("offline prep + binaries", t0)

	// Engines that do not know CAP_BPF get SYS_ADMIN instead.
	if v := s.run("docker", "version", "--format", "{{.Server.Version}}"); engineMajor(v) < 23 {
		t.Logf("engine %s does not know CAP_BPF/CAP_PERFMON: sensor with deployments/docker/compose.cap-sys-admin.yml", strings.TrimSpace(v))
		s.files = append(s.files, "deployments/docker/compose.cap-sys-admin.yml")
	}

	t0 = time.Now()
	s.compose("build")
	phase("images", t0)

	// From here the sensor's BPF runs: one tracer at a time on this machine.
	lockBPF(t)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.composeTry("logs", "--no-color", "--tail", "60")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := s.composeTry("down", "-v", "--remove-orphans", "--timeout", "30"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	t0 = time.Now()
	s.compose("up", "-d", "--wait", "--wait-timeout", "180", "--scale", "enricher=3")
	phase("up (healthy)", t0)
	api := "http://127.0.0.1:" + e2eHTTPPort
	tb, err := os.ReadFile(filepath.Join(root, "deployments", "secrets", "http-token"))
	if err != nil {
		t.Fatalf("the analyzer's HTTP token (deployments/offline/prepare.sh secrets): %v", err)
	}
	token := strings.TrimSpace(string(tb))
	mb, err := os.ReadFile(filepath.Join(root, "deployments", "secrets", "metrics-token"))
	if err != nil {
		t.Fatalf("the /metrics token (deployments/offline/prepare.sh secrets): %v", err)
	}
	s.metricsToken = strings.TrimSpace(string(mb))

	// Enrichers share nodes under leases with hand-over (issue 8's scaled
	// mode) only where the enricher has --mode; before that, enrichers on
	// the shared durable split one node's stream and its process state.
	helpCmd := exec.Command("docker", "run", "--rm", "ringwise/ringwise:dev", "enricher", "--help")
	help, _ := helpCmd.CombinedOutput() // the usage goes to stderr
	scaled := strings.Contains(string(help), "-mode")
	if !scaled {
		t.Logf("NOT CHECKED: this enricher has no scaled mode (issue 8 not in this build): no enricher is killed, and missing metadata is reported, not judged (shared-durable enrichers split a node's process state)")
	}

	enrichers := strings.Fields(s.compose("ps", "-q", "enricher"))
	if len(enrichers) != 3 {
		t.Fatalf("%d enricher containers, want 3", len(enrichers))
	}

	// NATS speaks TLS only: its INFO (the first thing it sends on the
	// client port, reached on its compose-network address) requires it.
	natsID := strings.TrimSpace(s.compose("ps", "-q", "nats"))
	if info, err := natsInfo(s.containerIP(natsID) + ":4222"); err != nil {
		t.Errorf("NATS client port: %v", err)
	} else if !info.TLSRequired {
		t.Errorf("NATS does not require TLS on its client port: INFO %+v", info)
	} else {
		t.Logf("NATS %s requires TLS (INFO tls_required) and authentication (auth_required %v)", info.Version, info.AuthRequired)
	}

	// The flood runs on the host: the sensor in its container sees it
	// through the host's /proc and the kernel.
	ringwise := filepath.Join(root, "deployments", "docker", "bin", "ringwise")
	const procs = 3000
	flood := exec.Command(ringwise, "flood", "--procs", strconv.Itoa(procs), "--parallel", "4", "--burst", "500", "--pause", "300ms")
	var floodOut bytes.Buffer
	flood.Stdout, flood.Stderr = &floodOut, &floodOut
	t0 = time.Now()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	// Mid-flood, one enricher crashes (SIGKILL of its process, not a
	// docker stop): its restart policy brings it back, and its nodes move
	// to the survivors meanwhile.
	victim := enrichers[1]
	var killedAt time.Time
	if scaled {
		time.Sleep(1500 * time.Millisecond)
		// The node's owner (the one enricher that reports its lag), so
		// that the kill forces a take-over.
		if _, owner, why := lagOwner(s, enrichers, e2eNode); owner != "" {
			victim = owner
		} else {
			t.Logf("no enricher reports the node's lag yet (%s): killing %s", why, victim[:12])
		}
		pid := strings.TrimSpace(s.run("docker", "inspect", "-f", "{{.State.Pid}}", victim))
		if p, err := strconv.Atoi(pid); err != nil || p <= 0 {
			t.Fatalf("enricher %s: pid %q", victim, pid)
		} else if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 enricher %s (pid %d): %v", victim[:12], p, err)
		}
		killedAt = time.Now()
		t.Logf("killed enricher %s (host pid %s) %.1fs into the flood", victim[:12], pid, time.Since(t0).Seconds())
	}
	if err := flood.Wait(); err != nil {
		t.Fatalf("flood: %v\n%s", err, floodOut.String())
	}
	t.Logf("flood: %s", strings.TrimSpace(floodOut.String()))
	phase("flood", t0)

	// The series the Kubernetes autoscaler queries (deployments/kubernetes/
	// enricher-scaledobject.yaml): the enricher that owns this node exports
	// its lag, labelled with the node and the raw stream.
	// Only the node's current owner reports it: right after the kill
	// there may be none for a while (until a survivor or the restarted
	// container takes the lease), so look again until one does.
	if scaled {
		var line, why string
		for end := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
			if line, why = lagSeries(s, enrichers, e2eNode); line != "" || time.Now().After(end) {
				break
			}
		}
		if line == "" {
			t.Errorf("no enricher exports the autoscaler's series ringwise_enricher_lag{node=%q,stream=\"RINGWISE_RAW\"} within 60 s: %s", e2eNode, why)
		} else {
			t.Logf("enricher /metrics: %s", line)
		}
	}

	// The sensor drains on SIGTERM and sends its final counters.
	t0 = time.Now()
	s.compose("stop", "--timeout", "60", "sensor")
	var sum summary
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := getJSON(api+"/api/summary", token, &sum)
		if err == nil && sum.Sensor.Final && sum.Analyzer.Events >= sum.Sensor.Delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("analyzer did not catch up with the sensor within 3 min (last error %v): sensor final %v delivered %d, analyzer events %d",
				err, sum.Sensor.Final, sum.Sensor.Delivered, sum.Analyzer.Events)
		}
		time.Sleep(time.Second)
	}
	// Anything late (a duplicate, say) would arrive now.
	time.Sleep(3 * time.Second)
	if err := getJSON(api+"/api/summary", token, &sum); err != nil {
		t.Fatal(err)
	}
	phase("drain", t0)
	restarts := strings.TrimSpace(s.run("docker", "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", victim))
	if scaled {
		// Who took the node after the kill, and when (reported, not judged:
		// timing is for benchmarks).
		logs, _ := s.composeTry("logs", "--no-color", "--timestamps", "--no-log-prefix", "enricher")
		var took, path []string
		for _, l := range strings.Split(logs, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			ts, err := time.Parse(time.RFC3339Nano, f[0])
			if err != nil || !ts.After(killedAt) {
				continue
			}
			at := fmt.Sprintf("+%.1fs", ts.Sub(killedAt).Seconds())
			if i := strings.Index(l, "lease_rev"); i >= 0 && strings.Contains(l, `msg="took node"`) {
				took = append(took, at+" "+l[i:])
			}
			// How each new owner built its table: the take-over path
			// decides what a missing-metadata failure means.
			for _, m := range []string{`msg="loaded checkpoint"`, `msg="no checkpoint`, `msg="checkpoint unusable`, `msg="handing over"`, `msg="fenced`, "snapshot entries refused"} {
				if i := strings.Index(l, m); i >= 0 {
					path = append(path, at+" "+l[i:])
					break
				}
			}
		}
		t.Logf("leases taken after the kill: %v", took)
		t.Logf("take-overs after the kill:\n  %s", strings.Join(path, "\n  "))
	}
	t.Logf("summary: sensor attempted %d delivered %d dropped %d publish_errors %d; enricher events %d; analyzer events %d batches %d missing %d (%.4f%%) by reason %v, gaps %d, duplicate batches %d, duplicate positions %d, out of order %d; killed enricher: restarts/status %s",
		sum.Sensor.Attempted, sum.Sensor.Delivered, sum.Sensor.Dropped, sum.Sensor.PublishErrors, sum.Enricher.Events,
		sum.Analyzer.Events, sum.Analyzer.Batches, sum.Analyzer.Missing, sum.Analyzer.MissingPct, sum.Analyzer.ByReason,
		sum.Analyzer.BatchGaps, sum.Analyzer.DuplicateBatches, sum.Analyzer.DuplicatePositions, sum.Analyzer.OutOfOrderBatches, restarts)

	if sum.Sensor.Delivered < procs*3 {
		t.Errorf("sensor delivered %d events, fewer than 3 per flood child (%d children): it did not see the flood", sum.Sensor.Delivered, procs)
	}
	if sum.Analyzer.Events != sum.Sensor.Delivered {
		t.Errorf("analyzer counted %d events, the sensor delivered %d: lost or duplicated", sum.Analyzer.Events, sum.Sensor.Delivered)
	}
	if sum.Sensor.PublishErrors != 0 {
		t.Errorf("sensor publish errors %d", sum.Sensor.PublishErrors)
	}
	if sum.Analyzer.DuplicateBatches != 0 {
		t.Errorf("analyzer saw %d duplicate batches", sum.Analyzer.DuplicateBatches)
	}
	if sum.Analyzer.DuplicatePositions != 0 || sum.Analyzer.OutOfOrderBatches != 0 {
		t.Errorf("analyzer saw %d duplicate raw positions and %d out-of-order batches", sum.Analyzer.DuplicatePositions, sum.Analyzer.OutOfOrderBatches)
	}
	if sum.Analyzer.BatchGaps != 0 {
		t.Errorf("analyzer saw %d batch gaps", sum.Analyzer.BatchGaps)
	}
	if scaled && sum.Analyzer.MissingPct > defaultTargetPct {
		t.Errorf("missing metadata %.4f%% at the default ring, above the %.2f%% target (by reason %v)", sum.Analyzer.MissingPct, defaultTargetPct, sum.Analyzer.ByReason)
	}
	if scaled && !strings.HasPrefix(restarts, "1 ") && !strings.HasPrefix(restarts, "2 ") {
		t.Errorf("killed enricher: restart count and status %q, want restarted by its policy", restarts)
	}

	// One trace through the three services, from Jaeger's query API.
	t0 = time.Now()
	if why := findTrace(t, "http://127.0.0.1:"+e2eJaeger); why != "" {
		t.Errorf("jaeger: %s", why)
	}
	phase("jaeger trace", t0)
	phase("total", start)
}

// containerIP is a container's address on its compose network (the host
// reaches it through the bridge; nothing is published for it).
func (s *stack) containerIP(id string) string {
	s.t.Helper()
	ip := strings.TrimSpace(s.run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id))
	if f := strings.Fields(ip); len(f) > 0 {
		return f[0]
	}
	s.t.Fatalf("container %s has no address", id)
	return ""
}

// serverInfo is the part of NATS's INFO the test reads.
type serverInfo struct {
	Version      string `json:"version"`
	TLSRequired  bool   `json:"tls_required"`
	AuthRequired bool   `json:"auth_required"`
}

// natsInfo reads the INFO line a NATS server sends on connect.
func natsInfo(addr string) (serverInfo, error) {
	var info serverInfo
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return info, err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return info, fmt.Errorf("reading INFO from %s: %w", addr, err)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "INFO ")
	if !ok {
		return info, fmt.Errorf("%s sent %q, not INFO", addr, line)
	}
	if err := json.Unmarshal([]byte(rest), &info); err != nil {
		return info, fmt.Errorf("INFO from %s: %w", addr, err)
	}
	return info, nil
}

// lagSeries scrapes each enricher's /metrics (port 9464 on its compose
// address) and returns the ringwise_enricher_lag line for node on the raw
// stream, or "" and why none was found.
func lagSeries(s *stack, enrichers []string, node string) (string, string) {
	line, _, why := lagOwner(s, enrichers, node)
	return line, why
}

// lagOwner is lagSeries that also returns the container whose enricher
// reported the line: the node's owner.
func lagOwner(s *stack, enrichers []string, node string) (line, owner, why string) {
	var whys []string
	for _, id := range enrichers {
		url := "http://" + s.containerIP(id) + ":9464/metrics"
		c := &http.Client{Timeout: 5 * time.Second}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			whys = append(whys, err.Error())
			continue
		}
		req.Header.Set("Authorization", "Bearer "+s.metricsToken)
		resp, err := c.Do(req)
		if err != nil {
			whys = append(whys, err.Error())
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			whys = append(whys, url+": "+resp.Status)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "ringwise_enricher_lag{") && strings.Contains(l, `node="`+node+`"`) && strings.Contains(l, `stream="RINGWISE_RAW"`) {
				return l, id, ""
			}
		}
		whys = append(whys, url+": no such line")
	}
	return "", "", strings.Join(whys, "; ")
}

func engineMajor(v string) int {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '.'); i > 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// Jaeger's /api/traces answer, the parts read here.
type jaegerTraces struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			ProcessID     string `json:"processID"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
}

// findTrace looks, among the analyzer's traces, for one that holds a span
// of each service, the analyzer's referring to an enricher span and an
// enricher span referring to the sensor's (parent or link, across NATS).
// It returns why none was found ("" when one was).
func findTrace(t *testing.T, jaeger string) string {
	t.Helper()
	var why string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var tr jaegerTraces
		if err := getJSON(jaeger+"/api/traces?service=ringwise-analyzer&limit=200&lookback=1h", "", &tr); err != nil {
			why = err.Error()
			time.Sleep(2 * time.Second)
			continue
		}
		why = fmt.Sprintf("none of %d analyzer traces links sensor → enricher → analyzer", len(tr.Data))
		for _, d := range tr.Data {
			svc := map[string]string{} // span id → service
			for _, sp := range d.Spans {
				svc[sp.SpanID] = d.Processes[sp.ProcessID].ServiceName
			}
			var enricherFromSensor, analyzerFromEnricher bool
			for _, sp := range d.Spans {
				me := svc[sp.SpanID]
				for _, r := range sp.References {
					switch {
					case me == "ringwise-enricher" && svc[r.SpanID] == "ringwise-sensor":
						enricherFromSensor = true
					case me == "ringwise-analyzer" && svc[r.SpanID] == "ringwise-enricher":
						analyzerFromEnricher = true
					}
				}
			}
			if enricherFromSensor && analyzerFromEnricher {
				t.Logf("jaeger: trace %s has %d spans across sensor, enricher and analyzer", d.TraceID, len(d.Spans))
				return ""
			}
		}
		time.Sleep(2 * time.Second)
	}
	return why
}
