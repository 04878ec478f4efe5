#!/bin/bash
# One executable, two programs (gateway/multicall/main.c): the build's
# mtlsgwd is a link to mtlsgw, and the name a process is started by picks
# the daemon or the console tool, also through a symbolic link as installed
# (/usr/sbin/mtlsgwd -> mtlsgw) and under a name of the user's choosing.
#
# usage: multicall.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"

T=$(mktemp -d /tmp/mtlsgw-multicall.XXXXXX)
trap 'rm -rf "$T"' EXIT

ok_if "build/gateway/mtlsgwd is the same file as mtlsgw" test "$MTLSGWD" -ef "$MTLSGW"

expect_exit 0 "mtlsgw --version" "$MTLSGW" --version
expect_in "mtlsgw 0" "$OUT" "mtlsgw --version names the console tool"
expect_exit 0 "mtlsgwd --version" "$MTLSGWD" --version
expect_in "mtlsgwd 0" "$OUT" "mtlsgwd --version names the daemon"
expect_exit 0 "mtlsgwd --help" "$MTLSGWD" --help
expect_in "usage: mtlsgwd" "$OUT" "mtlsgwd --help is the daemon's usage"
expect_exit 0 "mtlsgw --help" "$MTLSGW" --help
expect_in "usage: mtlsgw [-c CONF] COMMAND" "$OUT" "mtlsgw --help is the console's usage"

# As installed: a symbolic link named mtlsgwd to mtlsgw.
mkdir -p "$T/sbin"
ln -s "$MTLSGW" "$T/sbin/mtlsgw"
ln -s mtlsgw "$T/sbin/mtlsgwd"
expect_exit 0 "sbin/mtlsgwd -> mtlsgw --version" "$T/sbin/mtlsgwd" --version
expect_in "mtlsgwd 0" "$OUT" "a symbolic link named mtlsgwd runs the daemon"
printf '[daemon]\nno-such-key = 1\n' >"$T/bad.conf"
expect_exit 1 "sbin/mtlsgwd --check-config on a bad config" \
    "$T/sbin/mtlsgwd" --check-config -c "$T/bad.conf"
expect_in "bad.conf" "$OUT" "the daemon's config check names the file"
expect_exit 0 "sbin/mtlsgwd --version by PATH lookup" env PATH="$T/sbin:$PATH" mtlsgwd --version
expect_in "mtlsgwd 0" "$OUT" "mtlsgwd found on PATH runs the daemon"

# Any other name is the console tool (mtlsgw(8)), never the daemon.
ln -s "$MTLSGW" "$T/gw-tool"
expect_exit 0 "gw-tool --version" "$T/gw-tool" --version
expect_in "mtlsgw 0" "$OUT" "a link of another name runs the console tool"
ln -s "$MTLSGW" "$T/mtlsgwd.old"
expect_exit 0 "mtlsgwd.old --version" "$T/mtlsgwd.old" --version
expect_not_in "mtlsgwd" "$OUT" "only the exact name mtlsgwd runs the daemon"

tap_done
