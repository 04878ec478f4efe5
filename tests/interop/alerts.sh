#!/bin/bash
# Refusals clients can read (docs/security.md "Refusals"): every refused
# handshake ends with the TLS alert RFC 8446 names for the reason, which
# curl, openssl s_client and gnutls-cli print; a banned address gets
# access_denied; bans are listed and lifted by the console and the API; a
# CA that expired refuses every peer and says so in status and metrics.
#
#   curl / s_client / gnutls-cli --- 127.0.0.1 (.2 for the ban) ---> mtlsgwd -f
#                                                                     |  control socket
#   mtlsgw bans / unban / status --------------------------------------+
#
# usage: alerts.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_begin alerts curl gnutls-cli openssl certtool python3

REQUEST='GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'

# What a client prints, all of it (stderr too), for one peer (- : none).
curl_says() { # peer [curl args...]
    local peer=$1
    local -a a=(-sS --max-time 10 --cacert "${CACERT:-$P/ca.crt}" -o /dev/null)
    shift
    [ "$peer" != - ] && a+=(--cert "$T/$peer.crt" --key "$T/$peer.key")
    curl "${a[@]}" "$@" "https://127.0.0.1:$PORT/api/v1/status" 2>&1
}
sclient_says() { # peer [s_client args...]
    local peer=$1
    local -a a=(-connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" -quiet -ign_eof)
    shift
    [ "$peer" != - ] && a+=(-cert "$T/$peer.crt" -key "$T/$peer.key")
    # shellcheck disable=SC2059
    printf "$REQUEST" | timeout 5 openssl s_client "${a[@]}" "$@" 2>&1
}
gnutls_says() { # peer
    local -a a=(--x509cafile "$P/ca.crt" -p "$PORT" 127.0.0.1)
    [ "$1" != - ] && a+=(--x509certfile "$T/$1.crt" --x509keyfile "$T/$1.key")
    # shellcheck disable=SC2059
    printf "$REQUEST" | timeout 5 gnutls-cli "${a[@]}" 2>&1
}

# Case-insensitive: OpenSSL writes "tlsv13 alert certificate required",
# GnuTLS "Received alert [116]: Certificate is required".
expect_said() { # ere output name
    if printf '%s' "$2" | grep -qiE -- "$1"; then
        tap_result 0 "$3"
    else
        tap_result 1 "$3" "expected /$1/ in what the client printed:
$2"
    fi
}

if ! dmn_start; then
    echo "Bail out! the daemon did not start: $(tail -n 20 "$DLOG")"
    exit 1
fi

# ---- TLS 1.3: one alert per verdict ------------------------------------------
# name | peer | curl and s_client (OpenSSL's alert text) | gnutls-cli | log
CASES=(
    "no client certificate|-|alert certificate required|alert \[116\]|no client certificate"
    "foreign CA with our CA's name|foreign|alert unknown ca|alert \[48\]|refused \(unknown-issuer\)"
    "expired|expired|alert certificate expired|alert \[45\]|refused \(expired\)"
    "not yet valid|future|alert certificate expired|alert \[45\]|refused \(not-yet-valid\)"
    "revoked|gone1|alert certificate revoked|alert \[44\]|refused \(revoked\)"
    "not enrolled|stranger|alert access denied|alert \[49\]|refused \(not-enrolled\)"
    "tunnel peer on the management listener|tun1|alert access denied|alert \[49\]|refused \(role-not-allowed\)"
    "role differs from the registry|mismatch|alert bad certificate|alert \[42\]|refused \(role-mismatch\)"
    "no clientAuth|noclient|alert bad certificate|alert \[42\]|refused \(no-clientauth\)"
)
for c in "${CASES[@]}"; do
    IFS='|' read -r name peer ossl gtls logre <<<"$c"
    log_mark
    OUT=$(curl_says "$peer")
    expect_said "$ossl" "$OUT" "$name: curl prints '$ossl'"
    expect_not_in "Empty reply" "$OUT" "$name: curl does not see an empty reply"
    OUT=$(sclient_says "$peer")
    expect_said "$ossl" "$OUT" "$name: openssl s_client prints '$ossl'"
    OUT=$(gnutls_says "$peer")
    expect_said "$gtls" "$OUT" "$name: gnutls-cli receives alert ${gtls#alert }"
    expect_log_lines "$logre" 3 "$name: the daemon logs the exact reason, once per client"
done
# The same clients with a trusted peer are answered.
OUT=$(curl_says admin1 -w '%{http_code}')
expect_in 200 "$OUT" "admin1 is answered by the same curl"
dmn_stop

# ---- TLS 1.2: no certificate is a handshake_failure (RFC 5246 7.4.6) ---------
gw_conf "$T/tls12.conf" "tls-min = 1.2" "handshake-timeout = 2"
if dmn_start "$T/tls12.conf"; then
    OUT=$(curl_says - --tls-max 1.2)
    expect_said "alert handshake failure" "$OUT" "TLS 1.2, no certificate: curl prints 'alert handshake failure'"
    OUT=$(sclient_says - -tls1_2)
    expect_said "alert handshake failure" "$OUT" "TLS 1.2, no certificate: s_client prints it too"
    OUT=$(curl_says gone1 --tls-max 1.2)
    expect_said "alert certificate revoked" "$OUT" "TLS 1.2, revoked: curl prints 'alert certificate revoked'"
    OUT=$(curl_says stranger --tls-max 1.2)
    expect_said "alert access denied" "$OUT" "TLS 1.2, not enrolled: curl prints 'alert access denied'"
    dmn_stop
else
    tap_result 1 "the daemon starts with tls-min = 1.2" "$(tail -n 20 "$DLOG")"
fi

# ---- bans: a clear alert, listed, lifted --------------------------------------
# 127.0.0.2 fails three times and is banned; 127.0.0.1 (the console's API
# calls) is not.
sed 's/^ban-threshold = .*/ban-threshold = 3\nban-time = 120/' "$T/gw.conf" >"$T/ban.conf"
ban_it() {
    local i
    for i in 1 2 3; do curl_says - --interface 127.0.0.2 >/dev/null; done
}
if dmn_start "$T/ban.conf"; then
    log_mark
    ban_it
    OUT=$(curl_says admin1 --interface 127.0.0.2)
    expect_said "alert access denied" "$OUT" "banned: even admin1 from 127.0.0.2 gets 'alert access denied'"
    expect_not_in "internal error" "$OUT" "banned: not an internal_error alert"
    expect_log_lines "127.0.0.2 banned for 120 s after 3 failed authentications" 1 \
        "the ban is logged once"
    OUT=$(hub bans)
    expect_in "127.0.0.2" "$OUT" "mtlsgw bans lists 127.0.0.2"
    OUT=$(hub bans --json)
    ok_if "mtlsgw bans --json: address, failures, seconds left" python3 -c '
import json, sys
b = json.loads(sys.argv[1])
assert len(b) == 1 and b[0]["address"] == "127.0.0.2", b
assert b[0]["failures"] == 3 and 0 < b[0]["seconds_left"] <= 120, b' "$OUT"
    req mon1 GET /api/v1/bans
    expect_http 200 "GET /api/v1/bans as monitor"
    expect_json "the API lists the ban" 'assert [x["address"] for x in b] == ["127.0.0.2"], b'
    req mon1 GET /api/v1/status
    expect_json "status counts it" 'assert b["bans"]["banned"] == 1 and b["bans"]["refused_total"] >= 1, b'
    OUT=$(hub status)
    expect_in "1 address(es) banned now" "$OUT" "mtlsgw status shows the ban"
    req mon1 GET /metrics
    expect_in "mtlsgw_banned_addresses 1" "$BODY" "/metrics: mtlsgw_banned_addresses 1"
    expect_exit 0 "mtlsgw unban 127.0.0.2" hub unban 127.0.0.2
    expect_in "lifted the ban of 127.0.0.2" "$OUT" "unban says what it did"
    OUT=$(curl_says admin1 --interface 127.0.0.2 -w '%{http_code}')
    expect_in 200 "$OUT" "after unban admin1 from 127.0.0.2 is answered"
    expect_exit 1 "unban of an address that is not banned fails" hub unban 127.0.0.2
    expect_in "127.0.0.2 is not banned" "$OUT" "... and says so"
    expect_exit 1 "unban of something that is not an address fails" hub unban not-an-address
    expect_in "not an IPv4 or IPv6 address" "$OUT" "... and says so"
    # The API: monitors read, admins lift.
    ban_it
    req mon1 DELETE /api/v1/bans/127.0.0.2
    expect_http 403 "DELETE /api/v1/bans/ADDR as monitor is refused"
    req admin1 DELETE /api/v1/bans/127.0.0.2
    expect_http 200 "DELETE /api/v1/bans/ADDR as admin lifts the ban"
    req admin1 DELETE /api/v1/bans/127.0.0.2
    expect_http 404 "... and a second DELETE finds none"
    req admin1 GET /api/v1/bans
    expect_json "the list is empty again" 'assert b == [], b'
    req mon1 GET /metrics
    expect_in "mtlsgw_banned_addresses 0" "$BODY" "/metrics: mtlsgw_banned_addresses 0"
    OUT=$(hub bans)
    expect_in "no address is banned" "$OUT" "mtlsgw bans: none"
    dmn_stop
else
    tap_result 1 "the daemon starts with a ban threshold" "$(tail -n 20 "$DLOG")"
fi

# ---- a CA that expired: every peer refused, loudly -------------------------------
# The CA certificate again, same key and name, valid 2020 only (certtool
# signs with the CA key through its token URI).
printf '%s\n' 'cn = gw1 CA' 'ca' 'cert_signing_key' 'crl_signing_key' \
    'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2021-01-01 00:00:00"' \
    >"$T/oldca.tmpl"
cp "$P/ca.crt" "$T/ca.good"
if GNUTLS_PIN=$PIN certtool --generate-self-signed \
    --load-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
    --template "$T/oldca.tmpl" --outfile "$T/oldca.crt" >/dev/null 2>&1; then
    cp "$T/oldca.crt" "$P/ca.crt"
    # Clients keep trusting the good copy (the server's chain is ours).
    CACERT=$T/ca.good
    log_mark
    # Not dmn_start: it waits for admin1 to be answered.
    "$MTLSGWD" -c "$T/gw.conf" -f 2>>"$DLOG" >>"$DLOG" &
    DPID=$!
    log_wait "session process ready" 1
    OUT=$(curl_says admin1)
    expect_said "alert certificate expired" "$OUT" "CA expired: admin1 gets 'alert certificate expired'"
    expect_log_lines "refused \(expired\): the CA 'CN=gw1 CA' expired on 2021-01-01" 1 \
        "the refusal names the CA's expiry"
    log_wait "CA certificate expired .* every peer it issued is refused" 1
    expect_log_lines "CA certificate expired .* every peer it issued is refused" 1 \
        "the log says the CA expired and what it means"
    OUT=$(hub status)
    expect_in "THE CA HAS EXPIRED" "$OUT" "mtlsgw status says the CA expired"
    OUT=$(hub status --json)
    ok_if "status: days_left.ca is negative" python3 -c '
import json, sys
assert json.loads(sys.argv[1])["days_left"]["ca"] < 0' "$OUT"
    keycsr late1 >/dev/null 2>&1
    expect_exit 1 "enrolling with an expired CA is refused" \
        hub enroll late1 --role admin --csr "$T/late1.csr" --out "$T/late1.crt"
    expect_in "expired on 2021-01-01" "$OUT" "... naming the CA's end"
    dmn_stop
    unset CACERT
else
    tap_result 1 "an expired copy of the CA certificate can be made" ""
fi
cp "$T/ca.good" "$P/ca.crt"

# ---- issuing never outlasts the CA ---------------------------------------------
# A CA of 30 days; a peer asked for 397 ends with the CA.
mkdir -p "$T/short-pki" && chown "$DUSER:" "$T/short-pki"
mkconf "$T/short.conf" ot "$T/other.pin" "$T/short-pki"
"$MTLSGW" -c "$T/short.conf" init --cn short1 --host 127.0.0.1 --days 30 --force >/dev/null 2>&1
keycsr short1 >/dev/null 2>&1
if "$MTLSGW" -c "$T/short.conf" enroll short1 --role admin --csr "$T/short1.csr" \
    --days 397 --out "$T/short1.crt" >/dev/null 2>&1; then
    ca_end=$(openssl x509 -in "$T/short-pki/ca.crt" -noout -enddate)
    peer_end=$(openssl x509 -in "$T/short1.crt" -noout -enddate)
    ok_if "a peer asked for 397 days of a 30-day CA ends with the CA ($peer_end, $ca_end)" \
        test "$ca_end" = "$peer_end"
else
    tap_result 1 "enroll on a 30-day CA" "$("$MTLSGW" -c "$T/short.conf" enroll short1 \
        --role admin --csr "$T/short1.csr" --days 397 --out "$T/short1.crt" 2>&1)"
fi
# Said well before: a warning in the log, the days in status and metrics.
printf '[management]\nlisten = 127.0.0.1:%s\n' "$PORT" >>"$T/short.conf"
log_mark
"$MTLSGWD" -c "$T/short.conf" -f 2>>"$DLOG" >>"$DLOG" &
DPID=$!
expect_log_lines "CA certificate expires in 29 days \(every peer is refused from then on" 1 \
    "a CA with 29 days left: a warning in the log"
OUT=$("$MTLSGW" -c "$T/short.conf" status)
expect_in "the CA expires in 29 days" "$OUT" "mtlsgw status warns too"
OUT=$(curl -sS --max-time 10 --cacert "$T/short-pki/ca.crt" --cert "$T/short1.crt" \
    --key "$T/short1.key" "https://127.0.0.1:$PORT/metrics" 2>&1)
expect_in 'mtlsgw_cert_days_left{cert="ca"} 29' "$OUT" "/metrics: the CA's days left"
dmn_stop

tap_done
