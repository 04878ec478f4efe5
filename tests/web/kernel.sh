#!/bin/bash
# A revoke clicked in the management page is enforced in the kernel
# (issue 18): the admin's browser on lan-a, the hub's page, spoke1's tunnel.
#
#   lan-a: headless Chromium           hub                        spoke
#   (HOME: webadmin.p12 + CA)  --->  [management] 10.10.0.1:8443
#                                    mtgN <=== tunnel (TLS) ===> [uplink hub] spoke1
#                                    route 10.20.0.0/24 dev mtgN, nft sets with mtgN
#
# The page revokes spoke1; browser.py then reads the hub's kernel until the
# interface, the route to lan-b and every nft element naming it are gone,
# and prints the time from the click.
#
# usage: kernel.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd SCREENSHOT-DIR
set -u
SCREENS=$(readlink -f "$3")
web=$(dirname "$(readlink -f "$0")")
. "$web/../netns/lib-topo.sh" "$@"
. "$web/lib-web.sh"

skip() { echo "1..0 # SKIP $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "namespaces, TUN devices and the policy in /etc need root"
for tool in ip nft certutil pk12util chromium chromedriver softhsm2-util; do
    command -v "$tool" >/dev/null ||
        skip "$tool missing (dev/deps: chromium chromium-driver libnss3-tools)"
done
/usr/bin/python3 -c 'import selenium' 2>/dev/null || skip "python3-selenium missing"

POLICY_DIR=/etc/chromium/policies/managed
POLICY=$POLICY_DIR/mtlsgw-web-kernel-$$.json
topo_cleanup_more() {
    rm -f "$POLICY"
    rmdir "$POLICY_DIR" /etc/chromium/policies 2>/dev/null
}
topo_temp webk
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
topo_up_or_bail
mtg_fixture_or_bail '[management]' "listen = $LANA_GW:$MGMT_PORT"
printf 'p12-pass-%s\n' "$$" >"$T/p12.pass"
DB=$T/home-admin/.pki/nssdb
mkdir -p "$DB"
{
    mtg_at hub enroll webadmin --role admin --p12 "$T/webadmin.p12" \
        --password-file "$T/p12.pass" >/dev/null &&
        certutil -N -d "sql:$DB" --empty-password &&
        certutil -A -d "sql:$DB" -n mtlsgw-ca -t "C,," -i "$T/hub/pki/ca.crt" &&
        pk12util -d "sql:$DB" -i "$T/webadmin.p12" -w "$T/p12.pass" -K "" >/dev/null
} || { echo "Bail out! the admin's .p12 or its NSS database could not be made"; exit 1; }
URL=https://$LANA_GW:$MGMT_PORT
mkdir -p "$POLICY_DIR"
printf '{"AutoSelectCertificateForUrls": ["{\\"pattern\\":\\"%s\\",\\"filter\\":{}}"]}\n' \
    "$URL" >"$POLICY"

echo "# fixture made (t=${SECONDS} s)"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
hub_if() { mtg_ifaces "$NS_HUB" | head -n 1; }
has_hub_if() { [ -n "$(hub_if)" ]; }
if ! wait_until 30 has_hub_if; then
    echo "Bail out! no tunnel came up; hub log: $(tail -n 5 "$T/hub.log" | tr '\n' '|')"
    exit 1
fi
HUB_IF=$(hub_if)
echo "# tunnel up (t=${SECONDS} s)"
# The tunnel's whole footprint on the hub, before the click.
route_dev() { # prefix
    ip -n "$NS_HUB" -j route show "$1" 2>/dev/null | python3 -c 'import json, sys
r = json.load(sys.stdin)
print(r[0].get("dev", "") if r else "")'
}
routed() { [ "$(route_dev "$LANB_NET")" = "$HUB_IF" ]; }
wait_until 10 routed
tap_result "$([ "$(route_dev "$LANB_NET")" = "$HUB_IF" ]; echo $?)" \
    "before: the hub routes lan-b ($LANB_NET) through spoke1's $HUB_IF"
ELEMS=$(for s in trusted_ifaces allowed4; do nft_elems "$NS_HUB" "$s"; done | grep -F "$HUB_IF")
tap_result "$([ -n "$ELEMS" ]; echo $?)" "before: nft elements name $HUB_IF" \
    "$(nft -j list ruleset 2>/dev/null | head -c 300)"
echo "# $HUB_IF on the hub; nft: $(echo "$ELEMS" | tr '\n' ';')"

# The browser on lan-a, as the admin's machine would be.
lana /usr/bin/python3 "$web/browser.py" --stage kernel --url "$URL" --screens "$SCREENS" \
    --victim spoke1 --home-admin "$T/home-admin" --hub-ns "$NS_HUB" --iface "$HUB_IF" \
    --route "$LANB_NET" >"$T/browser.out" 2>"$T/browser.err"
rc=$?
echo "# browser done (t=${SECONDS} s)"
if [ "$rc" = 77 ]; then
    skip "$(grep SKIP "$T/browser.out")"
fi
browser_tap kernel "$rc"

# And as the console and the kernel tell it afterwards.
OUT=$(mtg_at hub peers 2>&1)
expect_in "$(printf '%-20s %-8s %-10s' spoke1 tunnel revoked)" "$OUT" \
    "mtlsgw peers shows spoke1 revoked"
tap_result "$([ -z "$(mtg_ifaces "$NS_HUB")" ]; echo $?)" "after: no mtg interface on the hub" \
    "$(mtg_ifaces "$NS_HUB")"
tap_result "$([ -z "$(route_dev "$LANB_NET")" ]; echo $?)" "after: no route to lan-b on the hub"
LEFT=$(for s in trusted_ifaces allowed4; do nft_elems "$NS_HUB" "$s"; done | grep -F "$HUB_IF")
tap_result "$([ -z "$LEFT" ]; echo $?)" "after: no nft element names $HUB_IF" "$LEFT"
sleep 2
tap_result "$([ -z "$(mtg_ifaces "$NS_HUB")" ]; echo $?)" \
    "spoke1 does not get back in (no mtg on the hub 2 s later)"
echo "# screenshots: $SCREENS"
tap_done
