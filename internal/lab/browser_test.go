package lab

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// renderChromium returns the path of a Chromium binary, or skips the test.
func renderChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// renderRunChromium runs headless Chromium with args after the common flags
// and returns its stdout. The whole process group is killed on timeout.
func renderRunChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	common := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(common, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("chromium timed out: %v\n%s", ctx.Err(), stderr.Bytes())
	}
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// renderScreenshot screenshots url at w×h into out and checks the PNG.
func renderScreenshot(t *testing.T, bin, url, out string, w, h int) {
	t.Helper()
	renderRunChromium(t, bin, "--screenshot="+out, "--window-size="+strconv.Itoa(w)+","+strconv.Itoa(h), url)
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if fi.Size() <= 10<<10 {
		t.Errorf("%s is only %d bytes", filepath.Base(out), fi.Size())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s does not decode: %v", filepath.Base(out), err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s is %dx%d, want %dx%d", filepath.Base(out), b.Dx(), b.Dy(), w, h)
	}
	if dir := os.Getenv("RINGWISE_SCREENSHOT_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		src, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.Create(filepath.Join(dir, filepath.Base(out)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst.Name())
	}
}

func TestBrowserReport(t *testing.T) {
	bin := renderChromium(t)
	for _, src := range []string{"bpf", "sim"} {
		t.Run(src, func(t *testing.T) {
			dir := t.TempDir()
			r := renderFixture(src)
			if err := WriteOutputs(dir, r); err != nil {
				t.Fatal(err)
			}
			report := "file://" + filepath.Join(dir, "report.html")
			shots := t.TempDir()
			renderScreenshot(t, bin, report, filepath.Join(shots, "report-"+src+".png"), 1200, 1600)
			// The whole page, to see the evidence and candidates too.
			renderScreenshot(t, bin, report, filepath.Join(shots, "report-full-"+src+".png"), 1200, 3000)
			renderScreenshot(t, bin, "file://"+filepath.Join(dir, "loss.svg"), filepath.Join(shots, "loss-"+src+".png"), 800, 480)

			dom := string(renderRunChromium(t, bin, "--dump-dom", report))
			for _, want := range []string{`<table id="results">`, "<svg", "</svg>", "polyline", `<table id="seed">`, `<table id="candidates">`, string(r.Rows[0].Layout), "seed article (Falco)"} {
				if !strings.Contains(dom, want) {
					t.Errorf("DOM lacks %q", want)
				}
			}
			if n := strings.Count(dom, "<tr>"); n < len(r.Rows) {
				t.Errorf("DOM has %d plain rows, want ≥ %d", n, len(r.Rows))
			}
			if strings.Contains(dom, "SIMULATED") != (src == "sim") {
				t.Errorf("DOM SIMULATED mismatch")
			}
		})
	}
}

// TestBrowserWideChart renders a chart over ten octaves (every Falco preset)
// with a too-slow consumer, to look at crowded tick labels.
func TestBrowserWideChart(t *testing.T) {
	bin := renderChromium(t)
	r := renderFixture("bpf")
	r.Rows = nil
	for p := 0; p < 10; p++ {
		for li, l := range DefaultLayouts() {
			m := 30 / float64(p+1+3*li)
			r.Rows = append(r.Rows, Row{SizeBytes: 1 << (20 + p), Layout: l, MissingPct: m, MissingPctSpread: m / 10, PredictedMissingPct: m * 1.05})
		}
	}
	r.Recommendation = Recommendation{Line: "no ring size helps: the consumer is too slow"}
	r.Recommendation.Evidence.Evidence.ConsumerTooSlow = true
	dir := t.TempDir()
	if err := WriteOutputs(dir, r); err != nil {
		t.Fatal(err)
	}
	renderScreenshot(t, bin, "file://"+filepath.Join(dir, "loss.svg"), filepath.Join(t.TempDir(), "loss-wide.png"), 800, 480)
}
