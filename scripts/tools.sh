#!/usr/bin/env bash
# Builds (once) and caches the external programs some tests and the
# deployment need, from their Go modules, keyed by name and version:
#
#   scripts/tools.sh TOOL...     build what is missing, print one absolute path per TOOL
#   scripts/tools.sh --list      print the known tools and versions
#
# TOOL is one of:
#   jaeger        github.com/jaegertracing/jaeger v1.76.0, ./cmd/jaeger
#                 (cold: ~2 GB of modules, several minutes on 2 cores)
#   nats-server   github.com/nats-io/nats-server/v2 v2.15.2 (static)
#   compose       github.com/docker/compose/v2 v2.40.3, ./cmd; also copied to
#                 ~/.docker/cli-plugins/docker-compose for `docker compose`
#
# Cache: $RINGWISE_TOOLS_DIR, default <repo>/.cache/tools (git-ignored), one
# folder per NAME-VERSION with the binary, build.log (how long the cold
# build took) and recipe (package and link flags). A binary that is already
# there, built by the same recipe, is reused as is: a warm run costs nothing. Concurrent callers wait on one lock per tool, so two tests
# asking for Jaeger at once build it once.
#
# Builds run under `nice -n 10` (the machine is shared) with CGO_ENABLED=0,
# GOWORK=off and GOTOOLCHAIN=local, each in a writable copy of the module
# (its own go.mod, go.sum and replace directives apply, as upstream builds it).
# Progress goes to stderr; stdout carries only the paths.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RINGWISE_TOOLS_DIR:-$ROOT/.cache/tools}
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}

JAEGER_VERSION=v1.76.0
NATS_SERVER_VERSION=v2.15.2
COMPOSE_VERSION=v2.40.3

log() { echo "tools: $*" >&2; }

# tool_spec NAME → "module version package binary [version-variable]"; the
# version variable, when given, is set to the version at link time, as the
# upstream release builds do (nats-server carries its own).
tool_spec() {
	case "$1" in
	jaeger) echo "github.com/jaegertracing/jaeger $JAEGER_VERSION ./cmd/jaeger jaeger github.com/jaegertracing/jaeger/internal/version.latestVersion" ;;
	nats-server) echo "github.com/nats-io/nats-server/v2 $NATS_SERVER_VERSION . nats-server" ;;
	compose | docker-compose) echo "github.com/docker/compose/v2 $COMPOSE_VERSION ./cmd docker-compose github.com/docker/compose/v2/internal.Version" ;;
	*) return 1 ;;
	esac
}

# ldflags VERSION-VARIABLE VERSION → the link flags of a build.
ldflags() {
	local f="-s -w"
	[ -z "$1" ] || f="$f -X $1=$2"
	echo "$f"
}

# build MODULE VERSION PACKAGE BINARY OUTDIR LDFLAGS: builds into OUTDIR/BINARY.
build() {
	local mod=$1 ver=$2 pkg=$3 bin=$4 out=$5 flags=$6 tmp info dir start secs
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringwise-tool.XXXXXX")
	# Once, when build returns (a RETURN trap stays set otherwise, and
	# would run again, under set -e, when the caller returns).
	# shellcheck disable=SC2064
	trap "chmod -R u+w '$tmp' 2>/dev/null || true; rm -rf '$tmp'; trap - RETURN" RETURN
	start=$(date +%s)
	log "building $bin from $mod@$ver (cold build; progress in $out/build.log)"
	mkdir -p "$out"
	{
		echo "# $mod@$ver $pkg → $bin, started $(date -u +%FT%TZ)"
		# Outside any module or workspace: only the module cache is touched.
		info=$(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local nice -n 10 "$GO" mod download -json "$mod@$ver")
		dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
		if [ -z "$dir" ] || [ ! -d "$dir" ]; then
			echo "go mod download gave no source folder for $mod@$ver:"
			printf '%s\n' "$info"
			exit 1
		fi
		mkdir "$tmp/src"
		cp -R "$dir/." "$tmp/src/"
		chmod -R u+w "$tmp/src"
		cd "$tmp/src"
		GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
			nice -n 10 "$GO" build -trimpath -ldflags "$flags" -o "$out/$bin.partial" "$pkg"
		echo "# finished $(date -u +%FT%TZ)"
	} >"$out/build.log" 2>&1 || {
		tail -n 30 "$out/build.log" >&2
		log "FAILED to build $bin from $mod@$ver (log: $out/build.log)"
		return 1
	}
	mv -f "$out/$bin.partial" "$out/$bin"
	echo "$pkg $flags" >"$out/recipe"
	secs=$(($(date +%s) - start))
	echo "cold build seconds: $secs" >>"$out/build.log"
	log "built $out/$bin in ${secs}s"
}

# cached OUTDIR BINARY RECIPE: the binary is there, built by this recipe.
cached() {
	[ -x "$1/$2" ] && [ "$(cat "$1/recipe" 2>/dev/null)" = "$3" ]
}

# ensure NAME: prints the path of NAME's binary, building it first if needed.
ensure() {
	local spec mod ver pkg bin verVar out flags
	spec=$(tool_spec "$1") || {
		log "unknown tool '$1' (known: jaeger nats-server compose)"
		return 2
	}
	read -r mod ver pkg bin verVar <<<"$spec"
	out="$CACHE/$bin-$ver"
	flags=$(ldflags "$verVar" "$ver")
	if ! cached "$out" "$bin" "$pkg $flags"; then
		mkdir -p "$CACHE"
		exec {lockfd}>"$CACHE/.$bin.lock"
		flock "$lockfd"
		# Another caller may have built it while we waited.
		if ! cached "$out" "$bin" "$pkg $flags"; then
			build "$mod" "$ver" "$pkg" "$bin" "$out" "$flags" || {
				exec {lockfd}>&-
				return 1
			}
		fi
		exec {lockfd}>&-
	fi
	if [ "$bin" = docker-compose ]; then
		local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
		if ! cmp -s "$out/$bin" "$plugins/docker-compose"; then
			mkdir -p "$plugins"
			cp -f "$out/$bin" "$plugins/docker-compose.partial"
			mv -f "$plugins/docker-compose.partial" "$plugins/docker-compose"
			log "installed $plugins/docker-compose"
		fi
	fi
	echo "$out/$bin"
}

if [ $# -eq 0 ]; then
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
if [ "$1" = --list ]; then
	for t in jaeger nats-server compose; do
		read -r mod ver pkg bin verVar <<<"$(tool_spec "$t")"
		state=missing
		cached "$CACHE/$bin-$ver" "$bin" "$pkg $(ldflags "$verVar" "$ver")" && state=cached
		echo "$t $mod@$ver $state"
	done
	exit 0
fi
status=0
for t in "$@"; do
	ensure "$t" || status=1
done
exit $status
