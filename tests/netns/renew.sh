#!/bin/bash
# A spoke enrolled over the network (mtlsgw join) renews its certificate by
# itself while its tunnel carries traffic: the tunnel stays up through the
# renewal, and the next connection shows the new certificate (docs/est.md).
# The topology is lib-topo.sh's; the hub adds [enroll] on its WAN address.
#
#   lan-b --- spoke [uplink hub] ==tunnel==> hub 192.168.50.1:4433 --- lan-a
#                \--- join / simplereenroll --> hub 192.168.50.1:8445 (EST)
#
# usage: renew.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-topo.sh" "$@"

topo_need ip openssl certtool ping softhsm2-util pgrep
topo_temp renew
topo_up_or_bail

URL=https://$HUB_WAN:$EST_PORT
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM module"; exit 77; }
{
    mtg_hub_node "keepalive = 2" "[enroll]" "listen = $HUB_WAN:$EST_PORT" &&
        mtg_at hub init --cn hub1 --host "$HUB_WAN" >/dev/null &&
        mtg_spoke_node
} || { echo "Bail out! fixture: tokens or the hub's CA could not be made"; exit 1; }

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 10 spoke bash -c "exec 3<>/dev/tcp/$HUB_WAN/$EST_PORT" ||
    { echo "Bail out! the hub's enroll listener does not answer: $(tail -5 "$T/hub.log")"; exit 1; }

# ---- join over the network, then the tunnel ------------------------------------
INV=$(mtg_at hub invite spoke1 --role tunnel --network "$LANB_NET")
CODE=$(printf '%s\n' "$INV" | awk '$1 == "code" {print $2}')
FP=$(printf '%s\n' "$INV" | awk '$1 == "gateway" {print $3}')
expect_exit 0 "the spoke joins with the invite (mtlsgw join in its namespace)" \
    spoke_console join "$URL" --name spoke1 --code "$CODE" --fingerprint "$FP"
# This spoke runs without offloads (one MTU-sized packet per PACKET frame),
# the path a peer that never sends OFFLOAD gets; tunnel.sh runs with them.
# It accepts the hub's route to lan-a (without accept-routes, none).
printf '[tunnel]\noffload = no\n[uplink hub]\nserver = %s:%s\nenroll = %s\naccept-routes = %s\n' \
    "$HUB_WAN" "$TUN_PORT" "$URL" "$LANA_NET" >>"$T/spoke/spoke.conf"
first=$(serial_of "$T/spoke/pki/device.crt")
nsd_mark hub
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "the tunnel comes up with the certificate from join" wait_until 15 ping_ab 1
ok_if "... the hub accepted serial $first" nsd_log_has hub "serial $first.*accepted as tunnel"
ok_if "... without offloads: the hub's session says \"offload\": false" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert any(x.get("peer") == "spoke1" and x.get("offload") is False
           for x in s.get("sessions_list", [])), s.get("sessions_list")' "$(mtg_at hub status --json)"

# ---- renewal while traffic flows --------------------------------------------------
# The same certificate again (serial, key, name, role), valid from 10 h ago
# to 1 h from now: the spoke's daemon sees the file change, finds two thirds
# of the lifetime gone and renews within seconds, on its own.
openssl x509 -in "$T/spoke/pki/device.crt" -pubkey -noout >"$T/spoke.pub"
printf '%s\n' 'cn = spoke1' 'tls_www_client' 'uri = urn:mtlsgw:role:tunnel' "serial = 0x$first" \
    "activation_date = \"$(date -u -d '-10 hours' '+%Y-%m-%d %H:%M:%S')\"" \
    "expiration_date = \"$(date -u -d '+1 hour' '+%Y-%m-%d %H:%M:%S')\"" >"$T/short.tmpl"
SOFTHSM2_CONF=$T/hub/softhsm2.conf TZ=UTC GNUTLS_PIN=$HUB_PIN certtool --generate-certificate \
    --load-pubkey "$T/spoke.pub" --load-ca-privkey "pkcs11:token=hub;object=mtlsgw-ca;type=private" \
    --load-ca-certificate "$T/hub/pki/ca.crt" --template "$T/short.tmpl" \
    --outfile "$T/short.crt" >/dev/null 2>&1
cp "$T/short.crt" "$T/spoke/pki/device.crt.new" && chown "$DUSER:" "$T/spoke/pki/device.crt.new" &&
    mv "$T/spoke/pki/device.crt.new" "$T/spoke/pki/device.crt"
nsd_mark spoke
nsd_mark hub
# ping itself in the background (not a shell function), so that SIGINT
# reaches it and it prints its summary.
ip netns exec "$NS_LANB" ping -i 0.2 -W 1 "$LANA_HOST" >"$T/ping.out" 2>&1 &
PINGPID=$!
ok_if "the spoke renews by itself with traffic flowing" \
    wait_until 20 nsd_log_has spoke "uplink hub: renewed: serial [0-9a-f]+ replaces $first"
sleep 1.5
kill -INT "$PINGPID" 2>/dev/null
wait "$PINGPID" 2>/dev/null
PINGPID=
second=$(serial_of "$T/spoke/pki/device.crt")
ok_if "... device.crt holds the new serial ($first -> $second)" test "$first" != "$second"
ok_if "... the hub recorded it (renewed, new serial $second)" \
    nsd_log_has hub "renewed, new serial $second"
lost=$(sed -n 's/.* \([0-9]*\)% packet loss.*/\1/p' "$T/ping.out")
ok_if "... no ping lost across the renewal (loss ${lost:-?}%)" test "${lost:-x}" = 0
ok_if "... the hub did not end the spoke's tunnel session" \
    sh -c "! (tail -n +$((${NSD_MARK[hub]} + 1)) '$T/hub.log' | grep -qiE 'tunnel peer spoke1 .*(ended|closed|down)')"
ok_if "... the spoke did not reconnect" sh -c "! (tail -n +$((${NSD_MARK[spoke]} + 1)) '$T/spoke.log' | grep -qiE 'reconnecting|connected to')"

# ---- the next connection shows the new certificate ---------------------------------
nsd_mark hub
nsd_mark spoke
mtg_at hub kick spoke1 >/dev/null 2>&1
ok_if "after a kick the spoke reconnects with serial $second" \
    wait_until 15 nsd_log_has hub "serial $second.*accepted as tunnel"
ok_if "... and traffic flows again" wait_until 15 ping_ab 1
ok_if "both daemons still run" sh -c "kill -0 ${NSD_PID[hub]} && kill -0 ${NSD_PID[spoke]}"

tap_done
