#!/usr/bin/env bash
# Measures what `ringwise measure` (counting only: per-CPU counters, no
# records, no ring) costs the node's workload, and writes the section
# "ringwise measure overhead" of BENCHMARKS.md (between the
# measure-overhead markers; scripts/bench.sh keeps that section).
#
#   sudo scripts/measure-overhead.sh        (root: it loads BPF)
#
# Two workloads, as in the performance issue: the standard flood
# (`ringwise flood --procs $MO_PROCS --parallel 4`) and a syscall-bound
# `dd if=/dev/zero of=/dev/null bs=500 count=$MO_DD`. Runs alternate without
# and with `ringwise measure` attached ($MO_PAIRS pairs, default 5); the
# table gives the median and the spread (min–max) of the wall time and the
# CPU time (user+sys of the workload and its children), and the measuring
# process's own CPU time. Run it under flock /tmp/ringwise-bpf.lock on a
# shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
PAIRS=${MO_PAIRS:-5}
# Long enough runs (several seconds each) to span several of measure's
# default syscall windows (20 ms every 4 s): a run shorter than the period
# would hit a window or not by chance.
PROCS=${MO_PROCS:-12000}
DD=${MO_DD:-20000000}
OUT=${BENCH_OUT:-BENCHMARKS.md}

if [ "$(id -u)" != 0 ]; then
	echo "measure-overhead: needs root (loads BPF)" >&2
	exit 1
fi
# shellcheck source=scripts/cost-lib.sh
. scripts/cost-lib.sh
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/ringwise" ./cmd/ringwise
# measure's default --syscall-sample and the share of the time its
# syscall counter is attached (SAMPLE, WIN, PERIOD, DUTY).
measure_sample "$bin/ringwise"
# In-run segments: two of measure's periods each.
SEGMENT=$(awk -v p="$PERIOD" 'BEGIN { print 2 * p }')

# run WORKLOAD: prints "wall cpu" in seconds.
run() {
	local t0 t1 c0 c1 me=$BASHPID
	read -r c0 < <(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
	t0=$(date +%s.%N)
	case $1 in
	flood) "$bin/ringwise" flood --procs "$PROCS" --parallel 4 2>/dev/null ;;
	dd) dd if=/dev/zero of=/dev/null bs=500 count="$DD" 2>/dev/null ;;
	esac
	t1=$(date +%s.%N)
	read -r c1 < <(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
	awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f %.3f\n", b - a, (d - c) / hz }'
}

# with WORKLOAD: the same with `ringwise measure` counting; prints
# "wall cpu measure_cpu".
with() {
	# shellcheck disable=SC2086 # MFLAGS: measure's flags of this pair set
	"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 $MFLAGS >/dev/null 2>"$bin/measure.err" &
	local pid=$!
	# Wait until it counts (its stderr says so), then a little more.
	for _ in $(seq 100); do grep -q counting "$bin/measure.err" 2>/dev/null && break; sleep 0.05; done
	sleep 0.3
	local m0 m1 r
	m0=$(awk '{print $14+$15}' /proc/$pid/stat)
	r=$(run "$1")
	m1=$(awk '{print $14+$15}' /proc/$pid/stat)
	kill -INT "$pid"
	wait "$pid" || true
	echo "$r $(awk -v a="$m0" -v b="$m1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz }')"
}

declare -A res
pairs() { # pairs KEY WORKLOAD
	run "$2" >/dev/null # warm-up (page cache, helper copy)
	# ABBA: odd pairs run without first, even pairs with first, so that a
	# drift over the pairs (page cache, the host's load) falls on both
	# sides alike instead of always favouring the second run.
	for i in $(seq "$PAIRS"); do
		echo "=== $1 pair $i/$PAIRS" >&2
		if [ $((i % 2)) = 1 ]; then
			res[$1,off]+="$(run "$2")"$'\n'
			res[$1,on]+="$(with "$2")"$'\n'
		else
			res[$1,on]+="$(with "$2")"$'\n'
			res[$1,off]+="$(run "$2")"$'\n'
		fi
	done
}
MFLAGS=""
pairs flood flood
pairs dd dd
MFLAGS="--syscall-sample all"
pairs flood-all flood
pairs dd-all dd
MFLAGS=""
# Beside a monitor: on a node where Falco runs, sys_enter/sys_exit are
# already hooked, so every syscall already takes the kernel's tracepoint
# path; what measure adds there is its program. A first `ringwise measure`
# stands in for that monitor during these pairs.
"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 --syscall-sample all >/dev/null 2>"$bin/monitor.err" &
monitor=$!
for _ in $(seq 100); do grep -q counting "$bin/monitor.err" 2>/dev/null && break; sleep 0.05; done
pairs flood-beside flood
pairs dd-beside dd
kill -INT "$monitor"
wait "$monitor" || true

# Beside a monitor the pairs carry that monitor's own noise (several % per
# pair on dd). What the default measure adds there is its programs' time:
# the monitor already pays the hook's path, so measure's sys_exit program
# adds its run time for the share of the time it is attached, and its
# lifecycle programs theirs per fork, exec and exit. The kernel's BPF run
# statistics give both per run (they add two clock reads per run, so the
# figures are upper bounds), on a tenth of the dd and a quarter of the flood.
go build -o "$bin/bpfstat" ./internal/tools/bpfstat
"$bin/bpfstat" -enable 2>"$bin/stats.err" &
stats_pid=$!
for _ in $(seq 50); do grep -q enabled "$bin/stats.err" 2>/dev/null && break; sleep 0.1; done
"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 --syscall-sample all >/dev/null 2>"$bin/progs.err" &
progs_pid=$!
for _ in $(seq 100); do grep -q counting "$bin/progs.err" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
"$bin/bpfstat" -prefix m_ >"$bin/p0"
dd if=/dev/zero of=/dev/null bs=500 count=$((DD / 10)) 2>/dev/null
"$bin/bpfstat" -prefix m_ >"$bin/p1"
"$bin/ringwise" flood --procs $((PROCS / 4)) --parallel 4 >/dev/null 2>&1
"$bin/bpfstat" -prefix m_ >"$bin/p2"
kill -INT "$progs_pid"; wait "$progs_pid" || true
kill -INT "$stats_pid"; wait "$stats_pid" || true
# "name runs ns" over each part
join "$bin/p0" "$bin/p1" | awk '{ print $2, $6 - $3, $7 - $4 }' >"$bin/dd.progs"
join "$bin/p1" "$bin/p2" | awk '{ print $2, $6 - $3, $7 - $4 }' >"$bin/flood.progs"

# In-run A/B (internal/tools/segab): one long run of the workload, with
# measure started and stopped so that segments of two of its periods (8 s
# at its default) alternate without and
# with it (ABBA), each costed as the node's busy CPU per unit of progress
# (dd's syscalls, the node's forks). The whole-run pairs above differ by
# ±5-12 % from pair to pair on this VM; adjacent segments of one run differ
# by well under 1 % for dd, so their mean's 95 % interval can say whether
# the cost is under 1 %.
go build -o "$bin/segab" ./internal/tools/segab
SEG_DD=${MO_SEG_DD_PAIRS:-12}
SEG_FLOOD=${MO_SEG_FLOOD_PAIRS:-16}
seg() { # seg KEY WORKLOAD PAIRS
	echo "=== in-run A/B $1 ($3 pairs of ${SEGMENT} s segments)" >&2
	"$bin/segab" -workload "$2" -ringwise "$bin/ringwise" -pairs "$3" -segment "${SEGMENT}s" -- \
		"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 >"$bin/seg.$1"
}
seg dd dd "$SEG_DD"
seg flood flood "$SEG_FLOOD"
"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 --syscall-sample all >/dev/null 2>"$bin/monitor2.err" &
monitor=$!
for _ in $(seq 100); do grep -q counting "$bin/monitor2.err" 2>/dev/null && break; sleep 0.05; done
seg dd-beside dd "$SEG_DD"
seg flood-beside flood "$SEG_FLOOD"
kill -INT "$monitor"
wait "$monitor" || true

# stats COLUMN LINES: "median min max"
stats() {
	awk -v c="$1" 'NF { print $c }' <<<"$2" | sort -g |
		awk '{ v[++n] = $1 } END { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, v[1], v[n] }'
}

section=$(mktemp)
{
	echo "<!-- measure-overhead:start (scripts/measure-overhead.sh; scripts/bench.sh keeps this section) -->"
	echo "## \`ringwise measure\` overhead"
	echo
	echo "Generated by \`scripts/measure-overhead.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "$PAIRS alternating pairs per workload (without and with \`ringwise measure\` counting, in ABBA order: odd pairs without first, even pairs with first); median (min–max) in seconds. CPU is user+sys of the workload and its children; *measure CPU* is the measuring process's own CPU time during the run (it reads the kernel's 10 ms bins about once a second and toggles the syscall counter for the windows)."
	echo
	echo "Rows without a suffix are measure's default: syscalls counted in a $WIN s window every $PERIOD s (\`--syscall-sample $SAMPLE\`), lifecycle always, the rest of the syscall curve estimated. Rows *every syscall* are \`--syscall-sample all\`: there the cost is mostly the kernel's, since hooking sys_exit at all sends every syscall through the tracepoint path (syscall-bound dd pays it on each of its syscalls). Beside a monitor that already hooks it — Falco hooks sys_enter and sys_exit — a first \`ringwise measure --syscall-sample all\` stands in for that monitor, and the rows *beside a monitor* show what the default measure adds there."
	echo
	echo "| workload | wall without | wall with | wall overhead | CPU without | CPU with | CPU overhead | measure CPU |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for w in flood dd flood-all dd-all flood-beside dd-beside; do
		read -r wo wo_lo wo_hi < <(stats 1 "${res[$w,off]}")
		read -r ww ww_lo ww_hi < <(stats 1 "${res[$w,on]}")
		read -r co co_lo co_hi < <(stats 2 "${res[$w,off]}")
		read -r cw cw_lo cw_hi < <(stats 2 "${res[$w,on]}")
		read -r mc _ _ < <(stats 3 "${res[$w,on]}")
		name=$w
		[ "$w" = flood ] && name="flood, $PROCS processes"
		[ "$w" = dd ] && name="dd bs=500 count=$DD"
		[ "$w" = flood-all ] && name="flood, $PROCS processes, every syscall"
		[ "$w" = dd-all ] && name="dd bs=500 count=$DD, every syscall"
		[ "$w" = flood-beside ] && name="flood, $PROCS processes, beside a monitor hooking sys_exit"
		[ "$w" = dd-beside ] && name="dd bs=500 count=$DD, beside a monitor hooking sys_exit"
		awk -v n="$name" -v wo="$wo" -v wol="$wo_lo" -v woh="$wo_hi" -v ww="$ww" -v wwl="$ww_lo" -v wwh="$ww_hi" \
			-v co="$co" -v col="$co_lo" -v coh="$co_hi" -v cw="$cw" -v cwl="$cw_lo" -v cwh="$cw_hi" -v mc="$mc" 'BEGIN {
			printf "| %s | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %+.1f %% | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %+.1f %% | %.3f |\n",
				n, wo, wol, woh, ww, wwl, wwh, 100 * (ww - wo) / wo, co, col, coh, cw, cwl, cwh, 100 * (cw - co) / co, mc }'
	done
	echo
	# The A/B rows above carry the machine's noise (a few %). The sampled
	# cost can also be derived from this run's own rows: the per-syscall
	# counter is attached for window/period of the time, and while attached
	# costs what the "every syscall" row measured.
	read -r dco _ _ < <(stats 2 "${res[dd-all,off]}")
	read -r dcw _ _ < <(stats 2 "${res[dd-all,on]}")
	read -r fco _ _ < <(stats 2 "${res[flood-all,off]}")
	read -r fcw _ _ < <(stats 2 "${res[flood-all,on]}")
	awk -v dco="$dco" -v dcw="$dcw" -v fco="$fco" -v fcw="$fcw" -v duty="$DUTY" 'BEGIN {
		d = 100 * (dcw - dco) / dco; f = 100 * (fcw - fco) / fco
		printf "Derived from this run: the default attaches the syscall counter %.1f %% of the time, so it costs about %.1f %% of the every-syscall overhead: dd %+.2f %% (%.1f %% × %+.1f %%), flood %+.2f %% (%.1f %% × %+.1f %%), plus its lifecycle counters (one per-CPU increment per fork, exec and exit).\n",
			100 * duty, 100 * duty, duty * d, 100 * duty, d, duty * f, 100 * duty, f }'
	echo
	read -r dbo _ _ < <(stats 2 "${res[dd-beside,off]}")
	read -r fbo _ _ < <(stats 2 "${res[flood-beside,off]}")
	awk -v dbo="$dbo" -v fbo="$fbo" -v dd="$DD" -v procs="$PROCS" -v ddp="$bin/dd.progs" -v flp="$bin/flood.progs" -v duty="$DUTY" 'BEGIN {
		while ((getline l < ddp) > 0) { split(l, f, " "); if (f[1] == "m_sys_exit" && f[2] > 0) { dns = f[3] / f[2]; druns = f[2] } }
		while ((getline l < flp) > 0) { split(l, f, " "); if (f[2] > 0) { R[f[1]] = f[2]; N[f[1]] = f[3] } }
		if (!dns || !(("m_sys_exit") in R)) { print "Beside a monitor, derived: the run statistics could not be read (see the script)."; exit }
		# dd: per syscall of the whole dd, as in the beside rows (each of its DD blocks is a read and a write)
		dcost = duty * dns * 2 * dd / 1e9
		# flood: per PROCS processes (the stats ran on a quarter of them)
		fsys = duty * N["m_sys_exit"] * 4 / 1e9
		flc = (N["m_fork"] + N["m_exec"] + N["m_exit"]) * 4 / 1e9
		printf "Beside a monitor, derived from the programs'"'"' own time (the kernel'"'"'s BPF run statistics, an upper bound: they add two clock reads per run): measure'"'"'s sys_exit program takes %.0f ns per run (%d runs on a tenth of the dd), so attached %.1f %% of the time it adds %.3f s to the dd beside a monitor, %+.2f %% of its %.2f s; on the flood it adds %.3f s for syscalls and %.3f s for its fork, exec and exit counters (%.0f, %.0f and %.0f ns per run), %+.2f %% of %.2f s. The A/B rows beside a monitor carry that monitor'"'"'s noise instead (their pairs differ by several %% either way).\n",
			dns, druns, 100 * duty, dcost, 100 * dcost / dbo, dbo, fsys, flc, N["m_fork"] / R["m_fork"], N["m_exec"] / R["m_exec"], N["m_exit"] / R["m_exit"], 100 * (fsys + flc) / fbo, fbo }'
	echo
	echo "### In-run A/B: ${SEGMENT} s segments of one run"
	echo
	echo "\`internal/tools/segab\`: one long run of the workload (\`dd bs=500\` without end, or \`ringwise flood --parallel 4\` of 4M processes), with \`ringwise measure\` (its default, \`--syscall-sample $SAMPLE\`) started and stopped so that ${SEGMENT} s segments alternate without and with it, in ABBA order; a segment starts 0.3 s after measure printed \"counting\" or after it exited, so its start-up (loading and verifying its BPF: *start-up CPU*) and its final report fall outside. Each ${SEGMENT} s segment holds two of measure's $PERIOD s periods, so two $WIN s windows. A segment's cost is the node's busy CPU time (/proc/stat: user, nice, system, irq, softirq; measure's own CPU included) per unit of progress: dd's read and write syscalls (/proc/PID/io), or the node's forks (/proc/stat processes). For dd also dd's own CPU time per syscall (/proc/PID/schedstat, ns), and for both the wall time per unit (the throughput). Overhead per pair = with / without − 1; the table gives the median over the pairs with a distribution-free interval for it (the sign test: the k-th smallest and largest pair, at least 95 % confidence: 97.9 % for 16 pairs, 96.1 % for 12), the spread, and the mean with its 95 % interval (Student's t), which one outlier segment can widen (a flood's segment now and then loses 10 % of its forks to the host). The verdict uses the median's interval. Adjacent segments share the host's load and the CPU's clock, which is why their pairs differ by far less than whole runs do."
	echo
	echo "| workload | pairs | node CPU per unit: median [interval] | min–max | mean [95 %] | dd CPU per syscall: median [interval] | wall per unit: median | measure CPU per segment | start-up CPU | at most 1 % |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for w in dd flood dd-beside flood-beside; do
		f="$bin/seg.$w"
		name=$w
		[ "$w" = dd ] && name="dd bs=500"
		[ "$w" = flood ] && name="flood"
		[ "$w" = dd-beside ] && name="dd bs=500, beside a monitor hooking sys_exit"
		[ "$w" = flood-beside ] && name="flood, beside a monitor hooking sys_exit"
		awk -v n="$name" '$1 == "summary" {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			k = "node_cpu_overhead_pct"; w = "work_cpu_overhead_pct"
			work = ((w "_median") in v) ? sprintf("%+.2f %% [%+.2f, %+.2f]", v[w "_median"], v[w "_median_lo"], v[w "_median_hi"]) : "—"
			if (v[k "_median_hi"] + 0 <= 1) verdict = "yes: the interval is under 1 %"
			else if (v[k "_median"] + 0 <= 1) verdict = sprintf("median yes; its interval reaches %+.2f %%", v[k "_median_hi"])
			else verdict = "**no**"
			printf "| %s | %d | %+.2f %% [%+.2f, %+.2f] | %+.2f – %+.2f | %+.2f %% [%+.2f, %+.2f] | %s | %+.2f %% | %.3f s | %.3f s | %s |\n",
				n, v["pairs"], v[k "_median"], v[k "_median_lo"], v[k "_median_hi"], v[k "_min"], v[k "_max"], v[k "_mean"], v[k "_ci95_lo"], v[k "_ci95_hi"], work,
				v["wall_per_unit_overhead_pct_median"], v["monitor_cpu_s_per_segment_median"], v["monitor_startup_cpu_s_median"], verdict
		}' "$f"
	done
	echo
	echo "Segments (segab's lines; busy and dd CPU in ns per unit):"
	echo
	echo '```'
	for w in dd flood dd-beside flood-beside; do
		echo "$w:"; grep '^seg ' "$bin/seg.$w" | sed 's/^seg //'
	done
	echo '```'
	echo
	echo "Raw pairs (wall cpu [measure_cpu]):"
	echo
	echo '```'
	for w in flood dd flood-all dd-all flood-beside dd-beside; do
		echo "$w without:"; printf '%s' "${res[$w,off]}"
		echo "$w with:"; printf '%s' "${res[$w,on]}"
	done
	echo '```'
	echo "<!-- measure-overhead:end -->"
} >"$section"

replace_section measure-overhead "$section" "$OUT"
cat "$section"
rm -f "$section"
