#!/bin/sh
# Runs the plumbing benchmark in a fresh network namespace of its own (root).
#   tests/bench/plumbing.sh [BUILD_DIR] [N...]     default: build, 1 100 1000
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
exe="$build/tests/bench/plumbing"
if [ ! -x "$exe" ]; then
    echo "plumbing.sh: $exe not built (ninja -C $build tests/bench/plumbing)" >&2
    exit 1
fi
exec unshare --net sh -c 'ip link set lo up && exec "$0" "$@"' "$exe" "$@"
