#!/usr/bin/env bash
# The static binaries of ringwise's runtime images (all CGO_ENABLED=0,
# -trimpath, -buildvcs=false, -ldflags "-s -w", GOTOOLCHAIN=local: the same
# bytes from the same source and Go, on the host or in the builder image).
#
#   deployments/docker/binaries.sh host
#       builds ringwise and healthcheck from this checkout and fetches
#       nats-server and jaeger from scripts/tools.sh (built from their Go
#       modules, cached by version in .cache/tools) into deployments/docker/bin/
#       (git-ignored); writes bin/ringwise.srchash, the hash of the source
#       ringwise was built from. Uses this host's Go build cache: seconds
#       when warm, against minutes for a cold build inside a container.
#   deployments/docker/binaries.sh container NAME OUT
#       inside a Dockerfile's builder stage (source in /src, the context's
#       deployments/docker/bin in /prebuilt): copies the prebuilt NAME to OUT
#       when it is there (ringwise: only when its srchash matches the source
#       in /src, so an edited checkout is never served a stale binary), and
#       builds it otherwise, with the commands used on the host.
set -euo pipefail

export PATH="/usr/local/go/bin:$PATH"
GOFLAGS_BUILD=(-trimpath -buildvcs=false -ldflags "-s -w")
export CGO_ENABLED=0 GOTOOLCHAIN=local

log() { echo "binaries: $*" >&2; }

# srchash DIR: hash of everything ringwise's build reads under DIR (tests
# and testdata excluded, as .dockerignore leaves them out of the context).
srchash() {
	(
		cd "$1"
		find go.mod go.sum go.work go.work.sum cmd internal services bpf sensor enricher analyzer \
			-type f ! -name '*_test.go' ! -path '*/testdata/*' -print0 2>/dev/null |
			LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32
	)
}

build_ringwise() { # SRC OUT
	(cd "$1" && nice -n 10 go build "${GOFLAGS_BUILD[@]}" -o "$2/ringwise" ./cmd/ringwise)
}

build_healthcheck() { # SRC OUT
	(cd "$1/deployments/docker/healthcheck" && GOWORK=off GOFLAGS=-mod=mod nice -n 10 go build "${GOFLAGS_BUILD[@]}" -o "$2/healthcheck" main.go)
}

host() {
	local root bin t p start
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	bin="$root/deployments/docker/bin"
	mkdir -p "$bin"
	start=$(date +%s)
	build_ringwise "$root" "$bin"
	srchash "$root" >"$bin/ringwise.srchash"
	build_healthcheck "$root" "$bin"
	for t in nats-server jaeger; do
		p=$(bash "$root/scripts/tools.sh" "$t")
		[ -x "$p" ] || {
			log "scripts/tools.sh gave no $t"
			return 1
		}
		cmp -s "$p" "$bin/$t" || cp -f "$p" "$bin/$t"
	done
	log "ringwise ($(cut -c1-12 "$bin/ringwise.srchash")), healthcheck, nats-server, jaeger in $bin ($(($(date +%s) - start))s)"
}

container() {
	local name=$1 out=$2 src=/src pre=/prebuilt
	mkdir -p "$out"
	case "$name" in
	ringwise)
		if [ -x "$pre/ringwise" ] && [ "$(cat "$pre/ringwise.srchash" 2>/dev/null)" = "$(srchash "$src")" ]; then
			log "ringwise: prebuilt binary of this source"
			cp "$pre/ringwise" "$out/"
		else
			log "ringwise: building in the container (no prebuilt binary of this source)"
			build_ringwise "$src" "$out"
		fi
		;;
	healthcheck)
		if [ -x "$pre/healthcheck" ]; then cp "$pre/healthcheck" "$out/"; else build_healthcheck "$src" "$out"; fi
		;;
	nats-server | jaeger)
		if [ -x "$pre/$name" ]; then
			log "$name: prebuilt binary"
			cp "$pre/$name" "$out/"
		else
			log "$name: building from its Go module in the container"
			cp "$(RINGWISE_TOOLS_DIR=/tmp/tools bash "$src/scripts/tools.sh" "$name")" "$out/"
		fi
		;;
	*)
		log "unknown binary $name"
		return 2
		;;
	esac
}

case "${1:-}" in
host) host ;;
container) container "$2" "$3" ;;
*)
	echo "usage: $0 host | container NAME OUT" >&2
	exit 2
	;;
esac
