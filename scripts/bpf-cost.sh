#!/usr/bin/env bash
# Where a sensor's cost to the node goes, per layout: the BPF programs' own
# time (the kernel's run statistics), the rest of what the workload pays
# (the tracepoint path every syscall takes once sys_exit is hooked, the
# reader's wake-ups, cache effects) and the reader (the sensor process).
#
#   scripts/bpf-cost.sh            (root; run by scripts/bench.sh)
#
# For each sensor configuration below and each workload (the flood, dd
# bs=500), $BC_ROUNDS rounds alternate a run without a sensor and one with
# it; the runs with it have kernel.bpf_stats_enabled on (through
# internal/tools/bpfstat -enable), and the programs' run count and time are
# read before and after the workload (bpfstat). The report gives, per
# configuration and workload, medians over the rounds:
#   - the workload's CPU time (user+sys) without and with the sensor, and
#     the difference;
#   - the programs' total time during the workload and, per program, its
#     runs and ns per run (the sys_exit program runs once per syscall of
#     the node; it reserves, fills and submits the record and reads the
#     ring's fill for the wake-up decision: "program" includes all that);
#   - the difference not spent in the programs (hook dispatch and the
#     slow syscall path, wake-ups, cache misses caused by the reader);
#   - the events delivered and the sensor's own CPU per event (reader).
# The run statistics themselves add two clock reads per program run, which
# scripts/kernel-cost.sh (statistics off) does not pay: its overheads are
# the ones to compare with targets, these say where the cost goes.
#
# Env: BC_ROUNDS (3), FLOOD_PROCS (3000), DD_COUNT (1000000), RING_SIZE
# (8MiB), BC_OUT (bench/bpf-cost.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${BC_ROUNDS:-3}
FLOOD_PROCS=${FLOOD_PROCS:-3000}
DD_COUNT=${DD_COUNT:-1000000}
RING_SIZE=${RING_SIZE:-8MiB}
OUT=${BC_OUT:-bench/bpf-cost.md}
PORT=${BC_PORT:-14332}

if [ "$(id -u)" != 0 ]; then
	echo "bpf-cost: needs root (loads BPF); skipped" >&2
	exit 0
fi
mkdir -p bench "$(dirname "$OUT")"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
work=$(mktemp -d)
go build -o "$work/ringwise" ./cmd/ringwise
go build -o "$work/bpfstat" ./internal/tools/bpfstat
RW=$work/ringwise
nats_pid="" sensor_pid="" stats_pid=""
cleanup() {
	[ -n "$sensor_pid" ] && kill -INT "$sensor_pid" 2>/dev/null && wait "$sensor_pid" 2>/dev/null || true
	[ -n "$stats_pid" ] && kill -INT "$stats_pid" 2>/dev/null && wait "$stats_pid" 2>/dev/null || true
	[ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BC_LOCKED:-}" ]; then
	echo "bpf-cost: waiting for /tmp/ringwise-bpf.lock" >&2
	exec {lk}>/tmp/ringwise-bpf.lock
	flock "$lk"
fi

COST_NAME=bpf-cost
# shellcheck source=scripts/cost-lib.sh
source scripts/cost-lib.sh
start_nats
"$work/bpfstat" -enable 2>"$work/stats.log" &
stats_pid=$!
for _ in $(seq 50); do grep -q enabled "$work/stats.log" 2>/dev/null && break; sleep 0.1; done
grep -q enabled "$work/stats.log" || { echo "bpf-cost: could not enable BPF run statistics:" >&2; cat "$work/stats.log" >&2; exit 1; }

# name|flags
configs=(
	"lifecycle-only|--lifecycle-only"
	"shared, default set|"
	"shared, every syscall|--syscalls all"
	"split, every syscall|--layout split --syscalls all"
	"shared+hints, every syscall|--hints --syscalls all"
)
rows=$work/rows.tsv # config workload round cpu_none cpu_with delivered sensor_cpu prog_ns_total progs
: >"$rows"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
	for c in "${configs[@]}"; do
		name=${c%%|*} flags=${c#*|}
		for w in flood dd; do
			read -r _ none < <(timed "$w")
			# shellcheck disable=SC2086 # the configuration's flags, split on purpose
			start_sensor $flags
			"$work/bpfstat" >"$work/before"
			read -r _ with < <(timed "$w")
			"$work/bpfstat" >"$work/after"
			stop_sensor
			read -r delivered _ scpu _ <<<"$stop_res"
			# per program: name runs ns, over the workload
			progs=$(join "$work/before" "$work/after" | awk '{ dr = $6 - $3; dt = $7 - $4; if (dr > 0) printf "%s:%.0f:%.0f ", $2, dr, dt }')
			total=$(awk -v p="$progs" 'BEGIN { n = split(p, a, " "); for (i = 1; i <= n; i++) { split(a[i], f, ":"); s += f[3] } printf "%.0f", s }')
			printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$w" "$r" "$none" "$with" "$delivered" "$scpu" "$total" "$progs" | tee -a "$rows" >&2
		done
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "Measured by \`scripts/bpf-cost.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs, kernel $(uname -r); $ROUNDS rounds, each configuration and workload run without and then with the sensor; ring $RING_SIZE; flood = \`ringwise flood --procs $FLOOD_PROCS\`; dd = \`dd if=/dev/zero of=/dev/null bs=500 count=$DD_COUNT\`. Load average $load_start at the start, $load_end at the end. The runs with the sensor have the kernel's BPF run statistics on (two clock reads per program run, not paid in *Kernel cost*); medians over the rounds."
	echo
	echo "*Program* is the BPF programs' own time during the workload (reserve, fill, submit and the wake-up decision included); *rest* is the workload's extra CPU time not spent in them: the tracepoint dispatch and slow syscall path every syscall takes once sys_exit is hooked, the reader's wake-ups, and cache misses the reader causes. *Reader* is the sensor process's CPU (user+sys over its whole run) per delivered event."
	echo
	echo "| configuration | workload | CPU s without → with | extra CPU ms | program ms | rest ms | programs: runs, ns per run | events delivered | reader µs/event |"
	echo "|---|---|---:|---:|---:|---:|---|---:|---:|"
	for c in "${configs[@]}"; do
		name=${c%%|*}
		for w in flood dd; do
			awk -F'\t' -v n="$name" -v w="$w" '
			function med(A, m,   i, j, v, t) {
				for (i = 1; i <= m; i++) v[i] = A[i] + 0
				for (i = 2; i <= m; i++) { t = v[i]; j = i - 1; while (j >= 1 && v[j] > t) { v[j + 1] = v[j]; j-- } v[j + 1] = t }
				return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
			}
			$1 == n && $2 == w {
				m++; N[m] = $4; W[m] = $5; X[m] = ($5 - $4) * 1000; D[m] = $6; S[m] = $7; P[m] = $8 / 1e6; R[m] = ($5 - $4) * 1000 - $8 / 1e6
				k = split($9, a, " ")
				for (i = 1; i <= k; i++) { split(a[i], f, ":"); if (!(f[1] in seen)) { seen[f[1]] = 1; names[++nn] = f[1] } runs[f[1], m] = f[2]; ns[f[1], m] = f[3] }
			}
			END {
				if (!m) exit
				pr = ""
				for (q = 1; q <= nn; q++) {
					delete RV; delete NV
					for (i = 1; i <= m; i++) { RV[i] = runs[names[q], i] + 0; NV[i] = (runs[names[q], i] > 0) ? ns[names[q], i] / runs[names[q], i] : 0 }
					pr = pr sprintf("%s%s %.0f × %.0f ns", pr == "" ? "" : "; ", names[q], med(RV, m), med(NV, m))
				}
				for (i = 1; i <= m; i++) U[i] = D[i] > 0 ? 1e6 * S[i] / D[i] : 0
				printf "| %s | %s | %.2f → %.2f | %+.0f | %.0f | %+.0f | %s | %.0f | %.2f |\n", n, w, med(N, m), med(W, m), med(X, m), med(P, m), med(R, m), pr, med(D, m), med(U, m)
			}' "$rows"
		done
	done
} >"$OUT"
cat "$OUT"
echo "bpf-cost: wrote $OUT" >&2
