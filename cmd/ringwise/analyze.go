package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ringwise/ringwise/analyzer/report"
)

// Defaults of 'ringwise analyze --falco-metrics URL'.
const (
	DefaultScrapes     = 1
	DefaultScrapeEvery = 10 * time.Second
	// MaxScrapeBytes bounds one scrape's body.
	MaxScrapeBytes = 16 << 20
)

func cmdAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze", "analyze [--json] [--drop-window D] [--falco-metrics FILE|URL [--scrapes N --scrape-every D]] [FILE|-]\n\n"+
		"FILE is Falco's JSON output (json_output: true), or 'ringwise up --output json'. Falco's drop alerts\n"+
		"(\"Falco internal: syscall event drop\") and metrics snapshots are read as evidence, not events.\n"+
		"--falco-metrics reads Falco's Prometheus text (webserver.prometheus_metrics_enabled): a file of one\n"+
		"or more scrapes, or the live endpoint (http://HOST:8765/metrics), and reports drop % by category over time", stderr)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	window := fs.Duration("drop-window", report.DefaultDropWindow, "events up to this long after a Falco drop alert count as near it")
	metrics := fs.String("falco-metrics", "", "Falco's Prometheus metrics: a file (one scrape or consecutive scrapes) or an http(s) URL")
	scrapes := fs.Int("scrapes", DefaultScrapes, "with a --falco-metrics URL: scrapes to take")
	every := fs.Duration("scrape-every", DefaultScrapeEvery, "with a --falco-metrics URL: time between scrapes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scrapes < 1 {
		return fmt.Errorf("--scrapes %d: want >= 1", *scrapes)
	}
	if *every <= 0 {
		return fmt.Errorf("--scrape-every %v: want > 0", *every)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("want at most one file, got %v", fs.Args())
	}
	out := analyzeOutput{}
	if *metrics != "" {
		rs, err := readFalcoMetrics(ctx, *metrics, *scrapes, *every, stderr)
		if err != nil {
			return err
		}
		m := report.AnalyzeFalcoCounters(rs)
		out.FalcoMetrics = &m
	}
	if fs.NArg() == 1 || *metrics == "" {
		var in io.Reader = os.Stdin
		name := "stdin"
		if fs.NArg() == 1 && fs.Arg(0) != "-" {
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return err
			}
			defer f.Close()
			in, name = f, fs.Arg(0)
		}
		sum, st, err := report.AnalyzeFalco(in, report.WithDropWindow(*window))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if st.Malformed > 0 {
			fmt.Fprintf(stderr, "ringwise analyze: %s: %d of %d lines malformed and skipped (first: %s)\n", name, st.Malformed, st.Lines, st.FirstError)
		}
		out.Summary = &sum
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if out.FalcoMetrics == nil {
			return enc.Encode(out.Summary)
		}
		return enc.Encode(out)
	}
	if out.Summary != nil {
		report.WriteText(stdout, *out.Summary)
	}
	if out.FalcoMetrics != nil {
		fmt.Fprintf(stdout, "\n--falco-metrics %s\n", *metrics)
		report.WriteFalcoMetricsText(stdout, *out.FalcoMetrics)
	}
	return nil
}

// analyzeOutput is the JSON of 'analyze --json --falco-metrics'.
type analyzeOutput struct {
	Summary      *report.Summary            `json:"summary,omitempty"`
	FalcoMetrics *report.FalcoMetricsReport `json:"falco_metrics"`
}

// readFalcoMetrics reads Falco's counters from a file or, for an http(s)
// URL, from n scrapes taken every interval (each timestamped on receipt).
func readFalcoMetrics(ctx context.Context, src string, n int, every time.Duration, stderr io.Writer) ([]report.FalcoCounters, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rs, st, skipped, err := report.FalcoCountersFromText(f)
		if err != nil {
			return nil, fmt.Errorf("--falco-metrics %s: %w", src, err)
		}
		if st.Bad > 0 || skipped > 0 {
			fmt.Fprintf(stderr, "ringwise analyze: %s: %d bad lines skipped (first: %s), %d scrapes without Falco counters\n", src, st.Bad, st.FirstError, skipped)
		}
		return rs, nil
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var rs []report.FalcoCounters
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return rs, ctx.Err()
			case <-time.After(every):
			}
		}
		c, err := scrapeFalco(ctx, client, src)
		if err != nil {
			return nil, fmt.Errorf("--falco-metrics %s: scrape %d of %d: %w", src, i+1, n, err)
		}
		rs = append(rs, c)
	}
	return rs, nil
}

func scrapeFalco(ctx context.Context, client *http.Client, url string) (report.FalcoCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return report.FalcoCounters{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return report.FalcoCounters{}, err
	}
	defer resp.Body.Close()
	now := time.Now()
	if resp.StatusCode != http.StatusOK {
		return report.FalcoCounters{}, fmt.Errorf("HTTP %s", resp.Status)
	}
	rs, _, _, err := report.FalcoCountersFromText(io.LimitReader(resp.Body, MaxScrapeBytes))
	if err != nil {
		return report.FalcoCounters{}, err
	}
	if len(rs) != 1 {
		return report.FalcoCounters{}, errors.New("the endpoint returned more than one scrape (repeated series)")
	}
	c := rs[0]
	if c.TsNs == 0 {
		c.TsNs = now.UnixNano()
	}
	return c, nil
}
