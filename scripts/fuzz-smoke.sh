#!/usr/bin/env bash
# Short fuzz smoke test: runs every Fuzz target of the workspace for
# FUZZTIME (default 5s), one `go test -fuzz` per target and package (go test
# accepts exactly one of each). Runs all targets, then fails if any failed.
# A failing input is saved under <pkg>/testdata/fuzz/<FuzzX>/ by go test.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}

# "<dir> <FuzzName>" lines, dir relative to the workspace root ("." for it).
targets=$(grep -rH --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . |
	grep -v -e '/testdata/' -e '/vendor/' |
	sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#; s#^\./##; s#^\. #. #' | sort -u)

if [ -z "$targets" ]; then
	echo "fuzz-smoke: no fuzz targets found"
	exit 0
fi

failed=()
while read -r dir name; do
	[ -n "$dir" ] || continue
	pkg=./$dir
	[ "$dir" = . ] && pkg=.
	echo "=== fuzz $name $pkg ($FUZZTIME)"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout 5m "$pkg"; then
		failed+=("$name $pkg")
	fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz-smoke: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz-smoke: $(wc -l <<<"$targets") targets ok"
