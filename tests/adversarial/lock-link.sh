#!/bin/bash
# Attack: make root's mtlsgwd overwrite a file of the attacker's choice
# through its instance lock. The lock (<pki dir>/mtlsgwd.lock) is
# opened by root in the pki dir, which the daemon's user owns: O_NOFOLLOW
# stops a symbolic link, but with fs.protected_hardlinks=0 that user may
# plant a hard link to any file there, and the daemon wrote its pid into
# it (ftruncate + pwrite). mtlsgwd now takes only its own regular file,
# linked once, owned by root or its user (docs/mtlsgwd.md, "One daemon per
# config"), and leaves anything else untouched.
#
#   $T/victim       root's file, "precious"  <- hard link at the lock path
#   $P/             the pki dir (mtlsgwd.lock), the daemon user's
#
# The link is made by root here (root may link any file whatever the
# sysctl), which is what the daemon's user could do with
# fs.protected_hardlinks=0.
#
# usage: lock-link.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../interop/lib-daemon.sh"
. "$here/lib.sh"

adv_need curl openssl certtool python3 sha256sum
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (the daemon starts as root)"; exit 77; }
[ "$DUSER" != root ] || { echo "1..0 # SKIP no user 'mtlsgw' to run the daemon as"; exit 77; }

adv_loopback locklink

# The lock's path as instance.c makes it: in the pki dir.
LOCK=$P/mtlsgwd.lock
printf 'precious\n' >"$T/victim"
chmod 644 "$T/victim"
sum0=$(sha256sum <"$T/victim")

# ---- a hard link to root's file at the lock path ------------------------------
rm -f "$LOCK"
ln "$T/victim" "$LOCK" || { echo "Bail out! cannot plant the hard link"; exit 1; }
DOUT=$(dmn_try "$T/gw.conf")
rc=$?
printf "%s\n" "$DOUT" | tail -n 3 | sed "s/^/# daemon: /"
ok_if "a hard link at the lock path: the daemon does not start (exit $rc)" \
    test "$rc" != 0 -a "$rc" != 124
expect_in "has 2 links" "$DOUT" "... saying the lock file is another file's hard link"
expect_in "rm $LOCK" "$DOUT" "... and how to clear it"
ok_if "the linked file is untouched" test "$(sha256sum <"$T/victim")" = "$sum0"

# ---- a file of another user at the lock path ----------------------------------
rm -f "$LOCK"
: >"$LOCK"
chown nobody "$LOCK"
DOUT=$(dmn_try "$T/gw.conf")
rc=$?
ok_if "a lock file of another user: the daemon does not start (exit $rc)" \
    test "$rc" != 0 -a "$rc" != 124
expect_in "belongs to uid $(id -u nobody)" "$DOUT" "... naming its owner"
ok_if "... and it is left empty" test ! -s "$LOCK"

# ---- its own lock file: taken ------------------------------------------------------
rm -f "$LOCK"
if dmn_start "$T/gw.conf"; then
    tap_result 0 "with the planted files gone, the daemon starts"
    ok_if "its lock file holds its pid, linked once" \
        test "$(cat "$LOCK")" = "$DPID" -a "$(stat -c %h "$LOCK")" = 1
    dmn_stop
else
    tap_result 1 "with the planted files gone, the daemon starts" "$(tail -n 5 "$DLOG")"
fi
if dmn_start "$T/gw.conf"; then
    tap_result 0 "a restart takes the lock file it left"
    dmn_stop
else
    tap_result 1 "a restart takes the lock file it left" "$(tail -n 5 "$DLOG")"
fi
ok_if "the victim is still untouched at the end" test "$(sha256sum <"$T/victim")" = "$sum0"
tap_done
