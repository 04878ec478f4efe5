#!/bin/bash
# CA rollover without a flag day (docs/console.md "CA rollover"): the old CA
# and the new one are trusted together while peers renew over EST, each
# peer holding only its own anchor still reaches the gateway (the gateway's
# certificate from the new CA carries the cross certificate new-by-old),
# retire-old is refused while a peer is still on the old CA and accepted once
# none is, and then the old CA's certificates are refused.
#
#   curl (alice: old cert, old anchor)   curl (bob: renewed, new anchor)
#                 \                          /
#                  v  https 127.0.0.1:$PORT v   (+ EST on $EPORT)
#   mtlsgwd -f -c gw.conf --- token "gw" (both CA keys), pki $P
#
# usage: rollover.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_need curl openssl certtool python3
dmn_temp roll

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" && softhsm_token dv dv-pin-0000 || { echo "Bail out! token"; exit 1; }
printf 'dv-pin-0000\n' >"$T/dv.pin"
chmod 600 "$T/dv.pin"
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
mkdir -p "$T/run"
chmod 700 "$T/run"
P=$T/gw-pki
PORT=$(free_port)
EPORT=$(free_port)
while [ "$EPORT" = "$PORT" ]; do EPORT=$(free_port); done
EST=https://127.0.0.1:$EPORT/.well-known/est
gw_conf "$T/gw.conf"
printf '[enroll]\nlisten = 127.0.0.1:%s\n' "$EPORT" >>"$T/gw.conf"
# A spoke with its own token: joins before the rollover, renews during it.
mkconf "$T/dv.conf" dv "$T/dv.pin" "$T/dv-pki"
sed -i "s|^control-socket = .*|control-socket = $T/run/dv.sock|" "$T/dv.conf"
dev() { "$MTLSGW" -c "$T/dv.conf" "$@"; }
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T/gw.pin" "$T/dv.pin" 2>/dev/null
DLOG=$T/daemon.log
: >"$DLOG"
engine_conf

# A CA with 100 days left: status must warn (the 180-day mark).
hub init --cn gw1 --host 127.0.0.1 --days 100 >/dev/null 2>&1 || { echo "Bail out! init"; exit 1; }
for p in admin1:admin alice:monitor bob:monitor dave:monitor; do
    enroll_file_peer "${p%%:*}" "${p#*:}" >/dev/null 2>&1 || { echo "Bail out! enroll $p"; exit 1; }
done
cp "$P/ca.crt" "$T/old-anchor.crt"

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }

# curl as NAME (NAME.crt/.key) trusting only ANCHOR: sets HTTP.
as_with() { # name anchor
    HTTP=$(curl -sS --max-time 10 --cacert "$2" --cert "$T/$1.crt" --key "$T/$1.key" \
        -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/api/v1/status" \
        2>"$T/curl.err") || true
}

# EST simplereenroll of NAME with its current certificate and a new key;
# NAME.crt/.key become the new ones.
renew() { # name
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$1.new.key" -subj "/CN=$1" -outform DER -out "$T/$1.der" 2>/dev/null &&
        openssl base64 -in "$T/$1.der" -out "$T/$1.b64" || return 1
    HTTP=$(curl -sS --max-time 10 --cacert "$P/ca.crt" --cert "$T/$1.crt" \
        --key "$T/$1.key" -H 'Content-Type: application/pkcs10' --data-binary "@$T/$1.b64" \
        -o "$T/$1.p7" -w '%{http_code}' "$EST/simplereenroll" 2>"$T/curl.err") || true
    [ "$HTTP" = 200 ] || return 1
    cp "$T/$1.crt" "$T/$1.old.crt"
    cp "$T/$1.key" "$T/$1.old.key"
    openssl base64 -d -A -in "$T/$1.p7" | openssl pkcs7 -inform DER -print_certs \
        -out "$T/$1.crt" 2>/dev/null && mv "$T/$1.new.key" "$T/$1.key"
}

dmn_start || { echo "Bail out! the daemon does not start: $(tail -5 "$DLOG")"; exit 1; }

for i in $(seq 30); do
    grep -Eq "CA certificate expires in (99|100) days .*mtlsgw ca rollover" "$DLOG" && break
    sleep 0.1
done
ok_if "the daemon's log warns too, naming ca rollover" grep -Eq \
    "CA certificate expires in (99|100) days .*mtlsgw ca rollover" "$DLOG"
CODE=$(hub invite spoke1 --role tunnel 2>&1 | awk '$1 == "code" {print $2}')
GWFP=$(openssl x509 -in "$P/gateway.crt" -noout -fingerprint -sha256 | cut -d= -f2)
out=$(dev join "https://127.0.0.1:$EPORT" --name spoke1 --code "$CODE" --fingerprint "$GWFP" 2>&1)
ok_if "spoke1 joins before the rollover" test $? = 0 || echo "# $out"
printf '[uplink hub]\nserver = 127.0.0.1:%s\nenroll = https://127.0.0.1:%s\n' \
    "$(free_port)" "$EPORT" >>"$T/dv.conf"
cp "$T/dv-pki/hub-ca.crt" "$T/spoke-ca-before.crt"
out=$(hub status 2>&1)
expect_in "under 180): make the next one now, without a flag day: mtlsgw ca rollover" "$out" \
    "status warns that the CA expires within 180 days, naming ca rollover"

# ---- the rollover ----------------------------------------------------------
out=$(hub ca rollover </dev/null 2>&1)
rc=$?
ok_if "ca rollover without --yes and no terminal: refused" test "$rc" != 0
expect_in "--yes" "$out" "... saying --yes goes ahead"
ok_if "... and ca.crt is unchanged" cmp -s "$P/ca.crt" "$T/old-anchor.crt"

if command -v script >/dev/null; then
    out=$(printf 'no\n' | script -qec "'$MTLSGW' -c '$T/gw.conf' ca rollover" /dev/null 2>&1)
    expect_in "Type 'yes' to go ahead" "$out" "ca rollover on a terminal asks, saying what changes"
    expect_in "nothing changed" "$out" "... 'no' changes nothing"
    ok_if "... ca.crt is unchanged" cmp -s "$P/ca.crt" "$T/old-anchor.crt"
else
    tap_skip "ca rollover on a terminal" "no script(1)"
fi

out=$(hub ca rollover --yes 2>&1)
rc=$?
ok_if "ca rollover --yes: done (and the daemon told)" test "$rc" = 0 || echo "# $out"
ok_if "ca.crt holds both anchors" test "$(ncerts "$P/ca.crt")" = 2
ok_if "ca-old.crt is the old anchor" cmp -s "$P/ca-old.crt" "$T/old-anchor.crt"
cp "$P/ca-new.crt" "$T/new-anchor.crt"
ok_if "the new CA has its own name" sh -c \
    "openssl x509 -in '$T/new-anchor.crt' -noout -subject | grep -q 'gw1 CA G2'"
ok_if "cross certificates: new-by-old verifies with the old anchor" \
    openssl verify -CAfile "$T/old-anchor.crt" -partial_chain "$P/cross/new-by-old.crt"
ok_if "... old-by-new verifies with the new anchor" \
    openssl verify -CAfile "$T/new-anchor.crt" "$P/cross/old-by-new.crt"
openssl x509 -in "$P/gateway.crt" -out "$T/gw-leaf.crt"
ok_if "the gateway certificate is issued by the new CA" \
    openssl verify -CAfile "$T/new-anchor.crt" "$T/gw-leaf.crt"
ok_if "... and verifies with only the old anchor through the cross certificate it carries" \
    openssl verify -CAfile "$T/old-anchor.crt" -untrusted "$P/gateway.crt" "$T/gw-leaf.crt"
ok_if "two CRLs: crl.pem by the new CA" \
    openssl crl -in "$P/crl.pem" -CAfile "$T/new-anchor.crt" -noout
ok_if "... crl-old.pem by the old CA" \
    openssl crl -in "$P/crl-old.pem" -CAfile "$T/old-anchor.crt" -noout
out=$(hub ca rollover --yes 2>&1)
ok_if "a second rollover during the overlap: refused" test $? != 0
expect_in "retire-old" "$out" "... naming retire-old"

# The running daemon issues from the new CA at once (no restart).
ok_if "bob renews over EST during the overlap" renew bob || echo "# HTTP $HTTP $(cat "$T/curl.err")"
ok_if "... his new certificate comes from the new CA, with no restart of the daemon" \
    openssl verify -CAfile "$T/new-anchor.crt" "$T/bob.crt"

# The daemon serves the new gateway certificate from its next start.
dmn_stop
dmn_start || { echo "Bail out! the daemon does not restart: $(tail -5 "$DLOG")"; exit 1; }

out=$(hub status 2>&1)
expect_not_in "warning" "$out" "status: no warning with the new CA (3650 days)"

# ---- peers of both CAs ------------------------------------------------------
as_with alice "$T/old-anchor.crt"
ok_if "alice (old CA's certificate, only the old anchor): served" test "$HTTP" = 200 ||
    echo "# HTTP $HTTP $(cat "$T/curl.err")"
as_with bob "$T/new-anchor.crt"
ok_if "bob (new CA's certificate, only the new anchor): served" test "$HTTP" = 200 ||
    echo "# HTTP $HTTP $(cat "$T/curl.err")"
as_with alice "$T/old-anchor.crt"
ok_if "alice still served alongside" test "$HTTP" = 200
out=$(hub explain "$T/alice.crt" 2>&1)
expect_in "granted: peer alice" "$out" "explain agrees: alice (old CA) granted during the overlap"
out=$(dev renew 2>&1)
ok_if "spoke1 (hub-ca.crt: the old anchor alone) renews with mtlsgw renew" test $? = 0 ||
    echo "# $out"
ok_if "... its new certificate comes from the new CA" \
    openssl verify -CAfile "$T/new-anchor.crt" "$T/dv-pki/device.crt"
ok_if "... and its hub-ca.crt now holds the new anchor too (from cacerts)" sh -c \
    "grep -c 'BEGIN CERTIFICATE' '$T/dv-pki/hub-ca.crt' | grep -qx 4 &&
     openssl verify -CAfile '$T/dv-pki/hub-ca.crt' '$T/gw-leaf.crt'"
HTTP=$(curl -sS --max-time 10 --cacert "$T/old-anchor.crt" -o "$T/cacerts.p7" \
    -w '%{http_code}' "$EST/cacerts" 2>/dev/null) || true
n=$(openssl base64 -d -A -in "$T/cacerts.p7" | openssl pkcs7 -inform DER -print_certs 2>/dev/null |
    grep -c 'BEGIN CERTIFICATE')
ok_if "EST cacerts: both anchors and both cross certificates (4)" test "$n" = 4
peers=$(hub peers 2>&1)
expect_in "ISSUER" "$peers" "peers shows an ISSUER column during the overlap"
ok_if "peers --json: alice old, bob new" python3 -c '
import json, sys
st = {p["name"]: p.get("issuer") for p in json.load(sys.stdin) if p["status"] == "active"}
assert st["alice"] == "old" and st["bob"] == "new", st' < <(hub peers --json)

# ---- retire-old -------------------------------------------------------------
cp "$P/ca.crt" "$T/ca-both.crt"
out=$(hub ca retire-old --yes 2>&1)
rc=$?
ok_if "retire-old while alice, admin1 and dave are on the old CA: refused" test "$rc" = 1
expect_in "still on the old CA: alice" "$out" "... listing alice"
ok_if "... and nothing changed" cmp -s "$P/ca.crt" "$T/ca-both.crt"
ok_if "admin1 renews" renew admin1
ok_if "alice renews" renew alice
as_with alice "$T/old-anchor.crt"
ok_if "alice on her new certificate, still holding only the old anchor: served" \
    test "$HTTP" = 200
hub revoke dave >/dev/null 2>&1
dsn=$(serial_of "$T/dave.crt")
ok_if "a revocation during the overlap: in crl.pem" sh -c \
    "openssl crl -in '$P/crl.pem' -noout -text | tr 'A-F' 'a-f' | grep -q '$dsn'"
ok_if "... and in crl-old.pem" sh -c \
    "openssl crl -in '$P/crl-old.pem' -noout -text | tr 'A-F' 'a-f' | grep -q '$dsn'"
out=$(hub ca retire-old --yes 2>&1)
rc=$?
ok_if "retire-old once no active peer is on the old CA: done" test "$rc" = 0 || echo "# $out"
ok_if "ca.crt holds the new anchor alone" cmp -s "$P/ca.crt" "$T/new-anchor.crt"
ok_if "gateway.crt is the leaf alone" test "$(ncerts "$P/gateway.crt")" = 1
ok_if "no overlap files left" test ! -e "$P/rollover.json" -a ! -e "$P/ca-old.crt" \
    -a ! -e "$P/crl-old.pem"
sleep 1.5
as_with bob "$T/new-anchor.crt"
ok_if "bob still served" test "$HTTP" = 200
as_with alice.old "$T/new-anchor.crt"
ok_if "alice's old certificate (old CA): refused" test "$HTTP" != 200
out=$(hub explain "$T/alice.old.crt" 2>&1)
expect_in "unknown issuer" "$out" "... explain: unknown issuer (the old CA is no longer trusted)"
out=$(hub ca retire-old --yes 2>&1)
ok_if "retire-old with no rollover under way: refused" test $? != 0
expect_in "no rollover" "$out" "... saying so"


# ---- a second rollover (G2 -> G3), ended with --force ----------------------
cp "$P/ca.crt" "$T/g2-anchor.crt"
out=$(hub ca rollover --yes 2>&1)
ok_if "a second rollover (the issuing key is no longer mtlsgw-ca)" test $? = 0 || echo "# $out"
ok_if "... the new CA is G3" sh -c \
    "openssl x509 -in '$P/ca-new.crt' -noout -subject | grep -q 'gw1 CA G3'"
dmn_stop
dmn_start || { echo "Bail out! the daemon does not restart: $(tail -5 "$DLOG")"; exit 1; }
r=1
renew admin1 && renew bob && dev renew >/dev/null 2>&1 && r=0
ok_if "admin1, bob and spoke1 renew at G3" test "$r" = 0 || echo "# HTTP $HTTP $(cat "$T/curl.err")"
as_with bob "$P/ca-new.crt"
ok_if "bob (G3) served" test "$HTTP" = 200
as_with alice "$T/g2-anchor.crt"
ok_if "alice (still G2) served during the overlap" test "$HTTP" = 200
out=$(hub ca retire-old --yes 2>&1)
ok_if "retire-old with alice on G2: refused" test $? = 1
expect_in "still on the old CA: alice" "$out" "... naming alice alone"
expect_not_in "bob" "$out" "... not bob, who renewed"
out=$(hub ca retire-old --force --yes 2>&1)
ok_if "retire-old --force: done" test $? = 0 || echo "# $out"
expect_in "revoked (--force, cessationOfOperation): alice" "$out" "... saying alice is revoked"
ok_if "... alice is revoked in the registry" python3 -c '
import json, sys
st = [p["status"] for p in json.load(sys.stdin) if p["name"] == "alice"]
assert "active" not in st and "revoked" in st, st' < <(hub peers --json)
sleep 1.5
as_with alice "$T/g2-anchor.crt"
ok_if "... and refused" test "$HTTP" != 200
as_with bob "$P/ca.crt"
ok_if "bob still served after the second retire-old" test "$HTTP" = 200

tap_done
