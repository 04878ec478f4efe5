#!/bin/bash
# Attack: have mtlsgwd hand a directory to its own user. The control
# socket's directory used to be chowned to the daemon's user whenever it was
# root's, so `control-socket = /etc/mtlsgw/control.sock` (a typo, or an
# administrator's guess) gave the daemon's user the directory holding the
# config and the PIN file: a compromised session process could then replace
# them. mtlsgwd now gives its user only a directory it made itself
# (docs/security.md "The control socket's directory").
#
#   $T/etc-mtlsgw/  root:root 0755, holds mtlsgwd.conf (like /etc/mtlsgw)
#   $T/newrun/      absent: made by mtlsgwd, given to its user
#
# usage: control-dir.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../interop/lib-daemon.sh" "$@"
. "$here/lib.sh"

adv_need curl openssl certtool python3
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (the daemon switches users)"; exit 77; }
[ "$DUSER" != root ] || { echo "1..0 # SKIP no user 'mtlsgw' to run the daemon as"; exit 77; }

adv_loopback ctldir

owner() { stat -c '%U:%G %a' "$1"; }

# ---- a directory that exists and is root's: left alone ------------------------
E=$T/etc-mtlsgw
mkdir "$E"
chmod 755 "$E"
sed "s|^control-socket = .*|control-socket = $E/control.sock|" "$T/gw.conf" >"$E/mtlsgwd.conf"
before=$(owner "$E")
DOUT=$(dmn_try "$E/mtlsgwd.conf")
rc=$?
ok_if "control-socket in root's directory: the daemon does not run (exit $rc)" \
    test "$rc" != 0 -a "$rc" != 124
after=$(owner "$E")
ok_if "the directory is still root's ($before -> $after)" test "$after" = "$before"
printf "%s\n" "$DOUT" | sed "s/^/# daemon: /"
expect_in "may not create it in $E" "$DOUT" "the error names the directory"
expect_in "set [daemon] control-socket to a path in a directory that does not exist yet" \
    "$DOUT" "... and says what to do"
ok_if "the config in it is still root's" test "$(stat -c %U "$E/mtlsgwd.conf")" = root

# A world-writable sticky directory (/tmp) is not taken either.
S=$T/sticky
mkdir "$S"
chmod 1777 "$S"
sed "s|^control-socket = .*|control-socket = $S/control.sock|" "$T/gw.conf" >"$T/sticky.conf"
before=$(owner "$S")
if dmn_start "$T/sticky.conf"; then
    tap_result 0 "control-socket in a sticky directory: the daemon runs"
    dmn_stop
else
    tap_result 1 "control-socket in a sticky directory: the daemon runs" "$(tail -n 5 "$DLOG")"
fi
ok_if "the sticky directory keeps its owner and mode ($before -> $(owner "$S"))" \
    test "$(owner "$S")" = "$before"

# ---- a directory that does not exist: made, and given to the daemon ----------
N=$T/newrun
sed "s|^control-socket = .*|control-socket = $N/control.sock|" "$T/gw.conf" >"$T/new.conf"
if dmn_start "$T/new.conf"; then
    tap_result 0 "control-socket in a missing directory: the daemon runs"
    ok_if "the directory it made is its user's, 0750 (got $(owner "$N"))" \
        test "$(owner "$N")" = "$(id -un "$DUSER"):$(id -gn "$DUSER") 750"
    expect_exit 0 "mtlsgw status reaches the daemon there" "$MTLSGW" -c "$T/new.conf" status
    dmn_stop
else
    tap_result 1 "control-socket in a missing directory: the daemon runs" "$(tail -n 5 "$DLOG")"
fi
# Made by the daemon once, it is the daemon's user's already: a restart works.
if dmn_start "$T/new.conf"; then
    tap_result 0 "a restart uses the directory it made before"
    dmn_stop
else
    tap_result 1 "a restart uses the directory it made before" "$(tail -n 5 "$DLOG")"
fi

tap_done
