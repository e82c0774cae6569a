#!/usr/bin/env bash
# Starts a Docker engine when none runs, and later stops it and leaves the
# host as it was found.
#
#   deployments/offline/dockerd.sh start STATE_DIR   engine up (installs Debian's docker.io if dockerd is missing)
#   deployments/offline/dockerd.sh stop STATE_DIR    undo what start did
#
# start saves the host's iptables (filter and nat, `iptables-save`) and
# whether the docker0 link existed into STATE_DIR before anything changes,
# then starts dockerd (overlay2, its log in STATE_DIR/dockerd.log) only if no
# engine answers. stop stops the dockerd it started (pid in
# /var/run/docker.pid; containerd, which dockerd started, exits with it),
# restores the saved iptables (dockerd leaves a FORWARD DROP policy and its
# DOCKER* chains behind), deletes the docker0 link when it was not there
# before, and puts back the IP forwarding and bridge netfilter settings
# dockerd turns on ($SYSCTLS). An engine that was already running is left alone, and so is its
# iptables state.
set -euo pipefail

log() { echo "dockerd.sh: $*" >&2; }

# Kernel settings dockerd changes, saved at start and restored at stop.
SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables"

cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || {
	echo "usage: $0 start|stop STATE_DIR" >&2
	exit 2
}
mkdir -p "$state"

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
	if engine_up; then
		log "a Docker engine already runs ($(docker version --format '{{.Server.Version}}')); using it as is"
		echo no >"$state/started"
		return 0
	fi
	if ! command -v dockerd >/dev/null 2>&1; then
		log "installing Debian's docker.io (dockerd)"
		DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
			install docker.io iptables >/dev/null
	fi
	command -v iptables-save >/dev/null || {
		log "iptables-save missing (apt-get install iptables)"
		return 1
	}
	iptables-save -t filter >"$state/iptables.filter"
	iptables-save -t nat >"$state/iptables.nat"
	if ip link show docker0 >/dev/null 2>&1; then echo yes >"$state/docker0"; else echo no >"$state/docker0"; fi
	# dockerd also turns on IP forwarding (and bridge netfilter): the
	# values before, to put back.
	: >"$state/sysctl"
	for k in $SYSCTLS; do
		[ -e "/proc/sys/${k//.//}" ] && echo "$k=$(cat "/proc/sys/${k//.//}")" >>"$state/sysctl"
	done
	echo yes >"$state/started"
	log "starting dockerd (overlay2; log $state/dockerd.log)"
	setsid dockerd --storage-driver overlay2 >"$state/dockerd.log" 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		engine_up && {
			log "engine up: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
			return 0
		}
		sleep 1
	done
	tail -n 20 "$state/dockerd.log" >&2
	log "dockerd did not answer within 60 s"
	return 1
}

stop() {
	if [ "$(cat "$state/started" 2>/dev/null)" != yes ]; then
		log "the engine was running before; left alone"
		return 0
	fi
	local pid
	pid=$(cat /var/run/docker.pid 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
		kill -0 "$pid" 2>/dev/null && { log "dockerd $pid still running after 30 s; killing it"; kill -9 "$pid"; }
	fi
	# containerd runs beside dockerd, started by it (pid file of its own).
	pid=$(cat /var/run/docker/containerd/containerd.pid 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 15); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
	fi
	# Restore the tables as saved: -restore replaces each table whole, so
	# the DOCKER* chains and the FORWARD policy go back to what they were.
	if [ -s "$state/iptables.filter" ]; then iptables-restore -T filter <"$state/iptables.filter"; else iptables -P FORWARD ACCEPT; iptables -F; iptables -X; fi
	if [ -s "$state/iptables.nat" ]; then iptables-restore -T nat <"$state/iptables.nat"; else iptables -t nat -F; iptables -t nat -X; fi
	if [ "$(cat "$state/docker0" 2>/dev/null)" = no ] && ip link show docker0 >/dev/null 2>&1; then
		ip link delete docker0
	fi
	local kv
	while read -r kv; do
		[ -n "$kv" ] && echo "${kv#*=}" >"/proc/sys/$(echo "${kv%%=*}" | tr . /)"
	done <"$state/sysctl" 2>/dev/null || true
	echo stopped >"$state/started"
	log "dockerd stopped; iptables, docker0 and $(tr '\n' ' ' <"$state/sysctl" 2>/dev/null)restored"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop STATE_DIR" >&2
	exit 2
	;;
esac
