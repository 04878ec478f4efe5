#!/bin/bash
# A roaming tunnel peer (issue #16 item 5; docs/pki.md "Roaming tunnel
# peers"): spoke1 was enrolled at hub A (its networks in its certificate)
# and dials hub B, which has no registry entry for it but trusts A as
# [trust hubA] (roles = tunnel). The topology is lib-topo.sh's, with "hub"
# as hub B and one more namespace for hub A (its CRL distribution point).
#
#   openssl root (RSA-4096) --signs--> hub A CA (token), hub B CA (token)
#
#   hub A 192.168.53.1 (DP :8080) --- 192.168.53.2 hub B (192.168.50.1:4433) --- lan-a
#                                                  ^ tunnel
#   lan-b 10.20.0.0/24 --- spoke [uplink hub] ----/  spoke1 of A: networks
#                                                    10.20.0.0/24 10.21.0.0/24
#
#  1. B without networks =: the tunnel comes up, an address from B's pool,
#     B's routes at the spoke, no route at B to either network;
#  2. B with networks = 10.20.0.0/24: that one routed (lan-b reaches lan-a),
#     10.21.0.0/24 outside it: refused (not routed, logged);
#  3. spoke1 revoked at A: B's tunnel ends within refresh + 1 s, and with it
#     its interface (address, route) and its firewall opening.
#
# usage: roam.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-topo.sh"

topo_need ip openssl ping softhsm2-util pgrep python3 nft

NS_HUBA=mtg-huba-$$
HUBA_IP=192.168.53.1
HUBB_IP=192.168.53.2
NET2=10.21.0.0/24
REFRESH=2
DP_URL=http://$HUBA_IP:8080/crl
huba() { ip netns exec "$NS_HUBA" "$@"; }

topo_temp roam
topo_up_or_bail
TOPO_NS="$TOPO_NS $NS_HUBA"
{
    ip netns add "$NS_HUBA" && huba ip link set lo up &&
        topo_link "$NS_HUBA" wa "$HUBA_IP/24" "$NS_HUB" wa "$HUBB_IP/24"
} || { echo "Bail out! hub A's namespace could not be made"; exit 1; }

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM module"; exit 77; }
printf '%s\n' 'basicConstraints = critical, CA:TRUE, pathlen:0' \
    'keyUsage = critical, keyCertSign, cRLSign' >"$T/v3.ext"
intermediate() { # id cn host
    mtg_at "$1" init --intermediate --cn "$2" --host "$3" --csr-out "$T/$1.csr" >/dev/null &&
        openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" \
            -CAcreateserial -days 1825 -sha256 -extfile "$T/v3.ext" -out "$T/$1.ica.crt" \
            2>/dev/null &&
        mtg_at "$1" init --import-ca "$T/$1.ica.crt" --chain "$T/ca.crt" >/dev/null
}
{
    openssl req -x509 -sha256 -days 3650 -newkey rsa:4096 -keyout "$T/ca.key" \
        -out "$T/ca.crt" -nodes -subj "/O=Example Org/CN=Example Org Root" 2>/dev/null &&
        mtg_node huba huba hua-pin-0001 &&
        printf '[pki]\ncrl-url = %s\n[crl]\nlisten = %s:8080\nresign = 5\n' "$DP_URL" "$HUBA_IP" \
            >>"$T/huba/huba.conf" &&
        intermediate huba hubA "$HUBA_IP" &&
        mtg_node hub hub "$HUB_PIN" &&
        printf '[tunnel]\nlisten = %s:%s\npool = %s\nroutes = %s\n' "$HUB_WAN" "$TUN_PORT" \
            "$TUN_POOL" "$LANA_NET" >>"$T/hub/hub.conf" &&
        printf '[trust hubA]\nca = %s\ncrl-url = %s\nroles = tunnel\nrefresh = %s\n' \
            "$T/huba.ica.crt" "$DP_URL" "$REFRESH" >>"$T/hub/hub.conf" &&
        printf 'max-stale = 30\n' >>"$T/hub/hub.conf" &&
        intermediate hub hubB "$HUB_WAN" &&
        mtg_node spoke spk "$SPK_PIN" && mkdir -p "$T/spoke/pki" &&
        softhsm_give_to "$DUSER" "$T/spoke/pki" &&
        mtg_at spoke csr --cn spoke1 --out "$T/spoke1.csr" >/dev/null &&
        mtg_at huba enroll spoke1 --role tunnel --csr "$T/spoke1.csr" --network "$LANB_NET" \
            --network "$NET2" --out "$T/spoke/pki/device.crt" >/dev/null &&
        cp "$T/ca.crt" "$T/spoke/pki/hub-ca.crt" &&
        softhsm_give_to "$DUSER" "$T/spoke/pki" &&
        printf '[uplink hub]\nserver = %s:%s\naccept-routes = %s\n' "$HUB_WAN" "$TUN_PORT" \
            "$LANA_NET" >>"$T/spoke/spoke.conf"
} || { echo "Bail out! fixture: the root, the hubs' intermediates or spoke1"; exit 1; }

# As the daemon logs it: lower-case hex, whole octets (a leading 0 nibble kept).
SERIAL=$(openssl x509 -in "$T/spoke/pki/device.crt" -noout -serial | cut -d= -f2 |
    tr 'A-F' 'a-f' | sed 's/^\(00\)*//')
declare -A MARK
mark() { MARK[$1]=$(wc -l <"$T/$1.log"); }
since() { tail -n +"$((${MARK[$1]:-0} + 1))" "$T/$1.log"; }
log_has() { since "$1" | grep -qiE -- "$2"; }
hub_iface() { mtg_ifaces "$NS_HUB" | head -1; }
hub_route() { hub ip route show "$1" | grep -q "dev mtg"; }
spoke_addr() { spoke ip -4 -o addr show | awk '$2 ~ /^mtg/ {print $4}' | head -1; }
ping_lana() { spoke ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
ping_ab() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
not() { ! "$@"; }
in_pool() { [[ "$1" == 10.99.0.* ]]; }
trusted() { nft_elems "$NS_HUB" trusted_ifaces | grep -qx "$1"; }
no_tunnel() { [ -z "$(hub_iface)" ]; }
cert_nets() {
    local san
    san=$(openssl x509 -in "$T/spoke/pki/device.crt" -noout -ext subjectAltName)
    grep -q "urn:mtlsgw:network:$LANB_NET" <<<"$san" &&
        grep -q "urn:mtlsgw:network:$NET2" <<<"$san"
}

: >"$T/huba.log"
: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start huba "$NS_HUBA" "$T/huba/huba.conf"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 10 hub bash -c "exec 3<>/dev/tcp/$HUBA_IP/8080" &&
    wait_until 10 spoke bash -c "exec 3<>/dev/tcp/$HUB_WAN/$TUN_PORT" ||
    { echo "Bail out! the hubs do not listen: $(tail -5 "$T/huba.log" "$T/hub.log")"; exit 1; }
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"

ok_if "spoke1's certificate carries both networks (issued by A)" cert_nets

# ---- 1. no networks = : an address and B's routes, nothing routed to it --------
tunnel_up() { [ -n "$(hub_iface)" ] && in_pool "$(spoke_addr)"; }
ok_if "spoke1 (no entry at B) gets its tunnel at B" wait_until 20 tunnel_up
ok_if "... B's log says hubA vouched for serial $SERIAL" \
    log_has hub "serial $SERIAL.*vouched for by issuer hubA"
addr=$(spoke_addr)
ok_if "... its tunnel address is from B's pool $TUN_POOL (got $addr)" in_pool "$addr"
ok_if "... the spoke reaches lan-a through B (B's routes)" wait_until 10 ping_lana
ok_if "... B routes neither of its networks to it" \
    not hub_route "$LANB_NET"
ok_if "... nor $NET2" not hub_route "$NET2"
ok_if "... B logs both networks as refused (no [trust hubA] networks)" \
    log_has hub "network $LANB_NET is outside \[trust hubA\] networks"
ok_if "... lan-b does not reach lan-a (no route back at B)" not ping_ab

# ---- 2. networks = 10.20.0.0/24: that one routed, 10.21.0.0/24 refused ---------
nsd_stop hub
sed -i "/^\[trust hubA\]/a networks = $LANB_NET" "$T/hub/hub.conf"
mark hub
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
ok_if "with networks = $LANB_NET at B: $LANB_NET is routed to spoke1" \
    wait_until 30 hub_route "$LANB_NET"
ok_if "... lan-b reaches lan-a through B" wait_until 10 ping_ab
ok_if "... $NET2 (outside networks =) is not routed" not hub_route "$NET2"
ok_if "... and B says why" log_has hub "network $NET2 is outside \[trust hubA\] networks: refused"
IF=$(hub_iface)
ok_if "... its interface $IF is trusted in B's firewall" trusted "$IF"

# ---- 3. revoked at A: gone at B within refresh + 1 s ----------------------------
gone() { no_tunnel && ! hub_route "$LANB_NET" && ! trusted "$IF"; }
# The same without python (the bound is timed with it: on a loaded machine
# a python start alone can take a second).
gone_fast() {
    ! ip -n "$NS_HUB" -o link show | grep -q ": mtg" && ! hub_route "$LANB_NET" &&
        ! hub nft list set inet mtlsgw trusted_ifaces 2>/dev/null | grep -q "\"$IF\""
}
mark hub
t0=$(now_ms)
mtg_at huba revoke spoke1 >/dev/null 2>&1
tr=$(now_ms)
wait_until 10 gone_fast
t1=$(now_ms)
ok_if "revoked at A: B's tunnel, route and firewall opening are gone" gone
echo "# mtlsgw revoke at A took $((tr - t0)) ms; from its return to the tunnel gone at B:" \
    "$((t1 - tr)) ms (refresh = $REFRESH s)"
ok_if "... within refresh + 1 s of the revoke ($((t1 - tr)) ms <= $(((REFRESH + 1) * 1000)))" \
    test $((t1 - tr)) -le $(((REFRESH + 1) * 1000))
sleep 2
ok_if "... and spoke1 gets no tunnel back" no_tunnel

# ---- 4. peers are (issuer, serial): A's certificate with a serial of B's bob ------
# B enrolls its own bob with a network; A (its CA key on its token) signs
# spoke1's CSR again with bob's serial. B must take it as A's roaming
# spoke1 (networks = routes only), never as bob (bob's network).
BOBNET=10.30.0.0/24
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/bob.key" \
    -subj /CN=bob -out "$T/bob.csr" 2>/dev/null
ok_if "B enrolls its own bob with $BOBNET" \
    mtg_at hub enroll bob --role tunnel --csr "$T/bob.csr" --network "$BOBNET" \
    --out "$T/bob.crt" --leaf-only
BOBSER=$(openssl x509 -in "$T/bob.crt" -noout -serial | cut -d= -f2)
printf 'serial = 0x%s\ntls_www_client\nsigning_key\nuri = %s\nuri = %s\nexpiration_days = 30\n' \
    "$BOBSER" "urn:mtlsgw:role:tunnel" "urn:mtlsgw:network:$LANB_NET" >"$T/forge.tmpl"
nsd_stop spoke
GNUTLS_PIN=hua-pin-0001 SOFTHSM2_CONF=$T/huba/softhsm2.conf certtool --provider "$MODULE" \
    --generate-certificate --load-request "$T/spoke1.csr" \
    --load-ca-privkey "pkcs11:token=huba;object=mtlsgw-ca;type=private" \
    --load-ca-certificate "$T/huba.ica.crt" --template "$T/forge.tmpl" \
    --outfile "$T/forged.crt" >/dev/null 2>&1
ok_if "(A signed spoke1's key again with bob's serial)" test "$(openssl x509 \
    -in "$T/forged.crt" -noout -serial 2>/dev/null | cut -d= -f2)" = "$BOBSER"
cat "$T/forged.crt" "$T/huba.ica.crt" >"$T/spoke/pki/device.crt"
softhsm_give_to "$DUSER" "$T/spoke/pki"
mark hub
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "A's certificate with bob's serial: a tunnel at B, as A's roaming peer" \
    wait_until 20 tunnel_up
ok_if "... vouched for by hubA, named spoke1 (not bob)" \
    log_has hub "tunnel peer spoke1 .*vouched for by issuer hubA"
ok_if "... B routes [trust hubA] networks' $LANB_NET to it" wait_until 10 hub_route "$LANB_NET"
ok_if "... and never bob's $BOBNET" not hub_route "$BOBNET"
# The same name is not the same peer: B's spoke1 would be a bare name.
st=$(mtg_at hub status 2>&1)
expect_in "hubA/spoke1" "$st" "status at B shows the roaming peer as hubA/spoke1"
IF=$(hub_iface)
mtg_at hub kick spoke1 >/dev/null 2>&1
sleep 1
ok_if "kick spoke1 (B's own name) does not end hubA's spoke1" test "$(hub_iface)" = "$IF"
ok_if "kick hubA/spoke1 ends it" mtg_at hub kick hubA/spoke1

tap_done
