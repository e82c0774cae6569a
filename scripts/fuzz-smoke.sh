#!/usr/bin/env bash
# Short fuzz smoke test: runs every Fuzz target of the workspace for
# FUZZTIME (default 60000x: that many inputs, 1-13 s a target here), one
# `go test -fuzz` per target and package (go test accepts exactly one of
# each). A count rather than a duration, because with a duration Go's
# coordinator (internal/fuzz, Go 1.26) can see its own deadline before the
# workers' context is cancelled and report "context deadline exceeded" as
# the run's error, with no failing input. Runs all targets, then fails if any failed.
# A failing input is saved under <pkg>/testdata/fuzz/<FuzzX>/ by go test.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60000x}

# "<dir> <FuzzName>" lines, dir relative to the workspace root ("." for it).
targets=$(grep -rH --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . |
	grep -v -e '/testdata/' -e '/vendor/' |
	sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#; s#^\./##; s#^\. #. #' | sort -u)

if [ -z "$targets" ]; then
	echo "fuzz-smoke: no fuzz targets found"
	exit 0
fi

failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while read -r dir name; do
	[ -n "$dir" ] || continue
	pkg=./$dir
	[ "$dir" = . ] && pkg=.
	echo "=== fuzz $name $pkg ($FUZZTIME)"
	ok=0
	for attempt in 1 2; do
		if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout 5m "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			ok=1
			break
		fi
		# Should a duration be given (FUZZTIME=5s), the coordinator can
		# report "context deadline exceeded" without any failing input:
		# run that target once more. A real failure
		# writes its input ("Failing input written to") and is not retried.
		if grep -q 'Failing input written to' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
			break
		fi
		echo "fuzz-smoke: $name: the fuzz coordinator's deadline, no failing input: once more"
	done
	[ $ok -eq 1 ] || failed+=("$name $pkg")
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz-smoke: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz-smoke: $(wc -l <<<"$targets") targets ok"
