#!/bin/bash
# tests/bench/revoke.sh: revocation latency under tunnel load (a benchmark,
# not a test; not part of dev/test). The topology of tests/netns/lib-topo.sh:
# hub and spoke daemons, lan-a behind the hub, lan-b behind the spoke.
#
#   tests/bench/revoke.sh [BUILD_DIR]        (root; default build/bench)
#   N=100        rounds
#   LOAD=iperf3  traffic through the tunnel while it is revoked: iperf3 (a
#                TCP stream lan-b -> lan-a, the default when installed) or
#                ping (ping -f lan-b -> lan-a)
#
# Each round: spoke1 gets a new key on its token and is enrolled again (the
# revoked key never is), the spoke daemon starts, its tunnel comes up, the
# load runs for a second, then `mtlsgw revoke spoke1` on the hub. The
# latency is from the command's start to the kernel's deletion of the hub's
# mtg link, as `ip -ts monitor link` in the hub's namespace saw it. Prints
# every round and the p50, p90, p99 and max.
set -u
here=$(dirname "$(readlink -f "$0")")
top=$(readlink -f "$here/../..")
build=$(readlink -f "${1:-$top/build/bench}")
N=${N:-100}
LOAD=${LOAD:-$(command -v iperf3 >/dev/null && echo iperf3 || echo ping)}

die() { echo "revoke bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
MTLSGW=$build/gateway/mtlsgw
MTLSGWD=$build/gateway/mtlsgwd
[ -x "$MTLSGWD" ] || die "no $MTLSGWD (build it: meson setup $build && ninja -C $build)"
case $LOAD in iperf3 | ping) ;; *) die "LOAD=$LOAD: iperf3 or ping" ;; esac

. "$top/tests/lib/softhsm.sh"
. "$top/tests/netns/lib-topo.sh"

T=$(mktemp -d /tmp/mtlsgw-revoke-bench.XXXXXX)
chmod 755 "$T"
LOCAL_PIDS=""
cleanup() {
    local p
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    nsd_stop_all
    wait 2>/dev/null
    topo_down
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

topo_up || die "cannot make the namespaces"
# The revoked spoke's retries are failed authentications: no ban for them.
mtg_fixture '[daemon]' 'ban-threshold = 1000000' || die "fixture: tokens, CA or spoke1"
: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 5 eval "hub ss -Hltn 'sport = :$TUN_PORT' | grep -q $HUB_WAN" || die "the hub did not start"

ping_ab() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
tunnel_up() { [ -n "$(mtg_ifaces "$NS_HUB")" ] && ping_ab; }
deleted_at() { # monitor-file ifname
    grep -m1 -E "\] Deleted [0-9]+: $2[:@]" "$1" | python3 -c 'import datetime, sys
ts = sys.stdin.read().split("]")[0].lstrip("[")
print("%.6f" % datetime.datetime.fromisoformat(ts).timestamp())'
}
load_start() {
    if [ "$LOAD" = iperf3 ]; then
        ip netns exec "$NS_LANA" iperf3 -s -1 >/dev/null 2>&1 &
        LOAD_SRV=$!
        sleep 0.2
        ip netns exec "$NS_LANB" iperf3 -c "$LANA_HOST" -t 30 >/dev/null 2>&1 &
        LOAD_PID=$!
    else
        LOAD_SRV=
        ip netns exec "$NS_LANB" ping -f -q "$LANA_HOST" >/dev/null 2>&1 &
        LOAD_PID=$!
    fi
}
load_stop() {
    kill "$LOAD_PID" $LOAD_SRV 2>/dev/null
    wait "$LOAD_PID" $LOAD_SRV 2>/dev/null
}

echo "revocation latency: $N rounds, load $LOAD, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$T/latencies"
for i in $(seq "$N"); do
    nsd_stop spoke
    if [ "$i" -gt 1 ]; then
        mtg_at spoke csr --cn spoke1 --new-key --out "$T/spoke/r.csr" >/dev/null &&
            mtg_at hub enroll spoke1 --role tunnel --csr "$T/spoke/r.csr" --out "$T/spoke/r.crt" \
                --network "$LANB_NET" >/dev/null &&
            cp "$T/spoke/r.crt" "$T/spoke/pki/device.crt" || die "round $i: enrollment failed"
    fi
    nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
    wait_until 20 tunnel_up || die "round $i: no tunnel ($(tail -n 3 "$T/hub.log"))"
    ifname=$(mtg_ifaces "$NS_HUB" | head -n 1)
    load_start
    ip -n "$NS_HUB" -ts monitor link >"$T/mon" 2>&1 &
    mon=$!
    sleep 1
    kill -0 "$LOAD_PID" 2>/dev/null || die "round $i: the $LOAD load is not running"
    t0=$(date +%s.%N)
    mtg_at hub revoke spoke1 --reason keyCompromise >/dev/null 2>&1 || die "round $i: revoke failed"
    wait_until 5 grep -qE "\] Deleted [0-9]+: $ifname[:@]" "$T/mon"
    t1=$(deleted_at "$T/mon" "$ifname")
    nsd_stop spoke # it would retry with the revoked key
    kill "$mon" 2>/dev/null
    wait "$mon" 2>/dev/null
    load_stop
    [ -n "$t1" ] || die "round $i: $ifname not deleted within 5 s"
    ms=$(python3 -c 'import sys; print("%.1f" % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$t0" "$t1")
    echo "$ms" >>"$T/latencies"
    echo "round $i: $ifname deleted $ms ms after revoke started"
done
python3 - "$T/latencies" <<'PY'
import math, sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
def pct(p):  # nearest rank
    return v[max(0, math.ceil(p / 100.0 * len(v)) - 1)]
print("revocation latency over %d rounds: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (len(v), pct(50), pct(90), pct(99), v[-1]))
PY
