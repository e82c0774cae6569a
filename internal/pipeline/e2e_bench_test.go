package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// ratedRing is a sensor.Probe whose one ring is written at a set rate: by
// time t after start, floor(t*rate) events have been produced (an endless
// cycle of benchStream, each cycle with its own pids and start times). The
// ring holds at most capEvents unread events; the producer drops what does
// not fit, counted per category as the BPF side counts its drops. Detach
// freezes the producer, so the sensor drains what is left.
type ratedRing struct {
	rate      float64
	capEvents uint64
	tmpl      []event.Event
	// prefix[i][c] counts category c among tmpl[:i], for Counters.
	prefix  [][event.NumCategories]uint64
	cycleNs uint64 // one cycle's span at rate

	mu      sync.Mutex
	start   time.Time
	baseNs  uint64 // sensor.MonotonicNs at start
	due     uint64 // produced so far (refreshed when pos reaches it)
	pos     uint64 // next to read
	dropped [event.NumCategories]uint64
	frozen  bool
	flushed bool
}

func newRatedRing(rate float64, capEvents uint64) *ratedRing {
	r := &ratedRing{rate: rate, capEvents: capEvents, tmpl: benchStream(0)}
	r.prefix = make([][event.NumCategories]uint64, len(r.tmpl)+1)
	for i := range r.tmpl {
		r.prefix[i+1] = r.prefix[i]
		r.prefix[i+1][r.tmpl[i].Type.Category()]++
	}
	r.cycleNs = uint64(float64(len(r.tmpl)) * 1e9 / rate)
	r.start = time.Now()
	r.baseNs = sensor.MonotonicNs()
	return r
}

// countUpTo is the per-category count of events [0, n).
func (r *ratedRing) countUpTo(n uint64) [event.NumCategories]uint64 {
	l := uint64(len(r.tmpl))
	var c [event.NumCategories]uint64
	for i := range c {
		c[i] = n/l*r.prefix[l][i] + r.prefix[n%l][i]
	}
	return c
}

// refresh advances due to now (unless frozen) and drops what overflows.
func (r *ratedRing) refresh() {
	if !r.frozen {
		r.due = uint64(time.Since(r.start).Seconds() * r.rate)
	}
	if r.due-r.pos > r.capEvents {
		a, b := r.countUpTo(r.pos), r.countUpTo(r.due-r.capEvents)
		for i := range r.dropped {
			r.dropped[i] += b[i] - a[i]
		}
		r.pos = r.due - r.capEvents
	}
}

// produced returns how many events the source produced in all.
func (r *ratedRing) produced() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.due
}

func (r *ratedRing) Rings() (lifecycle, syscalls sensor.Ring) { return nil, r }
func (r *ratedRing) Counters() (event.Counters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refresh()
	var c event.Counters
	c.Attempted = r.countUpTo(r.due)
	c.Dropped = r.dropped
	return c, nil
}
func (r *ratedRing) SetShedding(bool) error { return nil }
func (r *ratedRing) Detach() error {
	r.mu.Lock()
	r.refresh()
	r.frozen = true
	r.mu.Unlock()
	return nil
}
func (r *ratedRing) Close() error { return nil }
func (r *ratedRing) Name() string { return "shared" }
func (r *ratedRing) Size() int    { return int(r.capEvents) * 64 }
func (r *ratedRing) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refresh()
	return int(r.due-r.pos) * 64
}
func (r *ratedRing) Flush() error {
	r.mu.Lock()
	r.flushed = true
	r.mu.Unlock()
	return nil
}

// Read serves event pos: the template's event with this cycle's pids (64
// pid ranges in turn, so that a cycle's processes are gone when its range
// comes back) and times (ts: when the producer wrote it).
func (r *ratedRing) Read(ev *event.Event, deadline time.Time) error {
	r.mu.Lock()
	if r.pos >= r.due {
		r.refresh()
	}
	if r.pos < r.due {
		l := uint64(len(r.tmpl))
		k := r.pos
		r.pos++
		r.mu.Unlock()
		c, j := k/l, k%l
		rec := &r.tmpl[j]
		exe, args := ev.Exe, ev.Args
		*ev = *rec
		shift := uint32(c%64) * 500
		ev.Pid += shift
		ev.Tid += shift
		ev.TsNs = r.baseNs + uint64(float64(k)*1e9/r.rate)
		ev.StartNs = r.baseNs + c*r.cycleNs + uint64(ev.Pid)
		ev.Exe = append(exe[:0], rec.Exe...)
		ev.Args = append(args[:0], rec.Args...)
		return nil
	}
	if r.flushed {
		r.flushed = false
		r.mu.Unlock()
		return bpf.ErrFlushed
	}
	frozen := r.frozen
	next := r.start.Add(time.Duration(float64(r.pos+1) * 1e9 / r.rate))
	r.mu.Unlock()
	if frozen || deadline.Before(next) {
		next = deadline
	}
	if d := time.Until(next); d > 0 {
		time.Sleep(d)
	}
	return os.ErrDeadlineExceeded
}

// BenchmarkE2ERate finds the highest event rate the whole pipeline carries
// with zero loss after the ring: a ratedRing (the source, at R events/s)
// read by the sensor's real code path (sensor.Run: read, merge, batch,
// encode, publish through a bus.Spool as `ringwise sensor` does), a real
// JetStream server in its own process (`ringwise nats`, file streams), and
// the enricher and analyzer of internal/pipeline in this process. Each
// rate of RINGWISE_E2E_RATES runs RINGWISE_E2E_SECONDS (default 5) on a
// fresh server; a rate is carried when the ring dropped nothing, the spool
// lost nothing (no overflow, refusal or abandoned batch), the analyzer got
// every event the source produced, and the drain after the source stopped
// took at most a fifth of the run (a backlog that grows is not carried).
//
// CPU: the server's from /proc/<pid>/stat; this process's from getrusage,
// split per hop by a CPU profile whose samples carry pipeline.HopLabel
// (go tool pprof -tags); the rest (the NATS client's reader goroutines on
// the one shared connection, GC workers, the runtime) is "unlabelled".
//
// Run by scripts/e2e-bench.sh (RINGWISE_E2E_BENCH=1, RINGWISE_BIN the
// ringwise binary, RINGWISE_E2E_OUT the Markdown written, RINGWISE_E2E_PROF
// a directory for each rate's CPU profile).
func BenchmarkE2ERate(b *testing.B) {
	if os.Getenv("RINGWISE_E2E_BENCH") != "1" {
		b.Skip("RINGWISE_E2E_BENCH=1 runs it (scripts/e2e-bench.sh): a minute of multi-process measurement")
	}
	bin := os.Getenv("RINGWISE_BIN")
	if bin == "" {
		b.Fatal("RINGWISE_BIN: the ringwise binary (go build ./cmd/ringwise), for `ringwise nats`")
	}
	secs := 5.0
	if v := os.Getenv("RINGWISE_E2E_SECONDS"); v != "" {
		var err error
		if secs, err = strconv.ParseFloat(v, 64); err != nil {
			b.Fatalf("RINGWISE_E2E_SECONDS=%q: %v", v, err)
		}
	}
	rates := []float64{200e3, 400e3, 600e3, 800e3, 1000e3, 1200e3}
	if v := os.Getenv("RINGWISE_E2E_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				b.Fatalf("RINGWISE_E2E_RATES=%q: %v", v, err)
			}
			rates = append(rates, x)
		}
	}
	profDir := os.Getenv("RINGWISE_E2E_PROF")
	if profDir == "" {
		profDir = b.TempDir()
	} else if err := os.MkdirAll(profDir, 0o755); err != nil {
		b.Fatal(err)
	}
	var rep strings.Builder
	say := func(format string, a ...any) { fmt.Fprintf(&rep, format+"\n", a...) }
	say("| rate R (events/s) | produced | analysed | ring drops | spool lost | drain s | carried | stored B/event raw / enriched | raw batches | CPU µs/event: sensor | NATS server | enricher | analyzer | unlabelled | all | NATS share |")
	say("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var best, lastAll float64
	var bestProf, lastProf, compression, lastShares string
	for i, rate := range rates {
		st := e2eStep(b, bin, rate, secs, profDir, i == len(rates)-1)
		row, ok, prof := st.row, st.carried, st.prof
		say("%s", row)
		lastProf, lastAll, compression, lastShares = prof, st.allPerEvent, st.compression, st.shares
		if ok && rate > best {
			best, bestProf = rate, prof
		}
	}
	say("")
	say("Highest rate carried: **%.0f events/s** (load average after: %s).", best, loadAvg())
	if lastAll > 0 {
		say("")
		say("CPU ceiling: at the highest rate tried, %.2f µs of CPU per event in all (server and pipeline), so two dedicated cores carry at most %.0f events/s; 1M events/s needs at most 2 µs per event. Where it goes, largest first: %s.", lastAll, 2e6/lastAll, lastShares)
	}
	if compression != "" {
		say("")
		say("%s", compression)
	}
	for _, p := range []struct{ what, file string }{{"the highest rate carried", bestProf}, {"the highest rate tried", lastProf}} {
		if p.file == "" {
			continue
		}
		say("")
		say("Where the CPU goes at %s (`go tool pprof -top` of this process, hottest 30 functions by their own time; the NATS server's CPU is not in it; each hop's share is in the table):", p.what)
		say("")
		say("```")
		say("%s", pprofTop(b, p.file))
		say("```")
		if np := filepath.Join(filepath.Dir(p.file), strings.Replace(filepath.Base(p.file), "e2e-", "nats-", 1)); nonEmpty(np) {
			say("")
			say("The NATS server at the same rate (its own CPU profile over the run, `prof_port`; hottest 30 by their own time):")
			say("")
			say("```")
			say("%s", pprofTop(b, np))
			say("```")
		}
		if p.file == lastProf {
			break // the same profile
		}
	}
	if out := os.Getenv("RINGWISE_E2E_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(rep.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Print(rep.String())
	b.ReportMetric(best, "events/s")
}

// e2eResult is one rate's outcome.
type e2eResult struct {
	row         string  // the report's table row
	carried     bool    // zero loss after the ring, drained in time
	prof        string  // this process's CPU profile
	allPerEvent float64 // µs of CPU per event, server and pipeline
	shares      string  // each hop's share of all CPU, largest first
	compression string  // with measureCompression: S2 on the stored batches
}

// e2eStep runs the pipeline at rate for secs on a fresh `ringwise nats`.
func e2eStep(b *testing.B, bin string, rate, secs float64, profDir string, measureCompression bool) e2eResult {
	port, profPort := freeTCPPort(b), freeTCPPort(b)
	store := b.TempDir()
	// prof_port: the server's own CPU profile, fetched over the run.
	conf := filepath.Join(b.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\nprof_port: %d\n", port, profPort)), 0o644); err != nil {
		b.Fatal(err)
	}
	ns := exec.Command(bin, "nats", "--config", conf, "--store", store)
	ns.Stdout, ns.Stderr = os.Stderr, os.Stderr
	if err := ns.Start(); err != nil {
		b.Fatalf("start ringwise nats: %v", err)
	}
	defer func() { _ = ns.Process.Kill(); _ = ns.Wait() }()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("ringwise nats not listening on %d within 20s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // streams created by the server
	runtime.GC()

	var ring *ratedRing
	batch, _ := strconv.Atoi(os.Getenv("RINGWISE_E2E_BATCH")) // 0: the sensor's default
	cfg := sensor.Config{
		Node: "e2e", BootID: "boot-e2e", Procfs: procfs.FS{Root: b.TempDir()}, BatchMaxEvents: batch,
		LoadProbe: func(bpf.Config) (sensor.Probe, error) {
			ring = newRatedRing(rate, 1<<17) // an 8 MiB ring of 64-byte records
			return ring, nil
		},
	}
	prof := filepath.Join(profDir, fmt.Sprintf("e2e-%.0f.pprof", rate))
	pf, err := os.Create(prof)
	if err != nil {
		b.Fatal(err)
	}
	natsCPU0, selfCPU0 := procCPU(b, ns.Process.Pid), selfCPU()
	if err := pprof.StartCPUProfile(pf); err != nil {
		b.Fatal(err)
	}
	natsProf := filepath.Join(profDir, fmt.Sprintf("nats-%.0f.pprof", rate))
	natsProfDone := make(chan struct{})
	go func() {
		defer close(natsProfDone)
		fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", profPort, max(1, int(secs)-1)), natsProf)
	}()
	start := time.Now()
	res, err := pipeline.Run(context.Background(), pipeline.Options{
		NATSURL: url, Sensor: cfg, Duration: time.Duration(secs * float64(time.Second)), SpoolBytes: 256 << 20,
		PlainBatches: os.Getenv("RINGWISE_E2E_PLAIN") == "1",
	})
	wall := time.Since(start)
	pprof.StopCPUProfile()
	pf.Close()
	<-natsProfDone
	natsCPU, self := procCPU(b, ns.Process.Pid)-natsCPU0, selfCPU()-selfCPU0
	if err != nil {
		b.Fatalf("rate %.0f: %v", rate, err)
	}
	produced := ring.produced()
	s := res.Summary
	var ringDrops uint64
	for _, d := range ring.dropped {
		ringDrops += d
	}
	spoolLost := res.Spool.Overflow + res.Spool.Refused + res.Spool.Abandoned
	drain := wall.Seconds() - secs
	ok := ringDrops == 0 && spoolLost == 0 && s.Analyzer.Events == produced && s.Sensor.Dropped == 0 && drain <= secs/5
	// Exact accounting, whatever the rate: the sensor's own books balance
	// and nothing that reached the stream was lost downstream.
	if !res.Sensor.Consistent {
		b.Errorf("rate %.0f: the sensor's counters do not balance (attempted != delivered + dropped)", rate)
	}
	if s.Sensor.Attempted != produced || s.Sensor.Dropped != ringDrops {
		b.Errorf("rate %.0f: sensor attempted %d dropped %d, source produced %d dropped %d", rate, s.Sensor.Attempted, s.Sensor.Dropped, produced, ringDrops)
	}
	if res.Spool.Overflow == 0 && s.Analyzer.Events != s.Sensor.Delivered {
		b.Errorf("rate %.0f: sensor delivered %d, analyzer got %d, spool lost nothing", rate, s.Sensor.Delivered, s.Analyzer.Events)
	}
	rawB, enrB := streamBytes(b, url, bus.StreamRaw), streamBytes(b, url, bus.StreamEnriched)
	var compression string
	if measureCompression {
		compression = compressionNote(b, url)
	}
	hops := pprofHops(b, prof)
	// The profile's labelled samples (100 Hz) against the process's
	// measured CPU time: the rest had no hop.
	hops["unlabelled"] = max(0, self-hops["sensor"]-hops["enricher"]-hops["analyzer"])
	per := func(sec float64) string { return fmt.Sprintf("%.3f", sec*1e6/float64(max(produced, 1))) }
	all := self + natsCPU
	carried := "yes"
	if !ok {
		carried = "**no**"
	}
	perEv := func(n uint64) float64 { return float64(n) / float64(max(produced, 1)) }
	row := fmt.Sprintf("| %.0f | %d | %d | %d | %d | %.2f | %s | %.0f / %.0f | %d | %s | %s | %s | %s | %s | %s | %.1f %% |",
		rate, produced, s.Analyzer.Events, ringDrops, spoolLost, drain, carried, perEv(rawB), perEv(enrB), s.Sensor.Batches,
		per(hops["sensor"]), per(natsCPU), per(hops["enricher"]), per(hops["analyzer"]), per(hops["unlabelled"]), per(all), 100*natsCPU/all)
	b.Logf("%s", row)
	type share struct {
		hop string
		sec float64
	}
	sh := []share{{"NATS server", natsCPU}, {"sensor", hops["sensor"]}, {"enricher", hops["enricher"]}, {"analyzer", hops["analyzer"]}, {"unlabelled (client I/O, GC, runtime)", hops["unlabelled"]}}
	sort.Slice(sh, func(i, j int) bool { return sh[i].sec > sh[j].sec })
	var parts []string
	for _, x := range sh {
		parts = append(parts, fmt.Sprintf("%s %.1f %%", x.hop, 100*x.sec/all))
	}
	return e2eResult{row: row, carried: ok, prof: prof, allPerEvent: all * 1e6 / float64(max(produced, 1)), compression: compression, shares: strings.Join(parts, ", ")}
}

// pprofHops returns CPU seconds per pipeline.HopLabel value in the
// profile, and the process's samples without the label as "unlabelled".
func pprofHops(b *testing.B, prof string) map[string]float64 {
	out, err := exec.Command("go", "tool", "pprof", "-tags", "-unit=ms", prof).CombinedOutput()
	if err != nil {
		b.Fatalf("go tool pprof -tags %s: %v\n%s", prof, err, out)
	}
	hops := map[string]float64{}
	// " hop: Total 1234ms\n   600ms (48.6%): sensor\n" ...
	re := regexp.MustCompile(`^\s+([0-9.]+)ms\s+\(\s*[0-9.]+%\):\s+(\S+)$`)
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), pipeline.HopLabel+":") {
			in = true
			continue
		}
		if in {
			m := re.FindStringSubmatch(line)
			if m == nil {
				if strings.TrimSpace(line) != "" {
					in = false
				}
				continue
			}
			ms, _ := strconv.ParseFloat(m[1], 64)
			hops[m[2]] += ms / 1e3
		}
	}
	return hops
}

// fetchProfile saves the CPU profile at url to file (best effort: a
// missing server profile leaves the report without it).
func fetchProfile(url, file string) {
	resp, err := http.Get(url)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	_ = os.WriteFile(file, data, 0o644)
}

// benchJS connects to url for the benchmark's own reads of the streams;
// the caller closes the connection (each rate's server is gone after it).
func benchJS(b *testing.B, url string) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	return nc, js
}

// compressionNote measures S2 (the block format NATS itself uses) on up
// to 64 stored messages of each of the raw and enriched streams (their
// plain batches): the size it leaves and the CPU it costs to encode and to
// decode, per event in them, so that compressing batches is judged against
// what the server spends per byte.
func compressionNote(b *testing.B, url string) string {
	nc, js := benchJS(b, url)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var parts []string
	for _, st := range []struct{ name string }{{bus.StreamRaw}, {bus.StreamEnriched}} {
		stream, err := js.Stream(ctx, st.name)
		if err != nil {
			b.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var msgs [][]byte
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && len(msgs) < 64; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			data := m.Data
			if len(data) > 0 && data[0] == event.CompressedMark { // measure on the plain batch
				if data, err = s2.Decode(nil, data[1:]); err != nil {
					b.Fatalf("%s seq %d: s2: %v", st.name, seq, err)
				}
			}
			if len(data) < 16<<10 { // batches, not snapshots or stats
				continue
			}
			msgs = append(msgs, data)
		}
		if len(msgs) == 0 {
			continue
		}
		var in, out, events int
		codec := event.NewCodec()
		for _, m := range msgs {
			if st.name == bus.StreamRaw {
				var rb event.Batch
				if err := codec.Decode(m, &rb); err != nil {
					b.Fatalf("%s: %v", st.name, err)
				}
				events += len(rb.Events)
			} else {
				var eb event.EnrichedBatch
				if err := codec.DecodeEnriched(m, &eb); err != nil {
					b.Fatalf("%s: %v", st.name, err)
				}
				events += len(eb.Events)
			}
		}
		enc := make([][]byte, len(msgs))
		encCPU := cpuLoop(func() {
			for i, m := range msgs {
				enc[i] = s2.Encode(enc[i][:0], m)
			}
		})
		for i := range msgs {
			in, out = in+len(msgs[i]), out+len(enc[i])
		}
		var dec []byte
		decCPU := cpuLoop(func() {
			for _, e := range enc {
				dec, _ = s2.Decode(dec[:0:cap(dec)], e)
			}
		})
		// CPU of one pass over the messages, per event in them.
		perEv := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(max(events, 1)) }
		parts = append(parts, fmt.Sprintf("%s %.0f → %.0f B/event (%.1f×), encode %.0f ns/event, decode %.0f ns/event",
			st.name, float64(in)/float64(max(events, 1)), float64(out)/float64(max(events, 1)), float64(in)/float64(out), perEv(encCPU), perEv(decCPU)))
	}
	return fmt.Sprintf("Compression, judged on this run's stored batches, decompressed first if stored compressed (S2 block format, `klauspost/compress/s2`, CPU time of a loop over up to 64 messages per stream; B/event here is the plain batch's, the table's is what was stored): %s. The sensor and the enricher compress by default (`PlainBatches` off; `RINGWISE_E2E_PLAIN=1` measures without).", strings.Join(parts, "; "))
}

// cpuLoop runs f until 100 ms of this process's CPU have passed and
// returns the CPU per run of f.
func cpuLoop(f func()) time.Duration {
	start, n := selfCPU(), 0
	for selfCPU()-start < 0.1 {
		f()
		n++
	}
	return time.Duration((selfCPU() - start) / float64(n) * 1e9)
}

// streamBytes is what stream stores (this run's server is fresh).
func streamBytes(b *testing.B, url, stream string) uint64 {
	nc, js := benchJS(b, url)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		b.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		b.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Bytes
}

func pprofTop(b *testing.B, prof string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", prof).CombinedOutput()
	if err != nil {
		b.Fatalf("go tool pprof -top %s: %v\n%s", prof, err, out)
	}
	return strings.TrimSpace(string(out))
}

func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime is the 12th.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func freeTCPPort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func nonEmpty(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Size() > 0
}
