#!/usr/bin/env bash
# Offline preparation: everything `docker compose up --build` would
# otherwise fetch, made locally, so that it then runs unchanged with no
# registry (this machine has none) and, with the binaries prebuilt, no
# network at all.
#
#   deployments/offline/prepare.sh            builder image + prebuilt binaries
#   deployments/offline/prepare.sh image      only the Go builder image
#   deployments/offline/prepare.sh binaries   only the prebuilt binaries
#   deployments/offline/prepare.sh secrets    only the secrets (deployments/secrets/)
#
# 1. The Go builder image, under the exact tag the Dockerfiles use
#    ($BUILDER_TAG, golang:1.26-bookworm): a Debian bookworm rootfs from
#    `debootstrap --variant=minbase` (Debian's packages, no registry) plus
#    this host's /usr/local/go and /etc/ssl/certs, loaded with
#    `docker import`. It is the only image the Dockerfiles start FROM besides
#    scratch. The rootfs is cached in .cache/deploy/rootfs-bookworm
#    (git-ignored), so a Docker store that was wiped is refilled in seconds.
# 2. The static binaries the runtime images carry, built on this host into
#    deployments/docker/bin/ (git-ignored) by deployments/docker/binaries.sh:
#    ringwise and healthcheck from this checkout, nats-server v2.15.2 and
#    Jaeger v1.76.0 from their Go modules (scripts/tools.sh, cached by
#    version in .cache/tools). The Dockerfiles copy a prebuilt binary when it
#    is there (ringwise only when it was built from the same source, by a
#    hash), and otherwise build it inside the builder image with the same
#    command, which needs the Go module proxy.
#
# Images are built with the legacy builder (DOCKER_BUILDKIT=0): it takes
# the local golang:1.26-bookworm for FROM without asking a registry, while
# BuildKit needs the buildx plugin (not here, not in Debian 12) and resolves
# base images against a registry.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILDER_TAG=${BUILDER_TAG:-golang:1.26-bookworm}
CACHE=${RINGWISE_DEPLOY_CACHE:-$ROOT/.cache/deploy}
GOROOT_HOST=${GOROOT_HOST:-/usr/local/go}
export PATH="$GOROOT_HOST/bin:$PATH"

log() { echo "offline: $*" >&2; }

builder_image() {
	if docker image inspect "$BUILDER_TAG" >/dev/null 2>&1; then
		log "$BUILDER_TAG is present"
		return 0
	fi
	local rootfs="$CACHE/rootfs-bookworm" start
	start=$(date +%s)
	if [ ! -x "$rootfs/bin/bash" ]; then
		command -v debootstrap >/dev/null 2>&1 || {
			log "installing debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null
			DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 install debootstrap >/dev/null
		}
		log "debootstrap --variant=minbase bookworm → $rootfs"
		rm -rf "$rootfs.partial"
		mkdir -p "$CACHE"
		nice -n 10 debootstrap --variant=minbase bookworm "$rootfs.partial" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
			>"$CACHE/debootstrap.log" 2>&1 || {
			tail -n 20 "$CACHE/debootstrap.log" >&2
			log "debootstrap failed (log $CACHE/debootstrap.log)"
			return 1
		}
		rm -rf "$rootfs"
		mv "$rootfs.partial" "$rootfs"
	fi
	local gover
	gover=$("$GOROOT_HOST/bin/go" env GOVERSION)
	case "$gover" in
	go1.26*) ;;
	*) log "warning: host Go is $gover, the tag says $BUILDER_TAG" ;;
	esac
	log "docker import $rootfs + $GOROOT_HOST ($gover) + /etc/ssl/certs as $BUILDER_TAG"
	# One tar: the rootfs, then Go and the CA certificates appended on top
	# (-h: the copies are real files, not links into this host).
	(
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		mkdir -p "$tmp/usr/local" "$tmp/etc/ssl"
		ln -s "$GOROOT_HOST" "$tmp/usr/local/go"
		ln -s /etc/ssl/certs "$tmp/etc/ssl/certs"
		tar -C "$rootfs" -cf "$tmp/rootfs.tar" .
		tar -C "$tmp" -rhf "$tmp/rootfs.tar" usr/local/go etc/ssl/certs
		docker import \
			-c 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			-c 'ENV GOTOOLCHAIN=local' -c 'ENV CGO_ENABLED=0' -c 'WORKDIR /src' \
			-m "ringwise offline builder: debootstrap minbase bookworm + host $gover" \
			"$tmp/rootfs.tar" "$BUILDER_TAG" >/dev/null
	)
	log "$BUILDER_TAG imported in $(($(date +%s) - start))s ($(docker image inspect -f '{{.Size}}' "$BUILDER_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# secrets: what the stack authenticates with, made here on the host and
# bind-mounted into the containers (compose secrets), never in an image:
#   deployments/secrets/http-token   the analyzer's HTTP bearer token
#   deployments/secrets/metrics-token the bearer token of the sensor's and
#                                    the enrichers' /metrics (apart from the
#                                    analyzer's: a node does not get to read
#                                    the analyzer's API)
#   deployments/secrets/nats/        `ringwise nats --init-auth` for node
#                                    $RINGWISE_NODE (default node1): the
#                                    authorization block (nats.conf) and one
#                                    nkey seed per service
#   deployments/secrets/tls/         NATS's TLS (deployments/tls/make-certs.sh):
#                                    a new CA (ca.pem, what the services
#                                    trust with --nats-ca; its key is thrown
#                                    away) and the server's certificate for
#                                    the name "nats" with its key
# Each secret file is owned by the user of the service that reads it (the
# sensor runs as root, the others as 65532), mode 0400 (metrics-token, read
# by both: root-owned, group 65532, 0440); the certificates
# are public (0444). Kept when they exist; the NATS identities are made
# again when the node has none, the certificates when they expire within
# 30 days.
secrets() {
	local dir="$ROOT/deployments/secrets" node=${RINGWISE_NODE:-node1}
	mkdir -p "$dir"
	chmod 0711 "$dir"
	if [ ! -s "$dir/http-token" ]; then
		(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/http-token" && echo >>"$dir/http-token")
		log "wrote a new analyzer HTTP token to $dir/http-token"
	fi
	chown 65532:65532 "$dir/http-token"
	chmod 0400 "$dir/http-token"
	if [ ! -s "$dir/metrics-token" ]; then
		(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/metrics-token" && echo >>"$dir/metrics-token")
		log "wrote a new /metrics token to $dir/metrics-token"
	fi
	# Read by the sensor (root, but without CAP_DAC_OVERRIDE: as the
	# owner) and by the enrichers (65532: as the group).
	chown 0:65532 "$dir/metrics-token"
	chmod 0440 "$dir/metrics-token"
	if [ ! -s "$dir/nats/sensor-$node.nk" ]; then
		rm -rf "$dir/nats"
		"$ROOT/deployments/docker/bin/ringwise" nats --init-auth "$dir/nats" --nodes "$node" >/dev/null
		log "wrote NATS identities (admin, enricher, analyzer, sensor-$node) to $dir/nats"
	fi
	chmod 0711 "$dir/nats"
	if ! openssl x509 -checkend $((30 * 86400)) -noout -in "$dir/tls/server-cert.pem" >/dev/null 2>&1; then
		bash "$ROOT/deployments/tls/make-certs.sh" "$dir/tls" nats localhost 127.0.0.1
	fi
	chmod 0711 "$dir/tls"
	chown 65532:65532 "$dir/tls/server-key.pem"
	chmod 0400 "$dir/tls/server-key.pem"
	local f
	for f in "$dir"/nats/*; do
		case "$(basename "$f")" in
		sensor-*) chown 0:0 "$f" ;;
		*) chown 65532:65532 "$f" ;;
		esac
		chmod 0400 "$f"
	done
}

binaries() {
	bash "$ROOT/deployments/docker/binaries.sh" host
}

case "${1:-all}" in
all)
	builder_image
	binaries
	secrets
	;;
secrets)
	[ -x "$ROOT/deployments/docker/bin/ringwise" ] || binaries
	secrets
	;;
image) builder_image ;;
binaries) binaries ;;
*)
	echo "usage: $0 [all|image|binaries|secrets]" >&2
	exit 2
	;;
esac
