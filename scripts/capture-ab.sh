#!/usr/bin/env bash
# What capture costs the flood, by in-run A/B with short segments: one
# `ringwise sensor` runs the whole time, publishing into a local `ringwise
# nats`, and its BPF programs are detached and attached again every
# $CA_SEGMENT (its lab knob --lab-capture-control, switched by
# internal/tools/segab -control), while `ringwise flood --parallel 4`
# runs without end. The whole-run pairs of scripts/kernel-cost.sh move by
# ±5-9 % from run to run on this kind of VM, and so do 8 s segments; the
# noise of short windows is as large but independent from window to
# window, so hundreds of pairs narrow the interval below a point, which
# whole runs of a 1.3 s flood cannot.
#
# A segment's cost is the workload's CPU per fork: the node's busy CPU
# (every CPU's wall time less its cpuidle time, µs) less the sensor's and
# the NATS server's threads (schedstat): what the flood, and the kernel on
# its behalf (the BPF programs run in its context), pay; the metric
# scripts/kernel-cost.sh's whole runs take (the workload's own CPU time).
# The node's whole busy CPU, the sensor's and NATS's included, is reported
# beside it.
#
#   sudo scripts/capture-ab.sh          (root: it loads BPF; run by scripts/bench.sh)
#
# Env: CA_PAIRS (600), CA_SEGMENT (200ms), CA_SETTLE (30ms: after each
# switch, for the reader's open batch to be published before a segment
# starts), CA_ROWS ("flood-lc flood-default"), RING_SIZE (8MiB),
# CA_OUT (bench/capture-ab.md), CA_TARGETS (bench/capture-ab.targets).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
PAIRS=${CA_PAIRS:-600}
SEGMENT=${CA_SEGMENT:-200ms}
SETTLE=${CA_SETTLE:-30ms}
ROWS=${CA_ROWS:-flood-lc flood-default}
RING_SIZE=${RING_SIZE:-8MiB}
OUT=${CA_OUT:-bench/capture-ab.md}
TARGETS=${CA_TARGETS:-bench/capture-ab.targets}
PORT=${CA_PORT:-14329}
COST_NAME=capab

if [ "$(id -u)" != 0 ]; then
	echo "capture-ab: needs root (loads BPF); skipped" >&2
	exit 0
fi
mkdir -p "$(dirname "$OUT")" "$(dirname "$TARGETS")"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
work=$(mktemp -d)
nats_pid=""
cleanup() {
	[ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/ringwise" ./cmd/ringwise
go build -o "$work/segab" ./internal/tools/segab
RW=$work/ringwise
# shellcheck source=scripts/cost-lib.sh
. scripts/cost-lib.sh
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
start_nats
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

rows=()
for spec in "flood-lc --lifecycle-only" "flood-default"; do
	read -r key flags <<<"$spec"
	case " $ROWS " in *" $key "*) ;; *) continue ;; esac
	echo "=== capture-ab $key: $PAIRS pairs of $SEGMENT" >&2
	rm -f "$work/ctl.sock"
	# shellcheck disable=SC2086
	flock /tmp/ringwise-bpf.lock "$work/segab" -workload flood -ringwise "$RW" -pairs "$PAIRS" -segment "$SEGMENT" -settle "$SETTLE" \
		-ready "capture attached" -control "$work/ctl.sock" -aside "$nats_pid" -quiet -- \
		"$RW" sensor --nats "nats://127.0.0.1:$PORT" --memory-streams --node "$COST_NAME" --ring-size "$RING_SIZE" \
		--lab-capture-control "$work/ctl.sock" $flags >"$work/seg.$key"
	rows+=("$key")
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

: >"$TARGETS"
{
	echo "### In-run A/B of capture: the sensor's programs switched every $SEGMENT"
	echo
	echo "Measured by \`scripts/capture-ab.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs, kernel $(uname -r); load average $load_start at the start, $load_end at the end."
	echo
	echo "One \`ringwise sensor --ring-size $RING_SIZE\` runs the whole time, publishing into a local \`ringwise nats\` (memory streams), while \`ringwise flood --parallel 4\` runs without end; its BPF programs are detached and attached again (its lab knob \`--lab-capture-control\`, switched by \`internal/tools/segab -control\`) so that segments of $SEGMENT alternate without and with capture, in ABBA order, each starting $SETTLE after the switch was answered. The reader, the publisher and the NATS connection run in both halves: what the sensor costs idle (its CPU in the *without* segments, in the table) is in neither difference, which measures what watching the flood adds. **Workload CPU** per fork is the node's busy CPU (every CPU's wall time less its cpuidle time) less the sensor's and the NATS server's threads: what the flood and the kernel on its behalf pay, the BPF programs included (they run in its context); the whole runs above take the flood's own CPU time, the same quantity. **Node CPU** is the whole busy CPU, the sensor's and NATS's included. Overhead per pair = with / without − 1; the median over the pairs with its sign-test interval."
	echo
	echo "| workload | capture | pairs | workload CPU per fork: median [interval] | node CPU per fork: median [interval] | wall per fork: median | sensor CPU per segment: with / without | workload CPU per fork without |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for key in "${rows[@]}"; do
		case $key in
		flood-lc) what="lifecycle-only"; label="kernel cost, flood, lifecycle-only"; goal=2 ;;
		flood-default) what="default syscall set"; label="kernel cost, flood, default syscall set"; goal=10 ;;
		esac
		awk -v wl="flood" -v what="$what" -v label="$label" -v goal="$goal" -v targets="$TARGETS" -v seg="$SEGMENT" '$1 == "summary" {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			o = "node_other_cpu_overhead_pct"; f = "node_fine_cpu_overhead_pct"
			printf "| %s | %s | %d | %+.2f %% [%+.2f, %+.2f] (%.0f %%) | %+.2f %% [%+.2f, %+.2f] | %+.2f %% | %.1f / %.1f ms | %.0f µs |\n",
				wl, what, v["pairs"], v[o "_median"], v[o "_median_lo"], v[o "_median_hi"], v[o "_median_conf"],
				v[f "_median"], v[f "_median_lo"], v[f "_median_hi"], v["wall_per_unit_overhead_pct_median"],
				1000 * v["monitor_cpu_s_per_segment_median"], 1000 * v["monitor_cpu_s_per_segment_without_median"], v["without_other_ns_per_unit_median"] / 1000
			# label, goal, median, lo, hi, conf, pairs, node median, node lo, node hi, segment
			printf "%s\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%.2f\t%.2f\t%.2f\t%s\n", label, goal, v[o "_median"], v[o "_median_lo"], v[o "_median_hi"],
				v[o "_median_conf"], v["pairs"], v[f "_median"], v[f "_median_lo"], v[f "_median_hi"], seg >>targets
		}' "$work/seg.$key"
	done
	echo
	echo "While capture is detached the flood's processes are not seen: this knob is for measuring, never for a sensor in service."
} >"$OUT"
cat "$OUT"
