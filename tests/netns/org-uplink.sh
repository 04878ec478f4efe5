#!/bin/bash
# A hub whose CA is an intermediate under an organization's root, and a
# spoke that trusts the root alone (docs/pki.md): it joins pinning the
# root's fingerprint, its uplink verifies the hub (which sends its
# intermediate) with hub-ca.crt holding only the root, renews, and
# reconnects with the renewed certificate. The topology is lib-topo.sh's.
#
#   openssl root (RSA-4096) --signs--> hub1 CA (token "hub", pathlen 0)
#   lan-b --- spoke [uplink hub] ==tunnel==> hub 192.168.50.1:4433 --- lan-a
#                \--- join --fingerprint ROOT --> hub 192.168.50.1:8445 (EST)
#
# usage: org-uplink.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-topo.sh" "$@"

topo_need ip openssl ping softhsm2-util pgrep
topo_temp orgup
topo_up_or_bail

URL=https://$HUB_WAN:$EST_PORT
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM module"; exit 77; }
printf '%s\n' 'basicConstraints = critical, CA:TRUE, pathlen:0' \
    'keyUsage = critical, keyCertSign, cRLSign' >"$T/v3.ext"
{
    openssl req -x509 -sha256 -days 3650 -newkey rsa:4096 -keyout "$T/ca.key" \
        -out "$T/ca.crt" -nodes -subj "/O=Example Org/CN=Example Org Root" 2>/dev/null &&
        mtg_hub_node "keepalive = 2" "[enroll]" "listen = $HUB_WAN:$EST_PORT" &&
        mtg_at hub init --intermediate --cn hub1 --host "$HUB_WAN" --csr-out "$T/hub1.csr" \
            >/dev/null &&
        openssl x509 -req -in "$T/hub1.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" \
            -CAcreateserial -days 1825 -sha256 -extfile "$T/v3.ext" -out "$T/hub1.crt" \
            2>/dev/null &&
        mtg_at hub init --import-ca "$T/hub1.crt" --chain "$T/ca.crt" >/dev/null &&
        mtg_spoke_node
} || { echo "Bail out! fixture: the root, tokens or the hub's intermediate"; exit 1; }

ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }
spoke_console() { SOFTHSM2_CONF=$T/spoke/softhsm2.conf spoke "$MTLSGW" -c "$T/spoke/spoke.conf" "$@"; }

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 10 spoke bash -c "exec 3<>/dev/tcp/$HUB_WAN/$EST_PORT" ||
    { echo "Bail out! the hub's enroll listener does not answer: $(tail -5 "$T/hub.log")"; exit 1; }

# ---- join pinning the root ------------------------------------------------------------
INV=$(mtg_at hub invite spoke1 --role tunnel --network "$LANB_NET")
CODE=$(printf '%s\n' "$INV" | awk '$1 == "code" {print $2}')
ROOTFP=$(openssl x509 -in "$T/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)
expect_exit 0 "the spoke joins pinning only the organization's root" \
    spoke_console join "$URL" --name spoke1 --code "$CODE" --fingerprint "$ROOTFP"
ok_if "... hub-ca.crt is the root alone" \
    test "$(ncerts "$T/spoke/pki/hub-ca.crt")" = 1 -a \
    "$(openssl x509 -in "$T/spoke/pki/hub-ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)" = \
    "$ROOTFP"
printf '[uplink hub]\nserver = %s:%s\nenroll = %s\naccept-routes = %s\n' \
    "$HUB_WAN" "$TUN_PORT" "$URL" "$LANA_NET" >>"$T/spoke/spoke.conf"
first=$(serial_of "$T/spoke/pki/device.crt")
nsd_mark hub
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "the uplink verifies the hub through its intermediate: the tunnel comes up" \
    wait_until 15 ping_ab 1
ok_if "... the hub accepted serial $first" nsd_log_has hub "serial $first.*accepted as tunnel"

# ---- renewal keeps the chain; the next connection uses it --------------------------------
expect_exit 0 "mtlsgw renew with only the root trusted" spoke_console renew hub
second=$(serial_of "$T/spoke/pki/device.crt")
ok_if "... a new serial, the intermediate still behind it ($first -> $second)" \
    test "$first" != "$second" -a "$(ncerts "$T/spoke/pki/device.crt")" = 2
nsd_mark hub
mtg_at hub kick spoke1 >/dev/null 2>&1
ok_if "after a kick the spoke reconnects with serial $second" \
    wait_until 15 nsd_log_has hub "serial $second.*accepted as tunnel"
ok_if "... and traffic flows again" wait_until 15 ping_ab 1

tap_done
