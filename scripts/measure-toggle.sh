#!/usr/bin/env bash
# Costs `ringwise measure` (its default: lifecycle counted always, syscalls
# in a short window every few seconds) tightly enough to say whether it stays
# under 1 % of the node, and writes the section "`ringwise measure` overhead:
# its parts measured apart" of BENCHMARKS.md (between the measure-toggle markers;
# scripts/bench.sh keeps that section).
#
#   sudo scripts/measure-toggle.sh        (root: it loads BPF; ~15 min)
#
# Why another method: on this kind of VM a workload's cost moves by 7-9 %
# from one window to the next, whatever the window's length, so whole runs
# and 8 s segments (scripts/measure-overhead.sh) give intervals of several %
# around a cost well under 1 %. Here measure's three parts are measured
# apart, each as precisely as it can be:
#  1. its kernel programs, attached and detached in this process by
#     `segab -toggle` in windows of 50 ms (dd) or 200 ms (flood), ABBA,
#     hundreds of pairs: what the sys_exit counter costs while attached
#     (alone, and beside a monitor that already hooks sys_exit, as Falco
#     does), and what the fork, exec and exit counters cost;
#  2. the lifecycle programs' own time per run, from the kernel's BPF run
#     statistics, during a flood and during the spawn loop (segab -workload
#     spawn: a minimal static ELF started over and over, the densest stream
#     of processes) under the default measure; and their whole cost per run
#     (program, dispatch, side costs), from a toggled A/B on the spawn loop,
#     where a process costs a fifth of a flood's, so the same noise is a
#     fifth of the cost per process;
#  3. measure's own CPU (all its threads, /proc/PID/task/*/schedstat, ns)
#     over 30 s of the default measure beside each workload, against the
#     node's busy CPU over the same time.
# The default attaches the sys_exit counter DUTY of the time (its window
# over its period), so its syscall part is DUTY × (1.); the bound adds the
# upper ends of the intervals. The lifecycle part on the flood is the
# dispatch and side cost per run from the spawn loop (its A/B's upper end,
# less the run time there) plus the run time per run on the flood, over the
# flood's CPU per process; and at least the lower end of the flood's own
# toggled A/B, so it never undercuts what the flood measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
OUT=${BENCH_OUT:-BENCHMARKS.md}
DD_PAIRS=${MT_DD_PAIRS:-500}
FLOOD_PAIRS=${MT_FLOOD_PAIRS:-600}
SPAWN_PAIRS=${MT_SPAWN_PAIRS:-600}
OWN_SECS=${MT_OWN_SECS:-30}

if [ "$(id -u)" != 0 ]; then
	echo "measure-toggle: needs root (loads BPF)" >&2
	exit 1
fi
# shellcheck source=scripts/cost-lib.sh
. scripts/cost-lib.sh
bin=$(mktemp -d)
cleanup() {
	for p in $(jobs -p); do kill -INT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT
go build -o "$bin/ringwise" ./cmd/ringwise
go build -o "$bin/segab" ./internal/tools/segab
go build -o "$bin/bpfstat" ./internal/tools/bpfstat
measure_sample "$bin/ringwise"

# toggle KEY WORKLOAD PROGRAMS PAIRS WINDOW SETTLE
toggle() {
	echo "=== toggle $1: $3 on $2, $4 pairs of $5 windows" >&2
	"$bin/segab" -quiet -toggle "$3" -workload "$2" -ringwise "$bin/ringwise" -pairs "$4" -segment "$5" -settle "$6" >"$bin/t.$1"
}

# start_measure NAME FLAGS...: `ringwise measure` until stopped, once it counts.
start_measure() {
	local name=$1
	shift
	"$bin/ringwise" measure --duration 1h --drain 1e9 --what-if-top 0 "$@" >/dev/null 2>"$bin/$name.err" &
	measure_pid=$!
	for _ in $(seq 200); do grep -q counting "$bin/$name.err" 2>/dev/null && break; sleep 0.05; done
	grep -q counting "$bin/$name.err" || { echo "measure-toggle: measure did not count:" >&2; cat "$bin/$name.err" >&2; exit 1; }
	sleep 0.3
}
stop_measure() { kill -INT "$measure_pid"; wait "$measure_pid" || true; }

# The workloads, until stopped.
start_workload() {
	case $1 in
	dd) dd if=/dev/zero of=/dev/null bs=500 count=100000000000 2>/dev/null & ;;
	flood) "$bin/ringwise" flood --procs 4000000 --parallel 4 >/dev/null 2>&1 & ;;
	spawn) "$bin/segab" -workload spawn -workload-only >/dev/null 2>&1 & ;;
	esac
	workload_pid=$!
	sleep 2 # warm-up
}
# (dd by TERM: a script's background job ignores SIGINT; the flood by INT,
# on which it removes its helper copy.)
stop_workload() {
	case $1 in
	dd) kill -TERM "$workload_pid" 2>/dev/null || true ;;
	flood | spawn) kill -INT "$workload_pid" 2>/dev/null || true ;;
	esac
	wait "$workload_pid" 2>/dev/null || true
}

# node_busy: the node's busy CPU ticks (user nice system irq softirq).
node_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# task_ns PID: CPU ns of all the process's threads.
task_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# 1. The programs, toggled.
toggle dd dd syscalls "$DD_PAIRS" 50ms 5ms
toggle flood-sys flood syscalls $((FLOOD_PAIRS / 2)) 200ms 10ms
toggle flood-lc flood lifecycle "$FLOOD_PAIRS" 200ms 10ms
toggle spawn-lc spawn lifecycle "$SPAWN_PAIRS" 200ms 10ms
# Beside a monitor hooking sys_exit: a measure counting every syscall
# stands in for it (Falco's modern probe hooks sys_enter and sys_exit).
start_measure monitor --syscall-sample all
toggle dd-beside dd syscalls "$DD_PAIRS" 50ms 5ms
stop_measure

# 2. The lifecycle programs' own time during a flood, and during the
# spawn loop, under the default measure (the run statistics add two clock
# reads per run: upper bounds).
"$bin/bpfstat" -enable 2>"$bin/stats.err" &
stats_pid=$!
for _ in $(seq 50); do grep -q enabled "$bin/stats.err" 2>/dev/null && break; sleep 0.1; done
# lc_stats WORKLOAD: "runs ns processes busy_ns" of the fork, exec and exit
# programs over 10 s of WORKLOAD.
lc_stats() {
	start_measure stats
	start_workload "$1"
	"$bin/bpfstat" -prefix m_ >"$bin/p0"
	local f0 f1 b0 b1
	f0=$(awk '$1 == "processes" { print $2 }' /proc/stat)
	b0=$(node_busy)
	sleep 10
	"$bin/bpfstat" -prefix m_ >"$bin/p1"
	f1=$(awk '$1 == "processes" { print $2 }' /proc/stat)
	b1=$(node_busy)
	stop_workload "$1"
	stop_measure
	join "$bin/p0" "$bin/p1" | awk -v f="$((f1 - f0))" -v b="$((b1 - b0))" -v hz="$hz" \
		'$2 ~ /^m_(fork|exec|exit)$/ { r += $6 - $3; n += $7 - $4 } END { printf "%.0f %.0f %d %.0f\n", r, n, f, b / hz * 1e9 }'
}
read -r lc_runs lc_ns lc_forks lc_busy_ns < <(lc_stats flood)
read -r sp_runs sp_ns sp_forks sp_busy_ns < <(lc_stats spawn)
kill -INT "$stats_pid"
wait "$stats_pid" || true

# 3. measure's own CPU beside each workload.
declare -A own
for w in dd flood; do
	echo "=== measure's own CPU beside $w, $OWN_SECS s" >&2
	start_workload "$w"
	start_measure own
	m0=$(task_ns "$measure_pid")
	b0=$(node_busy)
	sleep "$OWN_SECS"
	m1=$(task_ns "$measure_pid")
	b1=$(node_busy)
	stop_measure
	stop_workload "$w"
	own[$w]=$(awk -v m0="$m0" -v m1="$m1" -v b0="$b0" -v b1="$b1" -v hz="$hz" -v s="$OWN_SECS" \
		'BEGIN { busy = (b1 - b0) / hz; printf "%.4f %.2f %.4f\n", (m1 - m0) / 1e9, busy, 100 * (m1 - m0) / 1e9 / busy }')
done

# kv FILE KEY: a value of segab's summary line.
kv() { awk -v k="$2" '$1 == "summary" { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' "$1"; }
# metric of each toggle run: dd's own CPU per syscall (ns, schedstat) for
# dd; the node's busy CPU per fork for the flood and the spawn loop, at µs
# (cpuidle) where the kernel has cpuidle, else in /proc/stat's ticks.
metric() {
	case $1 in
	dd*) echo work_cpu_overhead_pct ;;
	*) if [ -n "$(kv "$bin/t.$1" node_fine_cpu_overhead_pct_median)" ]; then echo node_fine_cpu_overhead_pct; else echo node_cpu_overhead_pct; fi ;;
	esac
}
# base KEY: the toggle run's "without" cost per unit, ns.
base() { local v; v=$(kv "$bin/t.$1" without_fine_busy_ns_per_unit_median); [ -n "$v" ] || v=$(kv "$bin/t.$1" without_busy_ns_per_unit_median); echo "$v"; }

# The lifecycle part on the flood: the counters' whole cost per run from
# the spawn loop's A/B (upper end), less their run time there, is the
# dispatch and side cost per run; added to their run time on the flood, per
# process, over the flood's CPU per process. Then at least the flood's own
# A/B's lower end, so the bound never undercuts the direct measurement, and
# the flood's own upper end where its median is above the model.
sp_hi=$(kv "$bin/t.spawn-lc" "$(metric spawn-lc)_median_hi")
sp_base=$(base spawn-lc)
fl_med=$(kv "$bin/t.flood-lc" "$(metric flood-lc)_median")
fl_lo=$(kv "$bin/t.flood-lc" "$(metric flood-lc)_median_lo")
fl_hi=$(kv "$bin/t.flood-lc" "$(metric flood-lc)_median_hi")
read -r sp_rpp lc_run_hi sp_rt lc_dispatch fl_rt fl_rpp fl_busy_pp lc_model lc_pct < <(awk \
	-v hi="$sp_hi" -v b="$sp_base" -v sr="$sp_runs" -v sn="$sp_ns" -v sf="$sp_forks" \
	-v r="$lc_runs" -v n="$lc_ns" -v f="$lc_forks" -v busy="$lc_busy_ns" -v lo="$fl_lo" -v med="$fl_med" -v fhi="$fl_hi" 'BEGIN {
	rpp = sr / sf; tot = hi / 100 * b / rpp; srt = sn / sr; d = tot - srt; if (d < 0) d = 0
	frt = n / r; model = 100 * (frt + d) * r / busy; lc = (lo > model ? lo : model)
	# The model rests on the dispatch and side costs per run being the
	# spawn loop'"'"'s; where the flood'"'"'s own median is above the model, that
	# premise fails there, and the flood'"'"'s own upper end is taken.
	if (med > model && fhi > lc) lc = fhi
	printf "%.4f %.1f %.1f %.1f %.1f %.4f %.1f %.4f %.4f\n", rpp, tot, srt, d, frt, r / f, busy / f, model, lc }')

section=$(mktemp)
{
	echo "<!-- measure-toggle:start (scripts/measure-toggle.sh; scripts/bench.sh keeps this section) -->"
	echo "### \`ringwise measure\` overhead: its parts measured apart"
	echo
	echo "Generated by \`scripts/measure-toggle.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "The whole-run and 8 s A/B above cannot resolve a cost well under 1 %: this VM moves a workload's cost by 7-9 % from one window to the next, whatever the window's length. So measure's parts are measured apart. **Its kernel programs**: \`segab -toggle\` loads measure's own counting programs once and attaches them for the *with* windows and detaches them for the others (ABBA, 5-10 ms of settling after each switch outside the window), on one long run of the workload; hundreds of short pairs narrow the interval by their square root. A pair's overhead is with / without − 1 of dd's own CPU per syscall (/proc/PID/schedstat, ns) or of the node's busy CPU per fork (each CPU's wall time less its cpuidle time, µs); the table gives the median with its distribution-free interval (sign test, ≥ 95 %) and the mean with its 95 % interval. **Their own time per run** from the kernel's BPF run statistics (upper bounds: the statistics add two clock reads per run). The *spawn loop* (\`segab -workload spawn\`) starts a static executable of three instructions (exit) over and over from 4 processes: the densest stream of processes, one fork, one exec and one exit each. **Measure's own CPU**: all its threads (/proc/PID/task/*/schedstat) over $OWN_SECS s of the default \`ringwise measure\` beside each workload, against the node's busy CPU in that time (/proc/stat)."
	echo
	echo "| programs attached in the *with* windows | workload | pairs × window | overhead while attached: median [interval] | mean [95 %] |"
	echo "|---|---|---:|---:|---:|"
	for k in dd dd-beside flood-sys flood-lc spawn-lc; do
		f="$bin/t.$k"
		m=$(metric "$k")
		case $k in
		dd) what="sys_exit counter"; wl="dd bs=500" ;;
		dd-beside) what="sys_exit counter, beside a monitor hooking sys_exit"; wl="dd bs=500" ;;
		flood-sys) what="sys_exit counter"; wl="flood --parallel 4" ;;
		flood-lc) what="fork, exec and exit counters"; wl="flood --parallel 4" ;;
		spawn-lc) what="fork, exec and exit counters"; wl="spawn loop (4 × a static ELF that only exits)" ;;
		esac
		printf '| %s | %s | %s × %s s | %+.2f %% [%+.2f, %+.2f] | %+.2f %% [%+.2f, %+.2f] |\n' "$what" "$wl" "$(kv "$f" pairs)" "$(kv "$f" segment_s)" \
			"$(kv "$f" "${m}_median")" "$(kv "$f" "${m}_median_lo")" "$(kv "$f" "${m}_median_hi")" "$(kv "$f" "${m}_mean")" "$(kv "$f" "${m}_ci95_lo")" "$(kv "$f" "${m}_ci95_hi")"
	done
	echo
	read -r own_dd_s own_dd_busy own_dd_pct <<<"${own[dd]}"
	read -r own_fl_s own_fl_busy own_fl_pct <<<"${own[flood]}"
	awk -v runs="$lc_runs" -v ns="$lc_ns" -v forks="$lc_forks" -v busy="$lc_busy_ns" \
		-v sruns="$sp_runs" -v sns="$sp_ns" -v sforks="$sp_forks" -v sbusy="$sp_busy_ns" \
		-v ods="$own_dd_s" -v odb="$own_dd_busy" -v odp="$own_dd_pct" -v ofs="$own_fl_s" -v ofb="$own_fl_busy" -v ofp="$own_fl_pct" -v secs="$OWN_SECS" 'BEGIN {
		printf "Lifecycle programs under the default measure, from the kernel'"'"'s BPF run statistics over 10 s: during the flood %d runs (%.2f per process), %.0f ns per run, %.2f µs per process against the node'"'"'s %.0f µs of busy CPU per process (**%.3f %%** of it); during the spawn loop %d runs (%.2f per process), %.0f ns per run, against %.0f µs per process.\n\n", runs, runs / forks, ns / runs, ns / forks / 1000, busy / forks / 1000, 100 * ns / busy, sruns, sruns / sforks, sns / sruns, sbusy / sforks / 1000
		printf "Measure'"'"'s own CPU (default flags): %.3f s in %d s beside dd (node busy %.1f s: **%.3f %%**), %.3f s beside the flood (node busy %.1f s: **%.3f %%**).\n", ods, secs, odb, odp, ofs, ofb, ofp
	}'
	echo
	awk -v hi="$sp_hi" -v b="$sp_base" -v rpp="$sp_rpp" -v tot="$lc_run_hi" -v srt="$sp_rt" -v d="$lc_dispatch" -v frt="$fl_rt" -v frpp="$fl_rpp" -v fbusy="$fl_busy_pp" \
		-v model="$lc_model" -v med="$fl_med" -v lo="$fl_lo" -v fhi="$fl_hi" -v lc="$lc_pct" 'BEGIN {
		printf "**The lifecycle counters on the flood.** The flood spends so much per process that their cost is within its window-to-window noise (its A/B above). So their whole cost per run (program, the tracepoint'"'"'s dispatch, and what they cost the work around them) is taken where processes are densest, the spawn loop: the upper end of its A/B'"'"'s interval, %+.2f %%, of its %.1f µs per process, over %.2f runs per process, is at most **%.0f ns per run**, of which the programs'"'"' run time is %.0f ns and the rest, %.0f ns, the dispatch and side costs. On the flood that is (%.0f ns run time there + %.0f ns) × %.2f runs per process ÷ %.0f µs per process = **%.3f %%**. The flood'"'"'s own A/B of the same programs gave %+.2f %% [%+.2f, %+.2f]; the lifecycle column takes the larger of %.3f %% and that interval'"'"'s lower end (and that interval'"'"'s upper end where its median is above the model), **%.3f %%**, so that no bound falls under what the flood itself measured.\n", hi, b / 1000, rpp, tot, srt, d, frt, d, frpp, fbusy / 1000, model, med, lo, fhi, model, lc
	}'
	echo
	echo "| workload | syscall counter: $(awk -v d="$DUTY" 'BEGIN { printf "%.1f", 100 * d }') % of the time × its cost while attached (interval's upper end) | lifecycle counters | measure's own CPU | **default measure, upper bound** | at most 1 % |"
	echo "|---|---:|---:|---:|---:|---|"
	bound() { # NAME TOGGLE_KEY LIFECYCLE_PCT OWN_PCT
		local hi
		hi=$(kv "$bin/t.$2" "$(metric "$2")_median_hi")
		awk -v n="$1" -v hi="$hi" -v duty="$DUTY" -v lc="$3" -v own="$4" 'BEGIN {
			s = duty * hi; t = s + lc + own
			printf "| %s | %.1f %% × %+.2f %% = %+.3f %% | %+.3f %% | %+.3f %% | **%+.3f %%** | %s |\n", n, 100 * duty, hi, s, lc, own, t, (t <= 1 ? "yes" : "**no**") }'
	}
	bound "dd bs=500 (forks nothing)" dd 0 "$own_dd_pct"
	bound "dd bs=500, beside a monitor hooking sys_exit" dd-beside 0 "$own_dd_pct"
	bound "flood --parallel 4" flood-sys "$lc_pct" "$own_fl_pct"
	echo
	printf 'The sys_exit counter'"'"'s attach and detach at each window edge run in measure'"'"'s own process and are in its CPU.\n'
	echo
	echo "Raw summaries (segab):"
	echo
	echo '```'
	for k in dd dd-beside flood-sys flood-lc spawn-lc; do
		echo "$k: $(cat "$bin/t.$k")"
	done
	echo '```'
	echo "<!-- measure-toggle:end -->"
} >"$section"

replace_section measure-toggle "$section" "$OUT"
cat "$section"
rm -f "$section"
