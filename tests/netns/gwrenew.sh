#!/bin/bash
# The hub's own certificate renewed with new names while a spoke's tunnel
# carries traffic (issue #15): the tunnel stays up; a spoke whose hub no
# longer carries the name it dials is told so, with the names the hub has
# and the fixes; server-name applies to the tunnel and to the uplink's EST
# renewal alike. The topology is lib-topo.sh's; the hub adds [enroll].
#
#   lan-b --- spoke [uplink hub] ==tunnel==> hub 192.168.50.1:4433 --- lan-a
#                \--- simplereenroll ------> hub 192.168.50.1:8445 (EST)
#   hub: mtlsgw gateway renew --host hub.example   (192.168.50.1 dropped)
#
# usage: gwrenew.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-topo.sh" "$@"

topo_need ip openssl ping softhsm2-util pgrep
topo_temp gwrenew
topo_up_or_bail

URL=https://$HUB_WAN:$EST_PORT
mtg_fixture_or_bail "keepalive = 2" "[enroll]" "listen = $HUB_WAN:$EST_PORT"
# The uplink section is the spoke config's last: its enroll URL dials the
# hub by address, as the tunnel does.
printf 'enroll = %s\n' "$URL" >>"$T/spoke/spoke.conf"

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "the tunnel comes up (the hub's certificate names $HUB_WAN)" wait_until 15 ping_ab 1

# ---- the hub renews with other names while traffic flows -----------------------
nsd_mark hub
nsd_mark spoke
ip netns exec "$NS_LANB" ping -i 0.2 -W 1 "$LANA_HOST" >"$T/ping.out" 2>&1 &
PINGPID=$!
sleep 0.6
expect_exit 0 "hub: gateway renew --host hub.example (its address dropped)" \
    mtg_at hub gateway renew --host hub.example
expect_in "serves it to new handshakes" "$OUT" "... the hub's daemon serves it at once"
sleep 1.5
kill -INT "$PINGPID" 2>/dev/null
wait "$PINGPID" 2>/dev/null
PINGPID=
lost=$(sed -n 's/.* \([0-9]*\)% packet loss.*/\1/p' "$T/ping.out")
ok_if "no ping lost across the renewal (loss ${lost:-?}%)" test "${lost:-x}" = 0
ok_if "... the spoke did not reconnect" \
    sh -c "! (tail -n +$((${NSD_MARK[spoke]} + 1)) '$T/spoke.log' | grep -qiE 'reconnecting|connected to')"

# ---- the spoke's messages name the hub's certificate --------------------------
expect_exit 1 "spoke: renew (EST to $HUB_WAN) fails" spoke_console renew hub
expect_in "the hub's certificate lacks the name $HUB_WAN that this spoke dialled (the names it has: hub.example)" \
    "$OUT" "... saying the HUB's certificate lacks $HUB_WAN and which names it has"
expect_in "mtlsgw gateway renew --host $HUB_WAN" "$OUT" "... the fix on the hub"
expect_in "server-name = hub.example in [uplink hub]" "$OUT" "... the fix here"
nsd_mark spoke
mtg_at hub kick spoke1 >/dev/null 2>&1
ok_if "after a kick the spoke's log says the hub's certificate lacks $HUB_WAN" \
    wait_until 15 nsd_log_has spoke "hub's certificate lacks the name $HUB_WAN"
expect_not_in "NOT trusted" "$(nsd_since spoke)" "... not 'The certificate is NOT trusted' (as if the hub refused)"

# ---- server-name on the spoke: the tunnel and the EST renewal ------------------
nsd_stop spoke
printf 'server-name = hub.example\n' >>"$T/spoke/spoke.conf"
expect_exit 0 "spoke: with server-name = hub.example, renew over EST works" spoke_console renew hub
nsd_mark hub
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "... and the tunnel comes up again" wait_until 15 ping_ab 1
# ---- days left on a spoke -------------------------------------------------------
expect_exit 0 "spoke: status" spoke_console status
# 397 days issued a moment ago: 397 or 396 left, by where the second falls.
ok_if "... shows its own certificate's and its hub CA's days left" sh -c \
    "printf '%s\n' \"\$1\" | grep -Eq 'uplink     hub \($HUB_WAN:$TUN_PORT\): certificate 39[67] days left, hub CA 36(49|50) days left'" _ "$OUT"
expect_not_in "CA -1, gateway -1, CRL -1" "$OUT" "... and no '-1' for a CA it does not have"
expect_exit 0 "spoke: status --json" spoke_console status --json
ok_if "... the same in JSON (uplinks)" sh -c \
    "printf '%s' \"\$1\" | tr -d ' \n' | grep -Eq '\"certificate\":39[67],'" _ "$OUT"
ok_if "both daemons still run" sh -c "kill -0 ${NSD_PID[hub]} && kill -0 ${NSD_PID[spoke]}"

tap_done
