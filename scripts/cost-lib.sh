# shellcheck shell=bash
# Shared by scripts/kernel-cost.sh and scripts/bpf-cost.sh (sourced): a
# local `ringwise nats`, a `ringwise sensor` started and stopped around a
# timed workload, and the workloads themselves. The caller sets RW (the
# ringwise binary), work (a scratch directory), PORT, RING_SIZE,
# FLOOD_PROCS, DD_COUNT and COST_NAME (its name, for messages); nats_pid and
# sensor_pid are the caller's to clean up.

# start_nats: `ringwise nats` on 127.0.0.1:$PORT with its store in $work.
start_nats() {
	: >"$work/nats.log"
	"$RW" nats --listen "127.0.0.1:$PORT" --store "$work/js" >"$work/nats.log" 2>&1 &
	nats_pid=$!
	for _ in $(seq 100); do
		grep -q 'JetStream on' "$work/nats.log" 2>/dev/null && break
		sleep 0.2
	done
}

# cpu_ticks PID: utime+stime of a live process, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# start_sensor FLAGS...: a sensor publishing to the local NATS (memory
# streams unless STREAMS_FLAG says otherwise), once its capture is attached.
start_sensor() {
	: >"$work/sensor.log"
	"$RW" sensor --nats "nats://127.0.0.1:$PORT" ${STREAMS_FLAG---memory-streams} --node "$COST_NAME" --ring-size "$RING_SIZE" "$@" \
		>/dev/null 2>"$work/sensor.log" &
	sensor_pid=$!
	for _ in $(seq 300); do
		grep -q 'capture attached' "$work/sensor.log" && break
		if ! kill -0 "$sensor_pid" 2>/dev/null; then
			echo "$COST_NAME: sensor exited:" >&2
			cat "$work/sensor.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	grep -q 'capture attached' "$work/sensor.log" || { echo "$COST_NAME: sensor not attached after 30s" >&2; cat "$work/sensor.log" >&2; exit 1; }
	sleep 0.3 # the snapshot's publish settles
}

# stop_sensor: sets stop_res to "delivered dropped sensor_cpu_s sensor_hwm_kib"
# (not in a subshell: the sensor must be this shell's child to be waited for).
stop_res=""
stop_sensor() {
	local ticks hwm line
	ticks=$(cpu_ticks "$sensor_pid")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$sensor_pid/status" 2>/dev/null || echo 0)
	kill -INT "$sensor_pid"
	wait "$sensor_pid" || true
	sensor_pid=""
	line=$(grep 'drained; attempted' "$work/sensor.log" || true)
	[ -n "$line" ] || { echo "$COST_NAME: the sensor did not report its counters:" >&2; tail -5 "$work/sensor.log" >&2; }
	# "attempted [a b] delivered [c d] dropped [e f] shed [...]"
	stop_res=$(awk -v l="$line" -v t="$ticks" -v hz="$hz" -v hwm="$hwm" 'BEGIN {
		gsub(/[][]/, "", l); n = split(l, w, " ")
		for (i = 1; i <= n; i++) { if (w[i] == "delivered") d = w[i+1] + w[i+2]; if (w[i] == "dropped") x = w[i+1] + w[i+2] }
		printf "%.0f %.0f %.3f %.0f\n", d, x, t / hz, hwm }')
}

# timed WORKLOAD: prints "wall cpu" (s); cpu is the workload's user+sys
# with its children.
timed() {
	local TIMEFORMAT='%3R %3U %3S' t
	case $1 in
	flood) t=$( { time "$RW" flood --procs "$FLOOD_PROCS" >/dev/null 2>&1; } 2>&1 ) ;;
	dd) t=$( { time dd if=/dev/zero of=/dev/null bs=500 count="$DD_COUNT" 2>/dev/null; } 2>&1 ) ;;
	esac
	awk '{ printf "%s %.3f\n", $1, $2 + $3 }' <<<"$t"
}

# replace_section NAME SECTION_FILE OUT: put SECTION_FILE (which starts with
# "<!-- NAME:start" and ends with "<!-- NAME:end -->") in place of OUT's
# section NAME, or append it.
replace_section() {
	local name=$1 section=$2 out=$3 tmp
	tmp=$(mktemp)
	if grep -q "<!-- $name:start" "$out"; then
		awk -v f="$section" -v s="<!-- $name:start" -v e="<!-- $name:end -->" '
			index($0, s) == 1 { while ((getline l < f) > 0) print l; skip = 1; next }
			index($0, e) == 1 { skip = 0; next }
			!skip' "$out" >"$tmp"
	else
		{ cat "$out"; echo; cat "$section"; } >"$tmp"
	fi
	mv "$tmp" "$out"
}

# measure_sample RINGWISE: sets SAMPLE (measure's default --syscall-sample,
# WINDOW/PERIOD, as its --help gives it), WIN and PERIOD (seconds) and DUTY
# (the share of the time its syscall counter is attached).
measure_sample() {
	SAMPLE=$("$1" measure --help 2>&1 | grep -A3 -- '-syscall-sample' | grep -o 'default "[^"]*"' | head -1 | cut -d'"' -f2)
	local secs='{ if ($1 ~ /ms$/) print substr($1, 1, length($1) - 2) / 1000; else if ($1 ~ /s$/) print substr($1, 1, length($1) - 1) + 0 }'
	WIN=$(awk "$secs" <<<"${SAMPLE%/*}")
	PERIOD=$(awk "$secs" <<<"${SAMPLE#*/}")
	if [ -z "$WIN" ] || [ -z "$PERIOD" ]; then
		echo "cannot read measure's default --syscall-sample (got '$SAMPLE')" >&2
		return 1
	fi
	DUTY=$(awk -v w="$WIN" -v p="$PERIOD" 'BEGIN { print w / p }')
}
