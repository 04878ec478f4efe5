#!/bin/bash
# The appliance's life (issue #15): the gateway's own certificate renewed
# (same key, new key, new names) while a management session stays up, the
# daemon taking it for new handshakes (control socket, its watch), renewing
# it by itself at two thirds of its lifetime, and every issued certificate
# kept under issued/.
#
#   tlsclient.py (held keep-alive)   openssl s_client (new handshakes)
#        |  mutual TLS, 127.0.0.1:$PORT  |
#        v                               v
#   mtlsgwd -f  (stderr -> $T/daemon.log) --- token "gw" (CA + gateway key)
#        ^  control socket $T/run/control.sock, watch of the pki dir
#        |
#   mtlsgw gateway renew / show
#
# usage: lifecycle.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

for tool in curl openssl certtool python3 p11tool; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-life.XXXXXX)
cleanup() {
    local id p
    for id in "${!HOLD_W[@]}"; do hold_close "$id"; done
    dmn_stop
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
chmod 755 "$T"

# A lighter fixture than dmn_fixture: one token, one CA, one admin.
fixture() {
    MODULE=$(softhsm_find_module) || return 77
    softhsm_setup "$T"
    softhsm_token gw "$PIN" || return 1
    printf '%s\n' "$PIN" >"$T/gw.pin"
    chmod 600 "$T/gw.pin"
    mkdir -p "$T/run"
    chmod 700 "$T/run"
    P=$T/gw-pki
    PORT=$(free_port)
    gw_conf "$T/gw.conf"
    EPORT=$(free_port)
    while [ "$EPORT" = "$PORT" ]; do EPORT=$(free_port); done
    printf '[enroll]\nlisten = 127.0.0.1:%s\n' "$EPORT" >>"$T/gw.conf"
    # A device with a token of its own, for join.
    softhsm_token dv dv-pin-0000 || return 1
    printf 'dv-pin-0000\n' >"$T/dv.pin"
    chmod 600 "$T/dv.pin"
    mkconf "$T/dv.conf" dv "$T/dv.pin" "$T/dv-pki"
    sed -i "s|^control-socket = .*|control-socket = $T/run/dv.sock|" "$T/dv.conf"
    chown "$DUSER:" "$T/dv.pin" 2>/dev/null
    sed "s|^control-socket = .*|control-socket = $T/run/nobody-listens.sock|" \
        "$T/gw.conf" >"$T/quiet.conf"
    softhsm_give_to "$DUSER" "$T/tokens"
    softhsm_give_to "$DUSER" "$T/run"
    chown "$DUSER:" "$T/gw.pin" 2>/dev/null
    hub init --cn gw1 --host 127.0.0.1 --host localhost --days 100 >/dev/null 2>&1 || return 1
    enroll_file_peer admin1 admin >/dev/null 2>&1 || return 1
    enroll_file_peer mon1 monitor >/dev/null 2>&1 || return 1
    DLOG=$T/daemon.log
    : >"$DLOG"
}
fixture
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM"; exit 77 ;;
*) echo "Bail out! fixture: token, CA or peer could not be made"; exit 1 ;;
esac

# What a new handshake is served: "SERIAL name,name" (serial in lower-case
# hex, as mtlsgw writes it).
served() {
    local pem
    pem=$(openssl s_client -connect "127.0.0.1:$PORT" -cert "$T/admin1.crt" \
        -key "$T/admin1.key" -CAfile "$P/ca.crt" </dev/null 2>/dev/null |
        sed -n '/BEGIN CERT/,/END CERT/p')
    [ -n "$pem" ] || { echo "none"; return; }
    printf '%s ' "$(printf '%s\n' "$pem" | openssl x509 -noout -serial | cut -d= -f2 |
        tr 'A-F' 'a-f')"
    printf '%s\n' "$pem" | openssl x509 -noout -ext subjectAltName 2>/dev/null |
        tail -n +2 | tr -d ' ' | sed 's/DNS://g; s/IPAddress://g'
}
file_serial() { # cert file
    openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'
}
# Wait (up to 5 s) until new handshakes get serial $1.
wait_served() { # serial
    local i
    for i in $(seq 50); do
        SERVED=$(served)
        [ "${SERVED%% *}" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
keys_on_token() {
    GNUTLS_PIN=$PIN p11tool --provider "$MODULE" --login --list-privkeys \
        "pkcs11:token=gw" 2>/dev/null | sed -n 's/^[[:space:]]*Label: //p' | sort | tr '\n' ' '
}

# In this shell (ok_if would start it in a subshell, and lose DPID).
start_ok() { # name
    if dmn_start; then
        tap_result 0 "$1"
    else
        tap_result 1 "$1" "$(tail -n 20 "$DLOG")"
    fi
}

# ---- the console refuses what it cannot do ------------------------------
expect_exit 2 "gateway without a subcommand is a usage error" hub gateway
expect_exit 2 "gateway frob is a usage error" hub gateway frob
expect_exit 2 "gateway renew --days 398 is refused (397 at most)" hub gateway renew --days 398
expect_in "1 to 397" "$OUT" "... and says the range"
cp "$T/gw.conf" "$T/owncert.conf"
printf '[management]\ncert = %s/gateway.crt\n' "$P" >>"$T/owncert.conf"
expect_exit 1 "gateway renew refuses while [management] cert names the admin's own" \
    "$MTLSGW" -c "$T/owncert.conf" gateway renew
expect_in "[management] cert" "$OUT" "... and names the line that decides"

# ---- renewed while a management session stays up -------------------------
start_ok "mtlsgwd starts"
old=$(file_serial "$P/gateway.crt")
SERVED=$(served)
expect_in "$old 127.0.0.1,localhost" "$SERVED" "new handshakes get the gateway certificate of init"
hold_open A admin1
hold_cmd "REQ GET /api/v1/status"
expect_hold "STATUS 200 *" "a keep-alive management session is open"

expect_exit 0 "gateway renew --host gw.example --host 127.0.0.1" \
    hub gateway renew --host gw.example --host 127.0.0.1
expect_in "serves it to new handshakes" "$OUT" "... and the daemon says it serves it"
expect_in "dropped      localhost (a peer that dials it is refused" "$OUT" \
    "... and names the name it dropped"
new=$(file_serial "$P/gateway.crt")
ok_if "gateway.crt has a new serial" test "$new" != "$old"
SERVED=$(served)
expect_in "$new gw.example,127.0.0.1" "$SERVED" \
    "a new handshake sees the new serial and names (s_client -showcerts)"
expect_not_in "localhost" "$SERVED" "... localhost is gone (--host replaces the names)"
hold_cmd "REQ GET /api/v1/status"
expect_hold "STATUS 200 *" "the management session opened before the renewal is still served"
ok_if "issued/$new.crt keeps the new certificate" cmp -s "$P/issued/$new.crt" "$P/gateway.crt"
expect_in '"event":"gateway-renew"' "$(cat "$P/audit.log")" "the audit log has the renewal"
expect_in "\"old_serial\":\"$old\"" "$(grep gateway-renew "$P/audit.log")" \
    "... with the old serial"
expect_in "gateway certificate $P/gateway.crt (serial $new" "$(cat "$DLOG")" \
    "the daemon logs the certificate it serves now"

# ---- a new key ------------------------------------------------------------
expect_in "mtlsgw-ca mtlsgw-gateway " "$(keys_on_token) " "before: the CA and gateway keys on the token"
expect_exit 0 "gateway renew --new-key (names kept)" hub gateway renew --new-key
expect_in "old key 'mtlsgw-gateway' deleted" "$OUT" "... the old key deleted once the daemon switched"
new2=$(file_serial "$P/gateway.crt")
SERVED=$(served)
expect_in "$new2 gw.example,127.0.0.1" "$SERVED" "new handshakes get it, the names kept"
expect_in "mtlsgw-gateway-next" "$(keys_on_token)" "the new key is 'mtlsgw-gateway-next'"
expect_not_in "mtlsgw-gateway " "$(keys_on_token) " "the old key is gone from the token"
hold_cmd "REQ GET /api/v1/status"
expect_hold "STATUS 200 *" "the held management session outlives the key change too"
req admin1 GET /api/v1/status
expect_http 200 "curl: a new session with the new key"

# ---- the daemon's watch: a renewal it was not told about ------------------
expect_exit 0 "gateway renew with no daemon told (a config without its socket)" \
    hub_quiet gateway renew --days 30
new3=$(file_serial "$P/gateway.crt")
if wait_served "$new3"; then
    tap_result 0 "the daemon's watch of the pki dir serves it within 5 s"
else
    tap_result 1 "the daemon's watch of the pki dir serves it within 5 s" \
        "wanted $new3, served $SERVED"
fi
hold_cmd "REQ GET /api/v1/status"
expect_hold "STATUS 200 *" "the held session is still up after three renewals"
hold_close A

# ---- a restart finds the key under its new label ---------------------------
dmn_stop
start_ok "mtlsgwd starts again with the key under 'mtlsgw-gateway-next'"
SERVED=$(served)
expect_in "$new3 " "$SERVED" "... and serves the last certificate"
expect_exit 0 "a second --new-key goes back to the first label" hub gateway renew --new-key
expect_in "old key 'mtlsgw-gateway-next' deleted" "$OUT" "... deleting the -next one"
SERVED=$(served)
expect_in "$(file_serial "$P/gateway.crt") " "$SERVED" "... served"

# ---- automatic renewal at two thirds of the lifetime ------------------------
# A gateway certificate for the same key, valid from 10 h ago to 1 h from
# now (certtool, signed by the CA key on the token): more than two thirds
# of its lifetime gone, by the real clock. The daemon looks a second after
# it starts, then once a minute.
short_gw() {
    openssl x509 -in "$P/gateway.crt" -pubkey -noout >"$T/gw.pub"
    printf '%s\n' 'cn = gw1' 'tls_www_server' 'signing_key' 'ip_address = 127.0.0.1' \
        'dns_name = gw.example' \
        "activation_date = \"$(date -u -d '-10 hours' '+%Y-%m-%d %H:%M:%S')\"" \
        "expiration_date = \"$(date -u -d '+1 hour' '+%Y-%m-%d %H:%M:%S')\"" >"$T/short.tmpl"
    TZ=UTC GNUTLS_PIN=$PIN certtool --generate-certificate --load-pubkey "$T/gw.pub" \
        --load-ca-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
        --load-ca-certificate "$P/ca.crt" --template "$T/short.tmpl" \
        --outfile "$T/short.crt" >/dev/null 2>&1 &&
        cp "$T/short.crt" "$P/gateway.crt.new" && chown "$DUSER:" "$P/gateway.crt.new" &&
        mv "$P/gateway.crt.new" "$P/gateway.crt"
}
dmn_stop
ok_if "a gateway certificate 10 h into its 11 h (certtool)" short_gw
before=$(file_serial "$P/gateway.crt")
: >"$DLOG"
start_ok "mtlsgwd starts with it"
for i in $(seq 50); do
    grep -q "renewed at two thirds" "$DLOG" && break
    sleep 0.1
done
expect_in "renewed at two thirds of its lifetime" "$(cat "$DLOG")" \
    "the daemon renews the gateway certificate by itself, and logs it"
after=$(file_serial "$P/gateway.crt")
ok_if "... gateway.crt has a new serial" test "$after" != "$before"
ok_if "... for 11 h again (the same lifetime), the names kept" sh -c \
    "openssl x509 -in '$P/gateway.crt' -noout -enddate -ext subjectAltName | tr -d ' ' |
     grep -q 'DNS:gw.example,IPAddress:127.0.0.1' &&
     [ \$(( \$(date -d \"\$(openssl x509 -in '$P/gateway.crt' -noout -enddate | cut -d= -f2)\" +%s) - \$(date +%s) )) -gt 36000 ]"
if wait_served "$after"; then
    tap_result 0 "... and new handshakes get it"
else
    tap_result 1 "... and new handshakes get it" "wanted $after, served $SERVED"
fi
expect_in "\"actor\":\"mtlsgwd auto-renew\"" "$(grep gateway-renew "$P/audit.log")" \
    "... the audit log names the daemon"
dmn_stop
printf '[pki]\nauto-renew = no\n' >>"$T/gw.conf"
ok_if "the same short certificate again" short_gw
before=$(file_serial "$P/gateway.crt")
: >"$DLOG"
start_ok "mtlsgwd starts with auto-renew = no"
sleep 2
ok_if "with [pki] auto-renew = no it does not renew" \
    test "$(file_serial "$P/gateway.crt")" = "$before"
expect_exit 0 "gateway renew by hand (back to 30 days)" hub gateway renew --days 30

# ---- issued certificates kept, show --pem ---------------------------------
s1=$(file_serial "$T/admin1.crt")
ok_if "enroll --out left a copy in issued/" cmp -s "$P/issued/$s1.crt" "$T/admin1.crt"
expect_exit 0 "show admin1 --pem" hub show admin1 --pem
ok_if "... prints the certificate enroll wrote" test "$OUT" = "$(cat "$T/admin1.crt")"
expect_exit 0 "show admin1 --pem --chain" hub show admin1 --pem --chain
ok_if "... the certificate, then the CA" \
    test "$OUT" = "$(cat "$T/admin1.crt" "$P/ca.crt")"
keycsr mon2
enroll_mon2() { hub enroll mon2 --role monitor --csr "$T/mon2.csr" >"$T/mon2.crt"; }
ok_if "enroll mon2 (certificate on stdout)" enroll_mon2
s2=$(file_serial "$T/mon2.crt")
ok_if "... its serial reads" test -n "$s2"
ok_if "enroll without --out leaves the copy in issued/" test "$(openssl x509 -in "$T/mon2.crt")" = \
    "$(openssl x509 -in "$P/issued/$s2.crt")"
expect_exit 2 "show --chain without --pem is a usage error" hub show admin1 --chain

# ---- reissue -----------------------------------------------------------------
expect_exit 0 "reissue admin1 --out FILE" hub reissue admin1 --out "$T/admin1-new.crt"
s1n=$(file_serial "$T/admin1-new.crt")
ok_if "... a new serial" test "$s1n" != "$s1"
ok_if "... the same public key" test "$(openssl x509 -in "$T/admin1.crt" -noout -pubkey)" = \
    "$(openssl x509 -in "$T/admin1-new.crt" -noout -pubkey)"
ok_if "... the same role URI" test "$(openssl x509 -in "$T/admin1-new.crt" -noout \
    -ext subjectAltName | tail -1)" = "$(openssl x509 -in "$T/admin1.crt" -noout \
    -ext subjectAltName | tail -1)"
cp "$T/admin1.key" "$T/admin1n.key"
cp "$T/admin1-new.crt" "$T/admin1n.crt"
req admin1n GET /api/v1/status
expect_http 200 "the reissued certificate is served"
req admin1 GET /api/v1/status
ok_if "the old serial is refused at handshake at once" test "$HTTP" = 000
expect_in "serial $s1 from 127.0.0.1" "$(grep 'refused (revoked)' "$DLOG")" \
    "... the log says why"
hub show admin1 --json >"$T/a1.json"
expect_in "\"serial\":\"$s1n\"" "$(cat "$T/a1.json")" "show admin1: the new serial is current"
expect_in "\"$s1\"" "$(cat "$P/registry.json")" "the registry keeps the old serial"

m1=$(file_serial "$T/mon1.crt")
expect_exit 0 "reissue mon1 --overlap 4s" hub reissue mon1 --overlap 4s --out "$T/mon1-new.crt"
expect_in "the old serial is refused from" "$OUT" "... says when the old serial stops"
req mon1 GET /api/v1/status
expect_http 200 "during the overlap the old certificate still passes"
ok_if "... and is not on the CRL yet" \
    sh -c "! openssl crl -in '$P/crl.pem' -noout -text | tr 'A-F' 'a-f' | grep -q '$m1'"
sleep 5
req mon1 GET /api/v1/status
ok_if "after the overlap the old certificate is refused" test "$HTTP" = 000
# ---- the overlap's end reaches the CRL ----------------------------------------
# The daemon looks once a minute (nothing else re-signs the CRL meanwhile).
in_crl() { openssl crl -in "$P/crl.pem" -noout -text | tr 'A-F' 'a-f' | grep -q "$m1"; }
for i in $(seq 70); do
    in_crl && break
    sleep 1
done
ok_if "within a minute of the overlap's end the daemon re-signs the CRL with the old serial" in_crl

expect_exit 1 "reissue of an unknown peer fails" hub reissue nosuch
expect_in "no peer named 'nosuch'" "$OUT" "... naming it"
expect_exit 2 "reissue --overlap 0 is a usage error" hub reissue mon2 --overlap 0
ok_if "(the stored copy is set aside)" mv "$P/issued/$s2.crt" "$T/kept.crt"
expect_exit 1 "reissue without a stored copy fails" hub reissue mon2
expect_in "no copy of its certificate" "$OUT" "... and says why and what to do"
mv "$T/kept.crt" "$P/issued/$s2.crt"

# ---- revoke during a reissue's overlap --------------------------------------
# Revoking a peer puts every serial of it on the CRL at once, the one a
# reissue's overlap still keeps valid too: a party that trusts the CRL
# alone (openssl verify -crl_check) refuses both.
expect_exit 0 "reissue mon2 --overlap 30d" hub reissue mon2 --overlap 30d --out "$T/mon2-new.crt"
s2n=$(file_serial "$T/mon2-new.crt")
cp "$T/mon2.key" "$T/mon2n.key"
cp "$T/mon2-new.crt" "$T/mon2n.crt"
req mon2 GET /api/v1/status
expect_http 200 "during the 30-day overlap the old certificate passes"
expect_exit 0 "revoke mon2 during the overlap" hub revoke mon2 --reason keyCompromise
crl_text=$(openssl crl -in "$P/crl.pem" -noout -text | tr 'A-F' 'a-f')
expect_in "$s2n" "$crl_text" "the CRL lists the current serial"
expect_in "$s2" "$crl_text" "the CRL lists the old serial still in its overlap too"
crl_verify() { # cert
    openssl verify -crl_check -CAfile "$P/ca.crt" -CRLfile "$P/crl.pem" "$1" 2>&1
}
expect_in "certificate revoked" "$(crl_verify "$T/mon2.crt")" \
    "openssl verify -crl_check refuses the old certificate"
expect_in "certificate revoked" "$(crl_verify "$T/mon2-new.crt")" "... and the new one"
req mon2 GET /api/v1/status
ok_if "the old certificate is refused at handshake" test "$HTTP" = 000
req mon2n GET /api/v1/status
ok_if "the new certificate is refused at handshake" test "$HTTP" = 000
expect_in '"status":"revoked"' "$(hub show mon2 --json 2>&1)" "show mon2: revoked"

# ---- join --new-key after a revocation ----------------------------------------
dev() { "$MTLSGW" -c "$T/dv.conf" "$@"; }
URL=https://127.0.0.1:$EPORT
GWFP=$(openssl x509 -in "$P/gateway.crt" -noout -fingerprint -sha256 | cut -d= -f2)
code_of() { printf '%s\n' "$1" | awk '$1 == "code" {print $2}'; }
INV=$(hub invite dv1 --role monitor 2>&1)
expect_exit 0 "a device joins" dev join "$URL" --name dv1 --code "$(code_of "$INV")" \
    --fingerprint "$GWFP"
k1=$(openssl x509 -in "$T/dv-pki/device.crt" -noout -pubkey 2>/dev/null)
hub revoke dv1 >/dev/null 2>&1
INV=$(hub invite dv1 --role monitor 2>&1)
CODE=$(code_of "$INV")
expect_exit 1 "after a revocation, join with the old key is refused" \
    dev join "$URL" --name dv1 --code "$CODE" --fingerprint "$GWFP"
expect_exit 0 "join --new-key makes a fresh key and joins" \
    dev join "$URL" --name dv1 --code "$CODE" --fingerprint "$GWFP" --new-key
ok_if "... with another key" test "$(openssl x509 -in "$T/dv-pki/device.crt" -noout -pubkey)" != "$k1"

# ---- days left ----------------------------------------------------------
expect_exit 0 "status --json" hub status --json
expect_in '"gateway":29' "$OUT" "status: days left on the gateway certificate"
req admin1n GET /api/v1/status
expect_in '"gateway":29' "$BODY" "GET /api/v1/status: days left on the gateway certificate"
req admin1n GET /metrics
expect_in "mtlsgw_gateway_cert_days_left 29" "$BODY" "/metrics: mtlsgw_gateway_cert_days_left"
expect_in "mtlsgw_ca_cert_days_left 99" "$BODY" "/metrics: mtlsgw_ca_cert_days_left"
# The CRL's days left are whole days to its nextUpdate: 29 or 30 depending on
# how long ago the last re-sign was (a rollover or overlap re-signs it).
ok_if "/metrics: mtlsgw_crl_days_left" eval 'printf "%s\n" "$BODY" | grep -Eq "^mtlsgw_crl_days_left (29|30)$"'

tap_done
