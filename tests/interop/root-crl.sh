#!/bin/bash
# The root's CRL at the hubs (docs/pki.md "The root's CRL at the hubs"): a
# compromised appliance is cut off by revoking its intermediate at the root
# (`mtlsgw root revoke` + `mtlsgw root crl`). Hub B reads the root's CRL
# from the distribution point `root sign` wrote into hubA's intermediate,
# and refuses hubA's peers, ending their sessions, once it lists hubA's CA.
# Before, hubs never read the root's CRL: hubA's peer stayed accepted.
#
#   root (mtlsgw root, its own token; [pki] crl-url = http://127.0.0.1:$HPORT/root.crl)
#     |-- root sign --> hubB's intermediate: the daemon here, [management] 127.0.0.1:$PORT
#     '-- root sign --> hubA's intermediate: no daemon, enrolls mona (monitor)
#   python3 -m http.server $HPORT: a.crl (hubA's CRL), root.crl (the root's)
#   hubB: [trust hubA] ca = hubA.crt, crl-url = .../a.crl, roles = monitor, refresh = 1
#
# usage: root-crl.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_need openssl python3 curl certtool
dmn_temp rootcrl
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" >/dev/null && softhsm_token rt root-pin-01 >/dev/null &&
    softhsm_token ha hubA-pin-01 >/dev/null || { echo "Bail out! tokens"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
printf 'root-pin-01\n' >"$T/rt.pin"
printf 'hubA-pin-01\n' >"$T/ha.pin"
chmod 600 "$T"/*.pin
mkdir -p "$T/run" "$T/www"
chmod 700 "$T/run"
P=$T/gw-pki
DLOG=$T/daemon.log
: >"$DLOG"
PORT=$(free_port)
HPORT=$(free_port)
REFRESH=1
ROOT_URL=http://127.0.0.1:$HPORT/root.crl
printf '[token]\nuri = pkcs11:token=rt\nmodule = %s\npin-file = %s\n[pki]\ndir = %s\n%s\n' \
    "$MODULE" "$T/rt.pin" "$T/root" "crl-url = $ROOT_URL" >"$T/root.conf"
gw_conf "$T/gw.conf"
printf '%s\n' "[trust hubA]" "ca = $T/hubA.crt" "crl-url = http://127.0.0.1:$HPORT/a.crl" \
    "roles = monitor" "refresh = $REFRESH" >>"$T/gw.conf"
mkconf "$T/a.conf" ha "$T/ha.pin" "$T/a-pki"
sed -i "s|^control-socket = .*|control-socket = $T/run/a.sock|" "$T/a.conf"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T"/*.pin
root() { "$MTLSGW" -c "$T/root.conf" root "$@"; }
huba() { "$MTLSGW" -c "$T/a.conf" "$@"; }
publish() { cp "$1" "$T/www/$2.tmp" && mv "$T/www/$2.tmp" "$T/www/$2"; }

{
    root init --cn "Org Root" &&
        hub init --intermediate --cn hubB --host 127.0.0.1 --csr-out "$T/hubB.csr" &&
        root sign --csr "$T/hubB.csr" --out "$T/hubB.crt" &&
        cp "$T/root/root.crt" "$T/orgroot.crt" && chmod a+r "$T/orgroot.crt" "$T/hubB.crt" &&
        hub init --import-ca "$T/hubB.crt" --chain "$T/orgroot.crt" &&
        enroll_file_peer admin1 admin &&
        huba init --intermediate --cn hubA --host 127.0.0.1 --csr-out "$T/hubA.csr" &&
        root sign --csr "$T/hubA.csr" --out "$T/hubA.crt" && chmod a+r "$T/hubA.crt" &&
        huba init --import-ca "$T/hubA.crt" --chain "$T/orgroot.crt" &&
        keycsr mona && huba enroll mona --role monitor --csr "$T/mona.csr" --out "$T/mona.crt"
} >"$T/fixture.log" 2>&1 || { echo "Bail out! fixture: $(tail -3 "$T/fixture.log")"; exit 1; }
publish "$T/a-pki/crl.pem" a.crl
(cd "$T/www" && exec python3 -m http.server "$HPORT" --bind 127.0.0.1 >/dev/null 2>&1) &
LOCAL_PIDS="$LOCAL_PIDS $!"
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$HPORT/a.crl" && break
    sleep 0.1
done

OUT=$(openssl x509 -in "$T/hubA.crt" -noout -ext crlDistributionPoints 2>&1)
expect_in "URI:$ROOT_URL" "$OUT" "root sign writes the root's CRL DP ([pki] crl-url) into hubA's CA"

code_of() { # peer
    curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$T/$1.crt" --key "$T/$1.key" \
        -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/api/v1/status" 2>/dev/null
}
dmn_start || { echo "Bail out! hubB did not start: $(tail -n 5 "$DLOG")"; exit 1; }
# No root CRL at the DP yet: hubA's peers are refused (fail closed).
for _ in $(seq 50); do
    grep -q "trust hubA: root CRL fetch failed: .*HTTP 404" "$DLOG" && break
    sleep 0.1
done
ok_if "no root CRL to be had: hubA's monitor mona is refused at hubB (fail closed)" \
    test "$(code_of mona)" != 200
publish "$T/root/root-crl.pem" root.crl
for _ in $(seq 100); do
    grep -q "trust hubA: root's CRL .* its CA is not revoked" "$DLOG" &&
        grep -q "trust hubA: CRL fresh" "$DLOG" && break
    sleep 0.1
done
ok_if "hubB fetched the root's CRL from hubA's CA's DP: hubA's CA is not revoked" \
    grep -q "trust hubA: root's CRL 1 from $ROOT_URL: its CA is not revoked" "$DLOG"
ok_if "hubA's monitor mona is accepted at hubB" test "$(code_of mona)" = 200
expect_exit 0 "explain at hubB agrees: mona granted" hub explain "$T/mona.crt"
hold_open m mona
expect_hold "CONNECTED *" "a long-lived session of mona at hubB"
hold_cmd "REQ GET /api/v1/status"
expect_hold "STATUS 200 *" "mona's session answers"

# ---- hubA is compromised: the root revokes its intermediate and publishes -------------
cp "$T/root/root-crl.pem" "$T/root-crl1.pem" # what a path attacker records off the wire
root revoke "$T/hubA.crt" >/dev/null 2>&1
root crl --out "$T/root-crl2.pem" >/dev/null 2>&1 || { echo "Bail out! root crl"; exit 1; }
publish "$T/root-crl2.pem" root.crl
t0=$(now)
hold_cmd "WAIT $((REFRESH + 4))" $((REFRESH + 6))
expect_hold "CLOSED *" "mona's open session at hubB is ended"
t1=${HOLD_ANS#CLOSED }
t1=${t1%% *}
el=$(python3 -c "print('%.2f' % (float('$t1') - float('$t0')))" 2>/dev/null || echo 99)
echo "# root CRL published -> mona's session ended at hubB: $el s (refresh $REFRESH s)"
ok_if "... within refresh + 1 s ($el s)" python3 -c "import sys; sys.exit(float('$el') > $REFRESH + 1)"
ok_if "mona is refused at hubB" test "$(code_of mona)" != 200
ok_if "hubB's log says the root's CRL revokes hubA's CA" \
    grep -q "trust hubA: the root's CRL [0-9]* from $ROOT_URL revokes its CA" "$DLOG"
ok_if "the refusal names it" grep -q "its issuer hubA's CA is revoked by the root" "$DLOG"
OUT=$(curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$T/admin1.crt" --key "$T/admin1.key" \
    "https://127.0.0.1:$PORT/api/v1/status")
expect_in '"ca_revoked": true' "$(python3 -m json.tool <<<"$OUT" 2>/dev/null)" \
    "status: [trust hubA] root_crl ca_revoked"
ok_if "hubB's own admin is still served" test "$(code_of admin1)" = 200
expect_exit 1 "explain at hubB agrees: mona refused" hub explain "$T/mona.crt"
expect_in "its issuer hubA's CA is revoked by the root" "$OUT" "... and says why"

# ---- hubB restarts (reboot, upgrade, crash) and a path attacker answers at the root's DP
# with the recorded root CRL 1 (before the revocation, still within its nextUpdate): the
# kept root CRL (2 or later) is the floor, so CRL 1 is refused and mona stays refused --------------
dmn_stop
publish "$T/root-crl1.pem" root.crl
log_mark
dmn_start || { echo "Bail out! hubB did not restart: $(tail -n 5 "$DLOG")"; exit 1; }
for _ in $(seq 100); do
    log_since | grep -q "trust hubA: root CRL fetch failed" &&
        log_since | grep -q "trust hubA: CRL fresh" && break
    sleep 0.1
done
log_since | grep 'trust hubA' | sed 's/^/# B log: /'
since_has() { log_since | grep -q -- "$1"; }
ok_if "restart: the replayed root CRL 1 is refused (lower than the kept one)" \
    since_has "trust hubA: root CRL fetch failed: the root's CRL number 1 is older"
ok_if "restart + replayed root CRL 1: mona stays refused at hubB" test "$(code_of mona)" != 200
expect_exit 1 "... and explain at hubB refuses mona" hub explain "$T/mona.crt"
tap_done
