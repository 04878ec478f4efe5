#!/bin/bash
# Privileges, checked from the outside (docs/architecture.md, "Processes"):
# /proc/<pid>/status of both processes of a running mtlsgwd, and a core dump
# of each (gdb's gcore, as root: the strongest reader there is) searched for
# the token PIN.
#
#   parent   [daemon] user, CapEff = CapPrm = CAP_NET_ADMIN only, CapBnd
#            empty (it never execs; its children inherit the bounding set)
#   session  [daemon] user (non-zero uid), CapEff = CapPrm = CapBnd = 0
#   both     CapInh = CapAmb = 0, NoNewPrivs, not dumpable
#
# usage: privs.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_begin privs curl certtool python3 gcore
# The fixture's PIN ($PIN, "7c1e-gw-pin") is a string nothing else in the
# process holds by chance: a hit in a core is the PIN.
dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
SPID=$(pgrep -P "$DPID" -x mtlsgwd | head -n 1)
ok_if "the daemon runs as two processes (parent $DPID, session ${SPID:-none})" test -n "$SPID"

field() { # pid name
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
hex_is() { # value-hex want-hex
    [ -n "$1" ] && [ $((16#$1)) = $(($2)) ]
}
DUID=$(id -u "$DUSER")

check_proc() { # pid name want-eff-prm want-bnd
    local pid=$1 name=$2 want=$3 bnd=$4 uid set v
    uid=$(field "$pid" Uid)
    read -r -a ids <<<"$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$pid/status")"
    if [ "$DUID" != 0 ]; then
        ok_if "$name: real, effective, saved and fs uid are $DUSER ($DUID), not root (${ids[*]})" \
            test "${ids[0]}:${ids[1]}:${ids[2]}:${ids[3]}" = "$DUID:$DUID:$DUID:$DUID"
    else
        tap_result 0 "$name: uid check skipped: no user $DUSER # SKIP"
    fi
    for set in CapEff CapPrm CapBnd CapInh CapAmb; do
        v=$(field "$pid" "$set")
        case $set in
        CapInh | CapAmb) ok_if "$name: $set is empty ($v)" hex_is "$v" 0 ;;
        CapBnd) ok_if "$name: $set is $bnd ($v)" hex_is "$v" "$bnd" ;;
        *) ok_if "$name: $set is $want ($v)" hex_is "$v" "$want" ;;
        esac
    done
    v=$(field "$pid" NoNewPrivs)
    ok_if "$name: NoNewPrivs is set ($v)" test "$v" = 1
}

# CAP_NET_ADMIN is capability 12: 0x1000.
check_proc "$DPID" parent 0x1000 0
check_proc "$SPID" "session process" 0 0
ok_if "the parent's and the session's Groups are the daemon's group only" \
    test "$(field "$DPID" Groups)" = "$(id -g "$DUSER")" -a "$(field "$SPID" Groups)" = "$(id -g "$DUSER")"

# Dumpable: 0 means no core file on a crash and no ptrace by the same user.
for p in "$DPID:parent" "$SPID:session process"; do
    pid=${p%%:*}
    name=${p#*:}
    # /proc/PID's files other than the directory itself belong to root when
    # the process is not dumpable (proc(5), task_dump_owner).
    v=$(stat -c %u "/proc/$pid/status")
    ok_if "$name: not dumpable (/proc/$pid/status owned by root, got uid $v)" test "$v" = 0
done

# Some traffic first, so that the PIN would be anywhere it is ever copied
# to: handshakes sign with the token key; enroll signs with the CA key.
for i in 1 2 3; do req admin1 GET /api/v1/status; done
keycsr cored >/dev/null 2>&1
python3 -c 'import json, sys
print(json.dumps({"name": "cored", "role": "monitor", "csr": open(sys.argv[1]).read()}))' \
    "$T/cored.csr" >"$T/cored.json"
req admin1 POST /api/v1/peers "$T/cored.json"
expect_http 201 "an enrollment through the API signs with the CA key on the token"

# gcore (ptrace as root) writes the whole address space; the session process
# is not dumpable, so no core would be written on a crash at all, and this is
# the most any reader could get.
core_has_pin() { # pid name
    local pid=$1 name=$2 core=$T/core-$2
    if ! gcore -o "$core" "$pid" >"$T/gcore.log" 2>&1 || [ ! -s "$core.$pid" ]; then
        tap_result 1 "$name: gcore wrote a core" "$(tail -n 5 "$T/gcore.log")"
        return
    fi
    tap_result 0 "$name: gcore wrote a core ($(($(stat -c %s "$core.$pid") / 1024)) KiB)"
    # Also a sanity check that the search can hit: the PIN *file's* path is
    # in the session process's memory (config), so grep sees the core.
    if ! grep -qaF "$T/gw.pin" "$core.$pid"; then
        tap_result 1 "$name: the core is searchable (holds the PIN file's path)"
    else
        tap_result 0 "$name: the core is searchable (holds the PIN file's path)"
    fi
    local n
    n=$(grep -caF "$PIN" "$core.$pid")
    ok_if "$name: the core holds no PIN (found in $n places)" test "$n" = 0
    rm -f "$core.$pid"
}
if ldd "$MTLSGWD" 2>/dev/null | grep -q libasan; then
    # An ASan process maps terabytes of shadow memory: gcore would write it
    # all. The gcc build of this suite checks the cores.
    for name in parent session; do
        TAP_N=$((TAP_N + 1))
        echo "ok $TAP_N - $name: the core holds no PIN # SKIP AddressSanitizer build (shadow memory)"
    done
else
    core_has_pin "$DPID" parent
    core_has_pin "$SPID" session
fi
ok_if "the daemon still runs after being dumped" kill -0 "$SPID"
req admin1 GET /api/v1/status
expect_http 200 "and serves"
dmn_stop
tap_done
