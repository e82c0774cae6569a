#!/usr/bin/env bash
# e2e-bench.sh: the end-to-end rate of issue 12 item 3. Runs
# BenchmarkE2ERate once (internal/pipeline/e2e_bench_test.go): a source
# writing a bounded ring at a set rate R, the sensor's real code path
# (sensor.Run, publishing through a bus.Spool), `ringwise nats` in its own
# process (real JetStream, file streams), and the enricher and analyzer; R
# stepped over $RINGWISE_E2E_RATES. Writes the Markdown section to $1
# (default bench/e2e.md), which scripts/bench.sh puts in BENCHMARKS.md, and
# each rate's CPU profile to bench/e2e-prof/ (not committed).
#
# Knobs: RINGWISE_E2E_RATES (events/s, comma-separated; default
# 200000,400000,600000,800000,1000000,1200000), RINGWISE_E2E_SECONDS (5).
# No BPF, but it loads both cores for a minute or two: it takes the shared
# lock ($RINGWISE_BPF_LOCK, default /tmp/ringwise-bpf.lock) so that no
# flood measures it, nor it a flood.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
out="${1:-bench/e2e.md}"
mkdir -p "$(dirname "$out")" bench/e2e-prof
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
bin=$(mktemp -d)/ringwise
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/ringwise
body=$(mktemp)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
RINGWISE_E2E_BENCH=1 RINGWISE_BIN="$bin" RINGWISE_E2E_OUT="$body" RINGWISE_E2E_PROF="$PWD/bench/e2e-prof" \
	flock "${RINGWISE_BPF_LOCK:-/tmp/ringwise-bpf.lock}" \
	go test -count=1 -run '^$' -bench '^BenchmarkE2ERate$' -benchtime 1x -timeout 60m ./internal/pipeline/ >&2
{
	echo "Measured by \`scripts/e2e-bench.sh\` (BenchmarkE2ERate) on $started, commit $(git rev-parse --short HEAD), $(nproc) CPUs, GOMAXPROCS=$(nproc); load average $load_start at the start (the machine may be shared: CPU per event is steadier than the rate)."
	echo
	echo "Each row: a source writes an 8 MiB ring (2^17 records) at R events/s for ${RINGWISE_E2E_SECONDS:-5} s (a flood-like stream: 500 processes at a time, fork, exec, 200 syscalls, exit); the sensor's real code path reads it and publishes (S2-compressed batches, the default) through its spool (256 MiB, as \`ringwise sensor\`) to \`ringwise nats\` (a separate process, file streams), the enricher and the analyzer consume in the benchmark's process. **Carried** = no ring drop, no spool loss, every produced event analysed, and the drain after the source stopped under a fifth of the run. CPU per event: the NATS server's from /proc; the other process's split by pprof labels (sensor, enricher, analyzer); *unlabelled* is that process's rest (NATS client reader goroutines of the shared connection, GC, runtime). NATS share = server CPU over all CPU."
	echo
	cat "$body"
} >"$out"
rm -f "$body"
cat "$out"
