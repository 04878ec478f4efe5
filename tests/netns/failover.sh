#!/bin/bash
# Failover between hubs (issue #16 item 6): a spoke with two hubs in its
# [uplink] server list is on A, moves to B when A stops (lan-b reaches lan-c
# through B, the routes are B's), and moves back to A once A answers again
# (prefer-first: a probe every probe-interval, the tunnel to B ended
# cleanly). Hub B is a copy of hub A (same token, CA and registry) in its own
# namespace, with a gateway certificate of its own: each hub's names its own
# WAN address only, so the spoke reaches B only because the uplink checks
# each hub against its own HOST (a check of every server against the first
# server's name, the old behaviour, refuses B).
#
#   lan-a --- hub A 192.168.50.1:4433 ---\
#                                         spoke [uplink hub] --- lan-b
#   lan-c --- hub B 192.168.52.1:4433 ---/   server = A B
#
# Prints the failover and failback times as '# ...' lines.
# usage: failover.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-topo.sh"

topo_need ip ping softhsm2-util pgrep python3

NS_HUBB=mtg-hubb-$$
NS_LANC=mtg-lanc-$$
HUBB_WAN=192.168.52.1
SPOKE_WAN2=192.168.52.2
LANC_NET=10.30.0.0/24
LANC_GW=10.30.0.1
LANC_HOST=10.30.0.2
PROBE=2
hubb() { ip netns exec "$NS_HUBB" "$@"; }
lanc() { ip netns exec "$NS_LANC" "$@"; }

topo_temp failover
topo_up_or_bail
TOPO_NS="$TOPO_NS $NS_HUBB $NS_LANC"
{
    ip netns add "$NS_HUBB" && ip netns add "$NS_LANC" &&
        hubb ip link set lo up && lanc ip link set lo up &&
        topo_link "$NS_HUBB" wan "$HUBB_WAN/24" "$NS_SPOKE" wan2 "$SPOKE_WAN2/24" &&
        topo_link "$NS_HUBB" vc "$LANC_GW/24" "$NS_LANC" vc "$LANC_HOST/24" &&
        lanc ip route add default via "$LANC_GW" &&
        hubb sysctl -qw net.ipv4.ip_forward=1
} || { echo "Bail out! hub B's namespaces could not be made"; exit 1; }

mtg_fixture
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM module"; exit 77 ;;
*) echo "Bail out! fixture: tokens, CA or spoke1 could not be made"; exit 1 ;;
esac
# Hub B: a copy of hub A's node (token, pki, registry), its own paths,
# WAN address and LAN.
cp -a "$T/hub" "$T/hubb" && mv "$T/hubb/hub.conf" "$T/hubb/hubb.conf" &&
    sed -i -e "s|$T/hub/|$T/hubb/|g" -e "s|= $T/hub\$|= $T/hubb|" \
        -e "s|^listen = $HUB_WAN:|listen = $HUBB_WAN:|" -e "s|^routes = .*|routes = $LANC_NET|" \
        "$T/hubb/hubb.conf" "$T/hubb/softhsm2.conf" ||
    { echo "Bail out! hub B's node could not be made"; exit 1; }
# The spoke: both hubs, A first, the routes of either accepted.
python3 - "$T/spoke/spoke.conf" "$HUB_WAN:$TUN_PORT $HUBB_WAN:$TUN_PORT" \
    "$LANA_NET $LANC_NET" "$PROBE" <<'PY' || { echo "Bail out! spoke.conf"; exit 1; }
import re, sys
path, servers, routes, probe = sys.argv[1:]
s = open(path).read()
s = re.sub(r"(?m)^server = .*$", "server = %s\nprefer-first = yes\nprobe-interval = %s"
           % (servers, probe), s)
s = re.sub(r"(?m)^accept-routes = .*$", "accept-routes = " + routes, s)
open(path, "w").write(s)
PY
# B's own gateway certificate (same key, from the same CA): its addresses only.
mtg_at hubb gateway renew --host "$HUBB_WAN" --host "$LANC_GW" >/dev/null ||
    { echo "Bail out! hub B's gateway certificate"; exit 1; }
san_of() { openssl x509 -in "$T/$1/pki/gateway.crt" -noout -ext subjectAltName; }
names_only() { # node own other
    local san
    san=$(san_of "$1")
    grep -q "IP Address:$2\b" <<<"$san" && ! grep -q "IP Address:$3\b" <<<"$san"
}
ok_if "hub A's gateway certificate names $HUB_WAN, not $HUBB_WAN" \
    names_only hub "$HUB_WAN" "$HUBB_WAN"
ok_if "hub B's names $HUBB_WAN, not $HUB_WAN" names_only hubb "$HUBB_WAN" "$HUB_WAN"
grep -q "^server = $HUB_WAN:$TUN_PORT $HUBB_WAN" "$T/spoke/spoke.conf" ||
    { echo "Bail out! spoke.conf has no two servers"; exit 1; }

ping_a() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
ping_c() { lanb ping -c 1 -W 1 -q "$LANC_HOST" >/dev/null 2>&1; }
spoke_server() { # the "server" of uplink hub in the spoke's status
    SOFTHSM2_CONF=$T/spoke/softhsm2.conf "$MTLSGW" -c "$T/spoke/spoke.conf" status --json \
        2>/dev/null | python3 -c 'import json, sys
for u in json.load(sys.stdin).get("uplinks", []):
    if u["name"] == "hub":
        print(u["server"] or "")'
}
on_hub() { [ "$(spoke_server)" = "$1:$TUN_PORT" ]; }
has_route() { spoke ip route show "$1" | grep -q "dev mtg"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
through_a() { # pings lan-a (a few tries: the first may race the routes), A's route only
    local i
    for i in 1 2 3 4 5; do ping_a && break; sleep 0.5; done
    ping_a && has_route "$LANA_NET" && ! has_route "$LANC_NET"
}
routes_b() { has_route "$LANC_NET" && ! has_route "$LANA_NET"; }

: >"$T/hub.log"
: >"$T/hubb.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start hubb "$NS_HUBB" "$T/hubb/hubb.conf"
wait_until 10 spoke bash -c "exec 3<>/dev/tcp/$HUB_WAN/$TUN_PORT" &&
    wait_until 10 spoke bash -c "exec 3<>/dev/tcp/$HUBB_WAN/$TUN_PORT" ||
    { echo "Bail out! the hubs do not listen: $(tail -5 "$T/hub.log" "$T/hubb.log")"; exit 1; }
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"

# ---- on A ----------------------------------------------------------------------
ok_if "the spoke comes up on hub A (status: server $HUB_WAN:$TUN_PORT)" \
    wait_until 20 on_hub "$HUB_WAN"
ok_if "lan-b reaches lan-a through A; A's route is in, B's is not" through_a

# ---- A stops: on B -------------------------------------------------------------
t0=$(now_ms)
nsd_stop hub
wait_until 30 ping_c
t1=$(now_ms)
ok_if "A stopped: lan-b reaches lan-c through B" ping_c
echo "# failover: $((t1 - t0)) ms from stopping A to the first ping through B"
ok_if "status shows the spoke on hub B ($HUBB_WAN:$TUN_PORT)" on_hub "$HUBB_WAN"
ok_if "the routes followed: B's in, A's gone" routes_b

# ---- A back: on A again (prefer-first) -----------------------------------------
t0=$(now_ms)
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until $((PROBE + 20)) on_hub "$HUB_WAN"
t1=$(now_ms)
ok_if "A back: the spoke returns to A (prefer-first, probe every $PROBE s)" on_hub "$HUB_WAN"
echo "# failback: $((t1 - t0)) ms from starting A to the spoke on A"
ok_if "lan-b reaches lan-a through A again; B's route is gone" through_a
ok_if "B ended the spoke's tunnel cleanly (the spoke's CLOSE: superseded)" \
    grep -qE "superseded by session" "$T/hubb.log"
ok_if "the spoke's log names the move back" \
    grep -q "uplink hub: $HUB_WAN:$TUN_PORT answers again: leaving $HUBB_WAN:$TUN_PORT" \
    "$T/spoke.log"

# ---- A answers but refuses us: the spoke stays on B ----------------------------
# A revokes spoke1 (B, a copy, does not): A ends the tunnel, the spoke goes
# to B, and A's probes complete the TLS handshake but get no CONFIG. Leaving
# B on the handshake alone would flap between the two every probe-interval.
superseded_before=$(grep -c "superseded by session" "$T/hubb.log")
ok_if "A revokes spoke1" mtg_at hub revoke spoke1
ok_if "the spoke, refused at A, is on B" wait_until 30 on_hub "$HUBB_WAN"
sleep $((3 * PROBE + 1))
never_left_b() {
    on_hub "$HUBB_WAN" &&
        [ "$(grep -c "superseded by session" "$T/hubb.log")" = "$superseded_before" ]
}
ok_if "three probes later it is still on B, and never left it" never_left_b
ok_if "the spoke's log says why it stays" \
    grep -q "uplink hub: $HUB_WAN:$TUN_PORT answers but sent no CONFIG" "$T/spoke.log"
ok_if "lan-b still reaches lan-c through B" wait_until 5 ping_c
tap_done
