#!/usr/bin/env bash
# Installs and prepares what the test suite needs on a Debian 12 machine.
# Idempotent and quiet: does nothing that is already done.
#
#   scripts/ci-deps.sh [extra-apt-package...]
#
# * chromium (/usr/bin/chromium) for internal/lab's headless screenshot tests
#   (apt-get, only if missing, with retries);
# * tracefs mounted at /sys/kernel/tracing (mount failure is ignored).
# Needs root (or passwordless sudo) for both; otherwise it warns and the
# affected tests skip themselves.
set -euo pipefail

log() { echo "ci-deps: $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO=(sudo -n)
	else
		SUDO=(none)
	fi
fi

# run_root CMD...: runs CMD as root, or returns 1 when that is impossible.
run_root() {
	if [ "${SUDO[0]:-}" = none ]; then return 1; fi
	"${SUDO[@]}" "$@"
}

apt_install() {
	local pkgs=("$@") attempt logf
	[ ${#pkgs[@]} -gt 0 ] || return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		log "apt-get not found; install ${pkgs[*]} yourself"
		return 1
	fi
	if [ "${SUDO[0]:-}" = none ]; then
		log "not root and no passwordless sudo; install ${pkgs[*]} yourself"
		return 1
	fi
	logf=$(mktemp)
	for attempt in 1 2 3; do
		log "installing ${pkgs[*]} (attempt $attempt)"
		if run_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >"$logf" 2>&1 &&
			run_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
				install "${pkgs[@]}" >>"$logf" 2>&1; then
			rm -f "$logf"
			return 0
		fi
		tail -n 20 "$logf" >&2
		sleep $((attempt * 10))
	done
	rm -f "$logf"
	log "could not install ${pkgs[*]}"
	return 1
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
for p in "$@"; do
	command -v "$p" >/dev/null 2>&1 || dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
status=0
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[@]}" || status=1
fi

# tracefs: the kernel usually automounts it when it is accessed; mount it
# explicitly when it is not there (containers, minimal images).
if [ ! -e /sys/kernel/tracing/trace ] && ! grep -qs ' /sys/kernel/tracing tracefs ' /proc/mounts; then
	if run_root mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null; then
		log "mounted tracefs at /sys/kernel/tracing"
	else
		log "tracefs not mounted at /sys/kernel/tracing (ignored)"
	fi
fi

exit $status
