#!/bin/bash
# Two hubs under one root (issue #16 items 4, 5; docs/pki.md "Revocation
# across hubs"): a peer of hub A is admitted at hub B by [trust hubA], and
# A's revocations reach B through A's CRL distribution point.
#
#     hubA                         hubB                          peer
#  +--------------+          +-------------------+          +-----------+
#  | DP   :8080   |          | management :8443  |          |  curl as  |
#  | mgmt :8443   |--- wa ---| wb            pb  |--- pp ---| mon1/mon2 |
#  +--------------+          +-------------------+          | adm1      |
#  192.168.60.1/24           192.168.60.2/24  192.168.61.1/24  .61.2/24
#
#  openssl root (RSA-4096) ─▶ hubA's CA (token), hubB's CA (token)
#  hubB: [trust hubA] ca = A's intermediate, crl-url = http://192.168.60.1:8080/crl,
#        roles = monitor, refresh = 2, max-stale = 6
#
#  - A's monitor mon1 is accepted at B, which says it was vouched for by
#    hubA (log, sessions); A's admin adm1 is refused (roles = monitor);
#  - after `mtlsgw revoke mon1` at A, B refuses mon1 within refresh + 1 s
#    (the bound measured and printed);
#  - with A's DP unreachable (A stopped), B keeps mon2 until max-stale and
#    refuses it after, within max-stale + 2 s of A's last answer (A
#    re-signs every 2 s, [crl] resign; B counts from the CRL's thisUpdate).
#
# usage: hubs.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../interop/lib-daemon.sh"
. "$here/../interop/lib-org.sh"

for tool in curl openssl certtool python3 ip; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (namespaces)"; exit 77; }
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }

NS_A=mtg-ha-$$
NS_B=mtg-hb-$$
NS_P=mtg-hp-$$
A_IP=192.168.60.1
B_WAN=192.168.60.2
B_IP=192.168.61.1
P_IP=192.168.61.2
REFRESH=2
MAX_STALE=6
hubA() { ip netns exec "$NS_A" "$@"; }
hubB() { ip netns exec "$NS_B" "$@"; }
peer() { ip netns exec "$NS_P" "$@"; }

T=$(mktemp -d /tmp/mtlsgw-hubs.XXXXXX)
PID_A=
PID_B=
HOLD=
stop_pid() { # pid
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    for p in $HOLD; do kill "$p" 2>/dev/null; done
    stop_pid "$PID_A"
    stop_pid "$PID_B"
    for ns in "$NS_A" "$NS_B" "$NS_P"; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$T"

if ! ip netns add "$NS_A" 2>/dev/null; then
    echo "1..0 # SKIP cannot create network namespaces"
    exit 77
fi
ip netns add "$NS_B" && ip netns add "$NS_P" &&
    ip link add wa netns "$NS_A" type veth peer name wb netns "$NS_B" &&
    ip link add pb netns "$NS_B" type veth peer name pp netns "$NS_P" &&
    hubA ip addr add "$A_IP/24" dev wa && hubB ip addr add "$B_WAN/24" dev wb &&
    hubB ip addr add "$B_IP/24" dev pb && peer ip addr add "$P_IP/24" dev pp &&
    for ns in "$NS_A" "$NS_B" "$NS_P"; do
        ip -n "$ns" link set lo up
        for dev in $(ip -n "$ns" -o link show type veth | awk -F'[:@ ]+' '{print $2}'); do
            ip -n "$ns" link set "$dev" up
        done
    done || { echo "Bail out! topology"; exit 1; }

softhsm_setup "$T"
mkdir -p "$T/run-a" "$T/run-b"
chmod 700 "$T/run-a" "$T/run-b"
DP_URL="http://$A_IP:8080/crl"
org_root || { echo "Bail out! openssl root"; exit 1; }
# A re-signs its CRL every 2 s: B counts freshness from its thisUpdate.
ORG_HOST=$A_IP org_hub hubA "[crl]" "listen = $A_IP:8080" "resign = 2" \
    "[management]" "listen = $A_IP:8443" \
    "[pki]" "crl-url = $DP_URL" || { echo "Bail out! hub A"; exit 1; }
ORG_HOST=$B_IP org_hub hubB "[management]" "listen = $B_IP:8443" "[trust hubA]" "ca = $T/hubA.ica.crt" \
    "crl-url = $DP_URL" "roles = monitor" "refresh = $REFRESH" "max-stale = $MAX_STALE" ||
    { echo "Bail out! hub B"; exit 1; }
sed -i "s|^control-socket = .*|control-socket = $T/run-a/control.sock|" "$T/hubA.conf"
sed -i "s|^control-socket = .*|control-socket = $T/run-b/control.sock|" "$T/hubB.conf"
softhsm_give_to "$DUSER" "$T/run-a"
softhsm_give_to "$DUSER" "$T/run-b"
org_peer hubA mon1 monitor && org_peer hubA mon2 monitor && org_peer hubA mon3 monitor &&
    org_peer hubA adm1 admin &&
    org_peer hubB bmon monitor || { echo "Bail out! peers"; exit 1; }
chmod a+r "$T"/*.key "$T"/*.pem "$T"/*.crt
# What a client of B trusts: the root; B's intermediate given alongside
# until every listener sends its chain (issue #16 item 3).
cat "$T/root/root.crt" "$T/hubB.ica.crt" >"$T/b-trust.pem"

ip netns exec "$NS_A" "$MTLSGWD" -c "$T/hubA.conf" -f >>"$T/a.log" 2>&1 &
PID_A=$!
ip netns exec "$NS_B" "$MTLSGWD" -c "$T/hubB.conf" -f >>"$T/b.log" 2>&1 &
PID_B=$!

at_b() { # peer path -> CODE
    CODE=$(peer curl -s --max-time 3 --cacert "$T/b-trust.pem" --cert "$T/$1.chain.pem" \
        --key "$T/$1.key" -o "$T/body" -w '%{http_code}' "https://$B_IP:8443$2" 2>/dev/null)
}
for _ in $(seq 100); do
    at_b bmon /api/v1/status
    [ "$CODE" = 200 ] && break
    sleep 0.1
done
ok_if "hub B answers its own monitor (got $CODE)" test "$CODE" = 200
ok_if "A's peer chains to the root; B's own CA is another intermediate" \
    openssl verify -CAfile "$T/root/root.crt" -untrusted "$T/hubA.ica.crt" "$T/mon1.crt"

# ---- admitted at B ---------------------------------------------------------
for _ in $(seq 50); do # B's first fetch of A's CRL
    at_b mon1 /api/v1/status
    [ "$CODE" = 200 ] && break
    sleep 0.1
done
ok_if "A's monitor mon1 is accepted at B (got $CODE)" test "$CODE" = 200
at_b mon1 /api/v1/sessions
issuer=$(python3 -c 'import json,sys
s=[x for x in json.load(open(sys.argv[1])) if x.get("peer")=="mon1"]
print(s[0].get("issuer","") if s else "no session")' "$T/body" 2>&1)
ok_if "B's sessions say hubA vouched for mon1 (got '$issuer')" test "$issuer" = hubA
# B's log, given up to 3 s: a refused client can see the refusal before
# B's session process has written the line that says why
in_log() {
    for _ in $(seq 30); do
        grep -m1 -F "$1" "$T/b.log" && return 0
        sleep 0.1
    done
    return 1
}
ok_if "B's log says who vouched" in_log "vouched for by issuer hubA"
at_b adm1 /api/v1/status
ok_if "A's admin adm1 is refused at B: [trust hubA] roles = monitor (got $CODE)" \
    test "$CODE" = 000
ok_if "B's log says why" in_log "may not vouch for role admin"
at_b mon1 /api/v1/status
st=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["trust"]["hubA"]; print(t["fresh"], t["revoked"])' "$T/body" 2>&1)
ok_if "B's status: hubA fresh, nothing revoked ($st)" test "$st" = "True 0"

# A session of PEER at B held open (openssl s_client, stdin kept open).
hold() { # peer
    (sleep 60 | peer openssl s_client -quiet -connect "$B_IP:8443" -CAfile "$T/b-trust.pem" \
        -cert "$T/$1.chain.pem" -key "$T/$1.key") >/dev/null 2>&1 &
    HOLD="$HOLD $!"
    for _ in $(seq 50); do
        grep -q "peer $1 serial .*accepted" "$T/b.log" && return 0
        sleep 0.1
    done
    return 1
}
# B's log has a line for PEER's session ending with WHY, within SECONDS.
ended() { # peer why seconds
    for _ in $(seq $(($3 * 10))); do
        grep -q "peer $1 serial .* ended: no longer trusted ($2)" "$T/b.log" && return 0
        sleep 0.1
    done
    return 1
}

# ---- revoked at A, refused at B within refresh + 1 s -----------------------
ok_if "mon3 holds a session at B" hold mon3
st=$("$MTLSGW" -c "$T/hubB.conf" status 2>&1)
expect_in "trust      hubA: fresh" "$st" "mtlsgw status at B: hubA's CRL is fresh"
expect_in "hubA/mon3" "$st" "mtlsgw status at B: mon3's session, vouched for by hubA"
"$MTLSGW" -c "$T/hubA.conf" revoke mon3 --reason keyCompromise >/dev/null 2>&1
ok_if "revoked at A, mon3's open session at B ends within refresh + 1 s" \
    ended mon3 "revoked by its issuer" $((REFRESH + 1))

t0=$(date +%s.%N)
"$MTLSGW" -c "$T/hubA.conf" revoke mon1 --reason keyCompromise >/dev/null 2>&1
elapsed=
while :; do
    at_b mon1 /api/v1/status
    now=$(date +%s.%N)
    if [ "$CODE" != 200 ]; then
        elapsed=$(python3 -c "print(f'{$now - $t0:.2f}')")
        break
    fi
    python3 -c "import sys; sys.exit($now - $t0 > 10)" || break
    sleep 0.1
done
echo "# revoke at A -> refused at B: ${elapsed:-never} s (refresh $REFRESH s)"
ok_if "revoked at A, mon1 is refused at B within refresh + 1 s (${elapsed:-never} s)" \
    python3 -c "import sys; sys.exit(not ('$elapsed' and float('$elapsed') <= $REFRESH + 1))"
ok_if "B's log: revoked by its issuer" in_log "revoked by its issuer hubA"
at_b mon2 /api/v1/status
ok_if "A's other monitor mon2 is still accepted at B (got $CODE)" test "$CODE" = 200

# ---- A's DP unreachable: stale past max-stale, fail closed -----------------
ok_if "mon2 holds a session at B" hold mon2
stop_pid "$PID_A"
PID_A=
t0=$(date +%s.%N)
at_b mon2 /api/v1/status
ok_if "A gone: mon2 still accepted within max-stale (got $CODE)" test "$CODE" = 200
elapsed=
while :; do
    at_b mon2 /api/v1/status
    now=$(date +%s.%N)
    if [ "$CODE" != 200 ]; then
        elapsed=$(python3 -c "print(f'{$now - $t0:.2f}')")
        break
    fi
    python3 -c "import sys; sys.exit($now - $t0 > $MAX_STALE + 10)" || break
    sleep 0.2
done
echo "# A unreachable -> A's peers refused at B after ${elapsed:-never} s (max-stale $MAX_STALE s)"
ok_if "A's DP unreachable: B refuses A's peers by max-stale + 2 s (${elapsed:-never} s)" \
    python3 -c "import sys; sys.exit(not ('$elapsed' and float('$elapsed') <= $MAX_STALE + 2))"
ok_if "B's log says the CRL is stale" in_log "no fresh CRL from $DP_URL"
ok_if "mon2's open session at B ended as stale" ended mon2 "its issuer's CRL is stale past max-stale" 2
at_b bmon /api/v1/status
ok_if "B's own peers are not affected (got $CODE)" test "$CODE" = 200
tap_done
