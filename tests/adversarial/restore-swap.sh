#!/bin/bash
# Attack: make root's `mtlsgw restore` give a root file to the daemon's user.
# restore builds the new pki dir beside the live one: mkdtemp makes
# <pki>.restore-XXXXXX (root's, 0700), then hands it to the daemon's user.
# When the pki dir's parent belongs to that user (/var/lib/mtlsgw from
# StateDirectory=), the user can rename the fresh dir away and put a
# symbolic link to any file in its place; a chmod/chown by path followed it
# and gave the target away (mtlsgw:mtlsgw, 0750). restore now hands the
# dir over through a descriptor opened with O_NOFOLLOW, and only when it is
# still root's own (docs/backup.md, "Restore"). The window is widened with
# the fault point restore-after-mkdtemp; the swap is done as the daemon's
# user, as that user would. init makes a new pki dir the same way: the same
# swap in its window (fault point pki-dir-after-mkdir).
#
#   $T/state/        the daemon user's (0750), the pki dir's parent
#   $T/state/pki/    the pki dir; $T/state/pki.restore-XXXXXX <- the swap
#   $T/victim        root's file, 0600   <- the link's target
#
# usage: restore-swap.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../interop/lib-daemon.sh"
. "$here/lib.sh"

adv_need setpriv
[ -x /usr/bin/python3 ] || { echo "1..0 # SKIP no /usr/bin/python3 for the daemon user"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (restore runs as root)"; exit 77; }
[ "$DUSER" != root ] || { echo "1..0 # SKIP no user 'mtlsgw' to own the state dir"; exit 77; }
[ "${FAULT_INJECTION:-1}" = 1 ] || { echo "1..0 # SKIP needs -Dfault_injection=true"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-restore-swap.XXXXXX)
LOCAL_PIDS=""
cleanup() {
    local p
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$T"

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" || { echo "Bail out! token"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
mkdir -p "$T/run" "$T/state"
chmod 700 "$T/run"
chmod 750 "$T/state"
P=$T/state/pki
mkconf "$T/gw.conf" gw "$T/gw.pin" "$P"
softhsm_give_to "$DUSER" "$T/tokens"
chown "$DUSER:" "$T/run" "$T/state" "$T/gw.pin"
hub init --cn gw1 --host 127.0.0.1 >/dev/null 2>&1 || { echo "Bail out! init"; exit 1; }
hub backup --out "$T/b.tar" >/dev/null 2>&1 || { echo "Bail out! backup"; exit 1; }

printf 'precious\n' >"$T/victim"
chmod 600 "$T/victim"
chown root:root "$T/victim"

# As the daemon's user: the first new dir matching GLOB renamed away, a
# link to the victim in its place.
swapper() { # glob
    setpriv --reuid="$DUSER" --regid="$(id -g "$DUSER")" --clear-groups /usr/bin/python3 -c '
import glob, os, sys, time
pattern, victim = sys.argv[1], sys.argv[2]
end = time.time() + 20
while time.time() < end:
    for d in glob.glob(pattern):
        if d.endswith(".away") or os.path.islink(d) or not os.path.isdir(d):
            continue
        try:
            os.rename(d, d + ".away")
            os.symlink(victim, d)
            print("swapped", d, flush=True)
            sys.exit(0)
        except OSError:
            pass
    time.sleep(0.01)
sys.exit(1)
' "$1" "$T/victim" >"$T/swap.log" 2>&1 &
    SWAP=$!
    LOCAL_PIDS="$SWAP"
}

swapper "$T/state/pki.restore-*"
out=$(MTLSGW_FAULT=restore-after-mkdtemp:1500 hub restore --force "$T/b.tar" 2>&1)
rc=$?
wait "$SWAP"
swapped=$?
LOCAL_PIDS=""
printf '%s\n' "$out" | sed 's/^/# restore: /'
ok_if "the daemon's user swapped a link in during the window" test "$swapped" = 0
ok_if "the victim keeps its owner (root:root)" \
    test "$(stat -c %U:%G "$T/victim")" = root:root
ok_if "the victim keeps its mode (600)" test "$(stat -c %a "$T/victim")" = 600
ok_if "restore fails (exit $rc)" test "$rc" != 0
expect_in "replaced by a link" "$out" "... saying the dir it made was replaced by a link"
expect_in "nothing changed" "$out" "... and that nothing changed"
ok_if "the live pki dir is still there" test -f "$P/ca.crt"

# Without the attacker: the same restore goes through and hands the dir over.
rm -f "$T"/state/pki.restore-*
rm -rf "$T"/state/pki.restore-*.away
out=$(hub restore --force "$T/b.tar" 2>&1)
ok_if "without the swap, restore succeeds" test $? = 0 || printf '# %s\n' "$out"
ok_if "... the restored pki dir is the daemon user's, 750" \
    test "$(stat -c %U:%a "$P")" = "$DUSER:750"

# init makes a new pki dir the same way (as root, then handed over): the
# same swap in its window (fault point pki-dir-after-mkdir).
mkconf "$T/init2.conf" gw "$T/gw.pin" "$T/state/pki2"
swapper "$T/state/pki2"
out=$(MTLSGW_FAULT=pki-dir-after-mkdir:1500 "$MTLSGW" -c "$T/init2.conf" init --cn gw2 \
    --host 127.0.0.2 2>&1)
rc=$?
wait "$SWAP"
swapped=$?
LOCAL_PIDS=""
printf '%s\n' "$out" | sed 's/^/# init: /'
ok_if "init: the daemon's user swapped a link in during the window" test "$swapped" = 0
ok_if "... the victim keeps its owner and mode (root:root 600)" \
    test "$(stat -c %U:%G:%a "$T/victim")" = root:root:600
ok_if "... init fails (exit $rc)" test "$rc" != 0
expect_in "replaced by a link" "$out" "... saying the pki dir it made was replaced"
tap_done
