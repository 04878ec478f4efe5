#!/bin/bash
# Attack: flood the hub's UDP data channel port ([tunnel] udp) from a host
# on the path with what an attacker has: random bytes, forgeries carrying a
# live tunnel's channel id (a fresh counter, a wrong tag), and the tunnel's
# own records captured on the wire, replayed from the attacker's address.
# The hub must answer none of it (no amplification, no reflection: UDP out
# of the hub towards the attacker is counted on the attacker's link), count
# the forgeries and the replays per tunnel, keep the peer's address, and
# keep the tunnel on UDP (docs/tunnel-protocol.md, "UDP data channel").
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +------ vo -----+                  +---------------+     +-------+
#                    |  [tunnel] 192.168.50.1:4433, udp = 4434
#                +-- vo --+
#                |  out   | 192.168.51.2: the attacker (no certificate)
#                +--------+
#
# usage: udp-flood.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../netns/lib-topo.sh"
. "$here/lib.sh"
TOOL=$here/../netns/udp-tool.py

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP namespaces and TUN devices need root"; exit 77; }
adv_need ip nft python3 ping softhsm2-util

UDP_PORT=4434
adv_topo_temp udpflood
adv_topo_up
adv_mtg_fixture "keepalive = 2" "udp = $UDP_PORT"

ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
sess() { # node path: a field of the node's tunnel session ("udp.replays")
    mtg_at "$1" status --json 2>/dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
for x in s.get("sessions_list", []):
    if "interface" in x:
        v = x
        for k in sys.argv[1].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print("" if v is None else v)
        break' "$2"
}
on_udp() { [ "$(sess hub channel)" = udp ] && [ "$(sess spoke channel)" = udp ]; }

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
if wait_until 20 eval '[ -n "$(mtg_ifaces "$NS_SPOKE")" ] && ping_ab 1' && wait_until 10 on_udp; then
    tap_result 0 "spoke1's tunnel is up, its data on UDP"
else
    echo "Bail out! no tunnel on UDP"
    tail -n 20 "$T/hub.log" "$T/spoke.log"
    exit 1
fi
peer=$(sess hub udp.peer)

# The tunnel's own records, seen on the hub's wire.
hub python3 "$TOOL" capture wan "$SPOKE_WAN" "$UDP_PORT" 20 "$T/cap.hex" 15 >/dev/null &
cap=$!
wait_until 10 test -e "$T/cap.hex.ready"
lanb ping -c 40 -i 0.05 -W 1 -q "$LANA_HOST" >/dev/null 2>&1
wait "$cap"
ok_if "captured 20 records of the tunnel on the wire" test "$(wc -l <"$T/cap.hex")" = 20
# 25 copies of each: 500 replays.
for _ in $(seq 25); do cat "$T/cap.hex"; done >"$T/replay.hex"

# The hub's socket drops what does not fit its (short) receive buffer:
# those never reach the daemon, so each forgery and replay is either
# counted by it or among the kernel's drops.
rcvbuf_drops() { hub nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }'; }
auth0=$(sess hub udp.auth_failures)
rp0=$(sess hub udp.replays)
kd0=$(rcvbuf_drops)
out python3 "$TOOL" count vo "$HUB_WAN" 60 "$T/count.ready" >"$T/count" &
cnt=$!
wait_until 10 test -e "$T/count.ready"
# Traffic from the hub to the spoke meanwhile: were the peer's address to
# follow a forged or replayed datagram, it would go to the attacker.
lana ping -c 400 -i 0.02 -W 1 -q "$LANB_HOST" >"$T/ping.out" 2>&1 &
pinger=$!
LOCAL_PIDS="$LOCAL_PIDS $pinger"
t0=$(date +%s.%N)
out python3 "$TOOL" garbage "$HUB_WAN" "$UDP_PORT" "$T/cap.hex" 2000 >/dev/null
out python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/replay.hex" >/dev/null
t1=$(date +%s.%N)
wait "$pinger"
touch "$T/count.ready.stop"
wait "$cnt"
echo "# flood: 2500 datagrams in $(python3 -c "print('%.2f' % ($t1 - $t0))") s"
auth1=$(sess hub udp.auth_failures)
rp1=$(sess hub udp.replays)
kd=$(($(rcvbuf_drops) - kd0))
ok_if "no UDP datagram from the hub reached the attacker ($(cat "$T/count") seen)" \
    test "$(cat "$T/count")" = 0
ok_if "the 1000 forgeries with the live channel id failed the AEAD check, counted (auth_failures $auth0 -> $auth1; the kernel dropped $kd datagrams for a full buffer)" \
    test $((auth1 - auth0)) -le 1000 -a $((1000 - (auth1 - auth0))) -le "$kd"
ok_if "the 500 replays were refused, counted (replays $rp0 -> $rp1)" \
    test $((rp1 - rp0)) -le 500 -a $((1500 - (auth1 - auth0) - (rp1 - rp0))) -le "$kd"
ok_if "the pings from lan-a crossed meanwhile ($(grep -o '[0-9]* received' "$T/ping.out"))" \
    grep -qE " [1-9][0-9]* received" "$T/ping.out"
ok_if "the peer's address stayed the spoke's ($(sess hub udp.peer))" test "$(sess hub udp.peer)" = "$peer"
ok_if "the tunnel stays on UDP and carries traffic" eval 'ping_ab 3 && on_udp'
ok_if "the hub's log has no line per forged datagram" \
    test "$(grep -ciE "udp|datagram" "$T/hub.log")" -le 5
tap_done
