#!/usr/bin/env bash
# scale-bench.sh: the measured figures of docs/scaling.md. Runs
# BenchmarkScaleOut once (cmd/ringwise/scale_bench_test.go), as root: real
# BPF sensors for a quiet and a flooding node on this machine, then the
# flooding node's raw stream replayed as 50 virtual nodes (ringwise replay)
# and drained by 1..4 scaled enrichers, then 50 quiet virtual nodes on one
# enricher; then BenchmarkFleetControl (discovery, consumers, leases and
# checkpoints at 1,000 and 10,000 nodes on one server). Writes the Markdown report to $1 (default bench/scale.md) and
# stdout. Takes some 5-10 minutes; it loads BPF, so it waits on the shared
# BPF lock ($RINGWISE_BPF_LOCK, default /tmp/ringwise-bpf.lock).
#
# Knobs: RINGWISE_SCALE_NODES (50), RINGWISE_SCALE_RECORDS (raw batches per
# virtual node, 120), RINGWISE_SCALE_MAX_ENRICHERS (4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
out="${1:-bench/scale.md}"
mkdir -p "$(dirname "$out")"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
RINGWISE_SCALE_BENCH=1 RINGWISE_SCALE_BENCH_OUT="$out" \
	flock "${RINGWISE_BPF_LOCK:-/tmp/ringwise-bpf.lock}" \
	go test -count=1 -run '^$' -bench '^BenchmarkScaleOut$' -benchtime 1x -timeout 60m ./cmd/ringwise/ >&2
# The fleet's control costs at 1,000 and 10,000 nodes (no BPF, one server).
{
	echo
	echo "BenchmarkFleetControl (-benchtime 2000x), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg):"
	echo
	echo '```'
	RINGWISE_SCALE_BENCH=1 go test -count=1 -run '^$' -bench '^BenchmarkFleetControl$' -benchtime 2000x -timeout 60m ./cmd/ringwise/ 2>&1 | grep -E '^Benchmark'
	echo '```'
} >>"$out"
cat "$out"
