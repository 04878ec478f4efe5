#!/bin/bash
# The management listener against an outside scanner: Debian's testssl.sh
# (issue 8, part 5), once with the default tls-min = 1.3 and once with
# tls-min = 1.2. Asserted from its --jsonfile output:
#
#   - no protocol below the configured minimum is offered, the minimum is;
#   - every cipher category without AEAD (NULL, aNULL, EXPORT, LOW,
#     3DES/IDEA, obsolete CBC) is "not offered", strong AEAD with forward
#     secrecy is "offered";
#   - no client-initiated renegotiation; no TLS compression (CRIME).
#
# testssl.sh 3.0 has no option for a client certificate. Its protocol and
# cipher checks read the ServerHello, which comes before the daemon asks
# for a certificate, so they are real without one; its renegotiation and
# compression checks use `openssl s_client`, which would only see a refused
# handshake. So testssl gets an `openssl` wrapper that adds the admin's
# certificate and key to every s_client call, and the suite checks the
# daemon's log for the admin handshakes those calls made: the findings come
# from completed mutual-TLS handshakes, not from refusals.
#
# A full run takes minutes on a loaded 2-core machine (testssl.sh is a big
# bash script), so this is meson suite 'scan' (dev/test runs it).
#
# usage: testssl.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

TESTSSL=$(command -v testssl || command -v testssl.sh) ||
    { echo "1..0 # SKIP testssl.sh missing (dev/deps installs it)"; exit 77; }
for tool in curl certtool python3 openssl; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-testssl.XXXXXX)
cleanup() {
    dmn_stop
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
chmod 755 "$T"

dmn_fixture
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM"; exit 77 ;;
*) echo "Bail out! fixture: tokens, CA or peers could not be made"; exit 1 ;;
esac

# openssl for testssl.sh: s_client with the admin's certificate.
mkdir -p "$T/bin"
REAL_OPENSSL=$(command -v openssl)
cat >"$T/bin/openssl" <<SH
#!/bin/sh
if [ "\$1" = s_client ]; then
    shift
    exec "$REAL_OPENSSL" s_client -cert "$T/admin1.crt" -key "$T/admin1.key" "\$@"
fi
exec "$REAL_OPENSSL" "\$@"
SH
chmod 755 "$T/bin/openssl"

SUMMARY=$T/summary.txt
: >"$SUMMARY"

scan() { # tls-min
    local min=$1 json=$T/scan-$1.json t0 t1
    gw_conf "$T/gw.conf" "tls-min = $min"
    dmn_start || { tap_result 1 "tls-min $min: the daemon starts" "$(tail -n 5 "$DLOG")"; return; }
    log_mark
    t0=$(date +%s)
    # -p protocols, -s cipher categories, -R renegotiation, -C compression;
    # no DNS, no HTTP header checks (the listener is not plain HTTP to an
    # anonymous client).
    "$TESTSSL" --quiet --color 0 --warnings off -n none --openssl "$T/bin/openssl" \
        --connect-timeout 10 --openssl-timeout 10 -p -s -R -C \
        --jsonfile "$json" "127.0.0.1:$PORT" >"$T/scan-$min.txt" 2>&1
    t1=$(date +%s)
    echo "# testssl.sh against tls-min = $min: $((t1 - t0)) s"
    if [ ! -s "$json" ]; then
        tap_result 1 "tls-min $min: testssl.sh wrote its JSON findings" "$(tail -n 20 "$T/scan-$min.txt")"
        dmn_stop
        return
    fi
    tap_result 0 "tls-min $min: testssl.sh wrote its JSON findings"
    n=$(log_since | grep -c "peer admin1 .*accepted as admin")
    ok_if "tls-min $min: testssl's s_client calls completed mutual-TLS handshakes as admin1 ($n)" \
        test "$n" -ge 1
    python3 - "$json" "$min" >>"$SUMMARY" <<'PY'
import json, sys
f = {x["id"]: x for x in json.load(open(sys.argv[1]))}
print("tls-min = %s" % sys.argv[2])
for k in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3",
          "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
          "cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "cipherlist_GOOD", "cipherlist_STRONG",
          "secure_renego", "secure_client_renego", "CRIME_TLS"]:
    if k in f:
        print("  %-22s %-6s %s" % (k, f[k]["severity"], f[k]["finding"]))
PY
    check() { # name python-assertion-on-f
        local err
        if err=$(python3 -c "import json, sys
f = {x['id']: x['finding'] for x in json.load(open(sys.argv[1]))}
def has(k, *words):
    assert k in f, k + ': no finding (not tested?)'
    assert any(f[k].startswith(w) for w in words), k + ': ' + f[k]
$2" "$json" 2>&1); then
            tap_result 0 "tls-min $min: $1"
        else
            tap_result 1 "tls-min $min: $1" "$err"
        fi
    }
    check "SSLv2, SSLv3, TLS 1.0 and 1.1 not offered" \
        "[has(k, 'not offered') for k in ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']]"
    if [ "$min" = 1.2 ]; then
        check "TLS 1.2 and 1.3 offered" "has('TLS1_2', 'offered'); has('TLS1_3', 'offered')"
    else
        check "TLS 1.2 not offered, TLS 1.3 offered" \
            "has('TLS1_2', 'not offered'); has('TLS1_3', 'offered')"
    fi
    check "no cipher without AEAD (NULL, aNULL, EXPORT, LOW, 3DES/IDEA, CBC: not offered)" \
        "[has(k, 'not offered') for k in ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_AVERAGE']]"
    check "strong AEAD ciphers with forward secrecy offered, none without" \
        "has('cipherlist_STRONG', 'offered'); assert 'cipherlist_GOOD' not in f or f['cipherlist_GOOD'].startswith('not offered'), f.get('cipherlist_GOOD')"
    check "no client-initiated renegotiation" "has('secure_client_renego', 'not vulnerable')"
    check "no TLS compression (CRIME)" \
        "has('CRIME_TLS', 'not vulnerable', 'TLS 1.3 only server')"
    if [ "$min" = 1.2 ]; then
        # A renegotiation the client asks for is refused (RFC 5746 signalling
        # alone is fine), also seen from openssl itself: "R" asks for one.
        out=$( (echo R; sleep 2; echo Q) | timeout 15 "$REAL_OPENSSL" s_client -tls1_2 \
            -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" -cert "$T/admin1.crt" \
            -key "$T/admin1.key" 2>&1)
        expect_in "RENEGOTIATING" "$out" "tls-min 1.2: openssl asked for a renegotiation"
        ok_if "tls-min 1.2: and got no new handshake (no second 'verify return' after it)" \
            python3 -c 'import sys; o = sys.argv[1]; i = o.find("RENEGOTIATING"); sys.exit(i < 0 or "verify return:1" in o[i:])' "$out"
    fi
    if kill -0 "$DPID" 2>/dev/null; then
        req admin1 GET /api/v1/status
        expect_http 200 "tls-min $min: the daemon still serves after the scan"
    else
        tap_result 1 "tls-min $min: the daemon still serves after the scan" "it is gone"
    fi
    dmn_stop
}

scan 1.3
scan 1.2
echo "# testssl.sh summary (ids and findings from --jsonfile):"
sed 's/^/# /' "$SUMMARY"
tap_done
